"""``wavebench mos plan``: how wide will the intervals be, and what difference can be seen?

listening-test.md 13. Under the CrowdMOS model (rater, item and residual variance components
``v_rater``, ``v_item``, ``v_resid``) a balanced design gives each system's MOS the variance

    Var(MOS_sys) = v_item / I + v_rater / R_sys + v_resid / (I * V)

where ``I`` items are rated for the system, ``R_sys`` raters rate it and ``V`` votes fall on each
(item, system) stimulus: the closed form of
:func:`wavebench.mos.analysis.stats.crowdmos_variance` with sum(M^2) = I V^2 and
sum(N^2) = R K^2. Every rater gives ``trials_per_session`` ratings per
session, spread evenly over the systems, so V = raters x trials x sessions / (systems x items).
Gold, trap and training trials come on top and are not counted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _st

from wavebench.mos.analysis import stats
from wavebench_base.errors import InputError

#: Illustrative components on the 5-point scale (listening-test.md 13): item, rater, residual.
DEFAULT_COMPONENTS = (0.10, 0.25, 0.5)


@dataclass(frozen=True)
class Components:
    """CrowdMOS variance components and where they came from."""

    item: float
    rater: float
    resid: float
    source: str = "illustrative defaults (listening-test.md 13); run a pilot for your own"


@dataclass(frozen=True)
class Design:
    """A balanced listening-test design, per system."""

    systems: int
    items: int
    raters: int
    trials_per_session: int
    sessions_per_rater: int = 1

    def __post_init__(self):
        for name in ("systems", "items", "raters", "trials_per_session", "sessions_per_rater"):
            if getattr(self, name) < 1:
                raise InputError(f"plan: {name} must be at least 1, got {getattr(self, name)}")

    @property
    def ratings_per_rater(self) -> int:
        return self.trials_per_session * self.sessions_per_rater

    @property
    def votes(self) -> float:
        """Votes per (item, system) stimulus."""
        return self.raters * self.ratings_per_rater / (self.systems * self.items)

    @property
    def raters_per_system(self) -> float:
        """Raters who rate a given system: all of them once each rates at least one trial of
        every system."""
        return self.raters * min(1.0, self.ratings_per_rater / self.systems)


def mos_variance(components: Components, design: Design) -> float:
    """Var(MOS_sys) of one system under ``design`` (the closed form above)."""
    return (components.item / design.items + components.rater / design.raters_per_system
            + components.resid / (design.items * design.votes))


def expected(components: Components, design: Design, *, alpha: float = 0.05,
             power: float = 0.8) -> dict:
    """Expected interval half-width and minimum detectable difference for ``design``.

    The half-width is t_{1-alpha/2, df} SE with df = min(raters, items) - 1, as the CrowdMOS
    interval computes it. The minimum detectable difference between two systems is
    (z_{1-alpha/2} + z_power) SE_diff, about 2.8 SE_diff for 80 % power at alpha .05, with
    SE_diff = sqrt(2) SE: the two MOS treated as independent. That is conservative: the paired
    comparison of ``mos analyze`` removes the item and rater effects the systems share.
    """
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise InputError(f"plan: alpha and power must be in (0, 1), got {alpha} and {power}")
    if design.votes < 1:
        raise InputError(
            f"plan: {design.raters} raters x {design.ratings_per_rater} ratings give "
            f"{design.votes:.2f} votes per stimulus for {design.systems} systems x "
            f"{design.items} items; at least 1 is needed (more raters or fewer items)")
    se = math.sqrt(mos_variance(components, design))
    df = max(1, int(min(design.raters_per_system, design.items)) - 1)
    half = float(_st.t.ppf(1 - alpha / 2, df)) * se
    mdd = float(_st.norm.ppf(1 - alpha / 2) + _st.norm.ppf(power)) * math.sqrt(2) * se
    return {"systems": design.systems, "items": design.items, "raters": design.raters,
            "trials_per_session": design.trials_per_session,
            "sessions_per_rater": design.sessions_per_rater,
            "ratings": design.raters * design.ratings_per_rater, "votes": design.votes,
            "se": se, "half_width": half, "mdd": mdd}


def grid(components: Components, design: Design, *, alpha: float = 0.05,
         power: float = 0.8) -> pd.DataFrame:
    """The expected figures for half, the same and twice the raters, items and trials per
    session around ``design`` (combinations with under one vote per stimulus left out)."""
    rows = []
    for raters in _around(design.raters):
        for items in _around(design.items):
            for trials in _around(design.trials_per_session):
                candidate = Design(design.systems, items, raters, trials,
                                   design.sessions_per_rater)
                if candidate.votes >= 1:
                    rows.append(expected(components, candidate, alpha=alpha, power=power))
    return pd.DataFrame(rows).sort_values(["half_width", "ratings"]).reset_index(drop=True)


def _around(value: int) -> list[int]:
    return sorted({max(1, value // 2), value, 2 * value})


def raters_versus_sessions(components: Components, design: Design, *, alpha: float = 0.05,
                           power: float = 0.8) -> tuple[dict, dict]:
    """Two designs with the ratings of ``design``: twice the raters with half-length sessions,
    and half the raters with double-length sessions."""
    more = Design(design.systems, design.items, design.raters * 2,
                  max(1, design.trials_per_session // 2), design.sessions_per_rater)
    fewer = Design(design.systems, design.items, max(1, design.raters // 2),
                   design.trials_per_session * 2, design.sessions_per_rater)
    return (expected(components, more, alpha=alpha, power=power),
            expected(components, fewer, alpha=alpha, power=power))


def components_from_ratings(rated: pd.DataFrame, source: str) -> Components:
    """Pooled CrowdMOS components of screened pilot ratings (rater_id, item, condition, score).

    Each condition's rater x item matrix gives moment estimates (with unbiased variances: a
    pilot's raters rate only a few items of each condition); they are averaged, weighted by
    the condition's number of ratings.
    """
    estimates, weights = [], []
    for _, rows in rated.groupby("condition"):
        matrix = rows.pivot_table(index="rater_id", columns="item", values="score",
                                  aggfunc="mean").to_numpy(dtype=float)
        if np.isfinite(matrix).sum() >= 2:
            estimates.append(stats.crowdmos_components(matrix, ddof=1))
            weights.append(len(rows))
    if not estimates:
        raise InputError("pilot: no condition has two ratings to estimate variance from", source)
    item, rater, resid = np.average(np.array(estimates), axis=0, weights=weights)
    return Components(float(item), float(rater), float(resid),
                      f"pilot {source}: {int(sum(weights))} ratings, "
                      f"{rated['rater_id'].nunique()} raters")


def pilot_components(ratings_path, packet_dir) -> Components:
    """Components from a pilot's ratings.csv, unblinded with its packet and screened with the
    built-in rules; system ratings only (natural and anchors sit at the ends of the scale)."""
    from wavebench.mos.analysis import screening
    from wavebench.mos.analysis.ratings import load_packet, read_ratings, unblind
    from wavebench.mos.analysis.report import durations, list_sizes

    packet = load_packet(packet_dir)
    trials = unblind(read_ratings(ratings_path, packet), packet)
    rules, sha = screening.load_rules(None)
    kept = screening.screen(trials, rules, sha, list_sizes=list_sizes(packet),
                            durations=durations(packet), method=packet.method).kept
    systems = kept[kept["role"] == "system"]
    return components_from_ratings(systems if len(systems) else kept, str(ratings_path))
