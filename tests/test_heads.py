"""Output heads: the discretized mixture of logistics against scipy, its one-uniform draw
against its own distribution, and the linear codes of scalar-input models."""
import math

import numpy as np
import pytest
import scipy.stats
import torch

from reference_model.codes import decode, encode, linear_codes, linear_values
from reference_model.config import ModelConfig
from reference_model.heads import log_probs, mixture_log_probs, sample_mixture
from reference_model.sampling import draw_next, sample_next

MOL = ModelConfig(input="scalar", output="mol", classes=65536, mixtures=3)


def random_mixture(m, columns, seed, log_scale=(-3.0, -1.0)):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0, 1, (m, columns)), rng.uniform(-0.8, 0.8, (m, columns)),
                           rng.uniform(*log_scale, (m, columns))])


def scipy_bin_probability(params, y, classes):
    """P(bin of y) by scipy's logistic distribution: the mixture of each component's mass."""
    m = params.shape[0] // 3
    weights = scipy.special.softmax(params[:m], axis=0)
    half = 1.0 / (classes - 1)
    total = np.zeros_like(y)
    for k in range(m):
        dist = scipy.stats.logistic(loc=params[m + k], scale=np.exp(params[2 * m + k]))
        upper = np.where(y > 0.999, 1.0, dist.cdf(y + half))  # the last bin reaches +inf
        lower = np.where(y < -0.999, 0.0, dist.cdf(y - half))  # the first bin reaches -inf
        total += weights[k] * (upper - lower)
    return total


def test_mixture_bin_masses_equal_scipy_logistic():
    classes, columns = 256, 400  # wide bins and broad logistics: no mass near the fallback
    params = random_mixture(4, columns, 0, log_scale=(-1.0, 0.0))
    y = np.linspace(-1, 1, classes)[np.random.default_rng(1).integers(0, classes, columns)]
    for k in range(4):  # the exact formula holds where each component's bin mass > 1e-5
        one = params[[k, 4 + k, 8 + k]]
        assert scipy_bin_probability(one, y, classes).min() > 1e-5
    got = mixture_log_probs(torch.from_numpy(params)[None], torch.from_numpy(y)[None], classes,
                            -16.0)[0].numpy()
    np.testing.assert_allclose(np.exp(got), scipy_bin_probability(params, y, classes), rtol=1e-9)


def test_mixture_masses_over_every_bin_sum_to_one():
    classes = 64
    params = random_mixture(3, 1, 2, log_scale=(-1.0, 0.0))
    y = linear_values(torch.arange(classes), classes)
    cols = torch.from_numpy(params).expand(3 * 3, classes)[None]
    total = torch.exp(mixture_log_probs(cols, y[None], classes, -16.0)).sum()
    assert abs(float(total) - 1.0) < 1e-12


def test_tiny_masses_fall_back_to_density_times_bin_width():
    # 65536 bins and a sharp logistic: masses below 1e-5 take wavenet_vocoder's fallback,
    # ln(pdf(centre) * bin width), which the exact mass approaches for a narrow bin
    params = np.array([[0.0], [0.1], [-2.0]])  # one component, mean 0.1, scale e^-2
    y = np.array([0.8])
    got = float(mixture_log_probs(torch.from_numpy(params)[None], torch.from_numpy(y)[None],
                                  65536, -16.0))
    density = scipy.stats.logistic(loc=0.1, scale=math.exp(-2.0)).pdf(0.8)
    assert density * 2 / 65535 < 1e-5  # the fallback branch is the one taken
    assert got == pytest.approx(math.log(density * 2 / 65535), abs=1e-9)


def test_log_scales_are_clamped_at_log_scale_min():
    params = np.array([[0.0], [0.0], [-30.0]])
    y = torch.zeros(1, 1, dtype=torch.float64)
    at_min = mixture_log_probs(torch.from_numpy(params)[None], y, 65536, -7.0)
    clamped = mixture_log_probs(torch.from_numpy(np.array([[0.0], [0.0], [-7.0]]))[None], y,
                                65536, -7.0)
    assert float(at_min) == float(clamped)


def test_one_uniform_draw_follows_the_bin_masses():
    """Stratified uniforms through the draw give each code its mass (the split of u into a
    component choice and a position within it is exact)."""
    classes, n = 32, 400_000
    params = random_mixture(3, 1, 3, log_scale=(-2.5, -1.5))[:, 0]
    u = (np.arange(n) + 0.5) / n
    codes = sample_mixture(np.repeat(params[None], n, 0), u, temperature=1.0, classes=classes,
                           log_scale_min=-16.0)
    counts = np.bincount(codes, minlength=classes) / n
    y = linear_values(np.arange(classes), classes)
    exact = scipy_bin_probability(np.repeat(params[:, None], classes, 1), y, classes)
    # u is kept in [1e-5, 1 - 1e-5] as wavenet_vocoder keeps its uniforms: tails of 1e-5 move
    assert np.abs(counts - exact).max() < 3e-4


