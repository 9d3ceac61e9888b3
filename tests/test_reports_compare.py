"""Tests of paired bootstrap comparisons: agreement with scipy, power, false alarms, verdicts."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reports.compare import COMPARISON_COLUMNS, NO_CLEAR_DIFFERENCE, TOO_FEW_PAIRS, compare_systems
from reports.table import make_results_table
from wavebench_base.errors import InputError


def _paired_table(base: np.ndarray, other: np.ndarray, metric: str = "mcd") -> pd.DataFrame:
    rows = [{"system": s, "utterance": f"u{i:03d}", "metric": metric, "value": float(v)}
            for s, values in (("base", base), ("new", other)) for i, v in enumerate(values)]
    return make_results_table(rows, {"run": "r"})


def _planted(rng, n: int, shift: float):
    """Per-utterance difficulty shared by both systems, plus independent noise."""
    difficulty = rng.normal(5.0, 1.0, n)
    return difficulty + rng.normal(0, 0.5, n), difficulty + shift + rng.normal(0, 0.5, n)


def test_interval_agrees_with_scipy_paired_percentile_bootstrap():
    base, new = _planted(np.random.default_rng(0), 40, 0.2)
    out = compare_systems(_paired_table(base, new), "base", {"mcd": False}, seed=3)
    assert list(out.columns) == list(COMPARISON_COLUMNS)
    row = out.iloc[0]
    ref = stats.bootstrap((new, base), lambda x, y, axis: np.mean(x - y, axis=axis),
                          paired=True, vectorized=True, n_resamples=10_000, method="percentile",
                          random_state=np.random.default_rng(99))
    d = new - base
    sem = d.std(ddof=1) / np.sqrt(d.size)
    assert row["mean_diff"] == pytest.approx(d.mean(), rel=1e-12)  # rounding only
    # Monte-Carlo tolerance as in the summary test: two independent 10,000-resample estimates
    # of a 2.5 % quantile differ by ~0.038 sem; 0.2 sem is over 5 of those deviations.
    assert row["ci_low"] == pytest.approx(ref.confidence_interval.low, abs=0.2 * sem)
    assert row["ci_high"] == pytest.approx(ref.confidence_interval.high, abs=0.2 * sem)


def test_p_value_matches_the_bootstrap_tail_fraction_worked_by_hand():
    # With every difference equal the bootstrap means are all that value: a tail of 0
    # resamples below zero gives p = 2 (0 + 1) / (B + 1).
    out = compare_systems(_paired_table(np.zeros(5), np.full(5, 0.3)), "base", {"mcd": True},
                          n_resamples=999).iloc[0]
    assert out["p_value"] == pytest.approx(2 * 1 / 1000, rel=1e-12)
    assert out["ci_low"] == out["ci_high"] == pytest.approx(0.3, rel=1e-12)
    assert out["better"] == "new"
    identical = compare_systems(_paired_table(np.ones(5), np.ones(5)), "base", {"mcd": True},
                                n_resamples=999).iloc[0]
    assert identical["p_value"] == 1.0 and identical["better"] == NO_CLEAR_DIFFERENCE


def test_finds_a_planted_difference_in_at_least_90_percent_of_50_repeats():
    # Shift 0.35 with paired-difference SD 0.5 * sqrt(2) over 60 utterances: z = 3.8, so a
    # two-sided 5 % test has power ~0.97; with this seed 47 of 50 (0.94) are found. Missing
    # 0.9 would need 6 or more misses, probability ~0.5 % at power 0.97.
    rng = np.random.default_rng(2024)
    found = 0
    for _ in range(50):
        base, new = _planted(rng, 60, -0.35)  # new has lower (better) MCD
        row = compare_systems(_paired_table(base, new), "base", {"mcd": False},
                              n_resamples=2000, seed=int(rng.integers(1 << 31))).iloc[0]
        found += row["better"] == "new"
    assert found / 50 >= 0.9


def test_a_planted_null_is_flagged_at_about_the_nominal_rate():
    # Nominal false-alarm rate 5 %; with this seed 3 of 50 (0.06) are flagged, and over five
    # other seeds the rate was 0.02 to 0.10 (mean 0.056). Binomial(50, 0.05) exceeds 5 of 50 with
    # probability ~4 %, so the bound is 0.1.
    rng = np.random.default_rng(7)
    flagged = 0
    p_values = []
    for _ in range(50):
        base, new = _planted(rng, 30, 0.0)
        row = compare_systems(_paired_table(base, new), "base", {"mcd": False},
                              n_resamples=2000, seed=int(rng.integers(1 << 31))).iloc[0]
        flagged += row["better"] != NO_CLEAR_DIFFERENCE
        p_values.append(row["p_value"])
    assert flagged / 50 <= 0.1
    # Under the null the p-values spread over (0, 1]: their mean is near 0.5 (SE ~0.04).
    assert 0.35 < np.mean(p_values) < 0.65


@pytest.mark.parametrize("higher_is_better, expected", [(False, "new"), (True, "base")])
def test_better_follows_the_metric_direction(higher_is_better, expected):
    base, new = _planted(np.random.default_rng(5), 40, -1.0)  # new is clearly lower
    row = compare_systems(_paired_table(base, new), "base",
                          {"mcd": higher_is_better}).iloc[0]
    assert row["ci_high"] < 0 and row["p_value"] < 0.05
    assert row["better"] == expected and row["higher_is_better"] == higher_is_better


def test_only_utterances_both_systems_scored_ok_are_paired():
    rows = [{"system": "base", "utterance": u, "metric": "stoi", "value": v}
            for u, v in [("a", 0.5), ("b", 0.6), ("c", 0.7), ("d", 0.8)]]
    rows += [{"system": "new", "utterance": u, "metric": "stoi", "value": v, "status": s}
             for u, v, s in [("a", 0.9, "ok"), ("b", 0.9, "ok"), ("c", 0.1, "error"),
                             ("e", 0.9, "ok")]]
    out = compare_systems(make_results_table(rows, {"run": "r"}), "base", {"stoi": True}).iloc[0]
    assert out["n_pairs"] == 2  # a and b; c failed for new, d and e are unpaired
    assert out["mean_diff"] == pytest.approx(((0.9 - 0.5) + (0.9 - 0.6)) / 2, rel=1e-12)


def test_too_few_pairs_gives_no_interval():
    rows = [{"system": s, "utterance": "u", "metric": "stoi", "value": 0.5}
            for s in ("base", "new")]
    rows.append({"system": "new", "utterance": "v", "metric": "mcd", "value": 4.0})
    out = compare_systems(make_results_table(rows, {"run": "r"}), "base",
                          {"stoi": True, "mcd": False}).set_index("metric")
    assert (out["better"] == TOO_FEW_PAIRS).all()
    assert out.loc["stoi", "n_pairs"] == 1 and out.loc["mcd", "n_pairs"] == 0
    assert out[["ci_low", "ci_high", "p_value"]].isna().all().all()
    assert np.isnan(out.loc["mcd", "mean_diff"]) and out.loc["stoi", "mean_diff"] == 0.0


def test_every_other_system_and_metric_gets_a_row_and_results_are_seeded():
    rng = np.random.default_rng(8)
    rows = [{"system": s, "utterance": f"u{i}", "metric": m, "value": float(rng.normal())}
            for s in ("base", "x", "y") for m in ("mcd", "stoi") for i in range(10)]
    table = make_results_table(rows, {"run": "r"})
    directions = {"mcd": False, "stoi": True}
    out = compare_systems(table, "base", directions, n_resamples=500, seed=4)
    assert list(zip(out["system"], out["metric"])) == [
        ("x", "mcd"), ("x", "stoi"), ("y", "mcd"), ("y", "stoi")]
    assert (out["baseline"] == "base").all()
    reversed_rows = compare_systems(table.iloc[::-1], "base", directions, n_resamples=500,
                                    seed=4)
    # Rows follow first appearance; the numbers depend on names and seed, not on row order.
    pd.testing.assert_frame_equal(
        out, reversed_rows.sort_values(["system", "metric"], ignore_index=True))


def test_bad_baseline_and_missing_direction_are_refused():
    table = _paired_table(np.ones(3), np.ones(3))
    with pytest.raises(InputError, match=r"^runs\.csv: baseline system 'bse' is not in the "
                                         r"table; systems: base, new"):
        compare_systems(table, "bse", {"mcd": False}, source="runs.csv")
    with pytest.raises(InputError, match=r"no direction for metric\(s\) mcd; pass "
                                         r"higher_is_better for each"):
        compare_systems(table, "base", {"stoi": True})
    with pytest.raises(InputError, match=r"confidence must be between 0 and 1"):
        compare_systems(table, "base", {"mcd": False}, confidence=0.0)
