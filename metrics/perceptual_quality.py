"""Wideband and narrowband PESQ (ITU-T P.862.2 and P.862.1), computed by the ``pesq`` package.

PESQ predicts the MOS listeners would give ``generated`` as a degraded version of ``reference``,
on the MOS-LQO scale: about 1.0 (bad) to 4.64 (wideband) or 4.55 (narrowband) for identical
signals; higher is better. The scores are python-pesq's (ludlows/PESQ, the ITU reference C code
with an error-return patch); this module only prepares the pair and turns the C code's failures
into statuses.

Preparation:

1. the pair is checked like every aligned-pair metric (:func:`~metrics.validation.check_pair`:
   lengths within one hop, trimmed to the shorter; PESQ would align them itself, but a scorer of
   aligned pairs treats a larger difference as a misalignment upstream);
2. audio at a rate other than 16 kHz (:data:`PESQ_RATE`) is **resampled** to 16 kHz with
   ``soxr.resample(..., quality="VHQ")``, both signals alike; both modes score the 16 kHz pair,
   narrowband PESQ included (P.862 takes 16 kHz input in narrowband mode as well, and python-pesq
   allows it), so ``pesq_nb`` at 8 kHz input is computed on the 8 kHz audio upsampled, not on
   the 8 kHz samples themselves;
3. the samples go to ``pesq`` as contiguous float64 (python-pesq scales the pair by its common
   peak and hands float32 to the C code).

When PESQ has no value, the metric raises :class:`~metrics.validation.MetricUnavailable`:

- ``too_short``: under 1/4 s (:data:`MIN_SAMPLES` at 16 kHz), P.862's minimum, decided before
  calling the C code (its ``BufferTooShortError`` is mapped too);
- ``silent_reference``: by :func:`~metrics.validation.check_pair`; P.862 would say "no
  utterances";
- ``no_utterances``: P.862 found no utterance in the reference (its voice activity detector needs
  200 ms of continuous speech; ``NoUtterancesError``), or the C code returned NaN, which it does
  when the generated audio is digital silence (or so quiet that its power underflows);
- ``nonfinite_reference`` / ``nonfinite_generated``: NaN or infinite samples.

Pairs longer than :data:`MAX_SECONDS` raise :class:`InputError` ``too_long``: the C code keeps
the utterances it finds in arrays of 50 without checking the count, and writes past them (into
the rest of its error record, then the stack): measured on 0.3 s bursts between 0.4 s silences,
values silently change at 52 utterances (36 s) and it segfaults at 60 (42 s), and on 0.2 s
bursts between 0.2 s silences at 56 (23 s) and 70 (29 s); ludlows/PESQ issue 18 reports the
same. 51 utterances need at least 20.2 s, so no pair of at most 20 s can reach that code.

``pesq`` is imported inside the functions: it is an optional dependency (``wavebench[pesq]``;
without it they raise :class:`MissingDependencyError`), and workers that do not score PESQ do not
pay for importing it.
"""
from __future__ import annotations

import numpy as np
import soxr

from metrics.validation import MetricUnavailable, check_pair, check_sample_rate
from wavebench_base.errors import InputError, MissingDependencyError

#: The rate PESQ scores at: audio at any other rate is resampled to it (soxr, "VHQ").
PESQ_RATE = 16000
#: Fewest samples at :data:`PESQ_RATE`: P.862's quarter of a second.
MIN_SAMPLES = PESQ_RATE // 4
#: Longest pair scored, in seconds. P.862's voice activity detector counts an utterance per
#: run of at least 50 windows of 64 samples (200 ms at 16 kHz) of speech, and joins runs less
#: than 51 windows apart, so 50 utterances and the start of a 51st need 50 x 50 + 50 x 51 + 1
#: windows = 323264 samples (20.2 s); the C code writes out of bounds from there.
MAX_SECONDS = 20.0
#: Metric name -> python-pesq mode.
MODES = {"pesq_wb": "wb", "pesq_nb": "nb"}

# python-pesq's error codes (``pesq.PesqError``), here so that reading them imports nothing.
_OUT_OF_MEMORY = (-3, -4, -5)
_BUFFER_TOO_SHORT = -6
_NO_UTTERANCES = -7


