"""MOS analysis tables (listening-test.md 12.3-12.5): per-system intervals, pairwise tests,
items and raters.

Every function takes the unblinded, screened rating trials (one row per rating with
rater_id, session_id, item, condition, role, score) and returns a DataFrame; nothing here
reads or writes files (see :mod:`wavebench.mos.analysis.report`). Intervals take
``confidence`` and the bootstraps ``n_resamples`` (see :mod:`wavebench.mos.analysis.stats`);
the tests of :func:`pairwise` take their significance level ``alpha``.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats as _st

from wavebench.mos.analysis import stats
from wavebench_base.errors import InputError

CI_METHODS = ("boot2way", "crowdmos", "t", "lmm")
#: What ``--ci all`` computes: lmm only when asked for (slower, needs statsmodels).
DEFAULT_CI_METHODS = ("boot2way", "crowdmos", "t")
CORRECTIONS = ("holm", "bonferroni", "none")
#: Below this many raters with both systems, the paired test gives way to Mann-Whitney.
MIN_PAIRED_RATERS = 6


def _index(values: pd.Series) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(values, sort=True)
    return codes, len(uniques)


def _matrices(rated: pd.DataFrame, conditions) -> tuple[list, list]:
    """Sums and counts per condition on shared rater and item indices."""
    r, n_r = _index(rated["rater_id"])
    i, n_i = _index(rated["item"])
    sums, counts = [], []
    for cond in conditions:
        mask = (rated["condition"] == cond).to_numpy()
        s, c = stats.sums_and_counts(r[mask], i[mask], rated["score"].to_numpy()[mask],
                                     n_r, n_i)
        sums.append(s)
        counts.append(c)
    return sums, counts


def _shares(scores: np.ndarray, scale: tuple[float, float]) -> dict:
    """Share of each category of a 1-5 style scale (p1...pK), or deciles for wide scales."""
    lo, hi = scale
    if hi - lo <= 10:
        cats = np.arange(int(lo), int(hi) + 1)
        return {f"p{c}": float(np.mean(np.round(scores) == c)) for c in cats}
    return {f"d{k}": float(np.quantile(scores, k / 10)) for k in range(1, 10)}


def system_scores(rated: pd.DataFrame, *, methods=DEFAULT_CI_METHODS, primary: str = "boot2way",
                  confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0,
                  generalize: str = "raters+items", scale=(1, 5)) -> pd.DataFrame:
    """Per-condition MOS with t, CrowdMOS and two-way bootstrap intervals (system_scores.csv).

    Parameters
    ----------
    rated : pd.DataFrame
        Screened rating trials (rater_id, item, condition, role, score).
    methods : sequence of str
        Interval methods among :data:`CI_METHODS`.
    primary : str
        The method reported as ``ci_primary`` (must be in ``methods``).
    confidence : float
        Coverage of every interval, e.g. 0.95.
    n_resamples, seed : int
        Bootstrap replicates and seed.
    generalize : {"raters+items", "raters"}
        What the bootstrap resamples.
    scale : (float, float)
        The rating scale's bounds (for the category shares).

    Returns
    -------
    pd.DataFrame
        One row per condition, sorted by mean (best first): condition, role, n_ratings,
        n_raters, n_items, mean, sd, median, p1...p5, ci_lo_<m>, ci_hi_<m>, ci_primary.

    Raises
    ------
    InputError
        No ratings, an unknown method, or a primary method that is not computed.
    """
    unknown = [m for m in methods if m not in CI_METHODS]
    if unknown or primary not in methods:
        raise InputError(f"CI methods {list(methods)} with primary {primary!r}: choose from "
                         f"{', '.join(CI_METHODS)} and include the primary")
    if generalize not in ("raters+items", "raters"):
        raise InputError(f"--generalize must be raters+items or raters, got {generalize!r}")
    if rated.empty:
        raise InputError("no ratings left to analyze (after screening)")
    conditions = sorted(rated["condition"].unique())
    sums, counts = _matrices(rated, conditions)
    reps = stats.two_way_replicates(sums, counts, n_resamples=n_resamples, seed=seed,
                                    resample_items=generalize == "raters+items")
    mixed = stats.lmm_intervals(rated, confidence) if "lmm" in methods else {}
    rows = []
    for k, cond in enumerate(conditions):
        part = rated[rated["condition"] == cond]
        x = part["score"].to_numpy(float)
        row = {"condition": cond, "role": part["role"].iloc[0], "n_ratings": x.size,
               "n_raters": part["rater_id"].nunique(), "n_items": part["item"].nunique(),
               "mean": x.mean(), "sd": x.std(ddof=1) if x.size > 1 else np.nan,
               "median": float(np.median(x)), **_shares(x, scale)}
        intervals = {
            "t": lambda: stats.t_interval(x, confidence),
            "crowdmos": lambda: stats.crowdmos_interval(
                part.pivot_table(index="rater_id", columns="item", values="score",
                                 aggfunc="mean").to_numpy(float), confidence),
            "boot2way": lambda: stats.bootstrap_interval(x.mean(), reps[:, k], confidence),
            "lmm": lambda: mixed[str(cond)],
        }
        for m in methods:
            ci = intervals[m]()
            row[f"ci_lo_{m}"], row[f"ci_hi_{m}"] = ci.lo, ci.hi
        row["ci_primary"] = primary
        rows.append(row)
    return pd.DataFrame(rows).sort_values("mean", ascending=False, kind="stable") \
        .reset_index(drop=True)


def item_adjusted(rated: pd.DataFrame) -> pd.Series:
    """Scores minus their item's mean over all its ratings (every condition)."""
    return rated["score"] - rated.groupby("item")["score"].transform("mean")


