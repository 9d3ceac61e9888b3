"""The study database of ``mos serve``: SQLite in WAL mode, one row per answer, nothing lost.

Every write is one ``BEGIN IMMEDIATE`` transaction committed with ``synchronous=FULL`` before
the server answers the request, so an answer the browser saw acknowledged is on disk: it
survives a SIGKILL of the server (and, with FULL, a power cut) at any moment, and a server
restarted on the same file carries on. The schema is versioned (table ``schema_version``); a
file written by a newer schema is refused, an older one is migrated in place.

The answers table's primary key is (session, trial, stimulus): a trial is stored once. A
repeat of a stored trial with the same content is acknowledged again (a retry); one with other
content is refused and kept in ``replays`` (the first answer stands). One rater id has one
session: its secret token (stored as a sha256) is needed to post or resume.

:func:`results_documents` rebuilds each session as the results document the offline page
downloads, so ``mos import --db`` goes through :func:`~wavebench.mos.analysis.ratings.import_documents`
like the JSON files do.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from wavebench.mos.analysis.ratings import Packet, payload_checksum
from wavebench.mos.serve.assignment import choose_list, is_abandoned
from wavebench.mos.serve.schema import Refused
from wavebench_base.errors import InputError

SCHEMA_VERSION = 1
_SCHEMA = {1: """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE study (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    rater_id TEXT NOT NULL UNIQUE,
    list_id TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    platform TEXT NOT NULL DEFAULT '',
    study_id TEXT NOT NULL DEFAULT '',
    prolific_session_id TEXT NOT NULL DEFAULT '',
    started_at TEXT NOT NULL,
    last_seen REAL NOT NULL,
    completed INTEGER NOT NULL DEFAULT 0,
    finished_at TEXT NOT NULL DEFAULT '',
    finish_json TEXT,
    completion_code TEXT NOT NULL DEFAULT '',
    client_checksum TEXT NOT NULL DEFAULT ''
);
CREATE TABLE answers (
    session_id TEXT NOT NULL REFERENCES sessions(session_id),
    trial_id TEXT NOT NULL,
    stimulus_id TEXT NOT NULL,
    trial_index INTEGER NOT NULL,
    response_json TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (session_id, trial_id, stimulus_id)
);
CREATE TABLE replays (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    trial_id TEXT NOT NULL,
    received_at REAL NOT NULL,
    answers_json TEXT NOT NULL
);
"""}
#: Migrations from version N to N + 1 (SQL), applied in order when an older file is opened.
_MIGRATIONS: dict = {}
_RESULTS_FORMAT = "wavebench-mos-results"


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _canonical(answer: dict) -> str:
    """An answer as stored: compact JSON in the page's key order (the checksum keeps it)."""
    return json.dumps(answer, separators=(",", ":"), ensure_ascii=False)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