def test_zero_temperature_takes_the_likeliest_components_mean():
    params = np.array([[0.1, 2.0, -1.0, 0.3, -0.25, 0.9, -3.0, -3.0, -3.0]])
    code = sample_mixture(params, np.array([0.7]), temperature=0.0, classes=65536,
                          log_scale_min=-16.0)
    assert code.tolist() == [int(linear_codes(np.array([-0.25]), 65536)[0])]


def test_draw_next_dispatches_on_the_head():
    logits = np.random.default_rng(4).standard_normal((5, 256))
    u = np.random.default_rng(5).random(5)
    softmax = ModelConfig()
    np.testing.assert_array_equal(draw_next(logits, u, temperature=0.8, config=softmax),
                                  sample_next(logits, u, temperature=0.8))
    params = torch.from_numpy(random_mixture(3, 5, 6).T.copy())
    torch_codes = draw_next(params, torch.from_numpy(u), temperature=0.8, config=MOL)
    numpy_codes = draw_next(params.numpy(), u, temperature=0.8, config=MOL)
    np.testing.assert_array_equal(torch_codes.numpy(), numpy_codes)


def test_linear_codes_round_trip_and_16_bit_pcm_lands_within_half_a_bin():
    codes = np.arange(65536)
    np.testing.assert_array_equal(linear_codes(linear_values(codes, 65536), 65536), codes)
    pcm = np.arange(-32768, 32768) / 32768.0
    back = linear_values(linear_codes(pcm, 65536), 65536)
    assert np.abs(back - pcm).max() <= 1 / 65535 + 1e-15
    assert decode(encode(np.array([-1.0, 0.0, 1.0]), MOL), MOL).tolist() == [-1.0, pytest.approx(
        1 / 65535, rel=1e-7), 1.0]


def test_softmax_log_probs_are_log_softmax_at_the_codes():
    logits = torch.randn(2, 256, 7, dtype=torch.float64)
    codes = torch.randint(0, 256, (2, 7))
    expected = torch.log_softmax(logits, 1)[torch.arange(2)[:, None], codes, torch.arange(7)]
    torch.testing.assert_close(log_probs(logits, codes, ModelConfig()), expected)


def test_mismatched_input_and_head_are_refused():
    from wavebench_base.errors import InputError
    with pytest.raises(InputError, match="scalar input goes with the mixture head"):
        ModelConfig(input="scalar")
    with pytest.raises(InputError, match="upsample_scales whose product is hop_length"):
        ModelConfig(cond="mel", upsample="vocoder", upsample_scales=[4, 4], hop_length=256)


def test_wavebench_features_are_refused_for_a_model_that_reads_another_projects():
    from reference_model.features import log_mel
    from wavebench_base.errors import InputError
    config = ModelConfig(cond="mel", n_mels=8, hop_length=4, upsample="vocoder",
                         upsample_scales=(2, 2), mel_norm="none")
    with pytest.raises(InputError, match="give the frames as a .npy file"):
        log_mel(np.zeros(64, np.float32), config)


def test_pytorch_wavenet_coding_worked_by_hand():
    from reference_model.codes import pytorch_wavenet_decode, pytorch_wavenet_encode
    config = ModelConfig(mu_law="pytorch-wavenet")
    # silence: mu-law 0 lies in the bin [-1/255, 1/255) of np.digitize's edges, index 127
    # (wavebench's rounding gives 128); the ends are bins 0 and 255
    np.testing.assert_array_equal(encode(np.array([-1.0, 0.0, 1.0]), config), [0, 127, 255])
    assert encode(np.array([0.0]), ModelConfig()).tolist() == [128]
    # code 127 decodes to y = 127 / 256 * 2 - 1 = -1/128, expanded with mu = 256
    expected = -(257 ** (1 / 128) - 1) / 256
    assert float(pytorch_wavenet_decode(np.array([127]), 256)[0]) == pytest.approx(expected, rel=1e-6)
    # the source's decode and encode are not inverses: a decoded code lands one bin lower
    codes = np.arange(1, 256)
    np.testing.assert_array_equal(pytorch_wavenet_encode(pytorch_wavenet_decode(codes, 256), 256),
                                  codes - 1)
    torch_codes = encode(torch.tensor([0.25, -0.5]), config)
    assert torch_codes.tolist() == pytorch_wavenet_encode(np.array([0.25, -0.5]), 256).tolist()
