"""Listening-test ratings: the packet's key, import of the page's results JSON, ratings.csv.

``ratings.csv`` (listening-test.md 11) is long and blind: one row per judgement, no system names.
The key in ``private/`` unblinds it at analysis time, after its sha256 has been checked
against the commitment in the public ``manifest.json``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from reports import write_csv
from reports.files import untext_cells
from wavebench.mos.packet_files import check_import_shape, parse_json, read_bytes, read_json
from wavebench_base.errors import InputError

#: Columns of ratings.csv, in order (listening-test.md 11).
RATING_COLUMNS = (
    "packet_id", "rater_id", "session_id", "list_id", "trial_index", "trial_id", "trial_type",
    "method", "page_id", "stimulus_id", "stimulus_b_id", "presented_first", "score", "choice",
    "n_plays", "played_to_end", "listen_ms", "response_ms", "answered_at", "comment")
#: Columns of raters.csv, one row per session.
RATER_COLUMNS = (
    "rater_id", "session_id", "list_id", "started_at", "finished_at", "completed", "user_agent",
    "audio_context_rate", "device", "native_language", "age_band", "hearing_self_report",
    "platform", "completion_code", "code_ok")
TRIAL_TYPES = ("rating", "training", "gold_high", "gold_low", "trap", "repeat", "headphone",
               "bandwidth", "calibration")
_INT_COLUMNS = ("trial_index", "n_plays", "listen_ms", "response_ms")
_RESULTS_FORMAT = "wavebench-mos-results"
#: Trial types answered on the rating scale; every other type (trap, headphone, bandwidth,
#: calibration) is answered by a choice or not at all, and carries no score.
SCORED_TYPES = ("rating", "training", "gold_high", "gold_low", "repeat")
#: What a rater can answer, per method: (min, max, step). The manifest's scale min/max win;
#: its step does too, except for slider methods, whose manifest step spaces the labels (20)
#: while the page's slider answers in steps of 1.
METHOD_SCALES = {"acr": (1, 5, 1), "dcr": (1, 5, 1), "ccr": (-3, 3, 1), "mushra": (0, 100, 1),
                 "mushra_nmr": (0, 100, 1)}
SLIDER_METHODS = ("mushra", "mushra_nmr")
#: Bounds on one results file, checked before it is parsed. A page's file takes about 0.5 KB
#: per response (a 12-page MUSHRA session is under 100 KB), so these leave ample room.
MAX_RESULTS_BYTES = 16 * 2**20
MAX_JSON_ITEMS = 500_000    # commas outside strings: bounds the objects json.loads builds
MAX_RESPONSES = 10_000
RESPONSE_FACTOR = 2         # responses read per answer the list asks for, at most
MAX_INT = 2**53 - 1         # JavaScript's largest exact integer
#: Columns of rejects.csv: one row per response left out of ratings.csv, and why.
REJECT_COLUMNS = ("file", "rater_id", "session_id", "list_id", "response", "trial_id",
                  "stimulus_id", "score", "rule", "reason")
#: JSON types of the fields of a response and of the payload (null counts as absent).
_RESPONSE_TYPES = {"trial_index": "int", "n_plays": "int", "listen_ms": "int",
                   "response_ms": "int", "score": "number", "played_to_end": "bool",
                   **dict.fromkeys(("trial_id", "kind", "page_id", "stimulus_id",
                                    "stimulus_b_id", "presented_first", "choice", "answered_at",
                                    "comment"), "str")}
_PAYLOAD_TYPES = {"packet_id": "str", "list_id": "str", "rater_id": "str", "session_id": "str",
                  "method": "str", "started_at": "str", "finished_at": "str",
                  "completed": "bool", "user_agent": "str", "audio_context_rate": "int",
                  "platform": "str", "questionnaire": "object"}
_QUESTIONNAIRE_TYPES = dict.fromkeys(
    ("device", "native_language", "age_band", "hearing_self_report", "comment"), "str")
#: Python types of each JSON kind (exact: true and false are not integers), and its name.
_JSON_KINDS = {"int": ((int,), "an integer"), "number": ((int, float), "a number"),
               "bool": ((bool,), "true or false"), "str": ((str,), "a string"),
               "object": ((dict,), "an object")}


@dataclass(frozen=True)
class Packet:
    """A packet's public manifest and private key, with the key verified against its commitment.

    Attributes
    ----------
    root : pathlib.Path
        The packet's output folder (holding ``packet/`` and ``private/``).
    manifest, key : dict
        The parsed ``packet/manifest.json`` and ``private/key.json``.
    """

    root: Path
    manifest: dict
    key: dict

    @property
    def packet_id(self) -> str:
        """The packet's id."""
        return str(self.manifest["packet_id"])

    @property
    def method(self) -> str:
        """The test method, e.g. ``"acr"``."""
        return str(self.manifest.get("method", "acr"))

    @property
    def key_commitment(self) -> str:
        """sha256 of ``private/key.json`` as committed in the manifest."""
        return str(self.manifest["key_commitment"])


