"""Mu-law companding against the formula written out independently in the test."""
import math

import numpy as np
import torch

from reference_model.mulaw import mu_law_decode, mu_law_encode


def formula_encode(x: float, mu: int = 255) -> int:
    y = math.copysign(math.log(1 + mu * abs(x)) / math.log(1 + mu), x)
    return int(math.floor((y + 1) / 2 * mu + 0.5))


def test_encode_matches_the_formula_sample_by_sample():
    xs = np.linspace(-1, 1, 2001)
    expected = [formula_encode(x) for x in xs]
    got = mu_law_encode(xs)
    # rounding ties (exact .5) may differ between floor(+0.5) and banker's rounding: allow 1 code
    assert np.max(np.abs(got - expected)) <= 1
    assert np.mean(got == expected) > 0.999


def test_round_trip_error_is_within_half_a_step():
    x = np.random.default_rng(0).uniform(-1, 1, 100_000)
    mu = 255
    back = mu_law_decode(mu_law_encode(x))
    # rounding moves the companded value y by at most half a step, 1 / mu; the expander is
    # convex in |y|, so the forward difference bounds the error on either side
    y = np.log1p(mu * np.abs(x)) / np.log1p(mu)
    half_step = (np.expm1((y + 1 / mu) * np.log1p(mu)) - np.expm1(y * np.log1p(mu))) / mu
    assert np.all(np.abs(back - x) <= half_step + 1e-6)  # 1e-6: float32 output


def test_decode_then_encode_is_identity_on_codes():
    codes = np.arange(256)
    assert np.array_equal(mu_law_encode(mu_law_decode(codes)), codes)


def test_extremes_and_clipping():
    assert mu_law_encode(np.array([-1.0, 1.0, -3.0, 3.0])).tolist() == [0, 255, 0, 255]
    assert mu_law_decode(np.array([0, 255])).tolist() == [-1.0, 1.0]


def test_torch_and_numpy_agree():
    x = np.random.default_rng(1).uniform(-1, 1, 1000)
    assert np.array_equal(mu_law_encode(torch.from_numpy(x)).numpy(), mu_law_encode(x))
    codes = np.arange(256)
    assert np.allclose(mu_law_decode(torch.from_numpy(codes)).numpy(), mu_law_decode(codes),
                       atol=1e-7)  # float32 output of both paths
