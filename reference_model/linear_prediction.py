"""Linear prediction from the mel frames: the network models only the excitation (LPCNet's split).

A model with ``lpc_order = K > 0`` (Valin and Skoglund, "LPCNet", ICASSP 2019) predicts each
sample from the K before it, ``p_t = sum_k a_k s_{t-1-k}``, with coefficients ``a`` that the
frame's log-mel magnitudes fix: the mel frame is mapped back to a magnitude spectrum (the
filterbank's pseudo-inverse), squared, turned into an autocorrelation (inverse FFT) and solved
by Levinson-Durbin. The network's softmax is then over the mu-law code of the excitation
``e_t = s_t - p_t``, and a sampler makes each sample as ``s_t = clip(p_t + e_t)``, quantized to
its mu-law code (the input of the next step). The all-pole filter shapes the spectrum, so the
network's job shrinks to the fine structure the mel leaves out. Every quantity here is float64
numpy, computed the same way by every sampler, so samplers still agree code for code.
"""
from __future__ import annotations

import functools

import numpy as np

from reference_model.features import N_FFT, log_mel, mel_basis
from reference_model.mulaw import mu_law_decode, mu_law_encode

#: The autocorrelation's zero lag is raised by this fraction before solving (a white-noise
#: floor of -40 dB), which keeps the normal equations well conditioned on silent or pure-tone
#: frames and the filter's poles inside the unit circle.
WHITE_NOISE_FLOOR = 1e-4
#: Added to the magnitudes mapped back from the mel frames, which are clamped at zero.
MAGNITUDE_FLOOR = 1e-7


@functools.lru_cache(maxsize=8)
def _mel_inverse(sample_rate: int, n_mels: int) -> np.ndarray:
    """Pseudo-inverse of the mel filterbank [n_fft // 2 + 1, n_mels], float64."""
    inverse = np.linalg.pinv(mel_basis(sample_rate, n_mels).astype(np.float64))
    inverse.setflags(write=False)
    return inverse


def levinson(autocorrelation: np.ndarray) -> np.ndarray:
    """Predictor coefficients from autocorrelations by Levinson-Durbin, all rows at once.

    Parameters
    ----------
    autocorrelation : np.ndarray [shape=(..., K + 1)]
        Lags 0..K of positive definite autocorrelation sequences.

    Returns
    -------
    np.ndarray [shape=(..., K)], float64
        ``a`` with ``sum_k a_k r_|j - k| = r_(j + 1)`` for j = 0..K-1, the normal equations that
        ``scipy.linalg.solve_toeplitz(r[:K], r[1:])`` solves.
    """
    r = np.asarray(autocorrelation, dtype=np.float64)
    order = r.shape[-1] - 1
    a = np.zeros(r.shape[:-1] + (order,))
    error = r[..., 0].copy()
    for i in range(order):
        # reflection coefficient of step i: (r_(i+1) - sum_j a_j r_(i-j)) / error
        k = (r[..., i + 1] - np.einsum("...j,...j->...", a[..., :i], r[..., i:0:-1])) / error
        if i:  # a_j -= k a_(i-1-j), the right side evaluated before the update
            a[..., :i] -= k[..., None] * a[..., i - 1::-1]
        a[..., i] = k
        error = error * (1.0 - k * k)
    return a


def coefficients(log_mel: np.ndarray, config) -> np.ndarray:
    """The predictor of every frame, from the model's own log-mel frames.

    Parameters
    ----------
    log_mel : np.ndarray [shape=(..., n_mels, frames)]
        ln mel magnitudes, as :func:`~reference_model.features.log_mel` computes them.
    config : ModelConfig
        Supplies ``sample_rate``, ``n_mels`` and ``lpc_order``.

    Returns
    -------
    np.ndarray [shape=(..., frames, lpc_order)], float64
    """
    mel = np.exp(np.asarray(log_mel, dtype=np.float64))
    magnitude = np.maximum(_mel_inverse(config.sample_rate, config.n_mels) @ mel, 0.0)
    power = np.swapaxes(magnitude + MAGNITUDE_FLOOR, -1, -2) ** 2  # [..., frames, bins]
    lags = np.fft.irfft(power, n=N_FFT, axis=-1)[..., :config.lpc_order + 1]
    lags[..., 0] *= 1.0 + WHITE_NOISE_FLOOR
    return levinson(lags)


