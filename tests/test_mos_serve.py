"""``wavebench mos serve``: assignment, idempotent storage, import --db, status, hostile input.

The app runs in a real uvicorn server on 127.0.0.1 (a thread of this process); requests go
through ``http.client`` so that paths reach the server exactly as written (``..`` included).
"""
from __future__ import annotations

import hashlib
import http.client
import json
import secrets
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from test_mos_packet import make_systems

from wavebench.mos.analysis.ratings import (
    import_documents,
    import_results,
    load_packet,
    payload_checksum,
)
from wavebench.mos.packet.build import PacketOptions, build_packet
from wavebench.mos.serve.assignment import choose_list
from wavebench.mos.serve.db import SCHEMA_VERSION, StudyDB
from wavebench_base.errors import InputError, MissingDependencyError

uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

from wavebench.mos.serve.app import RateLimit, Settings, create_app  # noqa: E402

ADMIN = "admin-token-0123456789"
ANSWER = {"rating": 4, "training": 4}
CHOICE = {"trap": "3", "headphone": "2"}


# -- helpers shared with the process and browser tests ---------------------------------------
def build_small_packet(tmp: Path, n_items: int = 7, **options) -> Path:
    """A small ACR packet (three conditions, one named secret_sys) with the Woods check."""
    root = make_systems(tmp / "in", n_items=n_items)
    out = tmp / "out"
    opt = dict(reference=f"natural={root / 'natural_dir'}", votes=1, headphone_check="woods")
    opt.update(options)
    build_packet([f"secret_sys={root / 'secret_sys'}", f"sysb={root / 'sysb'}"], out,
                 PacketOptions(**opt))
    return out


def page_answers(manifest: dict, list_id: str, score: int = 4, t0: float = 1.7e9,
                 key: dict | None = None) -> list:
    """Each trial's answers as the page records them (same fields, same key order).

    Every rated trial gets ``score`` and every check the same choice; with the packet's
    ``key``, a careful rater instead: checks answered right, ratings spread over the scale.
    """
    out = []
    for position, trial in enumerate(manifest["lists"][list_id]):
        kind = trial["kind"]
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + position)) + ".123Z"
        value, choice = score, CHOICE.get(kind, "")
        if key is not None:
            expected = key["trials"][trial["trial_id"]].get("expected") or {}
            value = expected.get("min", 2 + position % 3)
            choice = expected.get("choice", choice)
        out.append([{"trial_index": position, "trial_id": trial["trial_id"], "kind": kind,
                     "page_id": "", "stimulus_id": trial["stimuli"][0], "stimulus_b_id": "",
                     "presented_first": "",
                     "score": value if kind in ("rating", "training") else None,
                     "choice": choice, "n_plays": 1, "played_to_end": True,
                     "listen_ms": 1500 + position, "response_ms": 2500 + position,
                     "answered_at": at, "comment": ""}])
    return out


def rating_trial(answers: list) -> list:
    """The first rating trial's answers."""
    return next(t for t in answers if t[0]["kind"] == "rating")


def finish_meta(platform: str = "wavebench-serve") -> dict:
    return {"started_at": "2024-01-01T10:00:00.000Z", "finished_at": "2024-01-01T10:20:00.000Z",
            "completed": True, "user_agent": "test-agent", "audio_context_rate": 48000,
            "questionnaire": {"device": "headphones", "native_language": "yes", "age_band": "",
                              "hearing_self_report": "", "comment": ""},
            "platform": platform}


