"""Tests of per (system, metric) summaries and their bootstrap intervals, against scipy."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import reports.bootstrap as bootstrap
from reports.summary import SUMMARY_COLUMNS, summarize
from reports.table import make_results_table
from wavebench_base.errors import InputError


def _table(values_by_system: dict, metric: str = "mcd", run: str = "r") -> pd.DataFrame:
    rows = [{"system": s, "utterance": f"utt{u:03d}", "metric": metric, "value": float(v)}
            for s, values in values_by_system.items() for u, v in enumerate(values)]
    return make_results_table(rows, {"run": run})


def test_statistics_match_numpy_and_failures_are_counted_not_used():
    rng = np.random.default_rng(1)
    good = rng.normal(4.0, 1.0, 25)
    rows = [{"system": "a", "utterance": f"u{i}", "metric": "mcd", "value": float(v)}
            for i, v in enumerate(good)]
    rows += [{"system": "a", "utterance": "nan", "metric": "mcd", "value": float("nan"),
              "status": "ok"},  # an ok status with a NaN value still failed
             {"system": "a", "utterance": "short", "metric": "mcd", "value": 99.0,
              "status": "too_short"}]  # a failed status excludes even a finite value
    out = summarize(make_results_table(rows, {"run": "r"}), n_resamples=200)

    assert list(out.columns) == list(SUMMARY_COLUMNS)
    row = out.iloc[0]
    assert (row["n"], row["n_failed"]) == (25, 2)
    # Same numbers by a second route; 1e-12 allows only summation-order rounding.
    assert row["mean"] == pytest.approx(np.mean(good), rel=1e-12)
    assert row["median"] == pytest.approx(np.median(good), rel=1e-12)
    assert row["std"] == pytest.approx(stats.tstd(good), rel=1e-12)
    assert row["ci_low"] < row["mean"] < row["ci_high"]


@pytest.mark.parametrize("n", [8, 40, 200])
def test_interval_agrees_with_scipy_percentile_bootstrap(n):
    rng = np.random.default_rng(n)
    values = rng.gamma(2.0, 1.5, n)  # skewed, so the percentile interval is asymmetric
    ours = summarize(_table({"a": values}), n_resamples=10_000, seed=7).iloc[0]
    ref = stats.bootstrap((values,), np.mean, n_resamples=10_000, method="percentile",
                          confidence_level=0.95, random_state=np.random.default_rng(123))
    sem = values.std(ddof=1) / np.sqrt(n)
    # Monte-Carlo tolerance: a 2.5 % quantile from 10,000 resamples has a standard deviation
    # of about sqrt(.025 * .975 / 1e4) / phi(1.96) = 0.027 bootstrap SDs (~ sem), so two
    # independent estimates differ by ~0.038 sem; 0.2 sem is over 5 of those deviations.
    assert ours["ci_low"] == pytest.approx(ref.confidence_interval.low, abs=0.2 * sem)
    assert ours["ci_high"] == pytest.approx(ref.confidence_interval.high, abs=0.2 * sem)


def test_confidence_level_is_honoured():
    values = np.random.default_rng(5).normal(0.0, 1.0, 60)
    wide = summarize(_table({"a": values}), confidence=0.99).iloc[0]
    narrow = summarize(_table({"a": values}), confidence=0.5).iloc[0]
    ref = stats.bootstrap((values,), np.mean, n_resamples=10_000, method="percentile",
                          confidence_level=0.5, random_state=np.random.default_rng(0))
    sem = values.std(ddof=1) / np.sqrt(values.size)
    assert wide["ci_low"] < narrow["ci_low"] < narrow["ci_high"] < wide["ci_high"]
    # Quartiles of the bootstrap are better determined than the 2.5 % tails: same 0.2 sem bound.
    assert narrow["ci_low"] == pytest.approx(ref.confidence_interval.low, abs=0.2 * sem)


def test_seeded_reproducible_and_independent_of_row_order_and_other_systems():
    rng = np.random.default_rng(2)
    table = _table({"a": rng.normal(size=30), "b": rng.normal(size=30)})
    first = summarize(table, n_resamples=2000, seed=11)
    shuffled = table.sample(frac=1.0, random_state=0)
    again = summarize(shuffled, n_resamples=2000, seed=11)
    pd.testing.assert_frame_equal(first.set_index(["system", "metric"]).sort_index(),
                                  again.set_index(["system", "metric"]).sort_index())
    alone = summarize(table[table["system"] == "b"], n_resamples=2000, seed=11)
    pd.testing.assert_series_equal(alone.iloc[0], first.iloc[1], check_names=False)
    other_seed = summarize(table, n_resamples=2000, seed=12)
    assert not np.allclose(other_seed["ci_low"], first["ci_low"])


def test_chunked_resampling_equals_one_draw(monkeypatch):
    values = np.random.default_rng(4).normal(size=37)
    whole = bootstrap.bootstrap_means(values, 500, np.random.default_rng(9))
    monkeypatch.setattr(bootstrap, "_CHUNK_ELEMENTS", 37 * 3)  # chunks of 3 resamples
    chunked = bootstrap.bootstrap_means(values, 500, np.random.default_rng(9))
    np.testing.assert_array_equal(chunked, whole)
    # And each mean is a mean of resampled values: within the data's range.
    assert values.min() <= whole.min() and whole.max() <= values.max()


def test_groups_with_no_or_one_usable_value():
    rows = [{"system": "a", "utterance": "u1", "metric": "stoi", "value": float("nan")},
            {"system": "b", "utterance": "u1", "metric": "stoi", "value": 0.7}]
    out = summarize(make_results_table(rows, {"run": "r"})).set_index("system")
    assert out.loc["a", "n"] == 0 and out.loc["a", "n_failed"] == 1
    assert out.loc["a", ["mean", "median", "std", "ci_low", "ci_high"]].isna().all()
    assert out.loc["b", "n"] == 1 and np.isnan(out.loc["b", "std"])
    assert out.loc["b", "ci_low"] == out.loc["b", "ci_high"] == 0.7


def test_groups_keep_first_appearance_order_and_integer_counts():
    rows = [{"system": s, "utterance": "u", "metric": m, "value": 1.0}
            for s in ("zeta", "alpha") for m in ("stoi", "mcd")]
    out = summarize(make_results_table(rows, {"run": "r"}), n_resamples=10)
    assert list(zip(out["system"], out["metric"])) == [
        ("zeta", "stoi"), ("zeta", "mcd"), ("alpha", "stoi"), ("alpha", "mcd")]
    assert out["n"].dtype == np.int64 and out["n_failed"].dtype == np.int64
    empty = summarize(make_results_table([], {"run": "r"}))
    assert len(empty) == 0 and list(empty.columns) == list(SUMMARY_COLUMNS)
    assert (empty.dtypes.iloc[4:] == np.float64).all()  # typed even with no rows


@pytest.mark.parametrize("kwargs, match", [
    ({"n_resamples": 0}, r"n_resamples must be a positive integer, got 0"),
    ({"n_resamples": 10.5}, r"n_resamples must be a positive integer, got 10.5"),
    ({"confidence": 95}, r"confidence must be between 0 and 1 \(e.g. 0.95\), got 95"),
    ({"seed": -1}, r"seed must be a non-negative integer, got -1"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        summarize(_table({"a": [1.0, 2.0]}), **kwargs)


def test_a_system_repeated_across_runs_is_refused():
    merged = pd.concat([_table({"a": [1.0, 2.0]}, run="r1"), _table({"a": [1.0, 2.0]}, run="r2")],
                       ignore_index=True)
    with pytest.raises(InputError, match=r"^merged\.csv: .*first: system='a', utterance='utt000'"):
        summarize(merged, source="merged.csv")
