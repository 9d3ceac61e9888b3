"""Tests of wavebench.mos.analysis.stats against scipy.stats, a reference CrowdMOS and by hand."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from wavebench.mos.analysis import stats
from wavebench_base.errors import InputError

NAN = np.nan
# The CrowdMOS vector (source: tests/data/README.md; rows = raters, columns = sentences).
CROWDMOS_VECTOR = np.array([[4, 5, NAN, 4, NAN, 3],
                            [4, 4, 4, 5, NAN, 4],
                            [NAN, 3, 5, 4, NAN, 1],
                            [NAN] * 6])


# ---------------------------------------------------------------- t interval

def test_t_interval_matches_scipy():
    x = np.random.default_rng(1).normal(3.2, 0.9, 57)
    got = stats.t_interval(x, confidence=0.9)
    lo, hi = st.t.interval(0.9, x.size - 1, loc=x.mean(), scale=st.sem(x))
    # Same closed form evaluated in a different order: float64 rounding only.
    assert (got.lo, got.hi) == pytest.approx((lo, hi), rel=1e-12)
    assert got.estimate == pytest.approx(x.mean(), rel=1e-15)


def test_t_interval_single_rating_has_no_bounds():
    got = stats.t_interval([4.0, NAN])
    assert got.estimate == 4.0 and np.isnan(got.lo) and np.isnan(got.hi)


def test_confidence_outside_unit_interval_is_rejected():
    # The check is reports.bootstrap's, shared by every interval of the MOS statistics.
    with pytest.raises(InputError, match="confidence must be between 0 and 1"):
        stats.t_interval([1, 2, 3], confidence=1.5)
    with pytest.raises(InputError, match="confidence must be between 0 and 1"):
        stats.bootstrap_interval(3.0, [1.0, 2.0, 3.0], confidence=0.0)


# ---------------------------------------------------------------- CrowdMOS

def test_crowdmos_reproduces_published_vector():
    got = stats.crowdmos_interval(CROWDMOS_VECTOR, reference_quirk=True)
    # README values are printed to 3 and 4 decimals.
    assert got.estimate == pytest.approx(3.846, abs=5e-4)
    assert got.half_width == pytest.approx(1.3316, abs=5e-5)


def test_crowdmos_matches_reference_package_on_random_matrices():
    ref = pytest.importorskip("mean_opinion_score")
    rng = np.random.default_rng(7)
    for _ in range(20):
        z = np.clip(np.round(3 + rng.normal(0, 1, (9, 12))
                             + rng.normal(0, 0.5, (9, 1)) + rng.normal(0, 0.4, (1, 12))), 1, 5)
        z[rng.random(z.shape) < 0.5] = NAN
        got = stats.crowdmos_interval(z, reference_quirk=True)
        # The reference solves the variance components in float32: ~1e-7 relative error.
        assert got.half_width == pytest.approx(ref.get_ci95(z), rel=1e-5)
        assert got.estimate == pytest.approx(ref.get_mos(z), rel=1e-12)


def test_crowdmos_without_quirk_drops_empty_rows_and_columns():
    ref = pytest.importorskip("mean_opinion_score")
    trimmed = CROWDMOS_VECTOR[:3][:, [0, 1, 2, 3, 5]]
    got = stats.crowdmos_interval(CROWDMOS_VECTOR)
    # Float32 component solve in the reference.
    assert got.half_width == pytest.approx(ref.get_ci95(trimmed), rel=1e-5)
    assert got.half_width > 1.3316  # df 2 instead of 3 widens it


def test_crowdmos_balanced_closed_form():
    # Hand computation for a full 2 x 2 matrix [[1, 2], [3, 5]] (population variances):
    # v_wu = mean(var(1,3), var(2,5)) = (1 + 2.25)/2, v_su = mean(var(1,2), var(3,5)) = (0.25+1)/2,
    # v_swu = var(1,2,3,5) = 2.1875; Var(mu) = (v_s*8 + v_w*8)/16 + v_u/4.
    v_wu, v_su, v_swu = 1.625, 0.625, 2.1875
    v_s, v_w = v_swu - v_wu, v_swu - v_su
    v_u = v_su + v_wu - v_swu
    expected = (v_s * 8 + v_w * 8) / 16 + v_u / 4
    # Exact arithmetic on small binary fractions.
    assert stats.crowdmos_variance([[1, 2], [3, 5]]) == pytest.approx(expected, rel=1e-12)


def test_crowdmos_rejects_a_vector():
    with pytest.raises(InputError, match="rater x item matrix"):
        stats.crowdmos_interval([1, 2, 3])


# ---------------------------------------------------------------- bootstrap

def test_two_way_bootstrap_is_deterministic_and_brackets_the_mean():
    rng = np.random.default_rng(3)
    r, i = rng.integers(0, 20, 400), rng.integers(0, 15, 400)
    s = np.clip(np.round(3 + rng.normal(0, 1, 400)), 1, 5)
    sums, counts = stats.sums_and_counts(r, i, s, 20, 15)
    a = stats.bootstrap_two_way(sums, counts, n_resamples=500, seed=4)
    b = stats.bootstrap_two_way(sums, counts, n_resamples=500, seed=4)
    assert a == b
    assert a.estimate == pytest.approx(s.mean(), rel=1e-12)  # weights of 1 reproduce the mean
    assert 1 <= a.lo < a.estimate < a.hi <= 5


def test_two_way_bootstrap_with_one_item_equals_rater_bootstrap():
    # With a single item, item resampling is a no-op, so the replicate means equal the
    # rater-level bootstrap of per-rater means when every rater gives one rating.
    x = np.random.default_rng(5).normal(3, 1, 30)
    sums, counts = stats.sums_and_counts(np.arange(30), np.zeros(30, int), x, 30, 1)
    two_way = stats.bootstrap_two_way(sums, counts, n_resamples=4000, seed=0)
    # Reference: the percentile bootstrap recomputed with scipy (a different generator).
    ref = st.bootstrap((x,), np.mean, n_resamples=4000, method="percentile",
                       random_state=np.random.default_rng(1)).confidence_interval
    # Monte Carlo error of a 2.5 % quantile with 4000 replicates is about 0.02 here.
    assert (two_way.lo, two_way.hi) == pytest.approx((ref.low, ref.high), abs=0.05)


def test_bootstrap_rejects_zero_replicates():
    with pytest.raises(InputError, match="n_resamples must be a positive integer"):
        stats.bootstrap_two_way(np.ones((2, 2)), np.ones((2, 2)), n_resamples=0)


def test_bootstrap_mean_matches_scipy_percentile_bootstrap():
    x = np.random.default_rng(9).normal(0.3, 1, 40)
    got = stats.bootstrap_mean(x, n_resamples=4000, seed=2)
    ref = st.bootstrap((x,), np.mean, n_resamples=4000, method="percentile",
                       random_state=np.random.default_rng(3)).confidence_interval
    # Monte Carlo error of the quantiles (about 0.01 here).
    assert (got.lo, got.hi) == pytest.approx((ref.low, ref.high), abs=0.04)


def test_bootstrap_mean_resamples_as_one_draw_of_rater_indices():
    # The rater bootstrap is reports.bootstrap's, which draws its indices in chunks (here 2.4
    # million indices, over its 2**21 chunk). Recomputed in one draw from the same generator,
    # with numpy's percentile, the bounds agree: same draws, same order statistics.
    x = np.random.default_rng(4).normal(0.2, 1, 40)
    got = stats.bootstrap_mean(x, n_resamples=60_000, confidence=0.9, seed=7)
    idx = np.random.default_rng(7).integers(0, x.size, size=(60_000, x.size))
    lo, hi = np.percentile(x[idx].mean(axis=1), [5, 95])
    # Only the interpolation weight can differ, in its last bits (0.05 vs (1 - 0.9) / 2).
    assert (got.lo, got.hi) == pytest.approx((lo, hi), rel=1e-12)
    assert got.estimate == x.mean()


# ---------------------------------------------------------------- signed-rank test

@pytest.mark.parametrize("n", [5, 12, 30])
def test_signed_rank_exact_matches_scipy(n):
    d = np.random.default_rng(n).normal(0.3, 1, n)
    got = stats.signed_rank_test(d)
    ref = st.wilcoxon(d, method="exact")
    assert got.method == "exact"
    assert got.statistic == ref.statistic
    # Both sum the same exact null distribution.
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-10)


def test_signed_rank_normal_with_ties_and_zeros_matches_scipy():
    d = np.round(np.random.default_rng(2).normal(0.2, 1, 80), 1)
    d[:5] = 0.0
    got = stats.signed_rank_test(d)
    ref = st.wilcoxon(d, method="approx", zero_method="wilcox", correction=False)
    assert got.method == "normal" and got.n == np.count_nonzero(d)
    assert got.statistic == ref.statistic
    # Same tie-corrected normal approximation.
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-10)


def test_signed_rank_effect_size_by_hand():
    # |d| ranks: 1 -> 1, -2 -> 2, 3 -> 3, 4 -> 4: R+ = 8, R- = 2, r = (8 - 2) / 10.
    got = stats.signed_rank_test([1, -2, 3, 4])
    assert got.effect_size == pytest.approx(0.6, abs=1e-15)
    assert got.statistic == 2.0


def test_signed_rank_all_zero_is_nan():
    got = stats.signed_rank_test([0, 0, 0])
    assert got.n == 0 and np.isnan(got.p_value)


def test_signed_rank_unknown_method():
    with pytest.raises(InputError, match="unknown signed-rank method"):
        stats.signed_rank_test([1, 2], method="magic")


# ---------------------------------------------------------------- corrections

def test_holm_worked_example():
    # By hand: sorted 0.01, 0.02, 0.03, 0.04 times 4, 3, 2, 1 -> 0.04, 0.06, 0.06, 0.04,
    # running max -> 0.04, 0.06, 0.06, 0.06; NaN stays outside the family.
    got = stats.holm([0.03, 0.01, NAN, 0.04, 0.02])
    np.testing.assert_allclose(got, [0.06, 0.04, NAN, 0.06, 0.06], rtol=1e-12)


def test_holm_against_statsmodels_when_installed():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.random.default_rng(0).uniform(0, 0.2, 10)
    np.testing.assert_allclose(stats.holm(p), multitest.multipletests(p, method="holm")[1],
                               rtol=1e-12)


def test_bonferroni_caps_at_one():
    np.testing.assert_allclose(stats.bonferroni([0.01, 0.5, NAN]), [0.02, 1.0, NAN])


def test_prob_superiority_by_hand():
    # Pairs (a, b): 3>1, 3=3, 2>1, 2<3 -> (2 + 0.5) / 4.
    assert stats.prob_superiority([3, 2], [1, 3]) == pytest.approx(0.625, abs=1e-15)


def test_lmm_on_a_complete_balanced_design_matches_the_closed_form():
    """Every rater rates every item under every condition: the mixed model's mean of each
    condition is its plain mean, and its variance is v_rater / R + v_item / I + v_resid / (R I)
    with the model's own fitted components (crossed intercepts shared by the conditions)."""
    pytest.importorskip("statsmodels")
    import statsmodels.formula.api as smf

    from wavebench.mos.analysis.stats import lmm_intervals

    rng = np.random.default_rng(21)
    raters, items, truth = 12, 10, {"a": 3.0, "b": 3.6}
    rater_effect = rng.normal(0, 0.5, raters)
    item_effect = rng.normal(0, 0.3, items)
    rows = [{"rater_id": f"r{r}", "item": f"i{i}", "condition": c,
             "score": mu + rater_effect[r] + item_effect[i] + rng.normal(0, 0.7)}
            for c, mu in truth.items() for r in range(raters) for i in range(items)]
    df = pd.DataFrame(rows)
    got = lmm_intervals(df, confidence=0.95)
    for c in truth:
        assert got[c].estimate == pytest.approx(df.loc[df.condition == c, "score"].mean(), abs=1e-6)
    # the fitted components, from a second fit of the same model
    df["everyone"] = 1
    fit = smf.mixedlm("score ~ 0 + C(condition)", df, groups="everyone", re_formula="0",
                      vc_formula={"rater": "0 + C(rater_id)", "item": "0 + C(item)"}) \
        .fit(reml=True)
    v = dict(zip(fit.model.exog_vc.names, fit.vcomp))
    var = v["rater"] / raters + v["item"] / items + fit.scale / (raters * items)
    half = got["a"].hi - got["a"].estimate
    assert half == pytest.approx(1.959964 * np.sqrt(var), rel=1e-3)


def test_lmm_gives_no_interval_where_the_data_cannot_support_one():
    pytest.importorskip("statsmodels")
    from wavebench.mos.analysis.stats import lmm_intervals
    tiny = pd.DataFrame({"rater_id": ["r1", "r2", "r1"], "item": ["i1", "i1", "i2"],
                         "condition": [1, 1, 2], "score": [3.0, 4.0, 2.0]})
    got = lmm_intervals(tiny)
    assert set(got) == {"1", "2"}  # conditions keyed as strings, whatever their type
    assert np.isnan(got["2"].lo) and np.isnan(got["2"].hi)  # one rating: no interval