def offline_document(packet_id, list_id, rater, session_id, answers, meta) -> dict:
    """The results JSON the offline page would download for the same answers."""
    payload = {"packet_id": packet_id, "list_id": list_id, "rater_id": rater,
               "session_id": session_id, "method": "acr", "started_at": meta["started_at"],
               "finished_at": meta["finished_at"], "completed": meta["completed"],
               "user_agent": meta["user_agent"], "audio_context_rate": meta["audio_context_rate"],
               "questionnaire": meta["questionnaire"],
               "responses": [a for trial in answers for a in trial], "platform": meta["platform"]}
    checksum = payload_checksum(payload)
    return {"format": "wavebench-mos-results", "version": 1, "payload": payload,
            "checksum": checksum, "completion_code": checksum[:8]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """Raw HTTP requests to 127.0.0.1:port (paths are sent exactly as given)."""

    def __init__(self, port: int):
        self.port = port

    def request(self, method, path, body=None, headers=None, timeout=10.0):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
            hdrs = dict(headers or {})
            if data is not None:
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw
        finally:
            conn.close()

    def post(self, path, body, token=None, headers=None):
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        status, _, raw = self.request("POST", path, body, hdrs)
        return status, json.loads(raw) if raw else {}

    def start(self, rater, token=None, **ident):
        """Start or resume ``rater``'s session with ``token`` (a new random secret if None);
        the reply carries the token used, for the requests that follow."""
        token = token or secrets.token_hex(16)
        body = {"rater_id": rater, "study_id": "", "prolific_session_id": "",
                "platform": "wavebench-serve", **ident}
        status, reply = self.post("/api/session", body, token)
        return status, dict(reply, token=token)


class LiveServer(Client):
    """The app served by uvicorn in a thread of the test process."""

    def __init__(self, app):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        super().__init__(sock.getsockname()[1])
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)

    def close(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def packet_dir(tmp_path_factory):
    return build_small_packet(tmp_path_factory.mktemp("serve"))


@pytest.fixture
def study(packet_dir, tmp_path):
    """(packet, db, live server) with the rate limit off."""
    packet = load_packet(packet_dir)
    db = StudyDB(tmp_path / "study.sqlite", packet, create=True)
    server = LiveServer(create_app(packet, db, Settings(admin_token=ADMIN, rate_per_s=0)))
    yield packet, db, server
    server.close()
    db.close()


def run_session(server, packet, rater, score=4, finish=True, careful=False):
    """One rater through the API: start, every trial, finish. Returns (start reply, answers)."""
    status, start = server.start(rater)
    assert status == 200, start
    answers = page_answers(packet.manifest, start["list_id"], score,
                           key=packet.key if careful else None)
    for trial in answers:
        status, reply = server.post("/api/answers", {"session_id": start["session_id"],
                                                     "answers": trial}, start["token"])
        assert (status, reply) == (200, {"status": "stored"})
    if finish:
        meta = finish_meta()
        doc = offline_document(packet.packet_id, start["list_id"], rater, start["session_id"],
                               answers, meta)
        status, reply = server.post("/api/finish", {"session_id": start["session_id"],
                                                    "meta": meta, "checksum": doc["checksum"]},
                                    start["token"])
        assert status == 200, reply
        assert reply == {"completion_code": doc["checksum"][:8], "redirect": None,
                         "checksum_match": True}
    return start, answers


def db_rows(db_path) -> list:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT session_id, trial_id, stimulus_id, response_json "
                            "FROM answers ORDER BY session_id, trial_index").fetchall()


# -- assignment --------------------------------------------------------------------------------
def test_choose_list_fills_evenly_and_abandoned_sessions_free_their_list():
    lists = ["L01", "L02", "L03"]
    sessions = []
    for _ in range(7):
        sessions.append((choose_list(lists, sessions, now=0.0, timeout_s=60), False, 0.0))
    counts = [sum(s[0] == k for s in sessions) for k in lists]
    assert counts == [3, 2, 2]
    # at t=100 the unfinished sessions are abandoned except the one just seen: L02 and L03 are
    # free, L01 still holds a completed and a live session
    sessions = [("L01", True, 0.0), ("L01", False, 90.0), ("L02", False, 0.0),
                ("L03", False, 0.0), ("L03", False, 0.0)]
    assert choose_list(lists, sessions, now=100.0, timeout_s=60) == "L02"


