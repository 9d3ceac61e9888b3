"""Throughput arithmetic for samplers and scorers, each quantity with its printed definition.

Papers use "RTF" in both directions, so every figure here carries its definition:
:data:`DEFINITIONS` holds the text that reports print beside the numbers.
"""
from __future__ import annotations

import numpy as np

from wavebench_base.errors import InputError

DEFINITIONS = {
    "samples_per_s": "samples produced per second of wall time (higher is better)",
    "rtf": "real-time factor = compute time / audio time (lower is better; below 1 is faster "
           "than real time)",
    "x_realtime": "times real time = audio time / compute time = 1 / rtf (higher is better)",
}


def _positive(name: str, value) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a positive finite number, got {value}")
    return value


def samples_per_s(*, samples: int, seconds: float) -> float:
    """Samples per second of wall time: ``samples / seconds``; higher is better.

    Pass the samples of one stream for the per-stream rate, or of all streams of a batch for
    the aggregate rate.

    Parameters
    ----------
    samples : int
        Number of samples produced, >= 0.
    seconds : float
        Wall time it took, > 0.

    Returns
    -------
    float

    Raises
    ------
    InputError
        If ``seconds`` is not positive or ``samples`` is negative.

    Examples
    --------
    >>> samples_per_s(samples=16000, seconds=2.0)
    8000.0
    """
    if samples < 0:
        raise InputError(f"samples must be >= 0, got {samples}")
    return samples / _positive("seconds", seconds)


def rtf(*, compute_seconds: float, audio_seconds: float) -> float:
    """Real-time factor: compute time / audio time; lower is better, below 1 beats real time.

    Parameters
    ----------
    compute_seconds : float
        Wall time spent, > 0.
    audio_seconds : float
        Duration of the audio produced (or scored), > 0.

    Returns
    -------
    float

    Raises
    ------
    InputError
        If either time is not positive.

    Examples
    --------
    >>> rtf(compute_seconds=3.0, audio_seconds=1.5)
    2.0
    """
    return _positive("compute_seconds", compute_seconds) / _positive("audio_seconds", audio_seconds)


def x_realtime(*, compute_seconds: float, audio_seconds: float) -> float:
    """Times real time: audio time / compute time = 1 / :func:`rtf`; higher is better.

    Parameters and raises as :func:`rtf`.

    Examples
    --------
    >>> x_realtime(compute_seconds=2.0, audio_seconds=100.0)
    50.0
    """
    return _positive("audio_seconds", audio_seconds) / _positive("compute_seconds", compute_seconds)


def audio_seconds(*, samples: int, sample_rate: int) -> float:
    """Duration of ``samples`` samples at ``sample_rate`` Hz, in seconds."""
    if samples < 0:
        raise InputError(f"samples must be >= 0, got {samples}")
    return samples / _positive("sample_rate", sample_rate)