@dataclass
class ImportResult:
    """Ratings and sessions imported from results files.

    Attributes
    ----------
    ratings : pd.DataFrame
        One row per judgement, columns :data:`RATING_COLUMNS`.
    raters : pd.DataFrame
        One row per session, columns :data:`RATER_COLUMNS`.
    notes : list of str
        What was dropped or merged, and why (one line each).
    rejects : pd.DataFrame
        One row per response left out of ``ratings``, columns :data:`REJECT_COLUMNS`.
    """

    ratings: pd.DataFrame
    raters: pd.DataFrame
    notes: list = field(default_factory=list)
    rejects: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(REJECT_COLUMNS)))


class Problem(NamedTuple):
    """Why a response is rejected: a short rule name and a sentence."""

    rule: str
    reason: str


@dataclass(frozen=True)
class Scale:
    """The scores a rater can give: ``lo`` to ``hi`` in steps of ``step``, held exactly.

    Attributes
    ----------
    lo, hi, step : fractions.Fraction
    """

    lo: Fraction
    hi: Fraction
    step: Fraction

    def __str__(self) -> str:
        return f"{_number(self.lo)} to {_number(self.hi)} in steps of {_number(self.step)}"

    def problem(self, score) -> Problem | None:
        """Why ``score`` (an int or float) is not an answer on this scale, or None."""
        if isinstance(score, float) and not math.isfinite(score):
            return Problem("score_not_finite", f"score {score} is not a finite number")
        value = _exact(score)
        if not self.lo <= value <= self.hi:
            return Problem("score_out_of_scale",
                           f"score {_shown(score)} is outside the scale ({self})")
        if (value - self.lo) % self.step:
            return Problem("score_off_step", f"score {_shown(score)} is not on the scale ({self})")
        return None


def _exact(value) -> Fraction:
    """A number as an exact fraction; a float as the decimal it prints as (0.1 is 1/10)."""
    return Fraction(repr(float(value))) if isinstance(value, float) else Fraction(value)


def _number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else repr(float(value))


