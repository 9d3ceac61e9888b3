"""Framing and short-time spectra shared by the frame-based metrics, computed in bounded memory.

A frame-based metric reduces per-frame values (a spectrum, a cepstrum, a distance) to one number.
Its working arrays are many times larger than the audio (a 1024-sample frame every 256 samples
holds each sample four times, and its spectrum twice more), so :func:`framewise` computes the
per-frame values :data:`CHUNK_FRAMES` frames at a time, from a float64 copy of just the samples
those frames cover, and keeps only the per-frame results. Each frame's result is computed by the
same operations whatever chunk it falls in (NumPy's FFT transforms each row alone, and
:func:`band_product` replaces matrix products whose rounding depends on the row count), so
the values do not depend on :data:`CHUNK_FRAMES`: chunked equals unchunked, bit for bit.
"""
from __future__ import annotations

import numpy as np

#: Frames computed at once by :func:`framewise`: the working memory of a frame-based metric is a
#: few times this many frames (tens of MB for 1024-sample frames), whatever the audio's length.
#: Read at each call, so a test may lower it to exercise chunk boundaries.
CHUNK_FRAMES = 4096


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


def frame_count(n: int, length: int, hop: int, pad: int = 0) -> int:
    """Number of frames :func:`framewise` takes from ``n`` samples padded by ``pad`` each side."""
    return 1 + (n + 2 * pad - length) // hop


def chunk_bounds(count: int, per_frame: int = 1) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks covering ``range(count)``.

    Each chunk holds :data:`CHUNK_FRAMES` frames of ``per_frame`` items (samples, say).
    """
    size = CHUNK_FRAMES * per_frame
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def padded_span(audio: np.ndarray, start: int, stop: int, pad: int = 0) -> np.ndarray:
    """Samples [start, stop) of ``audio`` reflect-padded by ``pad``, as a new float64 array.

    The same samples as ``np.pad(audio, pad, mode="reflect")[start:stop]`` (the edge sample is
    not repeated; ``pad < len(audio)``), without padding or converting the whole signal.
    """
    low, high = start - pad, stop - pad
    # [low, first) and [last, high) lie in the padding, [first, last) is a plain slice
    first = min(max(low, 0), high)
    last = max(min(high, audio.size), first)
    return np.concatenate([_reflected(audio, low, first), audio[first:last],
                           _reflected(audio, last, high)], dtype=np.float64)


def _reflected(audio: np.ndarray, low: int, high: int) -> np.ndarray:
    """``audio[i]`` for i in [low, high), indices outside the signal reflected at its ends."""
    index = np.abs(np.arange(low, high))
    return audio[np.where(index >= audio.size, 2 * (audio.size - 1) - index, index)]


def framewise(function, *signals: np.ndarray, length: int, hop: int, pad: int = 0):
    """``function`` of the frames of ``signals``, computed chunk by chunk and concatenated.

    Parameters
    ----------
    function : callable
        Takes one frames array per signal (``[frames, length]``, float64, read-only views) and
        returns an array, or a tuple of arrays, with one row per frame.
    *signals : np.ndarray [shape=(n,)], float
        Signals of one length (a checked, trimmed pair), any float dtype.
    length, hop : int
        Frame length and hop in samples.
    pad : int
        Reflect padding on each side (``np.pad(..., mode="reflect")``), as centred STFTs use.

    Returns
    -------
    np.ndarray or tuple of np.ndarray
        ``function`` of all frames at once: frame t covers samples [t hop, t hop + length) of the
        padded signals. Working memory is that of :data:`CHUNK_FRAMES` frames.
    """
    count = frame_count(signals[0].size, length, hop, pad)
    if len({signal.size for signal in signals}) != 1 or count < 1:
        raise ValueError(f"framewise needs signals of one length, at least one frame long; got "
                         f"{[signal.size for signal in signals]} samples for {length}-sample "
                         f"frames with {pad} padding")
    parts = []
    for first, stop in chunk_bounds(count):
        span = first * hop, (stop - 1) * hop + length
        parts.append(function(*(frames(padded_span(signal, *span, pad), length, hop)
                                for signal in signals)))
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))
    return np.concatenate(parts)


def power(spectrum: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """``spectrum.real ** 2 + spectrum.imag ** 2 + offset``, byte for byte, in one compiled pass.

    NumPy makes three temporaries for that expression, and ``abs(spectrum) ** 2`` goes through
    ``hypot``: 1.32 and 1.06-1.09 us a 513-bin row, against 0.44 for this loop (ad hoc timing,
    Intel Xeon family 6 model 167, AVX-512).

    Parameters
    ----------
    spectrum : np.ndarray [shape=(m, k)], complex128
    offset : float

    Returns
    -------
    np.ndarray [shape=(m, k)], float64
    """
    from metrics import framing_kernels

    out = np.empty(spectrum.shape)
    framing_kernels.power_into(np.asarray(spectrum, dtype=np.complex128), float(offset), out)
    return out


def band_product(a: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """``a @ bank.T`` for a filterbank: each row of ``bank`` is zero outside one run of columns.

    Each output is the sum over its band's run only (a mel band of 1024-point spectra spans
    about 13 of 513 bins, so this is some 40 times fewer multiply-adds than the dense product),
    by the same compiled loop for every row of ``a``: a row's result does not depend on which
    rows are computed with it, so chunked results equal unchunked ones (a BLAS product picks
    kernels by shape, which changes rounding). Zeros inside a run are multiplied like any weight.

    Parameters
    ----------
    a : np.ndarray [shape=(m, k)], float64
    bank : np.ndarray [shape=(n, k)], float64
        Any matrix whose rows' nonzero entries each lie within one run of columns.

    Returns
    -------
    np.ndarray [shape=(m, n)]
    """
    from metrics import framing_kernels

    nonzero = bank != 0
    used = nonzero.any(axis=1)
    lo = np.where(used, nonzero.argmax(axis=1), 0)
    hi = np.where(used, bank.shape[1] - nonzero[:, ::-1].argmax(axis=1), 0)
    out = np.empty((a.shape[0], bank.shape[0]))
    framing_kernels.band_sums(np.ascontiguousarray(a, dtype=np.float64),
                              np.ascontiguousarray(bank, dtype=np.float64), lo, hi, out)
    return out


def hann(length: int) -> np.ndarray:
    """Periodic Hann window (as ``torch.hann_window`` and ``scipy.signal.get_window('hann')``)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


def stft_window(n_fft: int, win_length: int | None = None) -> np.ndarray:
    """Periodic Hann window of ``win_length`` centred in ``n_fft`` samples, as ``torch.stft``."""
    win_length = n_fft if win_length is None else win_length
    window = np.zeros(n_fft)
    start = (n_fft - win_length) // 2
    window[start:start + win_length] = hann(win_length)
    return window


def power_spectrum(framed: np.ndarray, window: np.ndarray) -> np.ndarray:
    """|rfft(frame x window)|^2 of each row of ``framed``, as re^2 + im^2 (:func:`power`)."""
    return power(np.fft.rfft(framed * window))
