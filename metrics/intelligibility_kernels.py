"""The compiled parts of :mod:`metrics.intelligibility` (STOI and ESTOI).

Imported on first use, so that importing the metrics does not import numba.

- :func:`resample`: the polyphase filter of ``scipy.signal.resample_poly`` (which pystoi's
  ``resample_oct`` calls), one output sample at a time, each a dot product over the input
  samples its filter phase reaches. scipy's ``upfirdn`` runs the same sums in scalar C; here
  LLVM may reorder each sum to vectorize it, so the samples agree to rounding (about 1e-16 of
  the signal's scale), not bit for bit, and no float64 copy of the input is made.
- :func:`segment_sums`: STOI's and ESTOI's sums over each 30-frame segment, read in place
  from the band envelopes (no stack of segments is built), one segment at a time in cache.
  Sums may be reordered by LLVM (rounding only).
- :func:`noise_value`: the regularizing noise that ESTOI adds, a pure function of its index
  (segment, draw, band, frame): a counter-based generator (SplitMix64), drawn inside the
  kernel, the same for any chunking, and cheap: 1.6 ns a number against 9.6 for NumPy's
  ``standard_normal`` (ad hoc timing, Intel Xeon family 6 model 167, AVX-512).
"""
from __future__ import annotations

import numpy as np
from numba import njit

#: Reductions may be reordered and multiply-adds fused; NaN and infinity keep their meaning.
_REDUCE = {"reassoc", "contract", "nsz"}


#: Table rows are a whole number of the vectorized dot product's steps (zeros in front; a
#: zero tap adds an exact zero): 18.8 to 14.6 ns an output sample at 16 kHz (117 taps to 128),
#: ad hoc timing, Intel Xeon family 6 model 167, AVX-512.
_TABLE_ALIGN = 16


