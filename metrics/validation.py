"""Input checks shared by the metrics, and the two ways a metric declines to give a number.

Bad input that no metric can use (a stereo array, integer samples, lengths that differ by more
than one hop) raises :class:`InputError`. Input that is valid but leaves one utterance without a
meaningful value (too short, a silent reference, NaN samples) raises :class:`MetricUnavailable`
with a short reason; :meth:`metrics.registry.MetricSpec.evaluate` turns that into a NaN value with
the reason as its status, so a scoring run can go on with the next utterance.
"""
from __future__ import annotations

import numpy as np

from wavebench_base.errors import InputError

#: Default tolerance on the length difference of a pair, in samples: one hop of the frame-based
#: metrics (``mcd``, ``mel_l1``). Larger differences mean misaligned audio.
HOP = 256

#: Peak magnitude at or below which a reference counts as digital silence (under half of one
#: 16-bit step, 1 / 32768).
SILENCE_PEAK = 1.0 / 65536

#: Reasons a metric can give instead of a value (the ``status`` of a NaN result).
REASONS = {
    "too_short": "too little audio (or too little non-silent audio) for the metric's frames",
    "silent_reference": "the reference is digital silence, so there is nothing to compare with",
    "nonfinite_reference": "the reference has NaN or infinite samples",
    "nonfinite_generated": "the generated audio has NaN or infinite samples",
    "no_utterances": "PESQ (P.862) detected no speech in the reference or the generated audio",
    "no_voiced_frames": "the reference has no voiced frame, so pitch error is undefined",
}


#: Statuses a scoring run gives a metric that raised :class:`InputError` on one pair, or ran out
#: of memory on it (the run goes on; other metrics of the pair may still have values).
INPUT_REASONS = {
    "length_mismatch": "the two lengths differ by more than the metric allows (misaligned "
                       "audio; mcd_dtw aligns)",
    "unsupported_rate": "the metric has no settings for this sample rate",
    "too_long": "the pair is longer than the metric can score (its memory bound; 20 s for PESQ, "
                "whose C code overflows beyond)",
    "out_of_memory": "the metric ran out of memory on this pair (see the run's notes)",
    "bad_input": "audio the metric cannot use (see the run's notes)",
}


class MetricUnavailable(Exception):
    """A metric has no meaningful value for this input; the result is NaN with ``reason``.

    Parameters
    ----------
    reason : str
        One of :data:`REASONS` (``"too_short"``, ``"silent_reference"``, ...).
    detail : str, optional
        The values behind the reason, for logs.
    """

    def __init__(self, reason: str, detail: str = ""):
        if reason not in REASONS:
            raise ValueError(f"unknown reason {reason!r}; known: {', '.join(REASONS)}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def check_sample_rate(sample_rate) -> int:
    """Return ``sample_rate`` as an int, or raise :class:`InputError` if it is not a positive integer."""
    if isinstance(sample_rate, (bool, np.bool_)) or not isinstance(sample_rate, (int, np.integer)):
        if not (isinstance(sample_rate, (float, np.floating)) and float(sample_rate).is_integer()):
            raise InputError(f"sample_rate must be a whole number of Hz, got {sample_rate!r}")
    if sample_rate <= 0:
        raise InputError(f"sample_rate must be positive, got {sample_rate}")
    return int(sample_rate)


def check_audio(audio, name: str) -> np.ndarray:
    """Return ``audio`` as a 1-D float array, or raise :class:`InputError`.

    The array is not converted: a float32 hour is 230 MB, its float64 copy 460 MB more, so the
    metrics convert the samples they are working on (see :func:`metrics.framing.framewise`).

    Parameters
    ----------
    audio : array_like [shape=(n,)], float
        Mono waveform in [-1, 1].
    name : str
        ``"reference"`` or ``"generated"``, for the messages.

    Returns
    -------
    np.ndarray [shape=(n,)], float
        ``audio`` itself (as an array), in its own float dtype.

    Raises
    ------
    InputError
        If ``audio`` is not a float array or has more than one channel.
    MetricUnavailable
        ``nonfinite_<name>`` if it holds NaN or infinite samples.
    """
    array = np.asarray(audio)
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"{name}: dtype {array.dtype}; metrics take float audio in [-1, 1] "
                         "(divide 16-bit integers by 32768)")
    if array.ndim != 1:
        raise InputError(f"{name}: array of shape {array.shape}; metrics take mono 1-D audio: "
                         "mix the channels down first")
    if array.size and not (np.isfinite(np.min(array)) and np.isfinite(np.max(array))):
        # min and max are NaN if any sample is, and infinite if any is: no per-sample temporary
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise MetricUnavailable(f"nonfinite_{name}", f"{bad} of {array.size} samples")
    return array


