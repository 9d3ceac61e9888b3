"""Listening-test ratings: the packet's key, import of the page's results JSON, ratings.csv.

``ratings.csv`` (MOS.md section 11) is long and blind: one row per judgement, no system names.
The key in ``private/`` unblinds it at analysis time, after its sha256 has been checked
against the commitment in the public ``manifest.json``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from reference_model.errors import InputError
from wavebench.mos.anonymize import sha256_file
from reports import write_csv

#: Columns of ratings.csv, in order (MOS.md section 11).
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
    """

    ratings: pd.DataFrame
    raters: pd.DataFrame
    notes: list = field(default_factory=list)


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise InputError(f"no {what} here" if not path.exists() else "not a file", path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{what} is not UTF-8 text", path) from None
    except json.JSONDecodeError as err:
        raise InputError(f"{what} is not valid JSON (truncated or edited?): {err.msg} at "
                         f"line {err.lineno} column {err.colno}", path) from None
    if not isinstance(data, dict):
        raise InputError(f"{what} must be a JSON object, got {type(data).__name__}", path)
    return data


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
        A missing or unreadable manifest or key, or a key whose sha256 differs from the
        manifest's ``key_commitment`` (a key from another packet or an edited key).
    """
    root = Path(packet_dir)
    if (root / "manifest.json").is_file() and not (root / "packet").is_dir():
        root = root.parent
    manifest_path, key_path = root / "packet" / "manifest.json", root / "private" / "key.json"
    if not root.is_dir():
        raise InputError("packet folder does not exist", root)
    manifest = _read_json(manifest_path, "packet manifest")
    for name in ("packet_id", "key_commitment", "lists"):
        if name not in manifest:
            raise InputError(f"manifest has no {name!r}; is this a wavebench packet?",
                             manifest_path)
    if not key_path.is_file():
        raise InputError("no private key here; import and analyze need the packet's private/ "
                         "folder", key_path)
    digest = sha256_file(key_path)
    if digest != manifest["key_commitment"]:
        raise InputError(f"key does not match the packet's key commitment (sha256 {digest[:12]}"
                         f"..., manifest commits to {str(manifest['key_commitment'])[:12]}...); "
                         "a key from another packet or an edited key", key_path)
    key = _read_json(key_path, "packet key")
    if key.get("packet_id") != manifest["packet_id"] or "stimuli" not in key \
            or "trials" not in key:
        raise InputError(f"key is for packet {key.get('packet_id')!r}, not "
                         f"{manifest['packet_id']!r}, or lacks stimuli/trials", key_path)
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


def _check_results(data: dict, path: Path, packet: Packet) -> dict:
    if data.get("format") != _RESULTS_FORMAT or not isinstance(data.get("payload"), dict):
        raise InputError(f"not a wavebench results file (format {data.get('format')!r}, "
                         f"expected {_RESULTS_FORMAT!r} with a payload)", path)
    payload = data["payload"]
    if payload_checksum(payload) != data.get("checksum"):
        raise InputError("checksum does not match the responses; the file was edited or "
                         "truncated", path)
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
    return payload


def _response_rows(payload: dict, path: Path, packet: Packet) -> list[dict]:
    trials, stimuli = packet.key["trials"], packet.key["stimuli"]
    rows = []
    for k, resp in enumerate(payload["responses"]):
        if not isinstance(resp, dict):
            raise InputError(f"response {k} is not an object", path)
        trial = trials.get(resp.get("trial_id"))
        if trial is None or trial.get("list_id") != payload["list_id"]:
            raise InputError(f"response {k}: trial {resp.get('trial_id')!r} is not in list "
                             f"{payload['list_id']} of this packet", path)
        for name in ("stimulus_id", "stimulus_b_id"):
            anon = resp.get(name) or ""
            if anon and anon not in stimuli:
                raise InputError(f"response {k}: unknown stimulus {anon!r}", path)
        row = {name: resp.get(name, "") for name in RATING_COLUMNS}
        row.update(packet_id=payload["packet_id"], rater_id=str(payload["rater_id"]),
                   session_id=str(payload["session_id"]), list_id=payload["list_id"],
                   trial_type=trial.get("trial_type", "rating"), method=packet.method)
        score = resp.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            raise InputError(f"response {k}: score {score!r} is not a number", path)
        row["score"] = np.nan if score is None else float(score)
        rows.append(row)
    return rows


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


def import_results(paths, packet: Packet) -> ImportResult:
    """Import the offline page's results files into the canonical ratings schema.

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
        with the same checksum is skipped with a note.

    Raises
    ------
    InputError
        No files, an unreadable, truncated or edited file (checksum mismatch), results of
        another packet, an unknown list, trial or stimulus, or two different files for the
        same session.
    """
    if not paths:
        raise InputError("no results files given")
    rows, sessions, seen, notes = [], [], {}, []
    for p in map(Path, paths):
        data = _read_json(p, "results file")
        payload = _check_results(data, p, packet)
        sid = str(payload["session_id"])
        if sid in seen:
            if seen[sid][1] == data["checksum"]:
                notes.append(f"{p}: same session {sid} as {seen[sid][0]}; skipped the duplicate")
                continue
            raise InputError(f"session {sid} also comes from {seen[sid][0]} with different "
                             "responses; remove one of them", p)
        seen[sid] = (p, data["checksum"])
        rows += _response_rows(payload, p, packet)
        sessions.append(_rater_row(data, payload))
    ratings = pd.DataFrame(rows, columns=list(RATING_COLUMNS))
    ratings = ratings.sort_values(["session_id", "trial_index"], kind="stable")
    raters = pd.DataFrame(sessions, columns=list(RATER_COLUMNS))
    return ImportResult(ratings.reset_index(drop=True), raters, notes)


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
        packet id other than the packet's, or trials/stimuli the key does not know (a key
        swapped for one of another packet).
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
        values = pd.to_numeric(df[name].replace("", "0"), errors="coerce")
        if values.isna().any():
            raise InputError(f"line {int(np.flatnonzero(values.isna())[0]) + 2}: {name} is "
                             "not an integer (truncated file?)", path)
        df[name] = values.astype(int)
    df["played_to_end"] = df["played_to_end"].str.lower().isin(["true", "1", "yes"])
    bad_type = sorted(set(df["trial_type"]) - set(TRIAL_TYPES))
    if bad_type:
        raise InputError(f"unknown trial_type {bad_type[0]!r}; expected one of "
                         f"{', '.join(TRIAL_TYPES)}", path)
    return df


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


def write_ratings(result: ImportResult, ratings_path, raters_path=None) -> tuple[Path, Path]:
    """Write ratings.csv and raters.csv atomically.

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
        The two paths written.
    """
    ratings_path = Path(ratings_path)
    raters_path = Path(raters_path) if raters_path else ratings_path.with_name("raters.csv")
    if raters_path.resolve() == ratings_path.resolve():
        raise InputError("ratings and raters would be the same file; name the ratings "
                         "file something other than raters.csv", ratings_path)
    out = result.ratings.copy()
    out["played_to_end"] = out["played_to_end"].map(lambda v: "true" if v else "false")
    write_csv(out, ratings_path)
    write_csv(result.raters, raters_path)
    return ratings_path, raters_path