def test_new_raters_spread_over_lists_and_a_returning_rater_resumes(study):
    packet, db, server = study
    starts = [server.start(f"r{k}")[1] for k in range(6)]
    assert sorted(s["list_id"] for s in starts) == ["L01", "L01", "L02", "L02", "L03", "L03"]
    first = starts[0]
    answers = page_answers(packet.manifest, first["list_id"])
    for trial in answers[:3]:
        assert server.post("/api/answers", {"session_id": first["session_id"],
                                            "answers": trial}, first["token"])[0] == 200
    status, again = server.start("r0", token=first["token"])
    assert status == 200 and first["new"] and not again["new"]
    assert (again["session_id"], again["list_id"]) == (first["session_id"], first["list_id"])
    assert again["responses"] == [a for trial in answers[:3] for a in trial]


def test_abandoned_session_frees_its_list_and_its_rater_still_resumes(packet_dir, tmp_path):
    packet = load_packet(packet_dir)
    db = StudyDB(tmp_path / "s.sqlite", packet, create=True)
    ident = dict(study_id="", prolific_session_id="", platform="")
    rows = [db.start_session(dict(ident, rater_id=f"r{k}"), f"secret-{k}", now=0.0,
                             timeout_s=60) for k in range(3)]
    assert sorted(r[0]["list_id"] for r in rows) == ["L01", "L02", "L03"]
    # r1 keeps working, r0 and r2 go silent; at t=120 the next rater gets r0's list (L01)
    db.start_session(dict(ident, rater_id="r1"), "secret-1", now=100.0, timeout_s=60)
    new = db.start_session(dict(ident, rater_id="r3"), "secret-3", now=120.0, timeout_s=60)[0]
    assert new["list_id"] == "L01"
    back = db.start_session(dict(ident, rater_id="r0"), "secret-0", now=130.0, timeout_s=60)
    assert back[0]["session_id"] == rows[0][0]["session_id"] and back[1] is False
    assert db.counts(now=130.0, timeout_s=60) == {"started": 4, "completed": 0,
                                                  "abandoned": 1, "active": 3}
    db.close()


# -- storage and import ------------------------------------------------------------------------
def test_every_kind_is_stored_once_and_import_db_equals_the_json_import(study, tmp_path):
    packet, db, server = study
    kinds = {t["kind"] for t in packet.manifest["lists"]["L01"]}
    assert kinds == {"calibration", "headphone", "training", "rating", "trap"}
    done = [run_session(server, packet, f"rater{k}", score=3 + k % 2) for k in range(3)]
    partial, _ = run_session(server, packet, "quitter", finish=False)
    rows = db_rows(db.path)
    n_trials = sum(len(packet.manifest["lists"][s["list_id"]]) for s, _ in done)
    assert len(rows) == n_trials + len(packet.manifest["lists"][partial["list_id"]])
    assert len({r[:3] for r in rows}) == len(rows)
    # The offline path: the same answers as results files the page would have downloaded.
    files = []
    for start, answers in done:
        doc = offline_document(packet.packet_id, start["list_id"], start["session_id"].split("-")[1],
                               start["session_id"], answers, finish_meta())
        path = tmp_path / f"{start['session_id']}.json"
        path.write_text(json.dumps(doc))
        files.append(path)
    from_json = import_results(files, packet)
    from_db = import_documents(db.results_documents(), packet)
    done_ids = {s["session_id"] for s, _ in done}
    db_ratings = from_db.ratings[from_db.ratings["session_id"].isin(done_ids)]
    assert db_ratings.reset_index(drop=True).equals(from_json.ratings)
    assert from_db.raters.set_index("session_id").loc[sorted(done_ids), "code_ok"].all()
    incomplete = from_db.raters.set_index("session_id").loc[partial["session_id"]]
    assert not incomplete["completed"] and incomplete["completion_code"] == ""
    assert set(from_db.ratings["trial_type"]) == {"calibration", "headphone", "training",
                                                  "rating", "gold_high", "gold_low", "trap"}


