"""Statistics for MOS tests: t, CrowdMOS and two-way bootstrap intervals, signed-rank tests, Holm.

Pure functions on numpy arrays (no files, no DataFrames). Ratings come either as a flat
vector or as a rater x item matrix with NaN for "not rated"; the two-way bootstrap takes
the matrix as sums and counts so that a rater may rate an item more than once.

Intervals take ``confidence`` (e.g. 0.95) and bootstraps ``n_resamples``, as
:mod:`reports.bootstrap` does, whose checks, resampling of means and percentile interval
are used here; the command line's ``--alpha`` and ``--bootstrap`` are converted where
:mod:`wavebench.mos.analysis.report` calls in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from reports.bootstrap import (
    bootstrap_means,
    check_bootstrap_args,
    check_confidence,
    check_n_resamples,
    check_seed,
    percentile_interval,
)
from wavebench_base.errors import InputError

#: Largest number of non-zero differences for which the exact signed-rank distribution is used.
EXACT_MAX_N = 50
#: Differences are rounded to this many decimals before ranking (see signed_rank_test).
ROUND_DECIMALS = 9


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval.

    Attributes
    ----------
    estimate, lo, hi : float
        The estimate and the interval's bounds (NaN when it cannot be computed).
    """

    estimate: float
    lo: float
    hi: float

    @property
    def half_width(self) -> float:
        """Half the interval's width."""
        return (self.hi - self.lo) / 2.0


@dataclass(frozen=True)
class SignedRankResult:
    """The outcome of a Wilcoxon signed-rank test.

    Attributes
    ----------
    statistic : float
        min(R+, R-), as :func:`scipy.stats.wilcoxon` reports for a two-sided test.
    p_value : float
        Two-sided p-value.
    n : int
        Number of non-zero differences used.
    effect_size : float
        Matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-), in [-1, 1].
    method : str
        ``"exact"`` or ``"normal"``.
    """

    statistic: float
    p_value: float
    n: int
    effect_size: float
    method: str


def _upper_level(confidence: float) -> float:
    """The upper tail's probability level of a two-sided interval, e.g. 0.975 for 0.95."""
    check_confidence(confidence)
    return (1.0 + confidence) / 2.0


