"""Unit tests of the MOS analysis tables and screening rules against scipy and hand computation."""
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from wavebench.mos.analysis import screening, stats, tables
from wavebench_base.errors import InputError


def latin_ratings(seed=0, n_raters=30, n_items=12, conditions=("a", "b", "c"), shift=None):
    """Every rater rates every item once; the condition rotates with the rater (Latin square)."""
    rng = np.random.default_rng(seed)
    true = {"a": 4.0, "b": 3.4, "c": 2.5}
    bias, item_fx = rng.normal(0, 0.5, n_raters), rng.normal(0, 0.4, n_items)
    rows = []
    for r in range(n_raters):
        for i in range(n_items):
            cond = conditions[(i + r) % len(conditions)]
            score = np.clip(np.round(true[cond] + bias[r] + item_fx[i] + rng.normal(0, 0.6)), 1, 5)
            rows.append({"rater_id": f"r{r:02d}", "session_id": f"s{r:02d}", "item": f"i{i:02d}",
                         "condition": cond, "role": "system", "score": float(score),
                         "stimulus_id": f"{cond}-{i:02d}"})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- pairwise

def test_item_adjusted_wilcoxon_matches_scipy_on_hand_computed_differences():
    df = latin_ratings()
    table = tables.pairwise(df, n_resamples=200)
    row = table[(table["sys_a"] == "a") & (table["sys_b"] == "b")].iloc[0]
    # Reference: the same quantities by explicit loops, then scipy's Wilcoxon.
    item_mean = {i: df.loc[df["item"] == i, "score"].mean() for i in df["item"].unique()}
    diffs = []
    for r in sorted(df["rater_id"].unique()):
        mine = df[df["rater_id"] == r]
        adj = {c: np.mean([s - item_mean[i] for s, i, cc in
                           zip(mine["score"], mine["item"], mine["condition"]) if cc == c])
               for c in ("a", "b")}
        diffs.append(adj["a"] - adj["b"])
    # Rounded as the implementation does, so that float noise cannot break ties differently.
    ref = st.wilcoxon(np.round(diffs, stats.ROUND_DECIMALS))
    assert row["test"] == "wilcoxon_signed_rank_item_adjusted"
    assert row["n_raters_used"] == 30
    assert row["statistic"] == ref.statistic
    # Same test; the p-value method (exact vs normal) follows scipy's own choice.
    assert row["p_raw"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert row["mean_diff"] == pytest.approx(np.mean(diffs), rel=1e-12)
    assert row["diff_ci_lo"] < row["mean_diff"] < row["diff_ci_hi"]


def test_holm_column_against_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    table = tables.pairwise(latin_ratings(seed=4), n_resamples=50)
    expected = multitest.multipletests(table["p_raw"], method="holm")[1]
    np.testing.assert_allclose(table["p_holm"], expected, rtol=1e-12)


def test_between_subjects_falls_back_to_mann_whitney():
    df = latin_ratings(n_raters=8, conditions=("a",))
    other = latin_ratings(seed=2, n_raters=8, conditions=("b",))
    other["rater_id"] = other["rater_id"] + "x"
    both = pd.concat([df, other], ignore_index=True)
    row = tables.pairwise(both, n_resamples=100).iloc[0]
    ref = st.mannwhitneyu(df.groupby("rater_id")["score"].mean(),
                          other.groupby("rater_id")["score"].mean(), alternative="two-sided")
    assert row["test"].startswith("mann_whitney") and row["n_raters_used"] == 0
    assert row["p_raw"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert row["diff_ci_method"] == "two_way_bootstrap"


def test_pairwise_rejects_unknown_correction():
    with pytest.raises(InputError, match="unknown correction 'fdr'"):
        tables.pairwise(latin_ratings(), correction="fdr")


# ---------------------------------------------------------------- system scores

def test_system_scores_intervals_against_references():
    ref = pytest.importorskip("mean_opinion_score")
    df = latin_ratings(seed=1)
    scores = tables.system_scores(df, n_resamples=300).set_index("condition")
    for cond, part in df.groupby("condition"):
        x = part["score"].to_numpy()
        lo, hi = st.t.interval(0.95, x.size - 1, loc=x.mean(), scale=st.sem(x))
        # Closed forms: float64 rounding only.
        assert scores.loc[cond, "ci_lo_t"] == pytest.approx(lo, rel=1e-12)
        matrix = part.pivot(index="rater_id", columns="item", values="score").to_numpy(float)
        half = ref.get_ci95(matrix)  # no empty rows or columns here, so no quirk involved
        # The reference solves its variance components in float32.
        assert scores.loc[cond, "ci_hi_crowdmos"] - x.mean() == pytest.approx(half, rel=1e-5)
        shares = [scores.loc[cond, f"p{k}"] for k in range(1, 6)]
        assert sum(shares) == pytest.approx(1.0, abs=1e-12)
    assert list(scores.index) == ["a", "b", "c"]
    assert set(scores["ci_primary"]) == {"boot2way"}


def test_system_scores_rejects_primary_not_computed():
    with pytest.raises(InputError, match="include the primary"):
        tables.system_scores(latin_ratings(), methods=("t",), primary="boot2way")


def test_two_way_replicates_keep_pairing_between_conditions():
    # Two conditions with identical ratings: every replicate's difference is exactly zero.
    df = latin_ratings(seed=3)
    sums, counts = tables._matrices(df, ["a", "a"])
    reps = stats.two_way_replicates(sums, counts, n_resamples=100, seed=1)
    assert np.all(reps[:, 0] == reps[:, 1])


def test_per_item_residuals_sum_to_zero_over_conditions():
    items = tables.per_item(latin_ratings(seed=5, n_raters=30))
    # Complete item x condition table: the two-way interaction residuals cancel per item.
    sums = items.groupby("item")["residual"].sum()
    np.testing.assert_allclose(sums, 0.0, atol=1e-12)


# ---------------------------------------------------------------- screening rules

def test_load_rules_defaults_and_hash_changes_with_a_threshold(tmp_path):
    rules, digest = screening.load_rules()
    assert rules["min_variance"] == {"threshold": 0.1, "exclude": True}
    path = tmp_path / "screening.json"
    path.write_text(json.dumps({"rules": {"min_variance": {"threshold": 0.2}}}))
    changed, digest2 = screening.load_rules(path)
    assert changed["min_variance"]["threshold"] == 0.2 and digest2 != digest


def test_load_rules_yaml(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "screening.yaml"
    path.write_text("rules:\n  loo_correlation: {exclude: true}\n")
    rules, _ = screening.load_rules(path)
    assert rules["loo_correlation"] == {"threshold": 0.7, "exclude": True}


@pytest.mark.parametrize("text, message", [
    ('{"rules": {"nap_time": {}}}', "unknown screening rule 'nap_time'"),
    ('{"rules": {"min_variance": {"cutoff": 1}}}', "settings must be a mapping with keys"),
    ('{"rules": {"min_variance": {"exclude": "yes"}}}', "exclude = 'yes' has the wrong type"),
    ('[1, 2]', "screening file must hold a mapping"),
    ('{"rules": ', "not valid json"),
])
def test_load_rules_bad_files(tmp_path, text, message):
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        screening.load_rules(path)


def test_loo_correlation_by_hand():
    df = latin_ratings(seed=6)
    got = screening.loo_correlations(df).loc["r03", "r_pearson_loo"]
    mine = df[df["rater_id"] == "r03"].set_index("stimulus_id")["score"]
    others = df[df["rater_id"] != "r03"].groupby("stimulus_id")["score"].mean()
    shared = mine.index.intersection(others.index)
    # Same correlation, computed on the explicit leave-one-out consensus.
    assert got == pytest.approx(st.pearsonr(mine[shared], others[shared])[0], rel=1e-12)


def test_kurtosis_rule_flags_a_rater_with_balanced_extreme_votes():
    rng = np.random.default_rng(0)
    rows = []
    for stim in range(20):
        for r in range(15):
            score = 3.0 + rng.choice([-1, -0.5, 0, 0.5, 1])
            if r == 0:  # alternately far above and far below the consensus, outside 2 sd
                score = 3.0 + (2.5 if stim % 2 else -2.5)
            rows.append({"rater_id": f"r{r:02d}", "stimulus_id": f"s{stim}", "score": score})
    flags = screening.kurtosis_flags(pd.DataFrame(rows))
    assert flags["r00"] and not flags.drop("r00").any()


def test_vote_z_flags_votes_beyond_the_threshold_worked_by_hand():
    # "a": nine 4s and one 1: mean 3.7, sd (n - 1) = sqrt(8.1 / 9) = 0.9487, so the 1 is
    # 2.846 sd away and each 4 is 0.316 sd away. "b": only two votes (under 3: never
    # flagged). "c": all equal (sd 0: never flagged).
    scores = {"a": [4] * 9 + [1], "b": [5, 1], "c": [3, 3, 3]}
    df = pd.DataFrame([{"stimulus_id": s, "rater_id": f"r{i}", "score": float(v)}
                       for s, votes in scores.items() for i, v in enumerate(votes)])
    expected = [False] * 9 + [True] + [False] * 5
    assert screening._vote_z(df, 2.0).tolist() == expected
    assert not screening._vote_z(df, 2.9).any()  # 2.846 < 2.9


def test_screening_file_problems(tmp_path):
    with pytest.raises(InputError, match="no such screening file"):
        screening.load_rules(tmp_path / "nope.yaml")
    path = tmp_path / "s.json"
    path.write_text('{"rules": [1]}')
    with pytest.raises(InputError, match="'rules' must be a mapping"):
        screening.load_rules(path)


def test_two_way_replicates_reject_mismatched_shapes():
    with pytest.raises(InputError, match="equal 2-D shapes"):
        stats.two_way_replicates([np.ones((2, 3))], [np.ones((3, 2))])


def test_system_scores_rejects_unknown_generalization():
    with pytest.raises(InputError, match="--generalize must be raters\\+items or raters"):
        tables.system_scores(latin_ratings(), generalize="items")


def test_pairwise_needs_two_conditions():
    with pytest.raises(InputError, match="at least 2 conditions"):
        tables.pairwise(latin_ratings(), conditions=["a"])


def test_system_scores_refuses_no_ratings():
    with pytest.raises(InputError, match="no ratings left to analyze"):
        tables.system_scores(latin_ratings().iloc[:0])
