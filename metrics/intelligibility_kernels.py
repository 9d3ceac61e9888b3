"""The compiled parts of :mod:`metrics.intelligibility` (STOI and ESTOI).

Imported on first use, so that importing the metrics does not import numba.

- :func:`resample`: the polyphase filter of ``scipy.signal.resample_poly`` (which pystoi's
  ``resample_oct`` calls), one output sample at a time, each a dot product over the input
  samples its filter phase reaches. scipy's ``upfirdn`` runs the same sums in scalar C; here
  LLVM may reorder each sum to vectorize it, so the samples agree to rounding (about 1e-16 of
  the signal's scale), not bit for bit, and no float64 copy of the input is made.
- :func:`estoi_sums`: ESTOI's row and column normalization of each 30-frame segment of both
  envelopes and their inner product, one segment at a time in cache, with the regularizing
  noise that pystoi adds drawn by the caller in pystoi's shapes.
"""
from __future__ import annotations

import numpy as np
from numba import njit

#: Reductions may be reordered and multiply-adds fused; NaN and infinity keep their meaning.
_REDUCE = {"reassoc", "contract", "nsz"}


def phase_table(filter_taps: np.ndarray, up: int) -> np.ndarray:
    """The filter split into its ``up`` phases, each reversed and front-padded with zeros.

    Row ``phase`` holds ``filter_taps[phase + j up]`` for j = 0, 1, ... in reverse order, right
    aligned in a row as long as the longest phase, so that :func:`resample` multiplies it
    with a forward run of input samples ending at the newest one it reaches.

    Returns
    -------
    np.ndarray [shape=(up, ceil(len(filter_taps) / up))], float64
    """
    width = -(-filter_taps.size // up)
    table = np.zeros((up, width))
    for phase in range(up):
        taps = filter_taps[phase::up]
        table[phase, width - taps.size:] = taps[::-1]
    return table


@njit(cache=True, nogil=True, fastmath=_REDUCE, error_model="numpy")
def resample(x, table, up, down, delay, out):
    """``out[m] = sum_n x[n] h[m down - n up + delay]``: x upsampled by ``up`` (zeros between
    samples), filtered by ``h`` (given as :func:`phase_table`'s ``table``), delayed by
    ``delay`` upsampled samples and kept every ``down``-th; samples outside ``x`` are zeros.
    This is ``resample_poly(x, up, down, window=h / up)`` with ``delay = (len(h) - 1) // 2``.
    """
    n, width = x.shape[0], table.shape[1]
    for m in range(out.shape[0]):
        position = m * down + delay
        newest = position // up  # the newest input sample the filter reaches
        phase = max(position - newest * up, 0)
        first = newest - (width - 1)
        # clipped to the signal; written as max(..., 0) so that LLVM sees indices that cannot
        # be negative (numba's wraparound check on the others would defeat vectorizing)
        low = max(-first, 0)
        start = max(first + low, 0)
        taps = table[phase]
        total = 0.0
        for i in range(min(width, n - first) - low):
            total += taps[low + i] * x[start + i]
        out[m] = total


@njit(cache=True, nogil=True, fastmath=_REDUCE, error_model="numpy")
def _normalize(segment, row_noise, column_noise, eps, out):
    """pystoi's ``row_col_normalize`` of one segment (bands x frames) into ``out``: add
    ``eps`` times the row noise, give each row zero mean and unit norm, add ``eps`` times the
    column noise, give each column zero mean and unit norm."""
    bands, frames = segment.shape
    for b in range(bands):
        total = 0.0
        for t in range(frames):
            out[b, t] = segment[b, t] + eps * row_noise[b, t]
            total += out[b, t]
        mean = total / frames
        power = 0.0
        for t in range(frames):
            out[b, t] -= mean
            power += out[b, t] * out[b, t]
        scale = 1.0 / np.sqrt(power)
        for t in range(frames):
            out[b, t] *= scale
    for t in range(frames):
        total = 0.0
        for b in range(bands):
            out[b, t] += eps * column_noise[b, t]
            total += out[b, t]
        mean = total / bands
        power = 0.0
        for b in range(bands):
            out[b, t] -= mean
            power += out[b, t] * out[b, t]
        scale = 1.0 / np.sqrt(power)
        for b in range(bands):
            out[b, t] *= scale


@njit(cache=True, nogil=True, fastmath=_REDUCE, error_model="numpy")
def estoi_sums(clean, processed, noise, eps, out):
    """Per segment, the inner product of the row- and column-normalized segments of both
    envelopes divided by the segment length (Jensen and Taal 2016); ESTOI is their mean.

    Parameters
    ----------
    clean, processed : np.ndarray [shape=(segments, bands, frames)]
    noise : np.ndarray [shape=(4, segments, bands, frames)]
        Standard normals for the clean rows, clean columns, processed rows and processed
        columns, as pystoi draws them.
    eps : float
        pystoi's ``EPS``.
    out : np.ndarray [shape=(segments,)]
    """
    frames = clean.shape[2]
    a = np.empty(clean.shape[1:])
    b = np.empty(clean.shape[1:])
    for s in range(clean.shape[0]):
        _normalize(clean[s], noise[0, s], noise[1, s], eps, a)
        _normalize(processed[s], noise[2, s], noise[3, s], eps, b)
        total = 0.0
        for i in range(a.shape[0]):
            for t in range(frames):
                total += a[i, t] * b[i, t] / frames
        out[s] = total