def _shown(value, width: int = 40) -> str:
    """``repr`` of a value from a file, cut to ``width`` characters."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def answer_scale(packet: Packet) -> Scale:
    """The scale a packet's raters answer on (see :data:`METHOD_SCALES`).

    Parameters
    ----------
    packet : Packet

    Returns
    -------
    Scale

    Raises
    ------
    InputError
        A method without a rating scale, or a manifest scale whose min, max or step is not a
        finite number with min < max and step > 0.
    """
    where = packet.root / "packet" / "manifest.json"
    method = packet.method.replace("-", "_")
    if method not in METHOD_SCALES:
        raise InputError(f"no rating scale is known for method {packet.method!r}; import "
                         f"knows {', '.join(METHOD_SCALES)}", where)
    lo, hi, step = METHOD_SCALES[method]
    given = packet.manifest.get("scale") or {}
    if not isinstance(given, dict):
        raise InputError("manifest scale must be an object", where)
    lo, hi = given.get("min", lo), given.get("max", hi)
    if method not in SLIDER_METHODS:
        step = given.get("step", step)
    numbers = all(type(v) is int or (type(v) is float and math.isfinite(v))
                  for v in (lo, hi, step))
    if not numbers or not lo < hi or step <= 0:
        raise InputError(f"manifest scale min {lo!r}, max {hi!r}, step {step!r}: need finite "
                         "numbers with min < max and step > 0", where)
    return Scale(_exact(lo), _exact(hi), _exact(step))


def load_packet(packet_dir) -> Packet:
    """Load a packet's manifest and key and verify the key's commitment.

    Parameters
    ----------
    packet_dir : str or os.PathLike
        The folder written by ``wavebench mos packet --out`` (holding ``packet/`` and
        ``private/``), or its ``packet/`` subfolder when ``private/`` sits beside it.

    Returns
    -------
    Packet

    Raises
    ------
    InputError
        A missing or unreadable manifest or key, a key whose sha256 differs from the
        manifest's ``key_commitment`` (a key from another packet or an edited key), or a
        manifest or key whose containers have the wrong JSON types.
    """
    root = Path(packet_dir)
    if (root / "manifest.json").is_file() and not (root / "packet").is_dir():
        root = root.parent
    manifest_path, key_path = root / "packet" / "manifest.json", root / "private" / "key.json"
    if not root.is_dir():
        raise InputError("packet folder does not exist", root)
    manifest = read_json(manifest_path, "packet manifest")
    for name in ("packet_id", "key_commitment", "lists"):
        if name not in manifest:
            raise InputError(f"manifest has no {name!r}; is this a wavebench packet?",
                             manifest_path)
    if not key_path.is_file():
        raise InputError("no private key here; import and analyze need the packet's private/ "
                         "folder", key_path)
    raw = read_bytes(key_path, "packet key")  # read once: hashed, then parsed
    digest = hashlib.sha256(raw).hexdigest()
    if digest != manifest["key_commitment"]:
        raise InputError(f"key does not match the packet's key commitment (sha256 {digest[:12]}"
                         f"..., manifest commits to {str(manifest['key_commitment'])[:12]}...); "
                         "a key from another packet or an edited key", key_path)
    key = parse_json(raw, key_path, "packet key")
    check_import_shape(manifest, manifest_path, key, key_path)  # stimuli and trials: objects
    if key.get("packet_id") != manifest["packet_id"]:
        raise InputError(f"key is for packet {key.get('packet_id')!r}, not "
                         f"{manifest['packet_id']!r}", key_path)
    return Packet(root=root, manifest=manifest, key=key)


def payload_checksum(payload: dict) -> str:
    """sha256 hex of the payload serialized as the page's ``JSON.stringify`` does.

    Parameters
    ----------
    payload : dict
        The ``payload`` object as loaded by :func:`json.load` (key order kept).

    Returns
    -------
    str
    """
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_types(obj: dict, types: dict, what: str, path: Path) -> None:
    """Every field of ``types`` present in ``obj`` and not null has its JSON type."""
    for name, kind in types.items():
        value = obj.get(name)
        allowed, described = _JSON_KINDS[kind]
        if value is not None and type(value) not in allowed:
            raise InputError(f"{what}: {name} {_shown(value)} is not {described}", path)


def answers_per_list(packet: Packet) -> dict:
    """list_id -> responses the list asks for: one per trial, one per stimulus of a page."""
    asked = {}
    for trial in packet.key["trials"].values():
        asked[trial["list_id"]] = asked.get(trial["list_id"], 0) \
            + max(1, len(trial.get("stimuli") or ()))
    return asked


def _check_results(data: dict, path: Path, packet: Packet, asked: dict) -> dict:
    if data.get("format") != _RESULTS_FORMAT or not isinstance(data.get("payload"), dict):
        raise InputError(f"not a wavebench results file (format {_shown(data.get('format'))}, "
                         f"expected {_RESULTS_FORMAT!r} with a payload)", path)
    payload = data["payload"]
    if payload_checksum(payload) != data.get("checksum"):
        raise InputError("checksum does not match the responses; the file was edited or "
                         "truncated", path)
    _check_types(payload, _PAYLOAD_TYPES, "payload", path)
    _check_types(payload.get("questionnaire") or {}, _QUESTIONNAIRE_TYPES, "questionnaire",
                 path)
    if payload.get("packet_id") != packet.packet_id:
        raise InputError(f"results are from packet {payload.get('packet_id')!r}, not "
                         f"{packet.packet_id!r}; pass the packet they were collected with", path)
    lists = packet.manifest["lists"]
    if payload.get("list_id") not in lists:
        raise InputError(f"unknown list {payload.get('list_id')!r}; the packet has "
                         f"{', '.join(sorted(lists))}", path)
    if not isinstance(payload.get("responses"), list):
        raise InputError("payload has no responses list", path)
    for name in ("rater_id", "session_id"):
        if not str(payload.get(name, "")).strip():
            raise InputError(f"payload has an empty {name}", path)
    n, list_id = len(payload["responses"]), payload["list_id"]
    limit = min(MAX_RESPONSES, RESPONSE_FACTOR * asked.get(list_id, 0))
    if n > limit:
        raise InputError(f"{n} responses for list {list_id}, which asks for "
                         f"{asked.get(list_id, 0)} answers; at most {limit} are read (a "
                         "stuffed or corrupt file?)", path)
    return payload


def _response_trial(resp, k: int, list_id: str, path: Path, packet: Packet) -> dict:
    """The key's trial of response ``k``, after checking the response's JSON types and ids."""
    if not isinstance(resp, dict):
        raise InputError(f"response {k} is not an object", path)
    _check_types(resp, _RESPONSE_TYPES, f"response {k}", path)
    if resp.get("trial_index") is None:
        raise InputError(f"response {k} has no trial_index", path)
    trial = packet.key["trials"].get(resp.get("trial_id"))
    if trial is None or trial.get("list_id") != list_id:
        raise InputError(f"response {k}: trial {_shown(resp.get('trial_id'))} is not in list "
                         f"{list_id} of this packet", path)
    for name in ("stimulus_id", "stimulus_b_id"):
        anon = resp.get(name) or ""
        if anon and anon not in packet.key["stimuli"]:
            raise InputError(f"response {k}: unknown stimulus {_shown(anon)}", path)
    return trial


def _answer_problem(score, trial_type: str, scale: Scale) -> Problem | None:
    """Why ``score`` (None when not given) cannot answer a trial of ``trial_type``, or None."""
    if trial_type not in SCORED_TYPES:
        return None if score is None else Problem(
            "score_unexpected", f"a {trial_type} trial takes no score, got {_shown(score)}")
    if score is None:
        return Problem("score_missing", f"a {trial_type} trial without a score")
    return scale.problem(score)


def _stimulus_problem(trial_id: str, trial: dict, stimulus_id: str,
                      stimulus_b_id: str) -> Problem | None:
    """Why the stimuli of an answer are not those of its trial, or None."""
    own = list(trial.get("stimuli") or ())
    if stimulus_id not in own:
        return Problem("foreign_stimulus",
                       f"stimulus {stimulus_id!r} is not one of trial {trial_id}'s")
    if stimulus_b_id and stimulus_b_id not in own + [trial.get("reference")]:
        return Problem("foreign_stimulus",
                       f"second stimulus {stimulus_b_id!r} is not one of trial {trial_id}'s")
    return None


def _integer_problem(name: str, value: int) -> Problem | None:
    if 0 <= value <= MAX_INT:
        return None
    return Problem("integer_out_of_range", f"{name} {_shown(value)} is outside 0 to 2**53-1")


def _response_problem(resp: dict, trial: dict, scale: Scale) -> Problem | None:
    """Why a well-typed response is no answer to its trial, or None."""
    integers = (_integer_problem(name, resp[name]) for name in _INT_COLUMNS
                if resp.get(name) is not None)
    return (_answer_problem(resp.get("score"), trial.get("trial_type", "rating"), scale)
            or _stimulus_problem(resp["trial_id"], trial, resp.get("stimulus_id") or "",
                                 resp.get("stimulus_b_id") or "")
            or next(filter(None, integers), None))


def _trial_problems(rows: list, problems: list) -> list:
    """Each row's problem once answers are counted per trial.

    Answers of a trial (for MUSHRA, of one stimulus of a page) given more than once are all
    rejected, and a trial with any rejected answer loses all of them: a page counts whole or
    not at all.
    """
    counts = Counter((row["trial_id"], row["stimulus_id"]) for row in rows)

    def counted(row, problem):
        n = counts[row["trial_id"], row["stimulus_id"]]
        if problem or n == 1:
            return problem
        return Problem("duplicate_answer", f"trial {row['trial_id']} answered {n} times "
                       f"for stimulus {row['stimulus_id']!r}")

    problems = [counted(row, problem) for row, problem in zip(rows, problems)]
    rejected = {row["trial_id"] for row, problem in zip(rows, problems) if problem}
    lost = {tid: Problem("trial_rejected", f"another answer of trial {tid} was rejected")
            for tid in rejected}
    return [problem or lost.get(row["trial_id"]) for row, problem in zip(rows, problems)]


def _response_rows(payload: dict, path: Path, packet: Packet,
                   scale: Scale) -> tuple[list, list]:
    """(rows for ratings.csv, rows for rejects.csv) of one results file's responses."""
    session = {"packet_id": payload["packet_id"], "rater_id": payload["rater_id"],
               "session_id": payload["session_id"], "list_id": payload["list_id"]}
    rows, problems = [], []
    for k, resp in enumerate(payload["responses"]):
        trial = _response_trial(resp, k, payload["list_id"], path, packet)
        row = {name: "" if resp.get(name) is None else resp[name] for name in RATING_COLUMNS}
        row.update(session, trial_type=trial.get("trial_type", "rating"), method=packet.method,
                   score=resp.get("score"))
        rows.append(row)
        problems.append(_response_problem(resp, trial, scale))
    kept, rejects = [], []
    for k, (row, problem) in enumerate(zip(rows, _trial_problems(rows, problems))):
        score = row["score"]
        if problem is None:
            kept.append(dict(row, score=np.nan if score is None else float(score)))
        else:
            rejects.append({
                "file": str(path), "rater_id": row["rater_id"], "session_id": row["session_id"],
                "list_id": row["list_id"], "response": k, "trial_id": row["trial_id"],
                "stimulus_id": row["stimulus_id"],
                "score": "" if score is None else _shown(score), **problem._asdict()})
    return kept, rejects