def predictions(values: np.ndarray, coeffs: np.ndarray, hop: int) -> np.ndarray:
    """``p_t = sum_k a[t // hop, k] * values[t - 1 - k]`` for every t (zeros before the start).

    Parameters
    ----------
    values : np.ndarray [shape=(..., n)]
        The samples the predictor reads (mu-law quantized, as a sampler makes them).
    coeffs : np.ndarray [shape=(..., frames, K)]
        From :func:`coefficients`; samples beyond ``frames * hop`` use the last frame's.
    hop : int

    Returns
    -------
    np.ndarray [shape=(..., n)], float64
    """
    values = np.asarray(values, dtype=np.float64)
    n, order = values.shape[-1], coeffs.shape[-1]
    padded = np.concatenate([np.zeros(values.shape[:-1] + (order,)), values], axis=-1)
    past = np.lib.stride_tricks.sliding_window_view(padded, order, axis=-1)[..., :n, ::-1]
    per_sample = np.repeat(coeffs, hop, axis=-2)[..., :n, :]
    if per_sample.shape[-2] < n:  # a tail shorter than a hop, after the last whole frame
        tail = np.repeat(per_sample[..., -1:, :], n - per_sample.shape[-2], axis=-2)
        per_sample = np.concatenate([per_sample, tail], axis=-2)
    return np.einsum("...tk,...tk->...t", past, per_sample)


def excitation_codes(codes: np.ndarray, log_mel: np.ndarray, config) -> np.ndarray:
    """The training targets of a linear-prediction model: the mu-law codes of the excitation.

    The predictor reads the quantized samples (``codes`` decoded), exactly as it does while
    sampling, and the excitation is the quantized sample minus its prediction.

    Parameters
    ----------
    codes : np.ndarray [shape=(..., n)], int
        Mu-law codes of the audio.
    log_mel : np.ndarray [shape=(..., n_mels, frames)]

    Returns
    -------
    np.ndarray [shape=(..., n)], int64
    """
    values = mu_law_decode(np.asarray(codes), config.classes).astype(np.float64)
    p = predictions(values, coefficients(log_mel, config), config.hop_length)
    return mu_law_encode(np.clip(values - p, -1.0, 1.0), config.classes).astype(np.int64)


