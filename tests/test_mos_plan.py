"""`wavebench mos plan`: the closed form against the general CrowdMOS formula, a Monte Carlo
simulation of the model, a value worked by hand, pilot estimates, and the command line."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from wavebench.cli import main
from wavebench.mos.analysis import plan as P
from wavebench.mos.analysis import stats
from wavebench_base.errors import InputError

TRUE = P.Components(item=0.10, rater=0.25, resid=0.5)


def balanced_mask(raters: int, items: int, per_rater: int) -> np.ndarray:
    """A cyclic design: rater r rates items r*k ... r*k + k - 1 (mod items); every item gets
    the same number of votes when raters * per_rater is a multiple of items."""
    mask = np.zeros((raters, items), bool)
    for r in range(raters):
        mask[r, (r * per_rater + np.arange(per_rater)) % items] = True
    return mask


def test_closed_form_equals_the_general_crowdmos_formula_on_a_balanced_design():
    raters, items, per_rater = 12, 8, 2
    mask = balanced_mask(raters, items, per_rater)
    assert set(mask.sum(axis=0)) == {3}  # 3 votes per item
    total = mask.sum()
    general = (TRUE.item * np.sum(mask.sum(axis=0) ** 2) / total ** 2
               + TRUE.rater * np.sum(mask.sum(axis=1) ** 2) / total ** 2 + TRUE.resid / total)
    design = P.Design(systems=1, items=items, raters=raters, trials_per_session=per_rater)
    assert design.votes == 3
    assert P.mos_variance(TRUE, design) == pytest.approx(general, rel=1e-12)


def simulate_means(mask: np.ndarray, components: P.Components, reps: int, rng) -> np.ndarray:
    """MOS of ``reps`` studies drawn from Z = mu + rater + item + residual (mu = 0)."""
    raters, items = mask.shape
    rater = rng.normal(0, math.sqrt(components.rater), (reps, raters, 1))
    item = rng.normal(0, math.sqrt(components.item), (reps, 1, items))
    resid = rng.normal(0, math.sqrt(components.resid), (reps, raters, items))
    z = (rater + item + resid)[:, mask]
    return z.mean(axis=1)


def test_predicted_variance_and_power_match_a_simulation_of_the_model():
    raters, items, per_rater = 30, 20, 4  # 6 votes per item
    design = P.Design(systems=1, items=items, raters=raters, trials_per_session=per_rater)
    mask = balanced_mask(raters, items, per_rater)
    rng = np.random.default_rng(11)
    means = simulate_means(mask, TRUE, 4000, rng)
    predicted = P.mos_variance(TRUE, design)
    # 4000 draws estimate a variance to about 2.2 %: 8 % is more than 3 standard errors
    assert np.var(means) == pytest.approx(predicted, rel=0.08)
    # two systems, independent effects, truly apart by the minimum detectable difference:
    # a two-sided z test at alpha .05 should find it in about 80 % of studies
    figures = P.expected(TRUE, design)
    other = simulate_means(mask, TRUE, 4000, rng) + figures["mdd"]
    z = (other - means) / (math.sqrt(2) * figures["se"])
    assert np.mean(np.abs(z) > st.norm.ppf(0.975)) == pytest.approx(0.80, abs=0.03)


def test_the_specs_illustrative_design_worked_by_hand():
    design = P.Design(systems=5, items=40, raters=60, trials_per_session=20)
    votes = 60 * 20 / (5 * 40)  # 6
    var = 0.10 / 40 + 0.25 / 60 + 0.5 / (40 * votes)
    figures = P.expected(TRUE, design)
    assert figures["votes"] == votes
    assert figures["half_width"] == pytest.approx(st.t.ppf(0.975, 39) * math.sqrt(var))
    assert figures["half_width"] == pytest.approx(0.189, abs=5e-4)  # "about 0.2" in docs/listening-test.md 13
    assert figures["mdd"] == pytest.approx(2.8016 * math.sqrt(2 * var), rel=1e-4)


def test_more_raters_with_shorter_sessions_beat_longer_sessions():
    design = P.Design(systems=5, items=40, raters=60, trials_per_session=20)
    more, fewer = P.raters_versus_sessions(TRUE, design)
    assert more["ratings"] == fewer["ratings"] == 1200
    assert more["half_width"] < P.expected(TRUE, design)["half_width"] < fewer["half_width"]


def test_grid_drops_designs_with_under_one_vote_and_is_sorted():
    table = P.grid(TRUE, P.Design(systems=5, items=40, raters=10, trials_per_session=20))
    assert (table["votes"] >= 1).all() and len(table) < 27
    assert table["half_width"].is_monotonic_increasing


def test_components_from_pilot_ratings_recover_the_truth():
    rng = np.random.default_rng(5)
    raters, items = 200, 100
    rows = []
    for condition in ("a", "b"):
        z = (rng.normal(0, math.sqrt(TRUE.rater), (raters, 1))
             + rng.normal(0, math.sqrt(TRUE.item), (1, items))
             + rng.normal(0, math.sqrt(TRUE.resid), (raters, items)))
        r, i = np.nonzero(np.ones_like(z))
        rows.append(pd.DataFrame({"rater_id": r, "item": i, "condition": condition,
                                  "score": z.ravel()}))
    found = P.components_from_ratings(pd.concat(rows), "sim")
    assert found.item == pytest.approx(TRUE.item, rel=0.35)
    assert found.rater == pytest.approx(TRUE.rater, rel=0.2)
    assert found.resid == pytest.approx(TRUE.resid, rel=0.05)
    # the pooled estimate is the per-matrix moment estimate, here checked on one matrix
    one = rows[0].pivot(index="rater_id", columns="item", values="score").to_numpy()
    v_s, v_w, v_u = stats.crowdmos_components(one)  # population variances, as CrowdMOS
    n = one.size
    assert stats.crowdmos_variance(one) == pytest.approx(
        v_s * items * raters ** 2 / n ** 2 + v_w * raters * items ** 2 / n ** 2 + v_u / n)


def test_too_few_raters_for_one_vote_per_stimulus_is_refused():
    with pytest.raises(InputError, match="0.50 votes per stimulus"):
        P.expected(TRUE, P.Design(systems=5, items=40, raters=10, trials_per_session=10))
    with pytest.raises(InputError, match="raters must be at least 1"):
        P.Design(systems=5, items=40, raters=0, trials_per_session=10)


def test_plan_command(capsys, tmp_path):
    assert main(["mos", "plan", "--systems", "5", "--items", "40", "--raters", "60",
                 "-o", str(tmp_path / "grid.csv")]) == 0
    out = capsys.readouterr().out
    assert "MOS +- 0.189" in out and "illustrative" in out
    assert "120 raters x 10 trials gives +- 0.165" in out
    # 3 x 3 x 3 designs around it, less 30 raters x 10 trials on 80 items (0.75 votes)
    assert len(pd.read_csv(tmp_path / "grid.csv")) == 26
    assert main(["mos", "plan", "--systems", "5", "--items", "40", "--raters", "60",
                 "--pilot", "ratings.csv"]) == 2  # the packet is needed to unblind
    assert main(["mos", "plan", "--systems", "5", "--items", "400", "--raters", "6"]) == 1
    assert "votes per stimulus" in capsys.readouterr().err


@pytest.mark.slow
def test_plan_from_a_pilot_packet_and_its_ratings(tmp_path, capsys):
    from test_mos_analysis_e2e import TRUE as TRUE_MOS
    from test_mos_analysis_e2e import _systems
    from test_mos_analysis_sim import import_ratings, load_sim_packet, simulate_study

    from wavebench.mos.packet import build as packet_module

    dirs = _systems(tmp_path / "in")  # speech clips from tests/data
    options = packet_module.PacketOptions(reference=f"natural={dirs['natural']}", votes=6,
                                          seed=3, anchors=["lp3500"])
    packet_module.build_packet([f"{n}={dirs[n]}" for n in ("lowpass", "noisy", "mulaw")],
                               tmp_path / "pk", options)
    paths = simulate_study(load_sim_packet(tmp_path / "pk"), tmp_path / "results",
                           true_mos=TRUE_MOS)
    import_ratings(paths, tmp_path / "pk", tmp_path / "ratings.csv")
    components = P.pilot_components(tmp_path / "ratings.csv", tmp_path / "pk")
    # the simulated raters: rater sd 0.4, item sd 0.3, then rounding to the 1-5 scale
    assert 0.05 < components.rater < 0.4 and 0 <= components.item < 0.3
    assert components.resid > 0 and "pilot" in components.source
    capsys.readouterr()
    assert main(["mos", "plan", "--systems", "3", "--items", "20", "--raters", "40",
                 "--pilot", str(tmp_path / "ratings.csv"), "--packet", str(tmp_path / "pk")]) == 0
    assert "pilot" in capsys.readouterr().out


def test_unbiased_components_where_raters_rate_few_items():
    # 30 raters x 20 items, 4 ratings each: population variances of 4 values are 3/4 of the
    # truth on average, which ddof=1 undoes
    mask = balanced_mask(30, 20, 4)
    rng = np.random.default_rng(8)
    unbiased, population = [], []
    for _ in range(400):
        z = (rng.normal(0, math.sqrt(TRUE.rater), (30, 1))
             + rng.normal(0, math.sqrt(TRUE.item), (1, 20))
             + rng.normal(0, math.sqrt(TRUE.resid), (30, 20)))
        z[~mask] = np.nan
        unbiased.append(stats.crowdmos_components(z, ddof=1))
        population.append(stats.crowdmos_components(z))
    item, rater, resid = np.mean(unbiased, axis=0)
    assert resid == pytest.approx(TRUE.resid, rel=0.05)
    assert rater == pytest.approx(TRUE.rater, rel=0.1)
    assert item == pytest.approx(TRUE.item, rel=0.25)
    assert np.mean(population, axis=0)[2] < 0.85 * TRUE.resid  # the bias ddof=1 removes