def _rater_row(data: dict, payload: dict) -> dict:
    answers = payload.get("questionnaire") or {}
    code = str(data.get("completion_code", ""))
    return {
        "rater_id": str(payload["rater_id"]), "session_id": str(payload["session_id"]),
        "list_id": payload["list_id"], "started_at": payload.get("started_at", ""),
        "finished_at": payload.get("finished_at", ""),
        "completed": bool(payload.get("completed", False)),
        "user_agent": payload.get("user_agent", ""),
        "audio_context_rate": payload.get("audio_context_rate"),
        "device": answers.get("device", ""), "native_language": answers.get("native_language", ""),
        "age_band": answers.get("age_band", ""),
        "hearing_self_report": answers.get("hearing_self_report", ""),
        "platform": payload.get("platform", ""), "completion_code": code,
        # The checksum was verified already; the code is its prefix when the page wrote it.
        "code_ok": code == str(data.get("checksum", ""))[: len(code)] and bool(code)}


def _reject_note(rejects: pd.DataFrame, n_sessions: int) -> str:
    """One line summing up the rejects."""
    trials = rejects[["session_id", "trial_id"]].drop_duplicates()
    rules = rejects["rule"].value_counts()
    return (f"rejected {len(rejects)} responses ({len(trials)} trials) in "
            f"{rejects['session_id'].nunique()} of {n_sessions} sessions: "
            f"{', '.join(f'{rule} {n}' for rule, n in rules.items())}; listed in rejects.csv "
            "beside the ratings (a session missing a trial is incomplete, which screening "
            "excludes by default)")