class Synthesis:
    """The samples of a generation from its excitation codes, one step at a time.

    Parameters
    ----------
    coeffs : np.ndarray [shape=(batch, frames, K)]
        From :func:`coefficients` of each stream's mel frames (covering the prime too).
    prime : np.ndarray [shape=(batch, P)], int
        The prime's codes: their last K values start the predictor's history.
    config : ModelConfig
    """

    def __init__(self, coeffs: np.ndarray, prime: np.ndarray, config):
        self.coeffs, self.hop, self.classes = coeffs, config.hop_length, config.classes
        order = coeffs.shape[-1]
        values = mu_law_decode(np.asarray(prime), self.classes).astype(np.float64)
        tail = values[:, ::-1][:, :order]  # newest first
        self.history = np.zeros((coeffs.shape[0], order))
        self.history[:, :tail.shape[1]] = tail

    def next_codes(self, t: int, excitation: np.ndarray) -> np.ndarray:
        """The codes of sample ``t`` (counted from the start of the prime) of every stream."""
        e = mu_law_decode(np.asarray(excitation), self.classes).astype(np.float64)
        p = np.einsum("bk,bk->b", self.coeffs[:, t // self.hop], self.history)
        codes = mu_law_encode(np.clip(p + e, -1.0, 1.0), self.classes).astype(np.int64)
        self.history[:, 1:] = self.history[:, :-1]  # in place: this runs once per sample
        self.history[:, 0] = mu_law_decode(codes, self.classes)
        return codes


def sample_log_probs(excitation_log_probs: np.ndarray, predicted: np.ndarray, codes: np.ndarray,
                     classes: int) -> np.ndarray:
    """ln p(code_t) of each sample's own mu-law code under a linear-prediction model.

    The model's softmax is over the excitation's codes. Each code's probability is spread
    evenly over its bin (edges halfway between neighbouring codes' values, the outer ones at
    -1 and 1), shifted by the prediction, and the sample code's probability is the mass that
    falls in its bin (the outer bins also take what lies beyond -1 and 1, as sampling clips).
    This is a distribution over the sample's codes that sums to one at every step, so its
    bits compare with those of a model that predicts the codes directly.

    Parameters
    ----------
    excitation_log_probs : np.ndarray [shape=(n, classes)]
        Normalized log-probabilities of the excitation codes.
    predicted : np.ndarray [shape=(n,)]
        The predictions ``p_t``.
    codes : np.ndarray [shape=(n,)], int
        The samples' own codes.
    classes : int

    Returns
    -------
    np.ndarray [shape=(n,)], float64
    """
    edges = code_edges(classes)
    probs = np.exp(np.asarray(excitation_log_probs, dtype=np.float64))
    cumulative = np.concatenate([np.zeros((len(probs), 1)), np.cumsum(probs, axis=1)], axis=1)
    rows = np.arange(len(probs))

    def mass_below(x):  # P(excitation < x), linear within each bin
        x = np.clip(x, -1.0, 1.0)
        k = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, classes - 1)
        within = (x - edges[k]) / (edges[k + 1] - edges[k])
        return cumulative[rows, k] + probs[rows, k] * within

    codes = np.asarray(codes)
    lower = np.where(codes == 0, 0.0, mass_below(edges[codes] - predicted))
    upper = np.where(codes == classes - 1, 1.0, mass_below(edges[codes + 1] - predicted))
    with np.errstate(divide="ignore"):
        return np.log(np.maximum(upper - lower, 0.0))


def code_edges(classes: int) -> np.ndarray:
    """Bin edges of the mu-law codes: -1, the midpoints between neighbouring values, 1."""
    values = mu_law_decode(np.arange(classes), classes).astype(np.float64)
    return np.concatenate([[-1.0], (values[1:] + values[:-1]) / 2, [1.0]])


def white_excitation_copy(audio: np.ndarray, config, seed: int) -> np.ndarray:
    """The predictor alone: white noise at the level of ``audio``'s own excitation, frame by
    frame, through the all-pole filter of its mel frames, made as a sampler makes samples.

    What a linear-prediction model's copies would be if its network had learned nothing but
    the excitation's level: the yardstick that shows what the network adds.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)]
        Mono float audio at ``config.sample_rate``; the first ``n // hop * hop`` samples are used.
    config : ModelConfig
        A model config with ``lpc_order`` > 0.
    seed : int
        Seed of the Gaussian noise.

    Returns
    -------
    np.ndarray [shape=(n // hop * hop,)], float32, on the mu-law grid
    """
    hop = config.hop_length
    n = len(audio) // hop * hop
    codes = mu_law_encode(np.asarray(audio[:n]), config.classes)
    mel = log_mel(np.asarray(audio[:n]), config)
    values = mu_law_decode(codes, config.classes).astype(np.float64)
    coeffs = coefficients(mel, config)
    excitation = values - predictions(values, coeffs, hop)
    level = np.sqrt(np.mean(excitation.reshape(-1, hop) ** 2, axis=1))
    noise = np.random.default_rng(seed).standard_normal(n) * np.repeat(level, hop)
    synthesis = Synthesis(coeffs[None], np.zeros((1, 0), np.int64), config)
    out = np.empty(n, dtype=np.int64)
    for t in range(n):
        e = mu_law_encode(np.clip(noise[t:t + 1], -1.0, 1.0), config.classes)
        out[t] = synthesis.next_codes(t, e)[0]
    return mu_law_decode(out, config.classes)
