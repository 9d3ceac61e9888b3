"""STOI and extended STOI (ESTOI), as pystoi 0.4.1 computes them, in bounded memory.

pystoi holds every frame, spectrum and 30-frame segment of a pair at once (about 6 GB for an
hour at 16 kHz) and redoes its front end for each measure. Here one front end feeds both back
ends, and every long array is computed a chunk at a time:

1. resampling to 10 kHz with pystoi's own resampler (``resample_oct``) applied to overlapping
   pieces, which gives its output sample for sample (:func:`_resample_to_10k`);
2. silence removal by pystoi's rule (frames of the reference more than 40 dB below its loudest
   are dropped from both signals), overlap-adding the kept frames only where a chunk of band
   envelopes needs them (:func:`_kept_frames`, :func:`_overlap_added`);
3. one-third-octave band envelopes, 15 values per 12.8 ms: the only arrays kept whole;
4. the back ends over chunks of 30-frame segments, each segment's sum kept and the sums added
   at the end.

Each step keeps pystoi's operations in pystoi's order on each frame and segment. What differs is
rounding: the band sums are taken by :func:`~metrics.framing.rowwise_product` and the final sum
adds per-segment sums, so the values are pystoi's to about 1e-15 relative (the tests allow
1e-12), and they do not depend on :data:`~metrics.framing.CHUNK_FRAMES` at all.

ESTOI adds tiny regularizing noise (machine epsilon times standard normals) before normalizing
the segments' rows and columns. pystoi draws it from NumPy's global generator, unseeded, so its
ESTOI changes in the last bits from one run to the next (and a silent output's at random). Here
it comes from four local generators with a fixed seed (:func:`estoi_noise`), drawn segment by
segment in order: identical inputs give identical bytes, and the global generator is untouched.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import scipy.signal
from numpy.lib.stride_tricks import sliding_window_view
from pystoi import utils as _pystoi_utils
from pystoi.stoi import BETA, DYN_RANGE, FS, N_FRAME, NFFT, OBM, N

from metrics.framing import chunk_bounds, frames, framewise, rowwise_product
from metrics.validation import MetricUnavailable, check_pair, check_sample_rate

#: pystoi's internal rate, frame, hop and the number of frames one intermediate measure needs.
STOI_RATE = FS
_FRAME, _HOP, _SEGMENT = N_FRAME, N_FRAME // 2, N
#: pystoi's analysis window (MATLAB's ``hanning``: a Hann window without its zero end points).
_WINDOW = np.hanning(_FRAME + 2)[1:-1]
_EPS = _pystoi_utils.EPS
#: Seed of ESTOI's regularizing noise (see :func:`estoi_noise`).
ESTOI_NOISE_SEED = 0


def estoi_noise() -> tuple[np.random.Generator, ...]:
    """Fresh generators of ESTOI's four noise draws, in pystoi's order of drawing them.

    Returns
    -------
    tuple of np.random.Generator
        Noise for the clean segments' rows, their columns, the processed segments' rows and
        their columns. One generator per draw, so drawing segment chunk by segment chunk gives
        the same numbers as drawing each whole array at once.
    """
    return tuple(np.random.default_rng([ESTOI_NOISE_SEED, draw]) for draw in range(4))


def _min_length(sample_rate: int) -> int:
    """Fewest samples that can give 30 STOI frames even with no silence removed."""
    return math.ceil(((_SEGMENT - 1) * _HOP + _FRAME) * sample_rate / STOI_RATE)


def _resample_to_10k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``pystoi.utils.resample_oct(audio, 10000, sample_rate)``, computed over pieces.

    Each output sample of the polyphase filter is a sum over the input samples within half the
    filter's length of it, in a fixed order; so a piece of input with that margin on each side
    (starting on a multiple of ``down``, to keep the output grid) gives the same output samples
    as the whole signal, and the float64 copy scipy makes of its input stays one piece long.

    Returns
    -------
    np.ndarray [shape=(ceil(n * 10000 / sample_rate),)]
        float64; ``audio`` itself at 10 kHz (the back ends convert what they use).
    """
    if sample_rate == STOI_RATE:
        return audio
    divisor = math.gcd(STOI_RATE, sample_rate)
    up, down = STOI_RATE // divisor, sample_rate // divisor
    window = _resample_filter(sample_rate)
    margin = window.size // up + 2  # input samples on either side that reach an output sample
    out = np.empty(-(-audio.size * up // down))
    for start, stop in chunk_bounds(out.size, per_frame=_HOP):
        low = max(0, start * down // up - margin) // down * down
        high = min(audio.size, stop * down // up + margin)
        piece = scipy.signal.resample_poly(audio[low:high], STOI_RATE, sample_rate, window=window)
        offset = low * up // down
        out[start:stop] = piece[start - offset:stop - offset]
    return out


@lru_cache(maxsize=8)
def _resample_filter(sample_rate: int) -> np.ndarray:
    """The normalized filter pystoi's ``resample_oct`` hands ``resample_poly``, once per rate.

    ``resample_oct`` is these two lines and that call; it would redo the design (2.7 ms at
    22050 Hz) for every piece of every signal.
    """
    h = _pystoi_utils._resample_window_oct(STOI_RATE, sample_rate)
    window = h / np.sum(h)
    window.setflags(write=False)
    return window


def _kept_frames(reference: np.ndarray) -> np.ndarray:
    """Indices of the frames pystoi's silence removal keeps (within 40 dB of the loudest).

    Frames start every hop while a full frame *and one more sample* fit (pystoi's
    ``range(0, len(x) - framelen, hop)``), hence the frames of ``reference[:-1]``.
    """
    def energies(framed: np.ndarray) -> np.ndarray:
        return 20 * np.log10(np.linalg.norm(_WINDOW * framed, axis=1) + _EPS)

    energy = framewise(energies, reference[:-1], length=_FRAME, hop=_HOP)
    return np.flatnonzero((np.max(energy) - DYN_RANGE - energy) < 0)


def _overlap_added(signal: np.ndarray, kept: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Blocks [start, stop) of the silence-removed signal, as pystoi's ``_overlap_and_add``.

    The signal is the kept windowed frames overlap-added at the hop: block m (``_HOP``
    samples) is the first half of kept frame m plus the second half of kept frame m - 1, each
    zero past the ends. Only the kept frames these blocks need are windowed.

    Returns
    -------
    np.ndarray [shape=((stop - start) * _HOP,)], float64
    """
    low, high = max(start - 1, 0), min(stop, kept.size)
    windowed = _WINDOW * signal[kept[low:high, None] * _HOP + np.arange(_FRAME)]
    first, second = np.zeros((2, stop - start, _HOP))
    index = np.arange(low, high)
    here = index >= start  # frame m's first half is block m
    first[index[here] - start] = windowed[here, :_HOP]
    here = index + 1 < stop  # its second half is block m + 1
    second[index[here] + 1 - start] = windowed[here, _HOP:]
    return (first + second).reshape(-1)


def _band_envelopes(signal: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """One-third-octave band magnitudes of the silence-removed ``signal`` (10 kHz), per frame.

    pystoi's ``utils.stft`` of the overlap-added kept frames (frames start every hop while a
    full frame and one more sample fit, so K kept frames give K - 1), then the band matrix;
    computed :data:`~metrics.framing.CHUNK_FRAMES` frames at a time.

    Returns
    -------
    np.ndarray [shape=(15, max(K - 1, 0))], float64
    """
    parts = [np.zeros((0, OBM.shape[0]))]
    for start, stop in chunk_bounds(max(kept.size - 1, 0)):
        piece = _overlap_added(signal, kept, start, stop + 1)  # frame t spans blocks t, t + 1
        spectrum = np.fft.rfft(frames(piece, _FRAME, _HOP) * _WINDOW, n=NFFT, axis=-1)
        parts.append(np.sqrt(rowwise_product(np.square(np.abs(spectrum)), OBM)))
    return np.concatenate(parts).T


def _front_end(reference: np.ndarray, generated: np.ndarray,
               sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Band envelopes of a checked pair at 10 kHz after silence removal decided on ``reference``.

    The 10 kHz reference is dropped before the generated audio is resampled, so at most one
    10 kHz signal is held at a time.

    Returns
    -------
    clean, processed : np.ndarray [shape=(15, frames)], float64

    Raises
    ------
    MetricUnavailable
        ``too_short``: fewer than 30 frames survive silence removal.
    """
    reference = _resample_to_10k(reference, sample_rate)
    kept = _kept_frames(reference)
    clean = _band_envelopes(reference, kept)
    del reference
    if clean.shape[1] < _SEGMENT:
        raise MetricUnavailable("too_short", "under 30 STOI frames after silence removal")
    return clean, _band_envelopes(_resample_to_10k(generated, sample_rate), kept)


def _segment_chunks(clean: np.ndarray, processed: np.ndarray):
    """Chunks of every run of 30 consecutive frames of both envelopes, as pystoi stacks them.

    Yields
    ------
    clean, processed : np.ndarray [shape=(segments, 15, 30)], float64
        C-contiguous (as ``np.array`` of pystoi's list of slices, so the reductions over a
        segment sum in pystoi's order).
    """
    for start, stop in chunk_bounds(clean.shape[1] - _SEGMENT + 1):
        yield tuple(np.ascontiguousarray(
            sliding_window_view(bands[:, start:stop + _SEGMENT - 1], _SEGMENT, axis=1)
            .transpose(1, 0, 2)) for bands in (clean, processed))


def _stoi_segment_sums(clean: np.ndarray, processed: np.ndarray) -> np.ndarray:
    """Per segment, the sum of correlations of clipped, normalized bands (Taal et al. 2011).

    Parameters
    ----------
    clean, processed : np.ndarray [shape=(segments, 15, 30)], float64
        Not modified.

    Returns
    -------
    np.ndarray [shape=(segments,)]
        STOI is their sum over all segments divided by segments x 15 bands.
    """
    scale = (np.linalg.norm(clean, axis=2, keepdims=True)
             / (np.linalg.norm(processed, axis=2, keepdims=True) + _EPS))
    # clip at BETA = -15 dB signal-to-distortion ratio
    clipped = np.minimum(processed * scale, clean * (1 + 10 ** (-BETA / 20)))
    clipped = clipped - np.mean(clipped, axis=2, keepdims=True)
    centred = clean - np.mean(clean, axis=2, keepdims=True)
    clipped /= np.linalg.norm(clipped, axis=2, keepdims=True) + _EPS
    centred /= np.linalg.norm(centred, axis=2, keepdims=True) + _EPS
    return np.sum(clipped * centred, axis=(1, 2))


def _row_col_normalize(segments: np.ndarray, row_noise: np.random.Generator,
                       column_noise: np.random.Generator) -> np.ndarray:
    """pystoi's ``utils.row_col_normalize`` with its diagonal matrix products as broadcasts.

    A product with a diagonal matrix only adds exact zeros, so each entry is the same single
    rounded product. The regularizing noise (``EPS`` times standard normals, which keeps a
    constant row or column from dividing by zero) comes from ``row_noise`` and
    ``column_noise`` in pystoi's shapes and order.

    Parameters
    ----------
    segments : np.ndarray [shape=(segments, 15, 30)], float64
    row_noise, column_noise : np.random.Generator

    Returns
    -------
    np.ndarray [shape=(segments, 15, 30)], float64
        Each segment with zero-mean, unit-norm rows, then zero-mean, unit-norm columns.
    """
    normed = segments + _EPS * row_noise.standard_normal(segments.shape)
    normed -= np.mean(normed, axis=-1, keepdims=True)
    normed *= 1.0 / np.sqrt(_pystoi_utils.vect_two_norm(normed))
    normed += _EPS * column_noise.standard_normal(normed.shape)
    normed -= np.mean(normed, axis=1, keepdims=True)
    normed *= 1.0 / np.sqrt(_pystoi_utils.vect_two_norm(normed, axis=1))
    return normed


def _estoi_segment_sums(clean: np.ndarray, processed: np.ndarray, noise) -> np.ndarray:
    """Per segment, the inner product of row- and column-normalized segments / 30 (Jensen and
    Taal 2016); ESTOI is their mean. ``noise`` is :func:`estoi_noise`'s four generators."""
    clean_normed = _row_col_normalize(clean, noise[0], noise[1])
    processed_normed = _row_col_normalize(processed, noise[2], noise[3])
    return np.sum(clean_normed * processed_normed / _SEGMENT, axis=(1, 2))


def _back_ends(clean: np.ndarray, processed: np.ndarray, *, short: bool = True,
               extended: bool = True) -> dict[str, float]:
    """STOI and/or ESTOI of band envelopes, segment chunk by segment chunk."""
    noise = estoi_noise()
    stoi_sums, estoi_sums = [np.zeros(0)], [np.zeros(0)]
    for clean_segments, processed_segments in _segment_chunks(clean, processed):
        if short:
            stoi_sums.append(_stoi_segment_sums(clean_segments, processed_segments))
        if extended:
            estoi_sums.append(_estoi_segment_sums(clean_segments, processed_segments, noise))
    segments = clean.shape[1] - _SEGMENT + 1
    values = {}
    if short:
        values["stoi"] = float(np.sum(np.concatenate(stoi_sums)) / (segments * clean.shape[0]))
    if extended:
        values["estoi"] = float(np.sum(np.concatenate(estoi_sums)) / segments)
    return values


def _envelopes(reference, generated, sample_rate) -> tuple[np.ndarray, np.ndarray]:
    """Check and trim the pair, then run the shared front end on it."""
    sample_rate = check_sample_rate(sample_rate)
    reference, generated, sample_rate = check_pair(reference, generated, sample_rate,
                                                   min_length=_min_length(sample_rate))
    return _front_end(reference, generated, sample_rate)


def stoi(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int,
         extended: bool = False) -> float:
    """STOI (or ESTOI) of ``generated`` against ``reference``; higher is better, at most 1.

    STOI is not symmetric: ``reference`` is the clean speech whose silent frames are removed
    and whose envelopes the others are normalized to. Equal to
    ``pystoi.stoi(reference, generated, sample_rate, extended=extended)`` up to rounding (about
    1e-15 relative; ESTOI's regularizing noise is seeded here, see the module's notes).

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
    values = _back_ends(*_envelopes(reference, generated, sample_rate), short=not extended,
                        extended=extended)
    return values["estoi" if extended else "stoi"]


def estoi(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int) -> float:
    """Extended STOI (ESTOI) of ``generated`` against ``reference``; higher is better, at most 1.

    Same as ``stoi(..., extended=True)``; see :func:`stoi` for parameters and raises.
    """
    return stoi(reference=reference, generated=generated, sample_rate=sample_rate, extended=True)


def intelligibility_scores(*, reference: np.ndarray, generated: np.ndarray,
                           sample_rate: int) -> dict[str, float]:
    """``stoi`` and ``estoi`` together, from one resampling, silence removal and band analysis.

    The values are identical to :func:`stoi` and :func:`estoi`: the two measures differ only
    after the band segments, which are computed once and not modified. Parameters and raises
    as :func:`stoi`.

    Returns
    -------
    dict[str, float]
        ``{"stoi": ..., "estoi": ...}``, higher is better.
    """
    return _back_ends(*_envelopes(reference, generated, sample_rate))