def _repeated_rater_notes(raters: pd.DataFrame) -> list:
    """A note for each rater id seen under several session ids (as screening will see it)."""
    from wavebench.mos.analysis.screening import DEFAULT_RULES, repeated_sessions

    sessions = raters.rename(columns={"started_at": "answered_at"})
    return repeated_sessions(sessions, DEFAULT_RULES["repeated_rater"]["threshold"])[1]


def import_results(paths, packet: Packet) -> ImportResult:
    """Import the offline page's results files into the canonical ratings schema.

    A file is refused when it cannot be a results file of this packet (see the errors
    below). Within a readable file, a response whose well-typed value no rater could have
    given is rejected, with every other answer of its trial: a score that is not finite,
    outside the scale or off its step (:func:`answer_scale`), a missing score on a rated
    trial or a score on a choice trial, a stimulus that is not the trial's, an integer
    outside 0 to 2**53-1, and a trial (or a page's stimulus) answered more than once. The
    rejects are returned in :attr:`ImportResult.rejects` and summed up in one note.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        ``wavebench_<packet>_<list>_<rater>.json`` files.
    packet : Packet
        The packet they were collected with (see :func:`load_packet`).

    Returns
    -------
    ImportResult
        Ratings sorted by session and trial index; a file whose session was already imported
        with the same checksum is skipped with a note, and a rater id seen under several
        session ids gets a note.

    Raises
    ------
    InputError
        No files; a file over :data:`MAX_RESULTS_BYTES`, nested deeper than
        :data:`~wavebench.mos.packet_files.MAX_JSON_DEPTH` or holding more than
        :data:`MAX_JSON_ITEMS` items; an unreadable, truncated or edited file (checksum
        mismatch); results of another packet; an unknown list, trial or stimulus; a field of
        the wrong JSON type (an integer field holding 3.0 or true included); more responses
        than :data:`RESPONSE_FACTOR` times what the list asks for, or than
        :data:`MAX_RESPONSES`; or two different files for the same session.
    """
    if not paths:
        raise InputError("no results files given")
    return import_documents(((p, read_json(p, "results file", max_bytes=MAX_RESULTS_BYTES,
                                           max_items=MAX_JSON_ITEMS))
                             for p in map(Path, paths)), packet)


