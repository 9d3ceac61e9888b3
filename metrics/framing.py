"""Framing and short-time spectra shared by the frame-based metrics."""
from __future__ import annotations

import numpy as np


def frames(audio: np.ndarray, length: int, hop: int) -> np.ndarray:
    """Frames of ``audio`` without padding: frame t covers samples [t hop, t hop + length).

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)]
    length, hop : int
        Frame length and hop in samples; ``n >= length``.

    Returns
    -------
    np.ndarray [shape=(1 + (n - length) // hop, length)]
        A read-only view; multiply by a window to get a new array.
    """
    return np.lib.stride_tricks.sliding_window_view(audio, length)[::hop]


def hann(length: int) -> np.ndarray:
    """Periodic Hann window (as ``torch.hann_window`` and ``scipy.signal.get_window('hann')``)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


def stft_power(audio: np.ndarray, *, n_fft: int, hop: int, win_length: int | None = None,
               center: bool = True) -> np.ndarray:
    """Power spectrogram |STFT|^2 with a periodic Hann window, as ``torch.stft`` computes it.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)]
    n_fft, hop : int
        FFT length and hop in samples.
    win_length : int, optional
        Window length (default ``n_fft``); a shorter window is zero-padded on both sides to
        ``n_fft``, as torch does.
    center : bool
        Reflect-pad ``n_fft // 2`` samples on each side so that frame t is centred on t hop;
        needs ``n > n_fft // 2``.

    Returns
    -------
    np.ndarray [shape=(n_frames, n_fft // 2 + 1)]
    """
    win_length = n_fft if win_length is None else win_length
    window = np.zeros(n_fft)
    start = (n_fft - win_length) // 2
    window[start:start + win_length] = hann(win_length)
    if center:
        audio = np.pad(audio, n_fft // 2, mode="reflect")
    spectrum = np.fft.rfft(frames(audio, n_fft, hop) * window)
    return spectrum.real ** 2 + spectrum.imag ** 2
