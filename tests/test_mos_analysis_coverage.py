"""Slow simulation: the two-way bootstrap covers the true MOS; the naive t interval does not.

Simulated listening test as in docs/listening-test.md: 80 raters x 20 trials, 40 sentences, 5 systems, a
cyclic Latin square (8 votes per cell), rater and sentence effects, ratings rounded and
clipped to 1-5. The true MOS is the expected rating over the population of raters,
sentences and noise, which is exact for a rounded, clipped normal.
"""
import numpy as np
import pytest
from scipy import stats as st

from wavebench.mos.analysis import stats

SYSTEM_MU = np.array([4.2, 3.7, 3.2, 2.7, 2.2])
SD_RATER, SD_ITEM, SD_NOISE = 0.6, 0.55, 0.6
N_ITEMS, N_TRIALS, N_RATERS = 40, 20, 80


def true_mos(mu: float) -> float:
    """E[clip(round(mu + rater + item + noise), 1, 5)] for independent normal effects."""
    sd = np.sqrt(SD_RATER ** 2 + SD_ITEM ** 2 + SD_NOISE ** 2)
    edges = (np.arange(1.5, 5.0, 1.0) - mu) / sd        # boundaries between categories 1..5
    cdf = np.concatenate([[0.0], st.norm.cdf(edges), [1.0]])
    return float(np.sum(np.arange(1, 6) * np.diff(cdf)))


def latin_square(rng):
    """(rater, item, system) of every rating: chunks of 20 items, 5 lists per chunk, 8 reps."""
    n_c = SYSTEM_MU.size
    rows, rater = [], 0
    while rater < N_RATERS:
        order, shift = rng.permutation(N_ITEMS), rng.integers(n_c)
        for chunk in order.reshape(-1, N_TRIALS):
            for g in range(n_c):
                rows += [(rater, item, (j + g + shift) % n_c) for j, item in enumerate(chunk)]
                rater += 1
    return np.array(rows)


def simulate(rng):
    design = latin_square(rng)
    r, i, s = design.T
    latent = (SYSTEM_MU[s] + rng.normal(0, SD_RATER, N_RATERS)[r]
              + rng.normal(0, SD_ITEM, N_ITEMS)[i] + rng.normal(0, SD_NOISE, r.size))
    return r, i, s, np.clip(np.round(latent), 1, 5)


@pytest.mark.slow
def test_two_way_bootstrap_covers_true_mos_and_t_does_not():
    rng = np.random.default_rng(20240601)
    truth = np.array([true_mos(m) for m in SYSTEM_MU])
    hits_boot, hits_t, reps = [], [], 200
    for rep in range(reps):
        r, i, s, y = simulate(rng)
        sums, counts = zip(*(stats.sums_and_counts(r[s == k], i[s == k], y[s == k],
                                                   N_RATERS, N_ITEMS)
                             for k in range(SYSTEM_MU.size)))
        boot = stats.two_way_replicates(sums, counts, n_resamples=1000, seed=rep)
        for k in range(SYSTEM_MU.size):
            ci = stats.bootstrap_interval(y[s == k].mean(), boot[:, k])
            t = stats.t_interval(y[s == k])
            hits_boot.append(ci.lo <= truth[k] <= ci.hi)
            hits_t.append(t.lo <= truth[k] <= t.hi)
    cover_boot, cover_t = np.mean(hits_boot), np.mean(hits_t)
    print(f"coverage over {len(hits_boot)} intervals: two-way bootstrap {cover_boot:.3f}, "
          f"naive t {cover_t:.3f}")
    # The spec's acceptance band for 200 replications (the pigeonhole bootstrap is known to
    # be somewhat conservative, hence the upper limit short of 1).
    assert 0.93 <= cover_boot <= 0.995
    # Clustered raters and items make the t interval too narrow: clearly below nominal.
    assert cover_t < 0.88 and cover_boot - cover_t > 0.08