class StudyDB:
    """One study's SQLite file, for the server (writes) or for import and status (reads).

    Parameters
    ----------
    path : str or os.PathLike
    packet : Packet
        The packet being served; a file created for another packet is refused.
    create : bool
        Create the file when missing (``mos serve``); otherwise a missing file is an error.

    Raises
    ------
    InputError
        A missing file (without ``create``), a file that is not a study database, one of a
        newer schema, or one of another packet.
    """

    def __init__(self, path, packet: Packet, *, create: bool = False):
        self.path, self.packet = Path(path), packet
        if not create and not self.path.is_file():
            raise InputError("no study database here (mos serve --db creates it)", self.path)
        self._lock = threading.Lock()
        try:
            self.conn = sqlite3.connect(str(self.path), isolation_level=None,
                                        check_same_thread=False, timeout=30)
            self.conn.row_factory = sqlite3.Row
            mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._prepare(create)
        except sqlite3.DatabaseError as err:
            raise InputError(f"not a readable study database ({err})", self.path) from None
        if mode.lower() != "wal":
            raise InputError(f"cannot use WAL mode (journal mode {mode}); put the database "
                             "on a local disk", self.path)

    def close(self) -> None:
        self.conn.close()

    # -- schema ---------------------------------------------------------------------------
    def _prepare(self, create: bool) -> None:
        with self._write():
            tables = {r[0] for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                if not create:
                    raise InputError("empty database, not a study of mos serve", self.path)
                _run_script(self.conn, _SCHEMA[SCHEMA_VERSION])
                self.conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
                self.conn.executemany("INSERT INTO study VALUES (?, ?)", [
                    ("packet_id", self.packet.packet_id), ("created_at", _iso(time.time()))])
            if "schema_version" not in tables and tables:
                raise InputError("not a study database of mos serve (no schema_version "
                                 "table)", self.path)
            version = self.conn.execute("SELECT version FROM schema_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise InputError(f"schema version {version} is newer than this wavebench "
                                 f"reads ({SCHEMA_VERSION}); upgrade wavebench", self.path)
            for v in range(version, SCHEMA_VERSION):
                _run_script(self.conn, _MIGRATIONS[v])
                self.conn.execute("UPDATE schema_version SET version = ?", (v + 1,))
            row = self.conn.execute("SELECT value FROM study WHERE name = 'packet_id'").fetchone()
            if row[0] != self.packet.packet_id:
                raise InputError(f"database is of packet {row[0]}, not {self.packet.packet_id}; "
                                 "use another --db for another packet", self.path)

    class _Tx:
        def __init__(self, db):
            self.db = db

        def __enter__(self):
            self.db._lock.acquire()
            try:
                self.db.conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.db._lock.release()
                raise

        def __exit__(self, kind, value, tb):
            try:
                self.db.conn.execute("COMMIT" if kind is None else "ROLLBACK")
            finally:
                self.db._lock.release()

    def _write(self):
        """A write transaction: committed (and fsynced) on leaving the block, else rolled back."""
        return self._Tx(self)

    # -- sessions -------------------------------------------------------------------------
    def start_session(self, ident: dict, token: str | None, *, now: float,
                      timeout_s: float) -> tuple[dict, bool, list]:
        """Assign a new rater a list, or resume a returning rater's session.

        The secret is made by the browser and sent with the first request, so a retry of a
        request whose answer was lost (a dropped connection, a server killed after the
        commit) resumes the same session instead of locking the rater out.

        Parameters
        ----------
        ident : dict
            ``rater_id``, ``study_id``, ``prolific_session_id``, ``platform`` (checked by
            :func:`wavebench.mos.serve.schema.identity`).
        token : str or None
            The rater's secret (its sha256 is stored); needed to start and to resume.
        now, timeout_s : float
            The clock and the abandonment timeout (see :func:`~.assignment.choose_list`).

        Returns
        -------
        (dict, bool, list)
            The session row, whether it is new, and the answers stored so far in list order.

        Raises
        ------
        Refused
            401: no token; 403: the rater id has a session and the token is not its secret.
        """
        if token is None:
            raise Refused(401, "no session secret sent (Authorization: Bearer <token>)")
        with self._write():
            row = self.conn.execute("SELECT * FROM sessions WHERE rater_id = ?",
                                    (ident["rater_id"],)).fetchone()
            if row is not None:
                if not hmac.compare_digest(_sha(token), row["token_sha256"]):
                    raise Refused(403, "this rater id already has a session, and this browser "
                                  "does not hold its secret; continue in the browser where it "
                                  "started")
                self.conn.execute("UPDATE sessions SET last_seen = ? WHERE session_id = ?",
                                  (now, row["session_id"]))
                return dict(row), False, self._answers(row["session_id"])
            lists = list(self.packet.manifest["lists"])
            held = self.conn.execute("SELECT list_id, completed, last_seen FROM sessions")
            list_id = choose_list(lists, [(r[0], bool(r[1]), r[2]) for r in held], now,
                                  timeout_s)
            session_id = f"{list_id}-{ident['rater_id']}-{_base36(int(now * 1000))}"
            self.conn.execute(
                "INSERT INTO sessions (session_id, rater_id, list_id, token_sha256, platform, "
                "study_id, prolific_session_id, started_at, last_seen) VALUES (?,?,?,?,?,?,?,?,?)",
                (session_id, ident["rater_id"], list_id, _sha(token), ident["platform"],
                 ident["study_id"], ident["prolific_session_id"], _iso(now), now))
            row = self.conn.execute("SELECT * FROM sessions WHERE session_id = ?",
                                    (session_id,)).fetchone()
            return dict(row), True, []

    def authorize(self, session_id: str, token: str | None) -> dict:
        """The session ``session_id`` if ``token`` is its secret; else :class:`Refused` (403).

        The token's sha256 is compared in constant time; an unknown session gets the same
        answer as a wrong token, so ids cannot be probed.
        """
        with self._lock:
            row = self.conn.execute("SELECT * FROM sessions WHERE session_id = ?",
                                    (session_id,)).fetchone()
        wanted = row["token_sha256"] if row is not None else _sha(secrets.token_urlsafe(32))
        if token is None or not hmac.compare_digest(_sha(token), wanted) or row is None:
            raise Refused(403, "not this session's secret; open the study from your own link")
        return dict(row)

    def _answers(self, session_id: str) -> list:
        rows = self.conn.execute(
            "SELECT response_json FROM answers WHERE session_id = ? "
            "ORDER BY trial_index, rowid", (session_id,))
        return [json.loads(r[0]) for r in rows]

    def record_answers(self, session: dict, answers: list, *, now: float) -> str:
        """Store the answers of one trial once; return ``"stored"`` or ``"duplicate"``.

        Raises
        ------
        Refused
            409 when the trial is already stored with other content: the first answer
            stands and this attempt is kept in the ``replays`` table.
        """
        sid, trial_id = session["session_id"], answers[0]["trial_id"]
        texts = {a["stimulus_id"]: _canonical(a) for a in answers}
        with self._write():
            stored = dict(self.conn.execute(
                "SELECT stimulus_id, response_json FROM answers WHERE session_id = ? AND "
                "trial_id = ?", (sid, trial_id)).fetchall())
            self.conn.execute("UPDATE sessions SET last_seen = ? WHERE session_id = ?",
                              (now, sid))
            if stored == texts:
                return "duplicate"
            if stored:  # logged in this transaction, refused after it commits
                self.conn.execute(
                    "INSERT INTO replays (session_id, trial_id, received_at, answers_json) "
                    "VALUES (?, ?, ?, ?)", (sid, trial_id, now, json.dumps(answers)))
            else:
                self.conn.executemany(
                    "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?)",
                    [(sid, trial_id, a["stimulus_id"], a["trial_index"],
                      texts[a["stimulus_id"]], now) for a in answers])
        if stored:
            raise Refused(409, "this trial is already answered; the first answer stands (this "
                          "attempt was logged)")
        return "stored"

    def finish(self, session: dict, meta: dict, client_checksum: str, *,
               now: float) -> tuple[str, bool]:
        """Mark a session complete; return its completion code and whether the page agrees.

        The code is the first 8 hex digits of the checksum of the session rebuilt from the
        database (as the offline page's code is of its own payload); when the page's checksum
        of its copy is the same, the server holds exactly what the rater answered. Finishing
        again returns the first code.

        Raises
        ------
        Refused
            409 listing the trials of the list not yet stored (the page sends them again).
        """
        sid = session["session_id"]
        with self._write():
            row = self.conn.execute("SELECT * FROM sessions WHERE session_id = ?",
                                    (sid,)).fetchone()
            if row["completed"]:
                code = row["completion_code"]
                return code, row["client_checksum"][:8] == code
            have = {r[0] for r in self.conn.execute(
                "SELECT DISTINCT trial_id FROM answers WHERE session_id = ?", (sid,))}
            wanted = [t["trial_id"] for t in self.packet.manifest["lists"][row["list_id"]]]
            missing = [t for t in wanted if t not in have]
            if missing:
                raise Missing(missing)
            meta = dict(meta, completed=True)
            self.conn.execute(
                "UPDATE sessions SET completed = 1, finished_at = ?, finish_json = ?, "
                "last_seen = ?, client_checksum = ? WHERE session_id = ?",
                (meta["finished_at"], json.dumps(meta, ensure_ascii=False), now,
                 client_checksum, sid))
            row = self.conn.execute("SELECT * FROM sessions WHERE session_id = ?",
                                    (sid,)).fetchone()
            checksum = self._document(dict(row))[1]["checksum"]
            self.conn.execute("UPDATE sessions SET completion_code = ? WHERE session_id = ?",
                              (checksum[:8], sid))
        return checksum[:8], checksum == client_checksum

    # -- reading --------------------------------------------------------------------------
    def _document(self, row: dict) -> tuple[Path, dict]:
        """A session as the results document the page downloads (FORMAT.md)."""
        meta = json.loads(row["finish_json"]) if row["finish_json"] else {
            "started_at": row["started_at"], "finished_at": "", "completed": False,
            "user_agent": "", "audio_context_rate": None, "questionnaire": {},
            "platform": row["platform"]}
        # The page's key order (buildResult), the served page adding platform at the end.
        payload = {"packet_id": self.packet.packet_id, "list_id": row["list_id"],
                   "rater_id": row["rater_id"], "session_id": row["session_id"],
                   "method": self.packet.method, "started_at": meta["started_at"],
                   "finished_at": meta["finished_at"], "completed": bool(row["completed"]),
                   "user_agent": meta["user_agent"],
                   "audio_context_rate": meta["audio_context_rate"],
                   "questionnaire": meta["questionnaire"],
                   "responses": self._answers(row["session_id"]), "platform": meta["platform"]}
        checksum = payload_checksum(payload)
        return (Path(f"{self.path}#{row['session_id']}"),
                {"format": _RESULTS_FORMAT, "version": 1, "payload": payload,
                 "checksum": checksum, "completion_code": row["completion_code"]})

    def sessions(self) -> list:
        """Every session row, in the order they started."""
        with self._lock:
            return [dict(r) for r in self.conn.execute(
                "SELECT s.*, (SELECT COUNT(DISTINCT trial_id) FROM answers a WHERE "
                "a.session_id = s.session_id) AS n_trials FROM sessions s ORDER BY rowid")]

    def results_documents(self) -> list:
        """Each session with at least one answer as a results document: (label, dict)."""
        with self._lock:
            self.conn.execute("BEGIN")  # one snapshot for every session
            try:
                rows = [dict(r) for r in self.conn.execute(
                    "SELECT * FROM sessions WHERE session_id IN (SELECT session_id FROM "
                    "answers) ORDER BY rowid")]
                return [self._document(row) for row in rows]
            finally:
                self.conn.execute("COMMIT")

    def replays(self) -> list:
        """The refused replays: (session_id, trial_id, received_at, answers_json)."""
        with self._lock:
            return [tuple(r) for r in self.conn.execute(
                "SELECT session_id, trial_id, received_at, answers_json FROM replays "
                "ORDER BY id")]

    def counts(self, *, now: float, timeout_s: float) -> dict:
        """Raters started, completed, abandoned and active."""
        rows = self.sessions()
        abandoned = sum(is_abandoned(bool(r["completed"]), r["last_seen"], now, timeout_s)
                        for r in rows)
        completed = sum(bool(r["completed"]) for r in rows)
        return {"started": len(rows), "completed": completed, "abandoned": abandoned,
                "active": len(rows) - completed - abandoned}


def _run_script(conn, script: str) -> None:
    """Run ``;``-separated statements inside the open transaction (executescript commits)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


class Missing(Refused):
    """409: the session cannot finish; ``missing`` lists the trial ids not stored yet."""

    def __init__(self, missing: list):
        self.missing = missing
        super().__init__(409, f"{len(missing)} trial(s) of the list not received yet; send "
                         "them, then finish again")