def _pair_row(rated, adjusted, a, b, *, confidence, n_resamples, seed, generalize,
              raw_tests=False) -> dict:
    in_a, in_b = rated["condition"] == a, rated["condition"] == b
    per_rater = pd.DataFrame({"rater_id": rated["rater_id"], "adj": adjusted,
                              "raw": rated["score"]})
    mean_a = per_rater[in_a].groupby("rater_id")[["adj", "raw"]].mean()
    mean_b = per_rater[in_b].groupby("rater_id")[["adj", "raw"]].mean()
    both = mean_a.index.intersection(mean_b.index)
    within = len(both) == len(mean_a.index.union(mean_b.index))
    row = {"sys_a": a, "sys_b": b, "mos_a": rated.loc[in_a, "score"].mean(),
           "mos_b": rated.loc[in_b, "score"].mean(), "n_raters_used": len(both),
           "prob_superiority": stats.prob_superiority(rated.loc[in_a, "score"],
                                                      rated.loc[in_b, "score"])}
    if len(both) >= MIN_PAIRED_RATERS:
        diffs = (mean_a.loc[both, "adj"] - mean_b.loc[both, "adj"]).to_numpy()
        test = stats.signed_rank_test(diffs)
        row.update(test="wilcoxon_signed_rank_item_adjusted", statistic=test.statistic,
                   p_raw=test.p_value, effect_size=test.effect_size)
    else:
        u = _st.mannwhitneyu(mean_a["raw"], mean_b["raw"], alternative="two-sided")
        row.update(test="mann_whitney_rater_means (between-subjects)", statistic=u.statistic,
                   p_raw=u.pvalue,
                   effect_size=2 * u.statistic / (len(mean_a) * len(mean_b)) - 1)
    if within and len(both) >= MIN_PAIRED_RATERS:
        ci = stats.bootstrap_mean(diffs, n_resamples=n_resamples, confidence=confidence,
                                  seed=seed)
        row["diff_ci_method"] = "rater_bootstrap_item_adjusted"
    else:
        sub = rated[in_a | in_b]
        sums, counts = _matrices(sub, [a, b])
        reps = stats.two_way_replicates(sums, counts, n_resamples=n_resamples, seed=seed,
                                        resample_items=generalize == "raters+items")
        ci = stats.bootstrap_interval(row["mos_a"] - row["mos_b"], reps[:, 0] - reps[:, 1],
                                      confidence)
        row["diff_ci_method"] = "two_way_bootstrap"
    row.update(mean_diff=ci.estimate, diff_ci_lo=ci.lo, diff_ci_hi=ci.hi)
    if raw_tests:  # what most papers report; they treat every rating as independent
        x, y = rated.loc[in_a, "score"], rated.loc[in_b, "score"]
        row["p_mannwhitney_raw"] = _st.mannwhitneyu(x, y, alternative="two-sided").pvalue
        row["p_welch_raw"] = _st.ttest_ind(x, y, equal_var=False).pvalue
    return row


