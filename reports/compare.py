"""Paired bootstrap comparison of each system against a baseline, metric by metric."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from reports.bootstrap import bootstrap_means, check_bootstrap_args, group_rng, percentile_interval
from reports.table import one_value_per_utterance, usable, validate_results
from wavebench_base.errors import InputError

COMPARISON_COLUMNS = ("system", "baseline", "metric", "n_pairs", "mean_diff", "ci_low", "ci_high",
                      "p_value", "higher_is_better", "better")
NO_CLEAR_DIFFERENCE = "no clear difference"
TOO_FEW_PAIRS = "too few pairs"
#: A bootstrap of one pair has no spread and would "find" any difference; two is the floor.
MIN_PAIRS = 2


def compare_systems(df: pd.DataFrame, baseline: str, higher_is_better: Mapping[str, bool], *,
                    n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0,
                    source="results") -> pd.DataFrame:
    """Compare every other system with ``baseline`` by paired bootstrap over utterances.

    For each metric, the differences ``system - baseline`` are taken on the utterances that
    both systems scored with status ``"ok"`` and a finite value; their mean is resampled
    ``n_resamples`` times by utterance.

    Parameters
    ----------
    df : pd.DataFrame
        A results table, each (system, utterance, metric) once.
    baseline : str
        The system the others are compared with.
    higher_is_better : mapping of str to bool
        For every metric in the table, whether a higher value is better.
    n_resamples : int
        Bootstrap resamples per comparison.
    confidence : float
        Coverage of the interval of the mean difference, in (0, 1).
    seed : int
        Non-negative seed; the stream of each comparison is derived from it and the names.
    source : str
        Name of the table for error messages.

    Returns
    -------
    pd.DataFrame
        Columns :data:`COMPARISON_COLUMNS`, one row per (system, metric) besides the baseline.
        ``mean_diff`` is system minus baseline; ``ci_low``/``ci_high`` its percentile interval;
        ``p_value`` the two-sided bootstrap fraction ``2 min(P*(d <= 0), P*(d >= 0))`` with
        the +1 correction ((k + 1) / (B + 1)), so never 0; ``better`` names the better system,
        or says ``"no clear difference"`` when the interval contains 0, or ``"too few pairs"``
        (interval and p-value NaN) with fewer than :data:`MIN_PAIRS` pairs.

    Raises
    ------
    InputError
        An invalid table, an unknown baseline, a metric without a direction, a repeated
        (system, utterance, metric), or bad bootstrap settings.
    """
    check_bootstrap_args(n_resamples, confidence, seed)
    table = validate_results(df, source)
    one_value_per_utterance(table, source)
    systems = list(dict.fromkeys(table["system"]))
    if baseline not in systems:
        raise InputError(f"baseline system {baseline!r} is not in the table; systems: "
                         f"{', '.join(systems)}", source)
    metrics = list(dict.fromkeys(table["metric"]))
    undirected = [m for m in metrics if m not in higher_is_better]
    if undirected:
        raise InputError(f"no direction for metric(s) {', '.join(undirected)}; pass "
                         f"higher_is_better for each", source)
    values = _ok_values(table)
    rows = []
    for system in systems:
        for metric in metrics:
            if system == baseline or (system, metric) not in values:
                continue
            diffs = _paired_differences(values, system, baseline, metric)
            rows.append({"system": system, "baseline": baseline, "metric": metric,
                         "higher_is_better": bool(higher_is_better[metric]),
                         **_paired_bootstrap(diffs, n_resamples, confidence,
                                             group_rng(seed, system, baseline, metric))})
    out = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    out["better"] = [_verdict(r) for r in out.itertuples(index=False)]
    floats = {c: "float64" for c in ("mean_diff", "ci_low", "ci_high", "p_value")}
    return out.astype({"n_pairs": "int64", "higher_is_better": "bool", **floats})


def _ok_values(table: pd.DataFrame) -> dict:
    """Map (system, metric) to its usable values as a Series indexed by utterance.

    Every (system, metric) in the table has an entry, possibly empty.
    """
    ok = usable(table)
    out = {}
    for key, group in table.groupby(["system", "metric"], sort=False):
        group = group[ok.loc[group.index]]
        out[key] = pd.Series(group["value"].to_numpy(), index=group["utterance"].to_numpy())
    return out


def _paired_differences(values: dict, system: str, baseline: str, metric: str) -> np.ndarray:
    mine = values[(system, metric)]
    theirs = values.get((baseline, metric), pd.Series(dtype="float64"))
    # Sorted utterances make the result independent of the table's row order.
    common = sorted(set(mine.index) & set(theirs.index))
    return mine.loc[common].to_numpy() - theirs.loc[common].to_numpy()


def _paired_bootstrap(diffs: np.ndarray, n_resamples: int, confidence: float,
                      rng: np.random.Generator) -> dict:
    n = diffs.size
    mean = float(diffs.mean()) if n else np.nan
    if n < MIN_PAIRS:
        return {"n_pairs": n, "mean_diff": mean, "ci_low": np.nan, "ci_high": np.nan,
                "p_value": np.nan}
    means = bootstrap_means(diffs, n_resamples, rng)
    low, high = percentile_interval(means, confidence)
    below = (np.count_nonzero(means <= 0.0) + 1) / (n_resamples + 1)
    above = (np.count_nonzero(means >= 0.0) + 1) / (n_resamples + 1)
    return {"n_pairs": n, "mean_diff": mean, "ci_low": low, "ci_high": high,
            "p_value": min(1.0, 2.0 * min(below, above))}


def _verdict(row) -> str:
    if row.n_pairs < MIN_PAIRS:
        return TOO_FEW_PAIRS
    if row.ci_low <= 0.0 <= row.ci_high:
        return NO_CLEAR_DIFFERENCE
    system_higher = row.ci_low > 0.0
    return row.system if system_higher == row.higher_is_better else row.baseline