def import_documents(documents, packet: Packet) -> ImportResult:
    """Import results documents already loaded: the work of :func:`import_results`.

    Parameters
    ----------
    documents : iterable of (pathlib.Path, dict)
        Each results document (the JSON object the page downloads, FORMAT.md) with the name
        its messages carry: the file it was read from, or for ``mos import --db`` the database
        and session (:mod:`wavebench.mos.serve.db` builds them from its rows).
    packet : Packet

    Returns
    -------
    ImportResult
        As :func:`import_results`, whose checks (and errors) apply to every document.
    """
    scale, asked = answer_scale(packet), answers_per_list(packet)
    rows, rejects, sessions, seen, notes = [], [], [], {}, []
    for p, data in documents:
        payload = _check_results(data, p, packet, asked)
        sid = str(payload["session_id"])
        if sid in seen:
            if seen[sid][1] == data["checksum"]:
                notes.append(f"{p}: same session {sid} as {seen[sid][0]}; skipped the duplicate")
                continue
            raise InputError(f"session {sid} also comes from {seen[sid][0]} with different "
                             "responses; remove one of them", p)
        seen[sid] = (p, data["checksum"])
        kept, rejected = _response_rows(payload, p, packet, scale)
        rows += kept
        rejects += rejected
        sessions.append(_rater_row(data, payload))
    ratings = pd.DataFrame(rows, columns=list(RATING_COLUMNS))
    ratings = ratings.sort_values(["session_id", "trial_index"], kind="stable")
    raters = pd.DataFrame(sessions, columns=list(RATER_COLUMNS))
    rejects = pd.DataFrame(rejects, columns=list(REJECT_COLUMNS))
    notes += _repeated_rater_notes(raters)
    if len(rejects):
        notes.append(_reject_note(rejects, len(raters)))
    return ImportResult(ratings.reset_index(drop=True), raters, notes, rejects)


def read_ratings(path, packet: Packet) -> pd.DataFrame:
    """Read a ratings.csv and check it belongs to ``packet``.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by ``wavebench mos import``.
    packet : Packet
        The packet (its key must know every trial and stimulus in the file).

    Returns
    -------
    pd.DataFrame
        Columns :data:`RATING_COLUMNS` with ``score`` float, integer columns as int and
        ``played_to_end`` as bool.

    Raises
    ------
    InputError
        Missing, empty or truncated file, missing columns, a value of the wrong type, a
        packet id other than the packet's, trials/stimuli the key does not know (a key
        swapped for one of another packet), or a row that import would have rejected (a
        hand-edited file): a score off the scale or its step, a rated trial without a score
        or a choice trial with one, a stimulus not of its trial, a trial answered twice in a
        session, or an integer column holding other than digits from 0 to 2**53-1.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file" if not path.exists() else "not a file", path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"not a UTF-8 text CSV (undecodable byte at offset {err.start})",
                         path) from None
    if not text.strip():
        raise InputError("empty ratings file", path)
    _check_field_counts(text, path)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.ParserError as err:
        raise InputError(f"not a readable CSV ({str(err).splitlines()[0]})", path) from None
    df = untext_cells(df)  # write_csv's formula guard, undone
    missing = [c for c in RATING_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; is this a ratings.csv "
                         "written by wavebench mos import?", path)
    if df.empty:
        raise InputError("ratings file has a header but no ratings", path)
    return _typed_ratings(df[list(RATING_COLUMNS)], path, packet)


def _check_field_counts(text: str, path: Path) -> None:
    """Every line must have the header's number of fields: a cut-off last line does not."""
    reader = csv.reader(io.StringIO(text))
    width = len(next(reader))
    for line, fields in enumerate(reader, start=2):
        if fields and len(fields) != width:
            raise InputError(f"line {line} has {len(fields)} fields, the header {width} "
                             "(truncated file?)", path)