def pairwise(rated: pd.DataFrame, *, conditions=None, baseline: str | None = None,
             correction: str = "holm", alpha: float = 0.05, n_resamples: int = 2000,
             seed: int = 0, generalize: str = "raters+items",
             raw_tests: bool = False) -> pd.DataFrame:
    """Pairwise comparisons of conditions with rater-level tests (pairwise.csv).

    The default test is a Wilcoxon signed-rank test on per-rater mean differences of
    item-adjusted scores (each item's mean over all its ratings subtracted first), over the
    raters who rated both conditions; with fewer than :data:`MIN_PAIRED_RATERS` such raters,
    a Mann-Whitney test on per-rater means (between-subjects). The difference CI is the
    rater-level bootstrap of the item-adjusted differences when every rater rated both, else
    the two-way bootstrap of MOS_a - MOS_b.

    Parameters
    ----------
    rated : pd.DataFrame
        Screened rating trials.
    conditions : sequence of str, optional
        The conditions compared (default: all in ``rated``).
    baseline : str, optional
        Compare each condition with this one only.
    correction : {"holm", "bonferroni", "none"}
        Decides ``significant``; both adjusted p-values are always given.
    alpha : float
        Family-wise significance level; the difference intervals have confidence 1 - alpha.
    n_resamples, seed, generalize
        As in :func:`system_scores`.
    raw_tests : bool
        Add ``p_mannwhitney_raw`` and ``p_welch_raw``: Mann-Whitney and Welch tests on the raw
        ratings, as most papers report them. They ignore that ratings cluster by rater and
        item, so they are too liberal; they are never used for ``significant``.

    Returns
    -------
    pd.DataFrame
        sys_a, sys_b, mean_diff, diff_ci_lo, diff_ci_hi, diff_ci_method, n_raters_used, test,
        statistic, p_raw, p_holm, p_bonferroni, significant, effect_size, prob_superiority,
        mos_a, mos_b. Pairs are ordered so that sys_a has the higher MOS.

    Raises
    ------
    InputError
        An unknown correction or baseline, fewer than 2 conditions, or ``alpha`` outside
        (0, 1).
    """
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha must lie in (0, 1), got {alpha}")
    if correction not in CORRECTIONS:
        raise InputError(f"unknown correction {correction!r}; use {', '.join(CORRECTIONS)}")
    conditions = list(conditions) if conditions is not None else \
        sorted(rated["condition"].unique())
    if baseline is not None and baseline not in conditions:
        raise InputError(f"baseline {baseline!r} is not among the compared conditions: "
                         f"{', '.join(conditions)}")
    if len(conditions) < 2:
        raise InputError("pairwise comparisons need at least 2 conditions")
    means = rated.groupby("condition")["score"].mean()
    pairs = [(a, b) for a, b in combinations(conditions, 2)
             if baseline is None or baseline in (a, b)]
    adjusted = item_adjusted(rated)
    rows = [_pair_row(rated, adjusted, *sorted(p, key=lambda c: -means[c]),
                      confidence=1.0 - alpha, n_resamples=n_resamples, seed=seed,
                      generalize=generalize, raw_tests=raw_tests)
            for p in pairs]
    table = pd.DataFrame(rows)
    table["p_holm"] = stats.holm(table["p_raw"])
    table["p_bonferroni"] = stats.bonferroni(table["p_raw"])
    p_used = {"holm": table["p_holm"], "bonferroni": table["p_bonferroni"],
              "none": table["p_raw"]}[correction]
    table["significant"] = p_used < alpha
    order = ["sys_a", "sys_b", "mean_diff", "diff_ci_lo", "diff_ci_hi", "diff_ci_method",
             "n_raters_used", "test", "statistic", "p_raw", "p_holm", "p_bonferroni",
             "significant", "effect_size", "prob_superiority", "mos_a", "mos_b"]
    if raw_tests:
        order += ["p_mannwhitney_raw", "p_welch_raw"]
    return table[order]


def per_item(rated: pd.DataFrame) -> pd.DataFrame:
    """Per (item, condition): n, mean, sd, the item's difficulty and the interaction residual.

    Returns
    -------
    pd.DataFrame
        item, condition, n, mean, sd, item_mean (mean of the item's cell means over
        conditions), residual (cell mean - item_mean - condition mean + grand mean; large
        magnitude marks an item where one condition fails).
    """
    cells = rated.groupby(["item", "condition"])["score"].agg(["size", "mean", "std"])
    cells = cells.rename(columns={"size": "n", "std": "sd"}).reset_index()
    cells["item_mean"] = cells.groupby("item")["mean"].transform("mean")
    cond_mean = cells.groupby("condition")["mean"].transform("mean")
    cells["residual"] = cells["mean"] - cells["item_mean"] - cond_mean + cells["mean"].mean()
    return cells