def t_interval(scores, confidence: float = 0.95) -> Interval:
    """The naive t interval of a mean, treating every rating as independent.

    Parameters
    ----------
    scores : array_like [shape=(n,)]
        Ratings; NaN entries are ignored.
    confidence : float
        Coverage, e.g. 0.95.

    Returns
    -------
    Interval
        mean +- t_{(1+confidence)/2, n-1} * sd / sqrt(n); NaN bounds when fewer than 2
        ratings.

    Raises
    ------
    InputError
        ``confidence`` outside (0, 1).
    """
    level = _upper_level(confidence)
    x = np.asarray(scores, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Interval(np.nan, np.nan, np.nan)
    mean = float(x.mean())
    if x.size < 2:
        return Interval(mean, np.nan, np.nan)
    half = _st.t.ppf(level, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return Interval(mean, mean - half, mean + half)


def _mean_of_variances(matrix: np.ndarray, ddof: int = 0) -> float:
    """Mean over columns of each column's variance (columns with >= 2 values; ``ddof`` 0:
    population variance)."""
    counts = np.sum(np.isfinite(matrix), axis=0)
    usable = matrix[:, counts > 1]
    if usable.shape[1] == 0:
        return np.nan
    return float(np.mean(np.nanvar(usable, axis=0, ddof=ddof)))


def crowdmos_variance(matrix) -> float:
    """Variance of the MOS under the CrowdMOS model (Ribeiro et al., ICASSP 2011).

    The model is Z_ij = mu + x_i + y_j + e_ij with rater, item and residual variances
    v_w, v_s, v_u. The variance of one item's ratings across raters estimates v_w + v_u,
    one rater's across items v_s + v_u, and all ratings v_s + v_w + v_u (population
    variances, as in the reference implementation); solving gives the components, clipped
    at 0, and Var(mu) = v_s sum(M_j^2)/T^2 + v_w sum(N_i^2)/T^2 + v_u/T.

    Parameters
    ----------
    matrix : array_like [shape=(raters, items)]
        Ratings, NaN where not rated.

    Returns
    -------
    float
        Var(mu); NaN when no variance can be estimated (a single rating).
    """
    z = np.asarray(matrix, dtype=float)
    rated = np.isfinite(z)
    total = int(rated.sum())
    if total < 2:
        return np.nan
    per_item, per_rater = rated.sum(axis=0), rated.sum(axis=1)
    v_s, v_w, v_u = crowdmos_components(z)
    return float(v_s * np.sum(per_item ** 2) / total ** 2
                 + v_w * np.sum(per_rater ** 2) / total ** 2 + v_u / total)


def crowdmos_components(matrix, ddof: int = 0) -> tuple[float, float, float]:
    """The CrowdMOS moment estimates ``(v_s, v_w, v_u)``: item, rater and residual variance.

    See :func:`crowdmos_variance` for the model; each is clipped at 0 and a component that the
    matrix cannot identify (every rater rated one item, say) is 0. NaNs where a rating is
    missing; at least two ratings. ``ddof=0`` uses population variances, as the reference
    implementation does; ``ddof=1`` removes their bias where raters rate few items each.
    """
    z = np.asarray(matrix, dtype=float)
    v_wu = _mean_of_variances(z, ddof)      # across raters within an item
    v_su = _mean_of_variances(z.T, ddof)    # across items within a rater
    v_swu = float(np.nanvar(z, ddof=ddof))
    # Whichever pair of marginal variances exists decides which components are identifiable.
    if np.isfinite(v_su) and np.isfinite(v_wu):
        v_s, v_w, v_u = np.maximum(np.linalg.solve(
            [[1, 0, 1], [0, 1, 1], [1, 1, 1]], [v_su, v_wu, v_swu]), 0.0)
    elif np.isfinite(v_wu):
        v_s, (v_w, v_u) = 0.0, np.maximum([v_swu - v_wu, v_wu], 0.0)
    elif np.isfinite(v_su):
        v_w, (v_s, v_u) = 0.0, np.maximum([v_swu - v_su, v_su], 0.0)
    else:
        v_s, v_w, v_u = 0.0, 0.0, v_swu
    return float(v_s), float(v_w), float(v_u)


def crowdmos_interval(matrix, confidence: float = 0.95, *,
                      reference_quirk: bool = False) -> Interval:
    """The CrowdMOS confidence interval of the MOS over a rater x item matrix.

    Parameters
    ----------
    matrix : array_like [shape=(raters, items)]
        Ratings, NaN where not rated.
    confidence : float
        Coverage, e.g. 0.95.
    reference_quirk : bool
        False (default): empty rows and columns are dropped, so the degrees of freedom are
        min(raters, items) - 1 over raters and items that have ratings. True: keep them in
        the count, as the reference implementation (PyPI ``mean-opinion-score`` 0.0.1) does;
        only for reproducing its published values.

    Returns
    -------
    Interval
        MOS +- t_{(1+confidence)/2, df} sqrt(Var(mu)); NaN bounds when df < 1 or the variance
        is undefined.

    Raises
    ------
    InputError
        ``matrix`` is not two-dimensional, or ``confidence`` is outside (0, 1).
    """
    level = _upper_level(confidence)
    z = np.asarray(matrix, dtype=float)
    if z.ndim != 2:
        raise InputError(f"CrowdMOS needs a rater x item matrix, got shape {z.shape}")
    rated = np.isfinite(z)
    shape = z.shape if reference_quirk else (int(rated.any(axis=1).sum()),
                                             int(rated.any(axis=0).sum()))
    if not rated.any():
        return Interval(np.nan, np.nan, np.nan)
    mean = float(np.nanmean(z))
    df = min(shape) - 1
    var = crowdmos_variance(z)
    if df < 1 or not np.isfinite(var):
        return Interval(mean, np.nan, np.nan)
    half = _st.t.ppf(level, df) * np.sqrt(var)
    return Interval(mean, mean - half, mean + half)


def sums_and_counts(rater_index, item_index, scores, n_raters: int, n_items: int):
    """Rater x item sums and counts of ratings (the sufficient statistics of the bootstrap).

    Parameters
    ----------
    rater_index, item_index : array_like of int [shape=(n,)]
        0-based rater and item of each rating.
    scores : array_like [shape=(n,)]
        The ratings.
    n_raters, n_items : int
        Matrix shape.

    Returns
    -------
    sums, counts : np.ndarray [shape=(n_raters, n_items)]
    """
    r = np.asarray(rater_index, dtype=int)
    i = np.asarray(item_index, dtype=int)
    s = np.asarray(scores, dtype=float)
    sums = np.zeros((n_raters, n_items))
    counts = np.zeros((n_raters, n_items))
    np.add.at(sums, (r, i), s)
    np.add.at(counts, (r, i), 1.0)
    return sums, counts


def two_way_replicates(sums, counts, *, n_resamples: int = 2000, seed: int = 0,
                       resample_items: bool = True) -> np.ndarray:
    """Replicates of weighted means under the two-way (pigeonhole) bootstrap.

    Raters and items are resampled independently with replacement; each rating is weighted
    by the product of its rater's and its item's multiplicities. Several conditions share the
    same draws, so differences between them keep their pairing.

    Parameters
    ----------
    sums, counts : sequence of np.ndarray [shape=(raters, items)]
        Per condition, the sum and number of ratings per cell (see :func:`sums_and_counts`),
        all on the same rater and item indices. Raters and items without any rating in any
        condition are dropped first.
    n_resamples : int
        Number of replicates.
    seed : int
        Seed of :func:`numpy.random.default_rng` (the result is deterministic).
    resample_items : bool
        False holds items fixed (generalizes over raters only).

    Returns
    -------
    np.ndarray [shape=(n_resamples, conditions)]
        Weighted mean per replicate and condition; NaN where a replicate drew no rating of
        that condition.

    Raises
    ------
    InputError
        ``n_resamples`` not a positive integer, ``seed`` not a non-negative integer, or
        matrices of different or non-2-D shapes.
    """
    check_n_resamples(n_resamples)
    check_seed(seed)
    sums = [np.asarray(s, dtype=float) for s in sums]
    counts = [np.asarray(c, dtype=float) for c in counts]
    shapes = {a.shape for a in sums + counts}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise InputError(f"sums and counts must be equal 2-D shapes, got {sorted(shapes)}")
    total = sum(counts)
    rows, cols = total.sum(axis=1) > 0, total.sum(axis=0) > 0
    n_r, n_i = int(rows.sum()), int(cols.sum())
    rng = np.random.default_rng(seed)
    w_r = rng.multinomial(n_r, np.full(n_r, 1.0 / n_r), size=n_resamples).astype(float)
    w_i = (rng.multinomial(n_i, np.full(n_i, 1.0 / n_i), size=n_resamples).astype(float)
           if resample_items else np.ones((n_resamples, n_i)))
    out = np.empty((n_resamples, len(sums)))
    for k, (s, c) in enumerate(zip(sums, counts)):
        num = np.einsum("bi,bi->b", w_r @ s[rows][:, cols], w_i)
        den = np.einsum("bi,bi->b", w_r @ c[rows][:, cols], w_i)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, k] = np.where(den > 0, num / den, np.nan)
    return out


def bootstrap_interval(estimate: float, replicates, confidence: float = 0.95) -> Interval:
    """An estimate with the percentile interval of its bootstrap replicates.

    The bounds are :func:`reports.bootstrap.percentile_interval` of the finite replicates (a
    two-way replicate that drew no rating of a condition is NaN and is skipped).

    Parameters
    ----------
    estimate : float
        The point estimate reported with the interval.
    replicates : array_like [shape=(n_resamples,)]
    confidence : float
        Coverage, e.g. 0.95.

    Returns
    -------
    Interval
        NaN bounds when fewer than 2 finite replicates.

    Raises
    ------
    InputError
        ``confidence`` outside (0, 1).
    """
    check_confidence(confidence)
    reps = np.asarray(replicates, dtype=float)
    reps = reps[np.isfinite(reps)]
    if reps.size < 2:
        return Interval(float(estimate), np.nan, np.nan)
    return Interval(float(estimate), *percentile_interval(reps, confidence))


def bootstrap_two_way(sums, counts, *, n_resamples: int = 2000, confidence: float = 0.95,
                      seed: int = 0, resample_items: bool = True) -> Interval:
    """Two-way (pigeonhole) bootstrap percentile interval of the mean rating.

    Parameters
    ----------
    sums, counts : np.ndarray [shape=(raters, items)]
        Sum and number of ratings per cell (see :func:`sums_and_counts`).
    n_resamples, seed, resample_items
        As in :func:`two_way_replicates`.
    confidence : float
        Coverage, e.g. 0.95.

    Returns
    -------
    Interval
        The plain mean and the percentile bounds, which stay inside the scale's bounds; NaN
        bounds with fewer than 2 raters.

    Raises
    ------
    InputError
        ``n_resamples`` not a positive integer, ``confidence`` outside (0, 1), ``seed``
        negative, or sums and counts of different shapes.
    """
    check_confidence(confidence)
    sums, counts = np.asarray(sums, dtype=float), np.asarray(counts, dtype=float)
    if sums.shape == counts.shape and counts.sum() == 0:
        return Interval(np.nan, np.nan, np.nan)
    reps = two_way_replicates([sums], [counts], n_resamples=n_resamples, seed=seed,
                              resample_items=resample_items)[:, 0]
    mean = float(sums.sum() / counts.sum())
    if int((counts.sum(axis=1) > 0).sum()) < 2:
        return Interval(mean, np.nan, np.nan)
    return bootstrap_interval(mean, reps, confidence)


def bootstrap_mean(values, *, n_resamples: int = 2000, confidence: float = 0.95,
                   seed: int = 0) -> Interval:
    """Percentile bootstrap interval of the mean of independent units (e.g. raters).

    The resampling is :func:`reports.bootstrap.bootstrap_means` with
    ``numpy.random.default_rng(seed)``.

    Parameters
    ----------
    values : array_like [shape=(n,)]
        One value per unit; NaN entries are ignored.
    n_resamples, confidence, seed
        As in :func:`bootstrap_two_way`.

    Returns
    -------
    Interval
        The mean and percentile bounds (NaN bounds with fewer than 2 values).

    Raises
    ------
    InputError
        ``n_resamples`` not a positive integer, ``confidence`` outside (0, 1) or ``seed``
        not a non-negative integer.
    """
    check_bootstrap_args(n_resamples, confidence, seed)
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Interval(np.nan, np.nan, np.nan)
    if x.size < 2:
        return Interval(float(x.mean()), np.nan, np.nan)
    reps = bootstrap_means(x, n_resamples, np.random.default_rng(seed))
    return bootstrap_interval(float(x.mean()), reps, confidence)


def _signed_rank_null_counts(n: int) -> np.ndarray:
    """Number of sign assignments of ranks 1..n giving each value of R+ (0..n(n+1)/2)."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for k in range(1, n + 1):
        # Rank k is either negative (R+ unchanged) or positive (R+ shifted by k).
        counts[k:] = counts[k:] + counts[:-k].copy()
    return counts


def signed_rank_test(differences, *, method: str = "auto") -> SignedRankResult:
    """Two-sided Wilcoxon signed-rank test that the differences are centred on 0.

    Differences are rounded to :data:`ROUND_DECIMALS` decimals, so that values equal up to
    floating-point rounding tie. Zeros are dropped (Wilcoxon's convention); ties get average
    ranks. The exact null
    distribution is used when ``method="exact"``, or for ``"auto"`` when there are at most
    :data:`EXACT_MAX_N` non-zero differences and no ties; otherwise the normal approximation
    with the tie-corrected variance and no continuity correction.

    Parameters
    ----------
    differences : array_like [shape=(n,)]
        Paired differences (one per rater); NaN entries are ignored.
    method : {"auto", "exact", "normal"}

    Returns
    -------
    SignedRankResult
        NaN statistic and p-value when no non-zero difference remains.

    Raises
    ------
    InputError
        An unknown ``method``.
    """
    if method not in ("auto", "exact", "normal"):
        raise InputError(f"unknown signed-rank method {method!r}; use auto, exact or normal")
    d = np.asarray(differences, dtype=float)
    # Means of item-adjusted scores that are equal in exact arithmetic can differ in the last
    # bit; rounding makes them tie (and exact zeros drop) as they would by hand.
    d = np.round(d[np.isfinite(d)], ROUND_DECIMALS)
    d = d[d != 0]
    n = d.size
    if n == 0:
        return SignedRankResult(np.nan, np.nan, 0, np.nan, method)
    ranks = _st.rankdata(np.abs(d))
    r_plus, r_minus = float(ranks[d > 0].sum()), float(ranks[d < 0].sum())
    effect = (r_plus - r_minus) / (r_plus + r_minus)
    ties = ranks.size != np.unique(ranks).size
    use_exact = method == "exact" or (method == "auto" and n <= EXACT_MAX_N and not ties)
    stat = min(r_plus, r_minus)
    if use_exact:
        counts = _signed_rank_null_counts(n)
        # The null is symmetric: P(R+ <= stat) doubled, from integer R+ (floor for tied ranks).
        p = min(1.0, 2.0 * counts[: int(np.floor(stat)) + 1].sum() / counts.sum())
        return SignedRankResult(stat, p, n, effect, "exact")
    _, tie_sizes = np.unique(ranks, return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24.0 - np.sum(tie_sizes ** 3 - tie_sizes) / 48.0
    z = (r_plus - n * (n + 1) / 4.0) / np.sqrt(var)
    return SignedRankResult(stat, float(2.0 * _st.norm.sf(abs(z))), n, effect, "normal")


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control).

    Parameters
    ----------
    p_values : array_like [shape=(m,)]
        Raw p-values; NaN entries are left out of the family and stay NaN.

    Returns
    -------
    np.ndarray [shape=(m,)]
        Adjusted p-values: sorted ascending, the k-th (0-based) is multiplied by (m - k),
        made monotone by a running maximum and capped at 1.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out[order] = np.minimum(adjusted, 1.0)
    return out


def bonferroni(p_values) -> np.ndarray:
    """Bonferroni-adjusted p-values, min(1, m p), over the finite entries (NaN stays NaN)."""
    p = np.asarray(p_values, dtype=float)
    m = int(np.isfinite(p).sum())
    return np.minimum(p * m, 1.0)


def prob_superiority(a, b) -> float:
    """P(A > B) + P(A = B) / 2 over all pairs of ratings (descriptive common-language effect).

    Parameters
    ----------
    a, b : array_like
        Ratings of the two systems.

    Returns
    -------
    float
        In [0, 1]; 0.5 means no tendency; NaN when either is empty.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        return np.nan
    y = np.sort(y)
    below = np.searchsorted(y, x, side="left")
    equal = np.searchsorted(y, x, side="right") - below
    return float((below.sum() + 0.5 * equal.sum()) / (x.size * y.size))


def lmm_intervals(rated, confidence: float = 0.95) -> dict:
    """Per-condition MOS intervals from a linear mixed model (listening-test.md 12.3, ``lmm``).

    ``score ~ 0 + C(condition)`` with crossed random intercepts for rater and item (variance
    components of one group), fitted by REML with statsmodels; the interval of each
    condition's mean is its Wald interval, mean +- z_{(1+confidence)/2} SE. A condition gets
    NaN bounds when the fit did not converge or its SE exceeds the range of the scores (too
    few ratings to inform it).

    Parameters
    ----------
    rated : pd.DataFrame
        Ratings with rater_id, item, condition and score.
    confidence : float
        Coverage, e.g. 0.95.

    Returns
    -------
    dict
        condition -> Interval.

    Raises
    ------
    InputError
        ``confidence`` outside (0, 1), statsmodels is not installed, or the model cannot be
        fitted.
    """
    level = _upper_level(confidence)
    try:
        import statsmodels.formula.api as smf
    except ImportError:
        raise InputError("--ci lmm needs statsmodels (pip install statsmodels)") from None
    import warnings
    df = rated[["score", "condition", "rater_id", "item"]].copy()
    df["score"] = df["score"].astype(float)
    df["condition"] = df["condition"].astype(str)
    df["rater_id"], df["item"] = df["rater_id"].astype(str), df["item"].astype(str)
    df["everyone"] = 1
    model = smf.mixedlm("score ~ 0 + C(condition)", df, groups="everyone", re_formula="0",
                        vc_formula={"rater": "0 + C(rater_id)", "item": "0 + C(item)"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter; a failed fit raises below
        try:
            fit = model.fit(reml=True)
            means, ses = np.asarray(fit.fe_params), np.asarray(fit.bse_fe)  # SEs: lazy
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise InputError(f"the mixed model could not be fitted ({exc})") from None
    z = _st.norm.ppf(level)
    spread = float(np.ptp(df["score"])) or 1.0
    out = {}
    # fe_params follow the sorted levels of C(condition), as np.unique sorts the strings
    for condition, mean, se in zip(np.unique(df["condition"]), means, ses):
        # a fit that did not converge, or a mean the data barely inform, gets no interval
        usable = bool(fit.converged) and np.isfinite(se) and se < spread
        half = z * float(se) if usable else np.nan
        out[condition] = Interval(float(mean), float(mean) - half, float(mean) + half)
    return out