def test_cli_import_db_writes_the_same_ratings_csv_as_json_import(study, tmp_path):
    from click.testing import CliRunner

    from wavebench.cli import cli

    packet, db, server = study
    start, answers = run_session(server, packet, "solo")
    doc = offline_document(packet.packet_id, start["list_id"], "solo", start["session_id"],
                           answers, finish_meta())
    (tmp_path / "solo.json").write_text(json.dumps(doc))
    runner = CliRunner()
    root = str(packet.root)
    a = runner.invoke(cli, ["mos", "import", "--db", str(db.path), "--packet", root, "-o",
                            str(tmp_path / "db" / "ratings.csv")])
    b = runner.invoke(cli, ["mos", "import", str(tmp_path / "solo.json"), "--packet", root,
                            "-o", str(tmp_path / "js" / "ratings.csv")])
    assert a.exit_code == 0 and b.exit_code == 0, (a.output, b.output)
    assert (tmp_path / "db" / "ratings.csv").read_bytes() == \
        (tmp_path / "js" / "ratings.csv").read_bytes()
    both = runner.invoke(cli, ["mos", "import", str(tmp_path / "solo.json"), "--db",
                               str(db.path), "--packet", root, "-o", str(tmp_path / "x.csv")])
    assert both.exit_code == 2 and "not both" in both.output
    missing = runner.invoke(cli, ["mos", "import", "--db", str(tmp_path / "none.sqlite"),
                                  "--packet", root, "-o", str(tmp_path / "x.csv")])
    assert missing.exit_code == 1 and "no study database here" in str(missing.exception)


def test_retry_is_acknowledged_once_and_changed_replay_is_refused_and_logged(study):
    packet, db, server = study
    status, start = server.start("retrier")
    trial = rating_trial(page_answers(packet.manifest, start["list_id"]))
    body = {"session_id": start["session_id"], "answers": trial}
    assert server.post("/api/answers", body, start["token"]) == (200, {"status": "stored"})
    assert server.post("/api/answers", body, start["token"]) == (200, {"status": "duplicate"})
    changed = {"session_id": start["session_id"], "answers": [dict(trial[0], score=1)]}
    status, reply = server.post("/api/answers", changed, start["token"])
    assert status == 409 and "first answer stands" in reply["error"]
    rows = db_rows(db.path)
    assert len(rows) == 1 and json.loads(rows[0][3])["score"] == 4
    logged = db.replays()
    assert len(logged) == 1 and json.loads(logged[0][3])[0]["score"] == 1


def test_finish_lists_missing_trials_and_redirects_with_the_code(packet_dir, tmp_path):
    packet = load_packet(packet_dir)
    db = StudyDB(tmp_path / "s.sqlite", packet, create=True)
    url = "https://app.example.org/complete?cc=C0DE&code={code}"
    server = LiveServer(create_app(packet, db, Settings(completion_url=url, rate_per_s=0)))
    try:
        status, start = server.start("r1")
        answers = page_answers(packet.manifest, start["list_id"])
        for trial in answers[:-2]:
            server.post("/api/answers", {"session_id": start["session_id"], "answers": trial},
                        start["token"])
        meta = finish_meta()
        body = {"session_id": start["session_id"], "meta": meta, "checksum": "0" * 64}
        status, reply = server.post("/api/finish", body, start["token"])
        assert status == 409 and reply["missing"] == [t[0]["trial_id"] for t in answers[-2:]]
        for trial in answers[-2:]:
            server.post("/api/answers", {"session_id": start["session_id"], "answers": trial},
                        start["token"])
        status, reply = server.post("/api/finish", body, start["token"])
        assert status == 200 and not reply["checksum_match"]  # the page's checksum was wrong
        code = reply["completion_code"]
        assert reply["redirect"] == f"https://app.example.org/complete?cc=C0DE&code={code}"
        assert server.start("r1", token=start["token"])[1]["completion_code"] == code
    finally:
        server.close()
        db.close()


