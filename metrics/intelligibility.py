"""STOI and extended STOI (ESTOI), as pystoi 0.4.1 computes them, from one shared front end.

pystoi's ``stoi()`` redoes silence removal, the STFT and the one-third-octave analysis on every
call, so STOI and ESTOI of one pair cost twice that front end. Here the front end runs once
(pystoi's own ``resample_oct``, ``remove_silent_frames`` and band matrix, with its frame loops
written as array operations) and feeds both back ends. Every step keeps pystoi's operations,
array shapes and memory layouts, and ESTOI draws its tiny regularizing noise from NumPy's global
generator exactly as pystoi does, so the values are pystoi's to the last bit (the tests allow
1e-12 relative).
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pystoi import utils as _pystoi_utils
from pystoi.stoi import BETA, DYN_RANGE, FS, N, N_FRAME, NFFT, OBM

from metrics.checks import MetricUnavailable, check_pair, check_sample_rate

#: pystoi's internal rate, frame, hop and the number of frames one intermediate measure needs.
STOI_RATE = FS
_FRAME, _HOP, _SEGMENT = N_FRAME, N_FRAME // 2, N
#: pystoi's analysis window (MATLAB's ``hanning``: a Hann window without its zero end points).
_WINDOW = np.hanning(_FRAME + 2)[1:-1]
_EPS = _pystoi_utils.EPS


def _min_length(sample_rate: int) -> int:
    """Fewest samples that can give 30 STOI frames even with no silence removed."""
    return math.ceil(((_SEGMENT - 1) * _HOP + _FRAME) * sample_rate / STOI_RATE)


def _band_envelopes(signal: np.ndarray) -> np.ndarray:
    """One-third-octave band magnitudes of ``signal`` (10 kHz, silence removed), per frame.

    pystoi's ``utils.stft`` (frames starting every hop while a full frame *and one more sample*
    fit) with one batched FFT instead of one per frame; the per-row transforms are identical.

    Parameters
    ----------
    signal : np.ndarray [shape=(n,)], float64

    Returns
    -------
    np.ndarray [shape=(15, frames)], float64
    """
    frames = len(range(0, signal.size - _FRAME, _HOP))
    windowed = sliding_window_view(signal, _FRAME)[::_HOP][:frames] * _WINDOW
    # (frames, bins) C-contiguous then transposed, the layout pystoi hands to matmul, so the
    # band sums round the same way
    spectrum = np.fft.rfft(windowed, n=NFFT, axis=-1).transpose()
    return np.sqrt(np.matmul(OBM, np.square(np.abs(spectrum))))


def _segments(envelopes: np.ndarray) -> np.ndarray:
    """Every run of 30 consecutive frames, as pystoi stacks them.

    Parameters
    ----------
    envelopes : np.ndarray [shape=(15, frames)], float64

    Returns
    -------
    np.ndarray [shape=(frames - 29, 15, 30)], float64, C-contiguous (as ``np.array`` of
    pystoi's list of slices, so its reductions sum in the same order).
    """
    windows = sliding_window_view(envelopes, _SEGMENT, axis=1)  # (15, segments, 30)
    return np.ascontiguousarray(windows.transpose(1, 0, 2))


def _front_end(reference: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Silence removal (decided on ``reference``) and band segments of a 10 kHz pair.

    Returns
    -------
    reference_segments, generated_segments : np.ndarray [shape=(segments, 15, 30)], float64

    Raises
    ------
    MetricUnavailable
        ``too_short``: fewer than 30 frames survive silence removal.
    """
    reference, generated = _pystoi_utils.remove_silent_frames(reference, generated, DYN_RANGE,
                                                              _FRAME, _HOP)
    reference_bands = _band_envelopes(reference)
    if reference_bands.shape[1] < _SEGMENT:
        raise MetricUnavailable("too_short", "under 30 STOI frames after silence removal")
    return _segments(reference_bands), _segments(_band_envelopes(generated))


def _stoi_back_end(clean: np.ndarray, processed: np.ndarray) -> float:
    """Mean correlation of clipped, normalized segments (Taal et al. 2011, eqs. 3 to 6).

    Parameters
    ----------
    clean, processed : np.ndarray [shape=(segments, 15, 30)], float64
        Not modified.
    """
    scale = (np.linalg.norm(clean, axis=2, keepdims=True)
             / (np.linalg.norm(processed, axis=2, keepdims=True) + _EPS))
    # clip at BETA = -15 dB signal-to-distortion ratio
    clipped = np.minimum(processed * scale, clean * (1 + 10 ** (-BETA / 20)))
    clipped = clipped - np.mean(clipped, axis=2, keepdims=True)
    centred = clean - np.mean(clean, axis=2, keepdims=True)
    clipped /= np.linalg.norm(clipped, axis=2, keepdims=True) + _EPS
    centred /= np.linalg.norm(centred, axis=2, keepdims=True) + _EPS
    return float(np.sum(clipped * centred) / (clean.shape[0] * clean.shape[1]))


def _row_col_normalize(segments: np.ndarray) -> np.ndarray:
    """pystoi's ``utils.row_col_normalize`` with its diagonal matrix products as broadcasts.

    A product with a diagonal matrix only adds exact zeros, so each entry is the same single
    rounded product. The regularizing noise (``EPS`` times standard normals, which keeps a
    constant row or column from dividing by zero) comes from NumPy's global generator in the
    same order and shapes as pystoi's, so a seeded run gives pystoi's value bit for bit.

    Parameters
    ----------
    segments : np.ndarray [shape=(segments, 15, 30)], float64

    Returns
    -------
    np.ndarray [shape=(segments, 15, 30)], float64
        Each segment with zero-mean, unit-norm rows, then zero-mean, unit-norm columns.
    """
    normed = segments + _EPS * np.random.standard_normal(segments.shape)
    normed -= np.mean(normed, axis=-1, keepdims=True)
    normed *= 1.0 / np.sqrt(_pystoi_utils.vect_two_norm(normed))
    normed += _EPS * np.random.standard_normal(normed.shape)
    normed -= np.mean(normed, axis=1, keepdims=True)
    normed *= 1.0 / np.sqrt(_pystoi_utils.vect_two_norm(normed, axis=1))
    return normed


def _estoi_back_end(clean: np.ndarray, processed: np.ndarray) -> float:
    """Mean inner product of row- and column-normalized segments (Jensen and Taal 2016)."""
    clean_normed = _row_col_normalize(clean)
    processed_normed = _row_col_normalize(processed)
    return float(np.sum(clean_normed * processed_normed / _SEGMENT) / clean_normed.shape[0])


def _checked_pair_at_10k(reference, generated, sample_rate) -> tuple[np.ndarray, np.ndarray]:
    """Check and trim the pair, then resample both to 10 kHz with pystoi's resampler."""
    sample_rate = check_sample_rate(sample_rate)
    reference, generated, sample_rate = check_pair(reference, generated, sample_rate,
                                                   min_length=_min_length(sample_rate))
    if sample_rate != STOI_RATE:
        reference = _pystoi_utils.resample_oct(reference, STOI_RATE, sample_rate)
        generated = _pystoi_utils.resample_oct(generated, STOI_RATE, sample_rate)
    return reference, generated


def stoi(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int,
         extended: bool = False) -> float:
    """STOI (or ESTOI) of ``generated`` against ``reference``; higher is better, at most 1.

    STOI is not symmetric: ``reference`` is the clean speech whose silent frames are removed
    and whose envelopes the others are normalized to. Equal to
    ``pystoi.stoi(reference, generated, sample_rate, extended=extended)`` (ESTOI draws from
    NumPy's global generator as pystoi does).

    Parameters
    ----------
    reference, generated : np.ndarray [shape=(n,)], float
        Mono waveforms at ``sample_rate``; lengths may differ by at most one hop (256) and are
        trimmed to the shorter.
    sample_rate : int
        Any rate; the pair is resampled to 10 kHz.
    extended : bool
        Compute ESTOI (Jensen and Taal, 2016) instead.

    Returns
    -------
    float
        1 for identical audio.

    Raises
    ------
    InputError
        Bad arrays or lengths that differ by more than one hop.
    MetricUnavailable
        ``too_short`` (fewer than 30 frames of 25.6 ms after silence removal, where pystoi would
        return 1e-5), ``silent_reference``, ``nonfinite_*``.

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal(16000) * 0.1
    >>> round(stoi(reference=x, generated=x, sample_rate=16000), 6)
    1.0
    """
    clean, processed = _front_end(*_checked_pair_at_10k(reference, generated, sample_rate))
    back_end = _estoi_back_end if extended else _stoi_back_end
    return back_end(clean, processed)


def estoi(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int) -> float:
    """Extended STOI (ESTOI) of ``generated`` against ``reference``; higher is better, at most 1.

    Same as ``stoi(..., extended=True)``; see :func:`stoi` for parameters and raises.
    """
    return stoi(reference=reference, generated=generated, sample_rate=sample_rate, extended=True)


def intelligibility_scores(*, reference: np.ndarray, generated: np.ndarray,
                           sample_rate: int) -> dict[str, float]:
    """``stoi`` and ``estoi`` together, from one resampling, silence removal and band analysis.

    The values are identical to :func:`stoi` and :func:`estoi` (and so to pystoi's): the two
    measures differ only after the band segments, which are computed once and not modified.
    Parameters and raises as :func:`stoi`.

    Returns
    -------
    dict[str, float]
        ``{"stoi": ..., "estoi": ...}``, higher is better.
    """
    clean, processed = _front_end(*_checked_pair_at_10k(reference, generated, sample_rate))
    return {"stoi": _stoi_back_end(clean, processed),
            "estoi": _estoi_back_end(clean, processed)}
