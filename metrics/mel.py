"""``mel_l1``: the HiFi-GAN validation mel error, and the Slaney mel filterbank it uses."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from metrics.framing import band_product, framewise, hann, power
from metrics.validation import check_pair

N_FFT = 1024
HOP_LENGTH = 256
N_MELS = 80
#: HiFi-GAN clamps mel magnitudes at 1e-5 before the logarithm (about -100 dB).
LOG_FLOOR = 1e-5
#: Reflect padding on each side: (n_fft - hop) / 2, so that there are n // hop frames.
PAD = (N_FFT - HOP_LENGTH) // 2


def _hz_to_mel(hz):
    """Slaney's mel scale: linear below 1 kHz (3 mel per 200 Hz), logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    linear = hz * 3.0 / 200.0
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) / log_step, linear)


def _mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(mel >= 15.0, 1000.0 * np.exp(log_step * (mel - 15.0)), mel * 200.0 / 3.0)


@lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Slaney-style mel filterbank (triangles of unit area in Hz), as HiFi-GAN builds it.

    Parameters
    ----------
    sample_rate : int
    n_fft : int
    n_mels : int
    fmin, fmax : float
        Band edges in Hz; ``fmax`` defaults to ``sample_rate / 2``.

    Returns
    -------
    np.ndarray [shape=(n_mels, n_fft // 2 + 1)]
        Read-only (it is cached).
    """
    fmax = sample_rate / 2.0 if fmax is None else fmax
    bin_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bin_hz - lower) / (centre - lower)
    falling = (upper - bin_hz) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (upper - lower))
    weights.setflags(write=False)
    return weights


def _log_mel_rows(framed: np.ndarray, sample_rate: int) -> np.ndarray:
    """HiFi-GAN log-mel magnitudes of frames ``[frames, 1024]``: one row of 80 per frame.

    Frames of the signal reflect-padded by :data:`PAD` on each side (no centering), hop 256;
    periodic Hann window of 1024, magnitude sqrt(re^2 + im^2 + 1e-9), 80 Slaney bands from 0 to
    sr / 2, ln max(M, 1e-5).
    """
    spectrum = np.fft.rfft(framed * hann(N_FFT))
    magnitude = np.sqrt(power(spectrum, 1e-9))
    return np.log(np.maximum(band_product(magnitude, mel_filterbank(sample_rate)), LOG_FLOOR))


def mel_l1(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int) -> float:
    """Mean absolute difference of HiFi-GAN log-mel spectrograms (nats); lower is better.

    The spectrograms are never held whole: each chunk of frames (see
    :func:`~metrics.framing.framewise`) contributes the sum of |difference| over each frame's
    bands, and the mean is the total of those sums over frames x bands. Memory stays bounded on
    long audio; the value differs from a mean over the whole matrix by rounding only.

    Parameters
    ----------
    reference, generated : np.ndarray [shape=(n,)], float
        Mono waveforms in [-1, 1] at ``sample_rate``; lengths may differ by at most one hop
        (256) and are trimmed to the shorter.
    sample_rate : int
        Any rate; the 80 bands span 0 to ``sample_rate / 2``.

    Returns
    -------
    float
        Mean over frames and bands of |ln max(M_ref, 1e-5) - ln max(M_gen, 1e-5)|; 0 for
        identical audio.

    Raises
    ------
    InputError
        Bad arrays or lengths that differ by more than one hop.
    MetricUnavailable
        ``too_short`` (under 1024 samples), ``silent_reference``, ``nonfinite_*``.

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal(16000) * 0.1
    >>> mel_l1(reference=x, generated=x, sample_rate=16000)
    0.0
    """
    reference, generated, sample_rate = check_pair(reference, generated, sample_rate,
                                                   min_length=N_FFT)

    def frame_sums(ref: np.ndarray, gen: np.ndarray) -> np.ndarray:
        difference = _log_mel_rows(ref, sample_rate) - _log_mel_rows(gen, sample_rate)
        return np.sum(np.abs(difference), axis=1)

    sums = framewise(frame_sums, reference, generated, length=N_FFT, hop=HOP_LENGTH, pad=PAD)
    return float(np.sum(sums) / (sums.size * N_MELS))