def _typed_ratings(df: pd.DataFrame, path: Path, packet: Packet) -> pd.DataFrame:
    ids = set(df["packet_id"])
    if ids != {packet.packet_id}:
        raise InputError(f"ratings are from packet(s) {', '.join(sorted(ids))}, not "
                         f"{packet.packet_id}; pass the packet they were collected with", path)
    unknown = sorted(set(df["trial_id"]) - set(packet.key["trials"]))
    if unknown:
        raise InputError(f"{len(unknown)} trial id(s) not in the packet key (e.g. "
                         f"{unknown[0]}); the key does not belong to these ratings", path)
    df = df.copy()
    score = pd.to_numeric(df["score"].replace("", np.nan), errors="coerce")
    bad = df["score"].ne("") & score.isna()
    if bad.any():
        raise InputError(f"line {int(np.flatnonzero(bad)[0]) + 2}: score "
                         f"{df['score'][bad].iloc[0]!r} is not a number", path)
    df["score"] = score.astype(float)
    for name in _INT_COLUMNS:
        df[name] = _csv_integers(df[name], name, path)
    df["played_to_end"] = df["played_to_end"].str.lower().isin(["true", "1", "yes"])
    bad_type = sorted(set(df["trial_type"]) - set(TRIAL_TYPES))
    if bad_type:
        raise InputError(f"unknown trial_type {bad_type[0]!r}; expected one of "
                         f"{', '.join(TRIAL_TYPES)}", path)
    _check_answers(df, path, packet)
    return df


def _csv_integers(column: pd.Series, name: str, path: Path) -> pd.Series:
    """A column of whole numbers from 0 to :data:`MAX_INT` (empty reads as 0)."""
    text = column.replace("", "0")
    ok = text.str.fullmatch(r"\d{1,16}")
    values = pd.to_numeric(text.where(ok, "0")).astype(np.int64)
    bad = ~ok | (values > MAX_INT)
    if bad.any():
        raise InputError(f"line {int(np.flatnonzero(bad)[0]) + 2}: {name} is not an integer "
                         "from 0 to 2**53-1 (truncated file?)", path)
    return values


def _check_answers(df: pd.DataFrame, path: Path, packet: Packet) -> None:
    """The checks of import on a ratings table: each score on the scale where the trial
    takes one, the trial's own stimuli, and one answer per trial (or page stimulus)."""
    scale, trials, memo = answer_scale(packet), packet.key["trials"], {}
    columns = (df[c].tolist() for c in ("trial_id", "score", "stimulus_id", "stimulus_b_id"))
    for line, (trial_id, score, stimulus, stimulus_b) in enumerate(zip(*columns), start=2):
        trial = trials[trial_id]
        kind = trial.get("trial_type", "rating")
        score = None if math.isnan(score) else score  # an empty field ("nan" was refused)
        if (kind, score) not in memo:  # a few distinct scores; the check is exact, not fast
            memo[kind, score] = _answer_problem(score, kind, scale)
        problem = memo[kind, score] or _stimulus_problem(trial_id, trial, stimulus, stimulus_b)
        if problem:
            raise InputError(f"line {line}: {problem.reason}", path)
    again = df.duplicated(["session_id", "trial_id", "stimulus_id"])
    if again.any():
        row = df[again].iloc[0]
        raise InputError(f"line {int(np.flatnonzero(again)[0]) + 2}: trial {row['trial_id']} "
                         f"answered again in session {row['session_id']} (stimulus "
                         f"{row['stimulus_id']!r}); one answer per trial", path)


def check_answer(row_expected, score: float, choice: str) -> bool:
    """Whether a check trial's answer meets the key's expected answer.

    Parameters
    ----------
    row_expected : dict or None
        ``{"min": a, "max": b}`` for a score range (gold), ``{"choice": c}`` for an exact
        answer (trap, headphone); None means nothing to check.
    score : float
        The trial's score (NaN when not scored).
    choice : str
        The trial's choice answer.

    Returns
    -------
    bool
        True when the answer is within the range or equals the choice (or nothing to check).
    """
    if not row_expected:
        return True
    if "choice" in row_expected:
        return str(choice).strip() == str(row_expected["choice"]).strip()
    lo, hi = row_expected.get("min", -np.inf), row_expected.get("max", np.inf)
    return bool(np.isfinite(score) and lo <= score <= hi)


