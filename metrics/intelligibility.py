"""Short-Time Objective Intelligibility (STOI) and extended STOI (ESTOI), computed by pystoi 0.4.1."""
from __future__ import annotations

import math
import warnings

import numpy as np
from pystoi import stoi as _pystoi
from pystoi import utils as _pystoi_utils

from metrics.checks import MetricUnavailable, check_pair, check_sample_rate

#: pystoi's internal rate, frame, hop and the number of frames one intermediate measure needs.
STOI_RATE = 10000
_FRAME, _HOP, _SEGMENT = 256, 128, 30


def _min_length(sample_rate: int) -> int:
    """Fewest samples that can give 30 STOI frames even with no silence removed."""
    return math.ceil(((_SEGMENT - 1) * _HOP + _FRAME) * sample_rate / STOI_RATE)


def _run_pystoi(reference: np.ndarray, generated: np.ndarray, rate: int, extended: bool) -> float:
    # pystoi warns and returns 1e-5 when too few frames survive its silence removal; that
    # number is a sentinel, not a score
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = _pystoi(reference, generated, rate, extended=extended)
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        raise MetricUnavailable("too_short", "under 30 STOI frames after silence removal")
    return float(value)


def stoi(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int,
         extended: bool = False) -> float:
    """STOI (or ESTOI) of ``generated`` against ``reference``; higher is better, at most 1.

    STOI is not symmetric: ``reference`` is the clean speech whose silent frames are removed
    and whose envelopes the others are normalized to.

    Parameters
    ----------
    reference, generated : np.ndarray [shape=(n,)], float
        Mono waveforms at ``sample_rate``; lengths may differ by at most one hop (256) and are
        trimmed to the shorter.
    sample_rate : int
        Any rate; pystoi resamples to 10 kHz.
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
    sample_rate = check_sample_rate(sample_rate)
    reference, generated, sample_rate = check_pair(reference, generated, sample_rate,
                                                   min_length=_min_length(sample_rate))
    return _run_pystoi(reference, generated, sample_rate, extended)


def estoi(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int) -> float:
    """Extended STOI (ESTOI) of ``generated`` against ``reference``; higher is better, at most 1.

    Same as ``stoi(..., extended=True)``; see :func:`stoi` for parameters and raises.
    """
    return stoi(reference=reference, generated=generated, sample_rate=sample_rate, extended=True)


def intelligibility_scores(*, reference: np.ndarray, generated: np.ndarray,
                           sample_rate: int) -> dict[str, float]:
    """``stoi`` and ``estoi`` together, resampling the pair to 10 kHz once instead of twice.

    The values are identical to :func:`stoi` and :func:`estoi`: pystoi's own resampler runs
    first, and pystoi at 10 kHz then skips its resampling. Parameters and raises as :func:`stoi`.

    Returns
    -------
    dict[str, float]
        ``{"stoi": ..., "estoi": ...}``, higher is better.
    """
    sample_rate = check_sample_rate(sample_rate)
    reference, generated, sample_rate = check_pair(reference, generated, sample_rate,
                                                   min_length=_min_length(sample_rate))
    if sample_rate != STOI_RATE:
        reference = _pystoi_utils.resample_oct(reference, STOI_RATE, sample_rate)
        generated = _pystoi_utils.resample_oct(generated, STOI_RATE, sample_rate)
    return {"stoi": _run_pystoi(reference, generated, STOI_RATE, extended=False),
            "estoi": _run_pystoi(reference, generated, STOI_RATE, extended=True)}