def per_rater(all_trials: pd.DataFrame, rated_all: pd.DataFrame, sessions: pd.DataFrame,
              flags: pd.DataFrame) -> pd.DataFrame:
    """Per rater: ratings, bias, consensus correlation, checks and exclusion (per_rater.csv).

    Parameters
    ----------
    all_trials : pd.DataFrame
        Every unblinded trial (for the check scores).
    rated_all : pd.DataFrame
        Rating trials before screening (bias and leave-one-out correlations use them, so
        excluded raters get values too).
    sessions : pd.DataFrame
        :attr:`ScreeningResult.sessions`.
    flags : pd.DataFrame
        :attr:`ScreeningResult.raters` (the flags as screening computed them, and for
        MUSHRA the hidden-reference and mid-anchor failure rates).

    Returns
    -------
    pd.DataFrame
    """
    from wavebench.mos.analysis.screening import loo_correlations

    consensus = rated_all.groupby("stimulus_id")["score"].transform("mean")
    bias = (rated_all["score"] - consensus).groupby(rated_all["rater_id"]).mean()
    loo = loo_correlations(rated_all)
    g = rated_all.groupby("rater_id")
    checks = all_trials.groupby("rater_id")
    ses = sessions.groupby("rater_id")
    out = pd.DataFrame({
        "sessions": ses["session_id"].nunique(), "n_ratings": g["score"].size(),
        "mean": g["score"].mean(), "sd": g["score"].std(ddof=1), "bias": bias,
        "r_pearson_loo": loo["r_pearson_loo"], "r_spearman_loo": loo["r_spearman_loo"],
        "gold_correct": checks.apply(lambda t: int(t.loc[t["trial_type"].str.startswith(
            "gold"), "correct"].sum()), include_groups=False),
        "gold_total": checks.apply(lambda t: int(t["trial_type"].str.startswith("gold").sum()),
                                   include_groups=False),
        "traps_ok": checks.apply(lambda t: bool(t.loc[t["trial_type"] == "trap",
                                                      "correct"].all()), include_groups=False),
        "headphone_score": checks.apply(lambda t: t.loc[t["trial_type"] == "headphone",
                                                        "correct"].mean(), include_groups=False),
        "hidden_ref_fail_rate": flags.get("hidden_ref_fail_rate", np.nan),
        "anchor_fail_rate": flags.get("anchor_fail_rate", np.nan),
        "median_response_ms": g["response_ms"].median(),
        "pct_played_to_end": 100.0 * g["played_to_end"].mean(),
        "n_plays_mean": g["n_plays"].mean(),
        "loo_flag": flags["loo_flag"] if "loo_flag" in flags else False,
        "kurtosis_flag": flags["kurtosis_flag"] if "kurtosis_flag" in flags else False,
        "excluded": ses["excluded"].all(),
        "exclusion_reasons": ses["exclusion_reasons"].agg(
            lambda v: ";".join(sorted({r for x in v for r in x.split(";") if r}))),
    })
    out.index.name = "rater_id"
    out[["loo_flag", "kurtosis_flag"]] = out[["loo_flag", "kurtosis_flag"]].fillna(False)
    return out.reset_index()


def design_balance(rated_all: pd.DataFrame, kept: pd.DataFrame, target_votes) -> pd.DataFrame:
    """Votes per (item, condition) before and after screening (design_balance.csv).

    Returns
    -------
    pd.DataFrame
        item, condition, votes_target, votes_raw, votes_kept.
    """
    raw = rated_all.groupby(["item", "condition"]).size().rename("votes_raw")
    kept_votes = kept.groupby(["item", "condition"]).size().rename("votes_kept")
    table = pd.concat([raw, kept_votes], axis=1).fillna(0).astype(int).reset_index()
    table.insert(2, "votes_target", target_votes if target_votes is not None else np.nan)
    return table


def sensitivity(unscreened: pd.DataFrame, objective: pd.DataFrame,
                kept: pd.DataFrame) -> pd.DataFrame:
    """MOS per condition with no screening, the objective checks only, and all screening."""
    parts = {"mos_unscreened": unscreened, "mos_objective_only": objective,
             "mos_all_screening": kept}
    table = pd.concat({k: v.groupby("condition")["score"].mean() for k, v in parts.items()},
                      axis=1)
    table["n_all_screening"] = kept.groupby("condition").size()
    return table.reset_index()
