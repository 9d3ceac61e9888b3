"""Per (system, metric) summaries of a results table, with bootstrap confidence intervals."""
from __future__ import annotations

import numpy as np
import pandas as pd

from reports.bootstrap import bootstrap_means, check_bootstrap_args, group_rng, percentile_interval
from reports.table import one_value_per_utterance, usable, validate_results

SUMMARY_COLUMNS = ("system", "metric", "n", "n_failed", "mean", "median", "std",
                   "ci_low", "ci_high")


def summarize(df: pd.DataFrame, *, n_resamples: int = 10_000, confidence: float = 0.95,
              seed: int = 0, source="results") -> pd.DataFrame:
    """Summarize each (system, metric) over utterances.

    Failed rows (status not ``"ok"``, or a NaN value) are left out of every statistic and
    counted in ``n_failed``. The confidence interval of the mean is the percentile bootstrap:
    utterances are resampled with replacement ``n_resamples`` times, from a generator seeded
    by ``seed`` and the group's name, so the same table always gives the same interval.

    Parameters
    ----------
    df : pd.DataFrame
        A results table (see :func:`reports.table.validate_results`), each
        (system, utterance, metric) once.
    n_resamples : int
        Bootstrap resamples per group.
    confidence : float
        Coverage of the interval, in (0, 1).
    seed : int
        Non-negative seed.
    source : str
        Name of the table for error messages.

    Returns
    -------
    pd.DataFrame
        Columns :data:`SUMMARY_COLUMNS`, one row per (system, metric) in order of first
        appearance. ``n`` counts the utterances used; ``std`` is the sample standard deviation
        (ddof=1, NaN for n < 2); mean, median and the interval are NaN when n is 0, and the
        interval is the single value when n is 1.

    Raises
    ------
    InputError
        An invalid table, a repeated (system, utterance, metric), or bad bootstrap settings.

    Examples
    --------
    >>> from reports.table import make_results_table
    >>> rows = [{"system": system, "utterance": f"u{i}", "metric": "mcd", "value": value}
    ...         for system, values in (("a", [4.0, 4.5, 5.0, 5.5]), ("b", [3.0, 3.5, 3.0, 3.5]))
    ...         for i, value in enumerate(values)]
    >>> table = make_results_table(rows, {"run": "r1"})
    >>> summarize(table)[["system", "metric", "n", "mean", "ci_low", "ci_high"]]
      system metric  n  mean  ci_low  ci_high
    0      a    mcd  4  4.75    4.25     5.25
    1      b    mcd  4  3.25    3.00     3.50
    """
    check_bootstrap_args(n_resamples, confidence, seed)
    table = validate_results(df, source)
    one_value_per_utterance(table, source)
    ok = usable(table).to_numpy()
    value, utterance = table["value"].to_numpy(), table["utterance"].to_numpy()
    rows = []
    for (system, metric), idx in table.groupby(["system", "metric"], sort=False).indices.items():
        # Utterance order fixes which resample draws which value: independent of row order.
        idx = idx[np.argsort(utterance[idx], kind="stable")]
        values = value[idx][ok[idx]]
        rows.append({"system": system, "metric": metric,
                     **_describe(values, n_failed=int((~ok[idx]).sum()),
                                 n_resamples=n_resamples, confidence=confidence,
                                 rng=group_rng(seed, system, metric))})
    floats = {c: "float64" for c in SUMMARY_COLUMNS[4:]}
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)).astype(
        {"n": "int64", "n_failed": "int64", **floats})


def _describe(values: np.ndarray, *, n_failed: int, n_resamples: int, confidence: float,
              rng: np.random.Generator) -> dict:
    n = values.size
    if n == 0:
        return {"n": 0, "n_failed": n_failed, "mean": np.nan, "median": np.nan, "std": np.nan,
                "ci_low": np.nan, "ci_high": np.nan}
    low, high = percentile_interval(bootstrap_means(values, n_resamples, rng), confidence)
    return {"n": n, "n_failed": n_failed, "mean": float(values.mean()),
            "median": float(np.median(values)),
            "std": float(values.std(ddof=1)) if n > 1 else np.nan,
            "ci_low": low, "ci_high": high}