# -- hostile input -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", [
    "/../private/key.json", "/stimuli/../../private/key.json", "/%2e%2e/private/key.json",
    "/stimuli/..%2f..%2fprivate%2fkey.json", "/private/key.json", "/packet/../private/design.csv",
    "//etc/passwd", "/manifest.json/../../private/key.json", "/stimuli/",
])
def test_path_traversal_and_private_files_are_refused(study, path):
    packet, db, server = study
    status, _, body = server.request("GET", path)
    assert status == 404
    assert packet.key["packet_secret"].encode() not in body


def test_only_the_pages_files_are_served(study):
    packet, db, server = study
    audio = sorted(set(packet.manifest["audio"].values()))
    for rel in audio[:3] + ["instructions.html"]:
        status, headers, body = server.request("GET", "/" + rel)
        assert status == 200 and body == (packet.root / "packet" / rel).read_bytes()
    assert server.request("GET", "/manifest.json")[0] == 404
    assert server.request("GET", "/exports/trials.csv")[0] == 404


def test_oversized_bodies_are_refused(study):
    packet, db, server = study
    big = json.dumps({"rater_id": "x" * 70_000}).encode()
    status, _, raw = server.request("POST", "/api/session", big)
    assert status == 413 and b"larger than" in raw
    # no Content-Length (chunked): counted as it arrives
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/api/session", body=iter([big[:40_000], big[40_000:]]),
                 headers={"Content-Type": "application/json"}, encode_chunked=True)
    assert conn.getresponse().status == 413
    conn.close()


@pytest.mark.parametrize("body,fragment", [
    (b"{not json", "not valid JSON"), (b"[1, 2]", "must be a JSON object"),
    (b"\xff\xfe", "not UTF-8"), (b'{"a": 1' + b"]" * 10, "not valid JSON"),
])
def test_malformed_json_is_refused(study, body, fragment):
    packet, db, server = study
    status, _, raw = server.request("POST", "/api/session", body)
    assert status == 400 and fragment in json.loads(raw)["error"]


def test_schema_violations_are_refused(study):
    packet, db, server = study
    status, start = server.start("typed")
    trial = rating_trial(page_answers(packet.manifest, start["list_id"]))
    post = lambda answers: server.post(  # noqa: E731
        "/api/answers", {"session_id": start["session_id"], "answers": answers}, start["token"])
    cases = [([dict(trial[0], score=9)], "outside the scale"),
             ([dict(trial[0], score=3.5)], "not on the scale"),
             ([dict(trial[0], score=None)], "missing score"),
             ([dict(trial[0], n_plays=True)], "n_plays has the wrong type"),
             ([dict(trial[0], extra=1)], "unknown field 'extra'"),
             ([dict(trial[0], trial_index=0)], "do not match"),
             ([dict(trial[0], stimulus_id="zzzzzzzzzz")], "not one of the trial's"),
             ([dict(trial[0], answered_at="yesterday")], "ISO-8601"),
             ([], "1 to 64 answers")]
    for answers, fragment in cases:
        status, reply = post(answers)
        assert status == 422 and fragment in reply["error"], (fragment, reply)
    assert server.request("POST", "/api/session", b"{}", {"Content-Type": "text/plain"})[0] == 415
    assert db_rows(db.path) == []


def test_a_trial_of_another_raters_list_is_refused(study):
    packet, db, server = study
    _, a = server.start("ra")
    _, b = server.start("rb")
    assert a["list_id"] != b["list_id"]
    foreign = rating_trial(page_answers(packet.manifest, b["list_id"]))
    status, reply = server.post("/api/answers", {"session_id": a["session_id"],
                                                 "answers": foreign}, a["token"])
    assert status == 422 and "not in this rater's list" in reply["error"]
    assert db_rows(db.path) == []