def _pesq_package():
    """The ``pesq`` module, imported on first use.

    Raises
    ------
    MissingDependencyError
        ``pesq`` is not installed (the message has the install command).
    """
    try:
        import pesq
    except ImportError:
        raise MissingDependencyError(
            "PESQ needs the pesq package, which is not installed: pip install 'wavebench[pesq]'"
        ) from None
    return pesq


def _min_length(sample_rate: int) -> int:
    """Fewest samples at ``sample_rate`` that last 1/4 s, P.862's minimum.

    soxr turns them into ``round(n * PESQ_RATE / sample_rate)`` >= :data:`MIN_SAMPLES` samples
    (the 16 kHz length is checked again all the same).
    """
    return -(-MIN_SAMPLES * sample_rate // PESQ_RATE)


def _at_pesq_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``audio`` as contiguous float64 at :data:`PESQ_RATE` (resampled by soxr "VHQ" if needed)."""
    audio = np.ascontiguousarray(audio, dtype=np.float64)
    if sample_rate != PESQ_RATE:
        audio = np.ascontiguousarray(
            soxr.resample(audio, sample_rate, PESQ_RATE, quality="VHQ"), dtype=np.float64)
    return audio


def _prepared(reference, generated, sample_rate) -> tuple[np.ndarray, np.ndarray]:
    """Check and trim the pair, refuse what the C code cannot take, and resample to 16 kHz.

    Returns
    -------
    reference, generated : np.ndarray [shape=(m,)], float64, C-contiguous, at 16 kHz

    Raises
    ------
    InputError
        From :func:`~metrics.validation.check_pair`, or ``too_long``: over :data:`MAX_SECONDS`.
    MetricUnavailable
        From :func:`~metrics.validation.check_pair` (``too_short`` with :data:`MIN_SAMPLES`
        at 16 kHz as its minimum, ``silent_reference``, ``nonfinite_*``).
    """
    sample_rate = check_sample_rate(sample_rate)
    reference, generated, sample_rate = check_pair(reference, generated, sample_rate,
                                                   min_length=_min_length(sample_rate))
    if reference.size > MAX_SECONDS * sample_rate:
        raise InputError(
            f"PESQ of {reference.size / sample_rate:.1f} s: the pesq C code corrupts its memory "
            f"on long pairs (more than 50 utterances), so pesq_wb and pesq_nb score at most "
            f"{MAX_SECONDS:g} s; score shorter clips", reason="too_long")
    reference = _at_pesq_rate(reference, sample_rate)
    generated = _at_pesq_rate(generated, sample_rate)
    if reference.size < MIN_SAMPLES:  # rounding of the resampled length; not reached so far
        raise MetricUnavailable("too_short", f"{reference.size} samples at {PESQ_RATE} Hz, "
                                f"fewer than {MIN_SAMPLES} (1/4 s)")
    return reference, generated


def _pesq(package, reference: np.ndarray, generated: np.ndarray, mode: str) -> float:
    """python-pesq's score of a prepared 16 kHz pair in ``mode``, its failures as statuses.

    ``package`` is the ``pesq`` module (:func:`_pesq_package`).

    Raises
    ------
    MetricUnavailable
        ``too_short`` (``BufferTooShortError``), ``no_utterances`` (``NoUtterancesError``,
        or a NaN score: silent generated audio).
    MemoryError
        The C code could not allocate its buffers (a scorer records ``out_of_memory``).
    RuntimeError
        Any other error code (an invalid rate or an unknown error: a bug here).
    """
    value = package.pesq(PESQ_RATE, reference, generated, mode,
                         on_error=package.PesqError.RETURN_VALUES)
    # with RETURN_VALUES the C code's failures come back as negative int codes, and a NaN score
    # (which RAISE_EXCEPTION turns into "ValueError: cannot convert float NaN to integer") as is
    if isinstance(value, (int, np.integer)) and value < 0:
        if value == _BUFFER_TOO_SHORT:
            raise MetricUnavailable("too_short", "P.862 needs at least 1/4 s")
        if value == _NO_UTTERANCES:
            raise MetricUnavailable("no_utterances", "P.862 found no utterance of at least "
                                    "200 ms in the reference")
        if value in _OUT_OF_MEMORY:
            raise MemoryError(f"pesq ({mode}) could not allocate its buffers (code {value})")
        raise RuntimeError(f"pesq ({mode}) failed with error code {value}")
    value = float(value)
    if np.isnan(value):
        raise MetricUnavailable("no_utterances", "P.862 gave NaN: the generated audio is "
                                "silent to it")
    return value


def pesq_scores(*, reference: np.ndarray, generated: np.ndarray,
                sample_rate: int) -> dict[str, float]:
    """Wideband and narrowband PESQ of ``generated`` against ``reference``, from one resampling.

    Parameters
    ----------
    reference, generated : np.ndarray [shape=(n,)], float
        Mono waveforms in [-1, 1] at ``sample_rate``; lengths may differ by at most one hop
        (256 samples) and are trimmed to the shorter. Not modified.
    sample_rate : int
        Sampling rate in Hz; audio at a rate other than 16 kHz is resampled to 16 kHz (soxr,
        "VHQ") before scoring.

    Returns
    -------
    dict[str, float]
        ``{"pesq_wb": ..., "pesq_nb": ...}``: MOS-LQO, higher is better, about 1.0 to 4.64
        (wideband, P.862.2) and 1.0 to 4.55 (narrowband, P.862.1). Each equals
        :func:`pesq_wb` / :func:`pesq_nb`; where either mode has no value, this raises for both.

    Raises
    ------
    InputError
        If an array is not mono float audio, ``sample_rate`` is not a positive integer, the
        lengths differ by more than one hop, or the pair is longer than :data:`MAX_SECONDS`
        (``too_long``); :class:`MissingDependencyError` (an InputError) if ``pesq`` is not
        installed.
    MetricUnavailable
        ``too_short`` (under 1/4 s), ``silent_reference``, ``no_utterances`` (no utterance of
        200 ms in the reference, or silent generated audio), ``nonfinite_reference`` /
        ``nonfinite_generated``.
    MemoryError
        The pesq C code could not allocate its buffers.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = 0.1 * rng.standard_normal(16000)
    >>> scores = pesq_scores(reference=x, generated=x + 0.02 * rng.standard_normal(16000),
    ...                      sample_rate=16000)
    >>> {name: round(value, 2) for name, value in scores.items()}
    {'pesq_wb': 4.37, 'pesq_nb': 4.4}
    """
    package = _pesq_package()
    reference, generated = _prepared(reference, generated, sample_rate)
    return {name: _pesq(package, reference, generated, mode) for name, mode in MODES.items()}


def pesq_wb(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int) -> float:
    """Wideband PESQ (ITU-T P.862.2) of ``generated`` against ``reference``; higher is better.

    Parameters and raises as :func:`pesq_scores`.

    Returns
    -------
    float
        MOS-LQO, about 1.0 (bad) to 4.64 (identical signals).

    Examples
    --------
    >>> x = 0.1 * np.random.default_rng(0).standard_normal(16000)
    >>> round(pesq_wb(reference=x, generated=x, sample_rate=16000), 2)
    4.64
    """
    package = _pesq_package()
    reference, generated = _prepared(reference, generated, sample_rate)
    return _pesq(package, reference, generated, MODES["pesq_wb"])


def pesq_nb(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int) -> float:
    """Narrowband PESQ (ITU-T P.862 with the P.862.1 mapping) of ``generated`` against
    ``reference``, computed at 16 kHz; higher is better.

    Parameters and raises as :func:`pesq_scores`.

    Returns
    -------
    float
        MOS-LQO, about 1.0 (bad) to 4.55 (identical signals).

    Examples
    --------
    >>> x = 0.1 * np.random.default_rng(0).standard_normal(16000)
    >>> round(pesq_nb(reference=x, generated=x, sample_rate=16000), 2)
    4.55
    """
    package = _pesq_package()
    reference, generated = _prepared(reference, generated, sample_rate)
    return _pesq(package, reference, generated, MODES["pesq_nb"])
