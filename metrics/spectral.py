"""Spectral distances: multi-resolution STFT distance (``mrstft``) and log-spectral distance (``lsd``)."""
from __future__ import annotations

from functools import partial

import numpy as np

from metrics.framing import framewise, power_spectrum, stft_window
from metrics.validation import check_pair

#: (n_fft, hop, window length) of the three resolutions of Parallel WaveGAN's loss.
MRSTFT_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
#: Parallel WaveGAN floors the power at 1e-7 before the square root.
MRSTFT_POWER_FLOOR = 1e-7
LSD_N_FFT = 2048
LSD_HOP = 512
#: Power floor for ``lsd`` (-100 dB re full scale), so silent bins stay finite.
LSD_POWER_FLOOR = 1e-10


def mrstft(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int) -> float:
    """Multi-resolution STFT distance (Yamamoto et al., 2020); lower is better, 0 is identical.

    For each resolution in :data:`MRSTFT_RESOLUTIONS` (periodic Hann window centred in the FFT
    frame, centred frames with reflect padding, magnitude sqrt(max(power, 1e-7))):
    spectral convergence ||S_ref - S_gen||_F / ||S_ref||_F plus the mean |ln S_ref - ln S_gen|;
    the value is the mean of that sum over the resolutions. The norms and the mean are summed
    frame by frame (the spectrograms are computed in chunks and never held whole), which rounds
    differently from a sum over the whole matrix: about 1e-16 relative.

    Parameters
    ----------
    reference, generated : np.ndarray [shape=(n,)], float
        Mono waveforms in [-1, 1]; lengths may differ by at most one hop (256) and are trimmed
        to the shorter. ``sample_rate`` is only checked: the resolutions are in samples.
    sample_rate : int

    Returns
    -------
    float
        Dimensionless.

    Raises
    ------
    InputError
        Bad arrays or lengths that differ by more than one hop.
    MetricUnavailable
        ``too_short`` (not more than 1024 samples, the largest padding), ``silent_reference``,
        ``nonfinite_*``.
    """
    largest = max(n_fft for n_fft, _, _ in MRSTFT_RESOLUTIONS)
    reference, generated, _ = check_pair(reference, generated, sample_rate,
                                         min_length=largest // 2 + 1)
    total = 0.0
    for n_fft, hop, win_length in MRSTFT_RESOLUTIONS:
        # per-frame sums, chunk by chunk: the spectrograms are never held whole
        sums = partial(_mrstft_frame_sums, window=stft_window(n_fft, win_length))
        error, energy, log_error = framewise(sums, reference, generated, length=n_fft, hop=hop,
                                             pad=n_fft // 2)
        convergence = np.sqrt(np.sum(error)) / np.sqrt(np.sum(energy))
        total += convergence + np.sum(log_error) / (log_error.size * (n_fft // 2 + 1))
    return float(total / len(MRSTFT_RESOLUTIONS))


def _mrstft_frame_sums(ref: np.ndarray, gen: np.ndarray, *, window: np.ndarray):
    """Per frame: sum of (S_ref - S_gen)^2, of S_ref^2 and of |ln S_ref - ln S_gen| over bins."""
    ref, gen = (np.sqrt(np.maximum(power_spectrum(x, window), MRSTFT_POWER_FLOOR))
                for x in (ref, gen))
    return (np.sum((ref - gen) ** 2, axis=1), np.sum(ref ** 2, axis=1),
            np.sum(np.abs(np.log(ref) - np.log(gen)), axis=1))


def lsd(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int) -> float:
    """Log-spectral distance in dB: per frame the RMS over bins of the dB difference, mean over frames.

    STFT with a periodic Hann window of 2048, hop 512, centred frames; power floored at 1e-10.
    Lower is better, 0 is identical.

    Parameters
    ----------
    reference, generated : np.ndarray [shape=(n,)], float
        Mono waveforms in [-1, 1]; lengths may differ by at most one hop (256) and are trimmed
        to the shorter.
    sample_rate : int
        Only checked: the STFT settings are in samples.

    Returns
    -------
    float
        dB.

    Raises
    ------
    InputError
        Bad arrays or lengths that differ by more than one hop.
    MetricUnavailable
        ``too_short`` (not more than 1024 samples), ``silent_reference``, ``nonfinite_*``.
    """
    reference, generated, _ = check_pair(reference, generated, sample_rate,
                                         min_length=LSD_N_FFT // 2 + 1)
    window = stft_window(LSD_N_FFT)

    def frame_distances(ref: np.ndarray, gen: np.ndarray) -> np.ndarray:
        ref, gen = (10.0 * np.log10(np.maximum(power_spectrum(x, window), LSD_POWER_FLOOR))
                    for x in (ref, gen))
        return np.sqrt(np.mean((ref - gen) ** 2, axis=1))

    distances = framewise(frame_distances, reference, generated, length=LSD_N_FFT, hop=LSD_HOP,
                          pad=LSD_N_FFT // 2)
    return float(np.mean(distances))