def test_another_raters_id_or_session_without_their_secret_is_refused(study):
    packet, db, server = study
    _, victim = server.start("victim")
    _, other = server.start("other")
    assert server.start("victim")[0] == 403                        # their id, a new secret
    assert server.start("victim", token=other["token"])[0] == 403  # their id, my secret
    assert server.post("/api/session", {"rater_id": "victim", "study_id": "",
                                        "prolific_session_id": "", "platform": ""})[0] == 401
    trial = rating_trial(page_answers(packet.manifest, victim["list_id"]))
    body = {"session_id": victim["session_id"], "answers": trial}
    assert server.post("/api/answers", body, other["token"])[0] == 403
    assert server.post("/api/answers", body)[0] == 403
    assert server.post("/api/answers", body, "x" * 43)[0] == 403
    status, reply = server.post("/api/answers", body, headers={"Authorization": "Bearer <x>"})
    assert status == 401
    finish = {"session_id": victim["session_id"], "meta": finish_meta(), "checksum": ""}
    assert server.post("/api/finish", finish, other["token"])[0] == 403
    assert db_rows(db.path) == []


def test_admin_page_needs_the_token(study):
    import base64

    packet, db, server = study
    run_session(server, packet, "done1")
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                    {"Authorization": "Bearer " + ADMIN[:-1]}, {"Authorization": "Token " + ADMIN}):
        status, hdrs, body = server.request("GET", "/admin", headers=headers)
        assert status == 401 and b"secret_sys" not in body
        assert server.request("GET", "/admin/status.json", headers=headers)[0] == 401
    status, _, body = server.request("GET", "/admin/status.json",
                                     headers={"Authorization": "Bearer " + ADMIN})
    status_json = json.loads(body)
    assert status == 200 and status_json["raters"]["completed"] == 1
    basic = base64.b64encode(f"me:{ADMIN}".encode()).decode()
    status, _, page = server.request("GET", "/admin", headers={"Authorization": "Basic " + basic})
    assert status == 200 and b"1 completed" in page


def test_rate_limit_per_client(packet_dir, tmp_path):
    packet = load_packet(packet_dir)
    db = StudyDB(tmp_path / "s.sqlite", packet, create=True)
    server = LiveServer(create_app(packet, db, Settings(rate_per_s=1, burst=5)))
    try:
        codes = [server.post("/api/session", b"{}")[0] for _ in range(8)]
        assert codes[:5] == [422] * 5 and codes[5:] == [429] * 3
        # another client (through the local proxy: X-Forwarded-For) has its own bucket
        assert server.post("/api/session", b"{}", headers={"X-Forwarded-For": "10.0.0.9"})[0] \
            == 422
    finally:
        server.close()
        db.close()
    clock = [0.0]
    limit = RateLimit(2.0, 2.0, clock=lambda: clock[0])
    assert [limit.allow("a") for _ in range(3)] == [True, True, False]
    clock[0] = 0.5
    assert limit.allow("a") and not limit.allow("a")


def test_page_has_a_strict_csp_and_every_response_is_hardened(study):
    import base64

    packet, db, server = study
    status, headers, body = server.request("GET", "/?rater=x")
    csp = headers["content-security-policy"]
    assert status == 200 and "unsafe-inline" not in csp and "default-src 'none'" in csp
    script = body.decode().split("<script>")[1].split("</script>")[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in csp
    assert "id=\"wb-served\"" in body.decode() and "offlineFinishTrial" in script
    offline = (packet.root / "packet" / "index.html").read_text()
    assert "wb-served" not in offline and "offlineFinishTrial" not in offline
    for path in ("/", "/healthz", "/nothing", "/" + next(iter(packet.manifest["audio"].values()))):
        status, headers, _ = server.request("GET", path)
        assert headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in headers["content-security-policy"]
        assert headers["referrer-policy"] == "no-referrer"


def test_admin_token_is_compared_in_constant_time(monkeypatch, study):
    import hmac

    packet, db, server = study
    seen = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: seen.append((a, b)) or real(a, b))
    server.request("GET", "/admin", headers={"Authorization": "Bearer guess"})
    assert (b"guess", ADMIN.encode()) in seen