def phase_table(filter_taps: np.ndarray, up: int) -> np.ndarray:
    """The filter split into its ``up`` phases, each reversed and front-padded with zeros.

    Row ``phase`` holds ``filter_taps[phase + j up]`` for j = 0, 1, ... in reverse order, right
    aligned in a row as long as the longest phase rounded up to a multiple of
    :data:`_TABLE_ALIGN`, so that :func:`resample` multiplies it with a forward run of input
    samples ending at the newest one it reaches.

    Returns
    -------
    np.ndarray [shape=(up, width)], float64
        width = ceil(len(filter_taps) / up) rounded up to a multiple of :data:`_TABLE_ALIGN`.
    """
    width = -(-filter_taps.size // up // _TABLE_ALIGN) * _TABLE_ALIGN
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


#: Mixing constants of SplitMix64 (Steele, Lea and Flood 2014): the golden-ratio increment and
#: the two multipliers of its finalizer.
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_LOW16 = np.uint64(0xFFFF)
#: sqrt(3) / 2^16: a sum of four uniforms on (0, 1) has variance 1/3
_NOISE_SCALE = np.sqrt(3.0) / 65536.0
#: Draws per segment: clean rows, clean columns, processed rows, processed columns
DRAWS = 4


@njit(cache=True, nogil=True, inline="always")
def noise_value(key):
    """Regularizing noise number ``key`` (an int): mean 0, variance 1, within +-2 sqrt(3).

    The SplitMix64 output for counter ``key`` split into four 16-bit uniforms, whose centred sum
    is scaled to unit variance (Irwin-Hall, n = 4: bell-shaped, bounded). A pure function of
    ``key``, so any segment's noise can be drawn alone, in any order.
    """
    # every operand uint64: a plain int would turn the arithmetic into float64
    z = np.uint64(key) * _GAMMA + _GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    total = ((z & _LOW16) + ((z >> np.uint64(16)) & _LOW16) + ((z >> np.uint64(32)) & _LOW16)
             + (z >> np.uint64(48)))
    # four uniforms (u + 1/2) / 2^16 sum to (total + 2) / 2^16, of mean 2; centred in integers,
    # so that one rounding is left, which fast-math flags of a caller that inlines this cannot
    # fuse (the kernel's numbers stay those of noise_into, compiled without them)
    return np.float64(np.int64(total) - 131070) * _NOISE_SCALE


@njit(cache=True, nogil=True, inline="always")
def _segment_noise(segment, out):
    """The noise of segment ``segment`` into ``out`` (draws x bands x frames): numbers
    ``segment * out.size`` onwards, in order (one flat loop, which LLVM vectorizes)."""
    flat = out.reshape(out.size)
    first = segment * flat.shape[0]
    for i in range(flat.shape[0]):
        flat[i] = noise_value(first + i)


@njit(cache=True, nogil=True)
def noise_into(out):
    """``out[draw, s, band, frame]`` = the noise :func:`segment_sums` adds for draw ``draw``
    of segment ``s`` (for tests: pystoi's ESTOI given these arrays is the reference for
    ours)."""
    draws, segments, bands, frames = out.shape
    noise = np.empty((draws, bands, frames))
    for s in range(segments):
        _segment_noise(s, noise)
        for d in range(draws):
            out[d, s] = noise[d]


@njit(cache=True, nogil=True, fastmath=_REDUCE, error_model="numpy", inline="always")
def _normalize(envelope, segment, row_noise, column_noise, eps, out):
    """pystoi's ``row_col_normalize`` of segment ``segment`` (``out.shape[1]`` frames from
    frame ``segment``) of ``envelope`` (frames x bands) into ``out`` (bands x frames): add
    ``eps`` times the row noise, give each row zero mean and unit norm, add ``eps`` times the
    column noise, give each column zero mean and unit norm."""
    bands, frames = out.shape
    for b in range(bands):
        total = 0.0
        for t in range(frames):
            out[b, t] = envelope[segment + t, b] + eps * row_noise[b, t]
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


@njit(cache=True, nogil=True, fastmath=_REDUCE, error_model="numpy", inline="always")
def _stoi_sum(clean, processed, segment, frames, eps, clip):
    """STOI's sum over one segment's bands of the correlation of the clipped, normalized
    processed band with the clean band (Taal et al. 2011), as pystoi computes it."""
    total = 0.0
    for b in range(clean.shape[1]):
        clean_power, processed_power = 0.0, 0.0
        for t in range(frames):
            x, y = clean[segment + t, b], processed[segment + t, b]
            clean_power += x * x
            processed_power += y * y
        scale = np.sqrt(clean_power) / (np.sqrt(processed_power) + eps)
        clean_sum, clipped_sum = 0.0, 0.0
        for t in range(frames):
            x, y = clean[segment + t, b], processed[segment + t, b]
            clean_sum += x
            clipped_sum += min(y * scale, x * clip)
        clean_mean, clipped_mean = clean_sum / frames, clipped_sum / frames
        clean_power, clipped_power, product = 0.0, 0.0, 0.0
        for t in range(frames):
            x, y = clean[segment + t, b], processed[segment + t, b]
            centred = x - clean_mean
            clipped = min(y * scale, x * clip) - clipped_mean
            clean_power += centred * centred
            clipped_power += clipped * clipped
            product += centred * clipped
        total += product / ((np.sqrt(clipped_power) + eps) * (np.sqrt(clean_power) + eps))
    return total


@njit(cache=True, nogil=True, fastmath=_REDUCE, error_model="numpy")
def segment_sums(clean, processed, frames, eps, clip, stoi_out, estoi_out):
    """Per segment of ``frames`` consecutive frames of both envelopes, STOI's and ESTOI's sums.

    Parameters
    ----------
    clean, processed : np.ndarray [shape=(envelope frames, bands)]
        One-third-octave band envelopes; segment s is frames s .. s + frames - 1.
    frames : int
        Frames a segment (pystoi's N, 30).
    eps : float
        pystoi's ``EPS``.
    clip : float
        1 + 10^(-BETA / 20): STOI's clipping of the processed bands.
    stoi_out : np.ndarray [shape=(segments,)] or [shape=(0,)]
        Each segment's sum of band correlations (STOI is their sum / (segments x bands)).
    estoi_out : np.ndarray [shape=(segments,)] or [shape=(0,)]
        Each segment's inner product of its row- and column-normalized envelopes with the
        regularizing noise of :func:`noise_value` added as pystoi adds its own, divided by
        ``frames`` (Jensen and Taal 2016; ESTOI is their mean).

    An empty output is not computed.
    """
    bands = clean.shape[1]
    a = np.empty((bands, frames))
    b = np.empty((bands, frames))
    noise = np.empty((DRAWS, bands, frames))
    for s in range(stoi_out.shape[0]):
        stoi_out[s] = _stoi_sum(clean, processed, s, frames, eps, clip)
    for s in range(estoi_out.shape[0]):
        _segment_noise(s, noise)
        _normalize(clean, s, noise[0], noise[1], eps, a)
        _normalize(processed, s, noise[2], noise[3], eps, b)
        total = 0.0
        for i in range(bands):
            for t in range(frames):
                total += a[i, t] * b[i, t] / frames
        estoi_out[s] = total
