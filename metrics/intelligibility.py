"""STOI and extended STOI (ESTOI), as pystoi 0.4.1 computes them, in bounded memory.

pystoi holds every frame, spectrum and 30-frame segment of a pair at once (about 6 GB for an
hour at 16 kHz) and redoes its front end for each measure. Here one front end feeds both back
ends, and every long array is computed a chunk at a time:

1. resampling to 10 kHz with pystoi's own filter (``resample_oct``'s ``resample_poly``), a
   compiled dot product per output sample (:func:`_resample_to_10k`);
2. silence removal by pystoi's rule (frames of the reference more than 40 dB below its loudest
   are dropped from both signals), overlap-adding the kept frames only where a chunk of band
   envelopes needs them (:func:`_kept_frames`, :func:`_overlap_added`);
3. one-third-octave band envelopes, 15 values per 12.8 ms: the only arrays kept whole;
4. the back ends, one compiled pass over the 30-frame segments read in place from the
   envelopes (no stack of segments), each segment's sum kept and the sums added at the end.

Each step keeps pystoi's operations on each frame and segment. What differs is rounding: the
resampler's and the back ends' sums are reordered to vectorize them (compiled,
:mod:`~metrics.intelligibility_kernels`), the band sums are taken by
:func:`~metrics.framing.band_product` and the final sum adds per-segment sums, so the values
are pystoi's to about 1e-15 relative (the tests allow 1e-12), and they do not depend on
:data:`~metrics.framing.CHUNK_FRAMES` at all.

ESTOI adds tiny regularizing noise (machine epsilon times standard normals) before normalizing
the segments' rows and columns. It matters only where a row or column is constant over a
segment (a band of digital silence, say); elsewhere it moves the value by rounding. Where it
decides the value, pystoi's is random, and ours is pystoi's given the same noise only where the
constant is exactly zero (otherwise rounding competes with the noise). pystoi draws it from NumPy's
global generator, unseeded, so its ESTOI changes in the last bits from one run to the next (and a
silent output's at random). Here each number is a pure function of its place (segment, draw,
band, frame; :func:`~metrics.intelligibility_kernels.noise_value`) with the same mean and
variance (a bell-shaped sum of four uniforms rather than a Gaussian, drawn inside the compiled
kernel): identical inputs give identical bytes, the global generator is untouched, and
:func:`estoi_noise` hands the same numbers to a test that gives them to pystoi.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from metrics.framing import band_product, chunk_bounds, frames, framewise
from metrics.validation import MetricUnavailable, check_pair, check_sample_rate

# STOI's settings (Taal et al. 2011) as pystoi 0.4.1 has them; the tests hold them to its values.
# pystoi itself is not imported: it imports scipy.signal, which took 0.41 s of every scoring
# process's start-up (python -X importtime, Intel Xeon family 6 model 167, AVX-512).
#: The internal rate, the frame, its FFT size, and the frames one intermediate measure needs.
STOI_RATE, _FRAME, _NFFT, _SEGMENT = 10000, 256, 512, 30
_HOP = _FRAME // 2
#: One-third-octave bands: how many, and the centre of the lowest (Hz).
_BANDS, _LOWEST_CENTRE_HZ = 15, 150.0
#: Silence removal drops frames more than this far below the reference's loudest (dB).
_DYNAMIC_RANGE_DB = 40.0
#: pystoi's analysis window (MATLAB's ``hanning``: a Hann window without its zero end points).
_WINDOW = np.hanning(_FRAME + 2)[1:-1]
_EPS = np.finfo(np.float64).eps
#: STOI's clipping of the processed bands: at most this times the clean band (a -15 dB
#: signal-to-distortion ratio).
_CLIP = 1 + 10 ** (15.0 / 20)


def _third_octave_matrix() -> np.ndarray:
    """STOI's band matrix, as pystoi's ``thirdoct`` builds it: row k is 1 from the FFT bin
    nearest to the band's lower edge, 150 * 2^((2k - 1) / 6) Hz, up to but not including the
    bin nearest to its upper edge, 150 * 2^((2k + 1) / 6) Hz (nearest by squared distance, the
    lower bin of a tie).

    Returns
    -------
    np.ndarray [shape=(15, 257)], float64, read-only
    """
    bins_hz = np.linspace(0, STOI_RATE, _NFFT + 1)[:_NFFT // 2 + 1]
    k = np.arange(_BANDS, dtype=np.float64)
    lower, upper = (np.argmin(np.square(bins_hz - edges[:, None]), axis=1) for edges in (
        _LOWEST_CENTRE_HZ * np.power(2.0, (2 * k - 1) / 6),
        _LOWEST_CENTRE_HZ * np.power(2.0, (2 * k + 1) / 6)))
    matrix = np.zeros((_BANDS, bins_hz.size))
    for band in range(_BANDS):
        matrix[band, lower[band]:upper[band]] = 1.0
    matrix.setflags(write=False)
    return matrix


_BAND_MATRIX = _third_octave_matrix()


def estoi_noise(segments: int) -> np.ndarray:
    """ESTOI's regularizing noise for ``segments`` segments, in pystoi's order and shapes.

    Returns
    -------
    np.ndarray [shape=(4, segments, 15, 30)], float64
        Unit-variance noise for the clean segments' rows, their columns, the processed
        segments' rows and their columns: what pystoi draws from ``np.random.standard_normal``
        in that order, and what :func:`estoi` adds (scaled by machine epsilon).
    """
    from metrics import intelligibility_kernels

    out = np.empty((intelligibility_kernels.DRAWS, segments, _BANDS, _SEGMENT))
    intelligibility_kernels.noise_into(out)
    return out


def _min_length(sample_rate: int) -> int:
    """Fewest samples that can give 30 STOI frames even with no silence removed."""
    return math.ceil(((_SEGMENT - 1) * _HOP + _FRAME) * sample_rate / STOI_RATE)


def _resample_to_10k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``pystoi.utils.resample_oct(audio, 10000, sample_rate)``, to rounding.

    The same polyphase filter as ``resample_poly`` with pystoi's window, compiled
    (:func:`~metrics.intelligibility_kernels.resample`): each output sample is one dot product
    over the input samples its filter phase reaches, read straight from ``audio`` (any float
    dtype; no float64 copy of the input is made).

    Returns
    -------
    np.ndarray [shape=(ceil(n * 10000 / sample_rate),)]
        float64; ``audio`` itself at 10 kHz (the back ends convert what they use).
    """
    if sample_rate == STOI_RATE:
        return audio
    from metrics import intelligibility_kernels

    up, down, table, delay = _resampler(sample_rate)
    out = np.empty(-(-audio.size * up // down))
    intelligibility_kernels.resample(audio, table, up, down, delay, out)
    return out


@lru_cache(maxsize=8)
def _resampler(sample_rate: int) -> tuple[int, int, np.ndarray, int]:
    """``(up, down, phase table, delay)`` of ``resample_poly(x, 10000, sample_rate, window)``
    with pystoi's window (:func:`_resample_filter`): scipy scales the window by ``up`` and
    centres it. Cached: pystoi's ``resample_oct`` redesigns the filter for every signal."""
    from metrics import intelligibility_kernels

    divisor = math.gcd(STOI_RATE, sample_rate)
    up, down = STOI_RATE // divisor, sample_rate // divisor
    window = _resample_filter(up, down)
    table = intelligibility_kernels.phase_table(window * up, up)
    table.setflags(write=False)
    return up, down, table, (window.size - 1) // 2


def _resample_filter(up: int, down: int) -> np.ndarray:
    """The filter pystoi's ``resample_oct`` hands ``resample_poly`` for the reduced ratio
    up / down: Octave's ``resample`` design, which pystoi's ``_resample_window_oct`` ports (the
    ideal low-pass at half the band of the larger of the two rates, scaled by ``up``, under a
    Kaiser window for 60 dB of rejection, long enough for a transition of a tenth of the cutoff
    by Kaiser's length formula), normalized to unit sum."""
    cutoff = 1.0 / (2 * max(up, down))
    rejection_db = 60.0
    half_length = np.ceil((rejection_db - 8) / (28.714 * (cutoff / 10)))
    taps = np.arange(-half_length, half_length + 1)
    ideal = 2 * up * cutoff * np.sinc(2 * cutoff * taps)
    h = np.kaiser(2 * half_length + 1, 0.1102 * (rejection_db - 8.7)) * ideal
    return h / np.sum(h)


def _kept_frames(reference: np.ndarray) -> np.ndarray:
    """Indices of the frames pystoi's silence removal keeps (within 40 dB of the loudest).

    Frames start every hop while a full frame *and one more sample* fit (pystoi's
    ``range(0, len(x) - framelen, hop)``), hence the frames of ``reference[:-1]``.
    """
    def energies(framed: np.ndarray) -> np.ndarray:
        return 20 * np.log10(np.linalg.norm(_WINDOW * framed, axis=1) + _EPS)

    energy = framewise(energies, reference[:-1], length=_FRAME, hop=_HOP)
    return np.flatnonzero((np.max(energy) - _DYNAMIC_RANGE_DB - energy) < 0)


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
    parts = [np.zeros((0, _BANDS))]
    for start, stop in chunk_bounds(max(kept.size - 1, 0)):
        piece = _overlap_added(signal, kept, start, stop + 1)  # frame t spans blocks t, t + 1
        spectrum = np.fft.rfft(frames(piece, _FRAME, _HOP) * _WINDOW, n=_NFFT, axis=-1)
        parts.append(np.sqrt(band_product(np.square(np.abs(spectrum)), _BAND_MATRIX)))
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


def _back_ends(clean: np.ndarray, processed: np.ndarray, *, short: bool = True,
               extended: bool = True) -> dict[str, float]:
    """STOI and/or ESTOI of band envelopes (bands x frames), from each 30-frame segment's sum
    (:func:`~metrics.intelligibility_kernels.segment_sums`)."""
    from metrics import intelligibility_kernels

    segments = clean.shape[1] - _SEGMENT + 1
    stoi_sums, estoi_sums = (np.empty(segments if wanted else 0) for wanted in (short, extended))
    intelligibility_kernels.segment_sums(np.ascontiguousarray(clean.T),
                                         np.ascontiguousarray(processed.T), _SEGMENT, _EPS,
                                         _CLIP, stoi_sums, estoi_sums)
    values = {}
    if short:
        values["stoi"] = float(np.sum(stoi_sums) / (segments * clean.shape[0]))
    if extended:
        values["estoi"] = float(np.sum(estoi_sums) / segments)
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
    1e-15 relative; ESTOI's regularizing noise is a fixed function of its place here, see the
    module's notes).

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