# -- database ----------------------------------------------------------------------------------
def test_database_settings_schema_version_and_packet_are_checked(packet_dir, tmp_path):
    packet = load_packet(packet_dir)
    path = tmp_path / "s.sqlite"
    db = StudyDB(path, packet, create=True)
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    db.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        conn.execute("UPDATE study SET value = 'pother' WHERE name = 'packet_id'")
    with pytest.raises(InputError, match="of packet pother, not"):
        StudyDB(path, packet)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(InputError, match="newer than this wavebench reads"):
        StudyDB(path, packet)
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputError, match="not a readable study database"):
        StudyDB(tmp_path / "junk.sqlite", packet)


def test_status_counts_votes_against_the_target_and_screening(study):
    from click.testing import CliRunner

    from wavebench.cli import cli

    packet, db, server = study
    for k in range(3):
        run_session(server, packet, f"s{k}", careful=True)
    # a straight-liner who fails the trap and the headphone check
    status, bad = server.start("bad")
    for trial in page_answers(packet.manifest, bad["list_id"], score=5):
        if trial[0]["kind"] in ("trap", "headphone"):
            trial[0]["choice"] = "1"
        server.post("/api/answers", {"session_id": bad["session_id"], "answers": trial},
                    bad["token"])
    server.post("/api/finish", {"session_id": bad["session_id"], "meta": finish_meta(),
                                "checksum": ""}, bad["token"])
    server.start("idle")
    result = CliRunner().invoke(cli, ["mos", "status", "--db", str(db.path), "--packet",
                                      str(packet.root)])
    assert result.exit_code == 0, result.output
    assert "raters: 5 started, 4 completed, 0 abandoned, 1 active" in result.output
    assert "the rules would drop 1 of 4 completed sessions" in result.output
    assert "trap_failed 1" in result.output and "headphone_check 1" in result.output
    cells = [line.split("\t") for line in result.output.splitlines() if line.count("\t") == 3]
    rated = {(c[0], c[1]): int(c[3]) for c in cells[1:]}
    assert {c for _, c in rated} == {"natural", "secret_sys", "sysb"}
    assert sum(rated.values()) == sum(
        1 for lid in ("L01", "L02", "L03", "L01")  # the four completed sessions' lists
        for t in packet.manifest["lists"][lid] if packet.key["trials"][t["trial_id"]][
            "trial_type"] == "rating")


def test_missing_serve_extra_is_one_line(monkeypatch):
    import builtins

    from wavebench.mos.serve import app

    real = builtins.__import__

    def no_uvicorn(name, *args, **kwargs):
        if name == "uvicorn":
            raise ImportError("No module named 'uvicorn'", name="uvicorn")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvicorn)
    with pytest.raises(MissingDependencyError, match=r"pip install 'wavebench\[serve\]'"):
        app.require_serve_extra()


def test_serve_command_refuses_bad_options(packet_dir, tmp_path):
    from click.testing import CliRunner

    from wavebench.cli import cli

    runner = CliRunner()
    bad = runner.invoke(cli, ["mos", "serve", str(packet_dir), "--db", str(tmp_path / "s.db"),
                              "--completion-url", "javascript:alert(1)"])
    assert bad.exit_code == 1 and "must be an http(s) URL" in str(bad.exception)
    short = runner.invoke(cli, ["mos", "serve", str(packet_dir), "--db", str(tmp_path / "s.db"),
                                "--admin-token", "short"])
    assert short.exit_code == 1 and "at least 16 characters" in str(short.exception)
    assert not (tmp_path / "s.db").exists()
