"""Pre-registered rater screening (listening-test.md 12.2): objective session checks, flags and
a waterfall log.

The rules and thresholds are fixed in a file before unblinding (``screening.yaml``); the
sha256 of the resolved rules goes into the report. Objective checks (a rater id seen under
several session ids among them) exclude sessions by default; agreement-with-consensus rules
(leave-one-out correlation, BT.500 kurtosis, per-vote z) only flag by default, because
excluding on agreement pushes results toward the consensus.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as _st

from wavebench_base.errors import InputError

#: Rules in the order they are applied, with their default settings.
DEFAULT_RULES = {
    # A rater's sessions beyond their first `threshold`, and any repeat of a list they took.
    "repeated_rater": {"threshold": 1, "exclude": True},
    "incomplete_session": {"exclude": True},
    "not_played_to_end": {"exclude": True},
    "headphone_check": {"threshold": 5 / 6, "exclude": True},   # share correct, at least
    "trap_failed": {"exclude": True},
    "gold_correct": {"threshold": 1, "exclude": True},          # gold trials correct, at least
    "min_variance": {"threshold": 0.1, "exclude": True},        # P.808 variance_bigger_equal
    "fast_response": {"exclude": True},    # median response_ms < median clip duration
    "hidden_reference": {"threshold": 0.15, "exclude": True},   # MUSHRA: share of pages HR < 90
    "mid_anchor": {"threshold": 0.15, "exclude": True},   # MUSHRA: share of pages lp7000 > 90
    "loo_correlation": {"threshold": 0.7, "exclude": False},    # r <= min(t, mean - sd)
    "kurtosis_bt500": {"exclude": False},
    "vote_z": {"threshold": 3.29, "exclude": False},            # per-vote |z| (P.808)
}
OBJECTIVE_RULES = ("repeated_rater", "incomplete_session", "not_played_to_end",
                   "headphone_check", "trap_failed", "gold_correct", "min_variance",
                   "fast_response", "hidden_reference", "mid_anchor")
#: MUSHRA page scores that count as a failure of the hidden reference / the mid anchor.
HIDDEN_REF_MIN, MID_ANCHOR_MAX = 90.0, 90.0
RATER_RULES = ("loo_correlation", "kurtosis_bt500")
#: Trial types whose scores are analyzed.
RATED_TYPES = ("rating",)


@dataclass
class ScreeningResult:
    """The outcome of screening.

    Attributes
    ----------
    rules : dict
        The resolved rules (defaults updated by the file).
    rules_sha256 : str
        sha256 of the rules as canonical JSON (the pre-registration hash).
    sessions : pd.DataFrame
        One row per session: rater_id, session_id, list_id, failed (rules, ``;``-joined),
        excluded, exclusion_reasons.
    raters : pd.DataFrame
        One row per rater: r_pearson_loo, r_spearman_loo, loo_flag, kurtosis_flag (and for
        MUSHRA hidden_ref_fail_rate, anchor_fail_rate).
    log : pd.DataFrame
        The waterfall: rule, threshold, exclude, sessions_failing, raters_failing,
        ratings_removed, sessions_remaining, raters_remaining, ratings_remaining.
    kept, objective_only, unscreened : pd.DataFrame
        Rating trials after all configured screening, after the objective checks only, and
        with no screening (for the sensitivity table).
    notes : list of str
    """

    rules: dict
    rules_sha256: str
    sessions: pd.DataFrame
    raters: pd.DataFrame
    log: pd.DataFrame
    kept: pd.DataFrame
    objective_only: pd.DataFrame
    unscreened: pd.DataFrame
    notes: list = field(default_factory=list)


def load_rules(path=None) -> tuple[dict, str]:
    """Read screening rules from YAML or JSON, over the defaults.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A mapping ``{rules: {name: {threshold: x, exclude: bool}}}`` (the ``rules:`` level
        may be omitted). None gives the defaults.

    Returns
    -------
    (dict, str)
        The resolved rules and the sha256 of their canonical JSON.

    Raises
    ------
    InputError
        An unreadable file, an unknown rule or setting, or a value of the wrong type.
    """
    rules = copy.deepcopy(DEFAULT_RULES)
    if path is not None:
        given = _read_mapping(Path(path))
        given = given.get("rules", given)
        if not isinstance(given, dict):
            raise InputError("'rules' must be a mapping of rule name to settings", path)
        for name, settings in given.items():
            if name not in rules:
                raise InputError(f"unknown screening rule {name!r}; valid: "
                                 f"{', '.join(DEFAULT_RULES)}", path)
            if not isinstance(settings, dict) or set(settings) - set(rules[name]):
                raise InputError(f"rule {name!r}: settings must be a mapping with keys "
                                 f"{', '.join(rules[name])}", path)
            for key, value in settings.items():
                ok = isinstance(value, bool) if key == "exclude" else \
                    isinstance(value, (int, float)) and not isinstance(value, bool)
                if not ok:
                    raise InputError(f"rule {name!r}: {key} = {value!r} has the wrong type",
                                     path)
                rules[name][key] = value
    canonical = json.dumps(rules, sort_keys=True, separators=(",", ":"))
    return rules, hashlib.sha256(canonical.encode()).hexdigest()


def _read_mapping(path: Path) -> dict:
    if not path.is_file():
        raise InputError("no such screening file", path)
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml  # PyYAML: only needed for YAML screening files
            data = yaml.safe_load(text)
    except ImportError:
        raise InputError("reading YAML needs PyYAML (pip install pyyaml); or write the rules "
                         "as JSON", path) from None
    except Exception as err:  # json and yaml raise their own error types
        raise InputError(f"not valid {path.suffix.lstrip('.') or 'YAML'}: "
                         f"{str(err).splitlines()[0]}", path) from None
    if not isinstance(data, dict):
        raise InputError("screening file must hold a mapping", path)
    return data


def mushra_fail_rates(df: pd.DataFrame) -> pd.DataFrame:
    """Per rater, the share of MUSHRA pages failing the hidden-reference and mid-anchor rules.

    Parameters
    ----------
    df : pd.DataFrame
        Unblinded rating trials (role, trial_id, rater_id, score).

    Returns
    -------
    pd.DataFrame
        Indexed by rater_id: hidden_ref_fail_rate (pages whose hidden reference, role
        ``natural``, scored below :data:`HIDDEN_REF_MIN`) and anchor_fail_rate (pages whose
        lp7000 anchor scored above :data:`MID_ANCHOR_MAX`); NaN where a rater saw none.
    """
    ref = df[df["role"] == "natural"].groupby(["rater_id", "trial_id"])["score"].min()
    mid = df[df["role"] == "anchor_lp7000"].groupby(["rater_id", "trial_id"])["score"].max()
    out = pd.DataFrame({"hidden_ref_fail_rate": (ref < HIDDEN_REF_MIN).groupby(level=0).mean(),
                        "anchor_fail_rate": (mid > MID_ANCHOR_MAX).groupby(level=0).mean()})
    return out.reindex(sorted(df["rater_id"].unique()))


def repeated_sessions(df: pd.DataFrame, allowed: float) -> tuple[set, list]:
    """Sessions of a rater id seen under several session ids that do not count.

    A rater's sessions are taken in order of their first answer (then session id). A session
    does not count when the rater already has ``allowed`` earlier sessions, or already took
    its list (the rater has heard its items).

    Parameters
    ----------
    df : pd.DataFrame
        Ratings with rater_id, session_id, list_id and answered_at.
    allowed : float
        Sessions a rater may take (1 unless the design gives raters several lists).

    Returns
    -------
    (set, list of str)
        The session ids that fail, and one note per rater id with several sessions.
    """
    first = df.groupby("session_id").agg(rater_id=("rater_id", "first"),
                                         list_id=("list_id", "first"),
                                         at=("answered_at", "min")).reset_index()
    first = first.sort_values(["at", "session_id"], kind="stable")
    failing = (first.groupby("rater_id").cumcount() >= allowed) \
        | first.duplicated(["rater_id", "list_id"])
    notes = []
    for rater, s in first.groupby("rater_id", sort=True):
        if len(s) > 1:
            shown = ", ".join(s["session_id"].iloc[:5]) + (", ..." if len(s) > 5 else "")
            notes.append(f"rater {rater} answered under {len(s)} session ids ({shown}); "
                         f"repeated_rater fails {int(failing[s.index].sum())} of them")
    return set(first.loc[failing, "session_id"]), notes


def _session_checks(df: pd.DataFrame, rules: dict, list_sizes: dict, durations: dict,
                    completed: dict, method: str, repeated: set) -> pd.DataFrame:
    """Per session, a True column for each objective rule it fails."""
    rates = mushra_fail_rates(df[df["trial_type"].isin(RATED_TYPES)]) \
        if method.startswith("mushra") else None
    out = {}
    for sid, s in df.groupby("session_id", sort=True):
        rated = s[s["trial_type"].isin(RATED_TYPES)]
        phones, gold = s[s["trial_type"] == "headphone"], s[s["trial_type"].str.startswith("gold")]
        scores = rated["score"].dropna().to_numpy()
        clip_ms = [1000 * durations[a] for a in rated["stimulus_id"] if a in durations]
        expected = list_sizes.get(s["list_id"].iloc[0], 0)
        scored = s.loc[~s["trial_type"].isin(("training", "calibration")), "trial_id"]
        out[sid] = {
            "repeated_rater": sid in repeated,
            "incomplete_session": (not completed.get(sid, True))
            or scored.nunique() < expected,
            "not_played_to_end": not bool(rated["played_to_end"].all()),
            "headphone_check": len(phones) > 0
            and phones["correct"].mean() < rules["headphone_check"]["threshold"],
            "trap_failed": not bool(s.loc[s["trial_type"] == "trap", "correct"].all()),
            "gold_correct": len(gold) > 0
            and gold["correct"].sum() < min(rules["gold_correct"]["threshold"], len(gold)),
            # Population variance (ddof 0), as P.808's check on the session's ratings.
            "min_variance": scores.size > 0
            and float(np.var(scores)) < rules["min_variance"]["threshold"],
            "fast_response": bool(clip_ms) and len(rated) > 0
            and float(np.median(rated["response_ms"])) < float(np.median(clip_ms)),
        }
        rater = s["rater_id"].iloc[0]
        for rule, column in (("hidden_reference", "hidden_ref_fail_rate"),
                             ("mid_anchor", "anchor_fail_rate")):
            rate = np.nan if rates is None else rates.loc[rater, column]
            # Rater-level rules: every session of a failing rater fails.
            out[sid][rule] = bool(np.isfinite(rate) and rate > rules[rule]["threshold"])
    return pd.DataFrame.from_dict(out, orient="index")


def loo_correlations(rated: pd.DataFrame) -> pd.DataFrame:
    """Leave-one-out Pearson and Spearman r of each rater with the consensus of the others.

    Parameters
    ----------
    rated : pd.DataFrame
        Rating trials with rater_id, stimulus_id and score.

    Returns
    -------
    pd.DataFrame
        Indexed by rater_id: r_pearson_loo, r_spearman_loo (NaN with fewer than 3 shared
        stimuli or no variance).
    """
    cell = rated.groupby("stimulus_id")["score"].agg(["sum", "count"])
    rows = {}
    for rater, r in rated.groupby("rater_id", sort=True):
        mine = r.groupby("stimulus_id")["score"].agg(["sum", "count"])
        others = cell.loc[mine.index]
        n_other = others["count"] - mine["count"]
        keep = n_other > 0
        x = (mine["sum"] / mine["count"])[keep].to_numpy()
        y = ((others["sum"] - mine["sum"]) / n_other)[keep].to_numpy()
        ok = x.size >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0
        rows[rater] = {"r_pearson_loo": _st.pearsonr(x, y)[0] if ok else np.nan,
                       "r_spearman_loo": _st.spearmanr(x, y)[0] if ok else np.nan}
    return pd.DataFrame.from_dict(rows, orient="index")


def kurtosis_flags(rated: pd.DataFrame) -> pd.Series:
    """The BT.500 screening rule per rater (True = flagged).

    For each stimulus the ratings' kurtosis beta2 = m4 / m2^2 decides the band: mean +- 2 sd
    when 2 <= beta2 <= 4 (near normal), else +- sqrt(20) sd. A rater is flagged when more
    than 5 % of their ratings fall outside the band and the excursions are balanced,
    |P - Q| / (P + Q) < 0.3.
    """
    g = rated.groupby("stimulus_id")["score"]
    mean, sd = g.transform("mean"), g.transform(lambda v: v.std(ddof=1))
    m2 = g.transform(lambda v: np.mean((v - v.mean()) ** 2))
    m4 = g.transform(lambda v: np.mean((v - v.mean()) ** 4))
    beta2 = m4 / m2.where(m2 > 0)
    width = np.where((beta2 >= 2) & (beta2 <= 4), 2.0, np.sqrt(20.0)) * sd
    high = (rated["score"] >= mean + width) & (sd > 0)
    low = (rated["score"] <= mean - width) & (sd > 0)
    by = pd.DataFrame({"rater_id": rated["rater_id"], "p": high, "q": low})
    agg = by.groupby("rater_id").agg(p=("p", "sum"), q=("q", "sum"), n=("p", "size"))
    pq = agg["p"] + agg["q"]
    return (pq / agg["n"] > 0.05) & ((agg["p"] - agg["q"]).abs() / pq.where(pq > 0) < 0.3)


def _log_row(rule, rules, failing, removed_sessions, removed_ratings, remaining, rated) -> dict:
    settings = rules.get(rule, {})
    left = rated[rated["session_id"].isin(remaining)]
    return {"rule": rule, "threshold": settings.get("threshold", np.nan),
            "exclude": settings.get("exclude", False), "sessions_failing": len(failing),
            "raters_failing": rated.loc[rated["session_id"].isin(failing), "rater_id"].nunique()
            if failing else 0,
            "sessions_removed": len(removed_sessions), "ratings_removed": removed_ratings,
            "sessions_remaining": len(remaining), "raters_remaining": left["rater_id"].nunique(),
            "ratings_remaining": len(left)}


def _rater_flags(rated: pd.DataFrame, rules: dict) -> pd.DataFrame:
    flags = loo_correlations(rated)
    r = flags["r_pearson_loo"].dropna()
    cut = min(rules["loo_correlation"]["threshold"], float(r.mean() - r.std(ddof=1))) \
        if r.size > 1 else rules["loo_correlation"]["threshold"]
    flags["loo_flag"] = flags["r_pearson_loo"] <= cut
    flags["kurtosis_flag"] = kurtosis_flags(rated).reindex(flags.index, fill_value=False)
    flags.index.name = "rater_id"
    return flags


def _vote_z(rated: pd.DataFrame, threshold: float) -> pd.Series:
    """Per vote: |score - stimulus mean| / stimulus sd >= threshold (stimuli with >= 3 votes)."""
    g = rated.groupby("stimulus_id")["score"]
    sd, n = g.transform(lambda v: v.std(ddof=1)), g.transform("size")
    z = (rated["score"] - g.transform("mean")) / sd.where((sd > 0) & (n >= 3))
    return z.abs() >= threshold


def screen(df: pd.DataFrame, rules: dict, rules_sha256: str, *, list_sizes: dict,
           durations: dict, completed: dict | None = None,
           method: str = "acr") -> ScreeningResult:
    """Apply the screening rules in order and record the waterfall.

    Parameters
    ----------
    df : pd.DataFrame
        Unblinded ratings (see :func:`wavebench.mos.analysis.ratings.unblind`), every trial type.
    rules, rules_sha256
        From :func:`load_rules`.
    list_sizes : dict
        list_id -> number of scored trials (not training or calibration) the list holds.
    durations : dict
        anon stimulus id -> seconds; the fast-response rule is skipped when empty.
    completed : dict, optional
        session_id -> the page's ``completed`` flag (from raters.csv).
    method : str
        The packet's method; the hidden-reference and mid-anchor rules apply to MUSHRA only.

    Returns
    -------
    ScreeningResult
    """
    notes = []
    if not durations:
        notes.append("fast_response skipped: no stimulus durations (packet/stimuli not found)")
    rated = df[df["trial_type"].isin(RATED_TYPES) & df["score"].notna()]
    repeated, repeat_notes = repeated_sessions(df, rules["repeated_rater"]["threshold"])
    notes += repeat_notes
    checks = _session_checks(df, rules, list_sizes, durations, completed or {}, method,
                             repeated)
    remaining = set(checks.index)
    log = [_log_row("none", rules, set(), set(), 0, remaining, rated)]
    for rule in OBJECTIVE_RULES:
        failing = set(checks.index[checks[rule]])
        removed = failing & remaining if rules[rule]["exclude"] else set()
        n_removed = int(rated["session_id"].isin(removed).sum())
        remaining -= removed
        log.append(_log_row(rule, rules, failing, removed, n_removed, remaining, rated))
    objective_only = rated[rated["session_id"].isin(remaining)]
    flags = _rater_flags(objective_only, rules) if len(objective_only) else \
        pd.DataFrame(columns=["r_pearson_loo", "r_spearman_loo", "loo_flag", "kurtosis_flag"])
    if method.startswith("mushra"):
        flags = flags.join(mushra_fail_rates(rated), how="outer")
        # Raters already excluded by an objective check have no consensus flags.
        flags[["loo_flag", "kurtosis_flag"]] = flags[["loo_flag", "kurtosis_flag"]] \
            .astype("boolean").fillna(False).astype(bool)
    rater_of = df.groupby("session_id")["rater_id"].first()
    fails = {sid: [r for r in OBJECTIVE_RULES if checks.loc[sid, r]] for sid in checks.index}
    for rule, column in (("loo_correlation", "loo_flag"), ("kurtosis_bt500", "kurtosis_flag")):
        bad_raters = set(flags.index[flags[column].astype(bool)])
        failing = {s for s in checks.index if rater_of[s] in bad_raters}
        for sid in failing:
            fails[sid].append(rule)
        removed = failing & remaining if rules[rule]["exclude"] else set()
        n_removed = int(rated["session_id"].isin(removed).sum())
        remaining -= removed
        log.append(_log_row(rule, rules, failing, removed, n_removed, remaining, rated))
    kept = rated[rated["session_id"].isin(remaining)]
    outlier = _vote_z(kept, rules["vote_z"]["threshold"]) if len(kept) else kept["score"].isna()
    failing = set(kept.loc[outlier, "session_id"])
    if rules["vote_z"]["exclude"]:
        kept = kept[~outlier]
    log.append(_log_row("vote_z", rules, failing, set(), int(outlier.sum())
                        if rules["vote_z"]["exclude"] else 0, remaining, kept))
    sessions = _session_table(df, checks.index, fails, remaining, rules)
    return ScreeningResult(rules, rules_sha256, sessions, flags, pd.DataFrame(log), kept,
                           objective_only, rated, notes)


def _session_table(df, session_ids, fails, remaining, rules) -> pd.DataFrame:
    first = df.groupby("session_id")[["rater_id", "list_id"]].first()
    rows = []
    for sid in session_ids:
        excluded = sid not in remaining
        rows.append({"rater_id": first.loc[sid, "rater_id"], "session_id": sid,
                     "list_id": first.loc[sid, "list_id"], "failed": ";".join(fails[sid]),
                     "excluded": excluded,
                     "exclusion_reasons": ";".join(r for r in fails[sid]
                                                   if rules[r]["exclude"])})
    return pd.DataFrame(rows)