def unblind(ratings: pd.DataFrame, packet: Packet) -> pd.DataFrame:
    """Join ratings with the key: condition, item, role, filler and check correctness.

    Parameters
    ----------
    ratings : pd.DataFrame
        As returned by :func:`read_ratings`.
    packet : Packet
        The verified packet.

    Returns
    -------
    pd.DataFrame
        ``ratings`` plus ``condition`` (the stimulus's system, e.g. ``sysA``, ``natural``,
        ``lp3500``), ``item``, ``role``, ``filler`` (bool), ``trial_type`` from the key and
        ``correct`` (bool; True for trials without an expected answer).
    """
    stimuli, trials = packet.key["stimuli"], packet.key["trials"]
    df = ratings.copy()
    stim = [stimuli.get(a, {}) for a in df["stimulus_id"]]
    trial = [trials[t] for t in df["trial_id"]]
    df["trial_type"] = [t.get("trial_type", "rating") for t in trial]
    df["condition"] = [s.get("system") or t.get("condition") or "" for s, t in zip(stim, trial)]
    df["item"] = [s.get("item") or t.get("item") or "" for s, t in zip(stim, trial)]
    df["role"] = [s.get("role", "") for s in stim]
    df["filler"] = [bool(t.get("filler", False)) for t in trial]
    df["correct"] = [check_answer(t.get("expected"), s, c)
                     for t, s, c in zip(trial, df["score"], df["choice"])]
    return df


def output_paths(ratings_path, raters_path=None) -> tuple[Path, Path, Path]:
    """The files :func:`write_ratings` writes: the ratings, the sessions table (``raters_path``,
    default ``raters.csv`` beside the ratings) and ``rejects.csv`` beside the ratings."""
    ratings_path = Path(ratings_path)
    return (ratings_path,
            Path(raters_path) if raters_path else ratings_path.with_name("raters.csv"),
            ratings_path.with_name("rejects.csv"))


def check_import_outputs(results, packet_root, outputs: dict) -> None:
    """Refuse an output of ``mos import`` that is one of its inputs or lies inside the packet.

    Paths are compared resolved (links followed) and, where both exist, as the same file (hard
    links), so ``-o victim.json`` or ``-o PACKET/private/key.json`` never destroys what
    cannot be collected again.

    Parameters
    ----------
    results : sequence of str
        The results files being imported.
    packet_root : pathlib.Path
        The packet's output folder, holding ``packet/`` and ``private/`` (``Packet.root``).
    outputs : dict
        Option name (``-o``, ``--raters``, ...) -> the file it would write.

    Raises
    ------
    InputError
        One line naming the output and what it would overwrite.
    """
    root = Path(packet_root).resolve()
    for option, out in outputs.items():
        target = Path(out).resolve()
        for given in results:
            if target == Path(given).resolve() or _same_file(out, given):
                raise InputError(f"{option} is the results file {given} being imported; write "
                                 "the output elsewhere", out)
        if target.is_relative_to(root):
            raise InputError(f"{option} is inside the packet folder {root}; write the output "
                             "outside it (the packet holds its key and is replaced whole)", out)


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def write_ratings(result: ImportResult, ratings_path, raters_path=None) -> tuple[Path, Path]:
    """Write ratings.csv, raters.csv and rejects.csv atomically.

    The rejected responses go to ``rejects.csv`` beside the ratings (see :func:`output_paths`)
    even when there are none, so no earlier import's rejects are left beside these ratings.

    Parameters
    ----------
    result : ImportResult
        From :func:`import_results`.
    ratings_path : str or os.PathLike
        Destination of the ratings.
    raters_path : str or os.PathLike, optional
        Destination of the sessions table; default ``raters.csv`` beside the ratings.

    Returns
    -------
    (pathlib.Path, pathlib.Path)
        The ratings and raters paths written.

    Raises
    ------
    InputError
        Two of the three destinations are the same file.
    """
    ratings_path, raters_path, rejects_path = output_paths(ratings_path, raters_path)
    if raters_path.resolve() == ratings_path.resolve():
        raise InputError("ratings and raters would be the same file; name the ratings "
                         "file something other than raters.csv", ratings_path)
    if rejects_path.resolve() in (ratings_path.resolve(), raters_path.resolve()):
        raise InputError("rejects would overwrite the ratings or raters; name the ratings "
                         "file something other than rejects.csv", rejects_path)
    out = result.ratings.copy()
    out["played_to_end"] = out["played_to_end"].map(lambda v: "true" if v else "false")
    write_csv(out, ratings_path)
    write_csv(result.raters, raters_path)
    write_csv(result.rejects, rejects_path)
    return ratings_path, raters_path
