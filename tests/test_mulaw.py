"""Mu-law companding against librosa's implementation, an independent reference.

Conventions (librosa 0.10/0.11, ``librosa.mu_compress`` and ``librosa.mu_expand``):

- The companding curve is the same: y = sign(x) ln(1 + mu |x|) / ln(1 + mu), with our
  mu = classes - 1. librosa's ``quantize=False`` gives it in float64; that is what we compare.
- Quantization differs. Our codes are 0 .. classes - 1 (unsigned; 128 is silence for 256
  classes) and a code is the *nearest* of the classes levels y_k = 2k / mu - 1, which include
  both -1 and +1. librosa's quantized codes are signed (-128 .. 127) and are the *bin* of y with
  those same levels as bin edges (``np.digitize(..., right=True)``), so they round towards +1.
  We check that our code is the nearer end of librosa's bin.
- librosa's quantized ``mu_expand`` maps a signed code c to y = c / 128 (levels -1 .. 127/128,
  not its own bin edges), so we check decoding with its continuous expand at our levels y_k.
"""
import librosa
import numpy as np
import pytest
import torch

from reference_model.mulaw import mu_law_decode, mu_law_encode

# the edges, quarters, values near 0 and dense steps over [-1, 1]
XS = np.concatenate([[-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1e-6, -1e-6, 1e-3, -1e-3],
                     np.linspace(-1, 1, 20_001),
                     np.random.default_rng(0).uniform(-1, 1, 20_000)])


@pytest.mark.parametrize("classes", [256, 16])
def test_encode_is_the_nearest_level_of_librosas_curve(classes):
    mu = classes - 1
    y = librosa.mu_compress(XS, mu=mu, quantize=False)
    levels = np.linspace(-1, 1, classes)  # y_k = 2k / mu - 1
    nearest = np.abs(y[:, None] - levels[None, :])
    got = mu_law_encode(XS, classes=classes)
    assert got.dtype == np.int64 and got.min() == 0 and got.max() == mu
    best = nearest.min(axis=1)
    # our code is a nearest level; at an exact tie (none expected here) either would do
    assert np.all(nearest[np.arange(XS.size), got] <= best + 1e-12)


@pytest.mark.parametrize("classes", [256, 16])
def test_encode_is_an_end_of_librosas_quantization_bin(classes):
    mu = classes - 1
    signed = librosa.mu_compress(XS, mu=mu, quantize=True)  # bin index - classes // 2
    upper = signed + classes // 2  # y lies in (level[upper - 1], level[upper]]
    got = mu_law_encode(XS, classes=classes)
    assert np.all((got == upper) | (got == upper - 1))
    # librosa's bins round up: where we round down, the difference is exactly one code
    assert 0.3 < np.mean(got == upper - 1) < 0.7


def test_hand_worked_codes():
    # x = 0: y = 0, (y + 1) / 2 * 255 = 127.5, a tie that np.round sends to the even 128
    # x = 0.5: y = ln(128.5) / ln(256) = 0.875706, (1.875706 / 2) * 255 = 239.15 -> 239
    # x = -0.5: y = -0.875706, (0.124294 / 2) * 255 = 15.85 -> 16
    # x = 0.01: y = ln(3.55) / ln(256) = 0.228477, (1.228477 / 2) * 255 = 156.63 -> 157
    assert mu_law_encode(np.array([0.0, 0.5, -0.5, 0.01])).tolist() == [128, 239, 16, 157]


@pytest.mark.parametrize("classes", [256, 16])
def test_decode_is_librosas_expand_at_our_levels(classes):
    mu = classes - 1
    codes = np.arange(classes)
    expected = librosa.mu_expand(2 * codes / mu - 1, mu=mu, quantize=False)
    got = mu_law_decode(codes, classes=classes)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)  # float32 output


def test_hand_worked_levels():
    # code 128: y = 2 * 128 / 255 - 1 = 1 / 255, x = (256 ** (1 / 255) - 1) / 255 = 8.6212e-5
    # code 192: y = 129 / 255 = 0.505882, 256 ** y = e ** 2.805210 = 16.5305, x = 15.5305 / 255
    # code 255: y = 1, x = 1; code 0: y = -1, x = -1
    got = mu_law_decode(np.array([128, 192, 255, 0]))
    np.testing.assert_allclose(got, [8.6212e-5, 0.060904, 1.0, -1.0], rtol=1e-4)


def test_round_trip_error_is_within_half_a_step():
    x = np.random.default_rng(0).uniform(-1, 1, 100_000)
    mu = 255
    back = mu_law_decode(mu_law_encode(x))
    # rounding moves the companded value y by at most half a step, 1 / mu; the expander is
    # convex in |y|, so the forward difference bounds the error on either side
    y = np.abs(librosa.mu_compress(x, mu=mu, quantize=False))
    half_step = (librosa.mu_expand(np.minimum(y + 1 / mu, 1), mu=mu, quantize=False)
                 - librosa.mu_expand(y, mu=mu, quantize=False))
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