def check_pair(reference, generated, sample_rate, *, max_length_difference: int | None = HOP,
               min_length: int = 1):
    """Check a (reference, generated) pair and trim both to the shorter length.

    Parameters
    ----------
    reference, generated : array_like [shape=(n,)], float
        Mono waveforms at ``sample_rate``.
    sample_rate : int
        Sampling rate in Hz.
    max_length_difference : int or None
        Largest allowed difference of the two lengths, in samples (default one hop, 256);
        None allows any (for metrics that align the two themselves).
    min_length : int
        Fewest samples (after trimming) for which the metric means anything.

    Returns
    -------
    reference, generated : np.ndarray [shape=(min(n_ref, n_gen),)], float
        Views of the inputs in their own float dtype (not copied to float64); trimmed only
        when ``max_length_difference`` is not None.
    sample_rate : int

    Raises
    ------
    InputError
        If an array is not mono float audio, ``sample_rate`` is not a positive integer, or the
        lengths differ by more than ``max_length_difference``.
    MetricUnavailable
        ``nonfinite_reference`` / ``nonfinite_generated``, ``too_short``, ``silent_reference``.
    """
    sample_rate = check_sample_rate(sample_rate)
    reference = check_audio(reference, "reference")
    generated = check_audio(generated, "generated")
    if max_length_difference is not None:
        check_lengths(reference.size, generated.size, max_length_difference)
        n = min(reference.size, generated.size)
        reference, generated = reference[:n], generated[:n]
    shortest = min(reference.size, generated.size)
    if shortest < min_length:
        raise MetricUnavailable("too_short", f"{shortest} samples, fewer than {min_length}")
    peak = _peak(reference)
    if peak <= SILENCE_PEAK:
        raise MetricUnavailable("silent_reference", f"peak {peak:.3g}")
    return reference, generated, sample_rate


def check_lengths(n_reference: int, n_generated: int, max_difference: int = HOP) -> None:
    """Raise :class:`InputError` ``length_mismatch`` if two lengths differ by more than allowed.

    Parameters
    ----------
    n_reference, n_generated : int
        Lengths in samples at one rate.
    max_difference : int
        Largest allowed difference (default one hop, 256).
    """
    difference = abs(n_reference - n_generated)
    if difference > max_difference:
        raise InputError(
            f"reference and generated lengths differ by {difference} samples ({n_reference} "
            f"vs {n_generated}; more than one hop, {max_difference}); check alignment",
            reason="length_mismatch")


def _peak(audio: np.ndarray) -> float:
    """max |audio|, without the temporary array ``np.abs`` would make of the whole signal."""
    return float(max(np.max(audio), -np.min(audio)))


def allocation_failed(error: BaseException) -> bool:
    """Whether ``error`` is an allocator's failure rather than a bug.

    ``MemoryError`` (NumPy's ``_ArrayMemoryError`` among them, and C++ ``std::bad_alloc`` as
    pybind11 and nanobind translate it), or a ``RuntimeError`` whose message says an allocator
    failed (PyTorch's "DefaultCPUAllocator: can't allocate memory", CUDA "out of memory").
    """
    if isinstance(error, MemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        type(error).__name__ == "OutOfMemoryError" or "bad_alloc" in text
        or "can't allocate memory" in text or "out of memory" in text.lower())
