"""Seeded, vectorized percentile bootstrap: the one that reports/ and the MOS analysis share.

Summaries and comparisons resample utterances; :mod:`wavebench.mos.analysis.stats` resamples
raters (and, in its two-way bootstrap, raters and items). Both take ``n_resamples`` and
``confidence`` (e.g. 0.95), checked here, and read their intervals with
:func:`percentile_interval`.
"""
from __future__ import annotations

import zlib

import numpy as np

from wavebench_base.errors import InputError

#: Resample-by-utterance index arrays are drawn in chunks of at most this many elements,
#: so 10,000 resamples of a large corpus never need more than ~16 MiB of indices at once.
_CHUNK_ELEMENTS = 1 << 21


def check_bootstrap_args(n_resamples: int, confidence: float, seed: int) -> None:
    """Validate the settings shared by summaries and comparisons.

    Raises
    ------
    InputError
        ``n_resamples`` not a positive integer, ``confidence`` outside (0, 1), or ``seed``
        not a non-negative integer.
    """
    check_n_resamples(n_resamples)
    check_confidence(confidence)
    check_seed(seed)


def check_n_resamples(n_resamples: int) -> None:
    """Raise :class:`InputError` unless ``n_resamples`` is a positive integer."""
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) \
            or n_resamples < 1:
        raise InputError(f"n_resamples must be a positive integer, got {n_resamples!r}")


def check_confidence(confidence: float) -> None:
    """Raise :class:`InputError` unless ``confidence`` lies strictly between 0 and 1."""
    if not isinstance(confidence, (float, int)) or not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must be between 0 and 1 (e.g. 0.95), got {confidence!r}")


def check_seed(seed: int) -> None:
    """Raise :class:`InputError` unless ``seed`` is a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")


def group_rng(seed: int, *key: str) -> np.random.Generator:
    """Return a generator seeded by ``seed`` and a group's name.

    Deriving the stream from the name (not the group's position) keeps a system's interval
    unchanged when another system is added to the report.

    Parameters
    ----------
    seed : int
        The report's seed, non-negative.
    *key : str
        The group's name, e.g. ``("system_a", "mcd")``.

    Returns
    -------
    np.random.Generator
    """
    tag = zlib.crc32("\x1f".join(key).encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([int(seed), tag]))


def bootstrap_means(values: np.ndarray, n_resamples: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_resamples`` resamples (with replacement) of ``values``.

    Parameters
    ----------
    values : np.ndarray [shape=(n,)], float
        One finite value per utterance (or per utterance pair, for differences); n >= 1.
    n_resamples : int
        Number of bootstrap resamples.
    rng : np.random.Generator
        Source of the resampling indices.

    Returns
    -------
    np.ndarray [shape=(n_resamples,)], float64
        The mean of each resample.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    means = np.empty(n_resamples)
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_resamples, rows):
        stop = min(n_resamples, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    return means


def percentile_interval(resampled: np.ndarray, confidence: float) -> tuple[float, float]:
    """Equal-tailed percentile interval of bootstrap statistics.

    Parameters
    ----------
    resampled : np.ndarray [shape=(n_resamples,)]
        Bootstrap replicates of the statistic.
    confidence : float
        Coverage, e.g. 0.95 for the 2.5th and 97.5th percentiles.

    Returns
    -------
    (float, float)
        Lower and upper bound (linear interpolation between order statistics, as numpy's
        and scipy's percentile bootstrap use).
    """
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(resampled, [tail, 100.0 - tail])
    return float(low), float(high)
