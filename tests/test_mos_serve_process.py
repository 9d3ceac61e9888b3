"""``mos serve`` as a separate process: a crash (SIGKILL) mid-study, and a load test.

Simulated raters (:mod:`wavebench.mos.serve.loadtest`) retry, post twice and drop connections;
afterwards the database must hold every acknowledged answer exactly once, as posted.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_mos_serve import build_small_packet, free_port

from wavebench.mos.analysis.ratings import load_packet
from wavebench.mos.serve.loadtest import run_load

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

REPO = Path(__file__).resolve().parents[1]


def start_server(packet_dir, db, port, *extra) -> subprocess.Popen:
    """``python -m wavebench mos serve`` on 127.0.0.1:port; returns once /healthz answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wavebench", "mos", "serve", str(packet_dir), "--db", str(db),
         "--port", str(port), "--admin-token", "t" * 20, *extra],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import http.client

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not answer /healthz within 60 s")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check_database(db, result, manifest):
    """Every acknowledged answer stored once, as posted; nothing else; every session done."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT session_id, trial_id, stimulus_id, response_json FROM "
                            "answers").fetchall()
        sessions = {r[0]: r[1:] for r in conn.execute(
            "SELECT session_id, completed, completion_code FROM sessions")}
    stored = {}
    for sid, trial_id, stimulus, text in rows:
        stored.setdefault((sid, trial_id), []).append(json.loads(text))
    acked = {(r.session_id, t): answers for r in result.raters for t, answers in r.acked.items()}
    assert len(rows) == sum(len(a) for a in acked.values())       # nothing extra, no duplicate
    assert all(stored.get(k) == v for k, v in acked.items())       # nothing lost or altered
    assert len(sessions) == len(result.raters)
    for r in result.raters:
        assert len(r.acked) == len(manifest["lists"][r.list_id])
        assert sessions[r.session_id] == (1, r.completion_code)
        assert r.completion_code == r.expected_code  # the server holds what the rater sent


def test_sigkill_mid_study_loses_nothing_and_raters_resume(tmp_path):
    out = build_small_packet(tmp_path)
    packet = load_packet(out)
    db, port = tmp_path / "study.sqlite", free_port()
    server = {"proc": start_server(out, db, port)}
    kills = []

    async def killer(raters):
        # SIGKILL twice, each once more answers were acknowledged, then restart on the same db
        for threshold in (40, 120):
            while sum(len(r.log.acked) for r in raters) < threshold:
                await asyncio.sleep(0.005)
            server["proc"].send_signal(signal.SIGKILL)
            server["proc"].wait()
            kills.append(sum(len(r.log.acked) for r in raters))
            await asyncio.sleep(0.3)
            server["proc"] = await asyncio.to_thread(start_server, out, db, port)

    try:
        result = run_load(port, packet.manifest, packet.key, n_raters=12, seed=1, p_drop=0.05,
                          p_repeat=0.1, timeout_s=120, on_ack=killer)
    finally:
        stop(server["proc"])
    assert len(kills) == 2 and kills[1] < result.answers_acked
    resumed = [ok for r in result.raters for ok in r.resumed_ok]
    assert resumed and all(resumed)  # every resume returned all acknowledged answers
    check_database(db, result, packet.manifest)


def test_load_200_raters_every_acknowledged_answer_stored_once(tmp_path, capsys):
    out = build_small_packet(tmp_path, n_items=19, trials_per_session=12, headphone_check="none")
    packet = load_packet(out)
    n_trials = {len(t) for t in packet.manifest["lists"].values()}
    assert n_trials == {19}  # calibration, 3 training, 12 rated, gold high and low, trap
    db, port = tmp_path / "study.sqlite", free_port()
    proc = start_server(out, db, port)
    try:
        result = run_load(port, packet.manifest, packet.key, n_raters=200, seed=2, p_drop=0.03,
                          p_repeat=0.05, timeout_s=240)
    finally:
        stop(proc)
    check_database(db, result, packet.manifest)
    assert result.errors.get("dropped", 0) > 0  # the drops did happen
    rate = result.answers_acked / result.wall_s
    with capsys.disabled():
        print(f"\nload: {len(result.raters)} raters x {n_trials.pop()} trials, "
              f"{result.answers_acked} answers in {result.wall_s:.1f} s = {rate:.0f} answers/s; "
              f"latency p50 {1000 * result.quantile(0.5):.1f} ms, p99 "
              f"{1000 * result.quantile(0.99):.1f} ms; {result.errors} "
              f"({os.cpu_count()} CPUs)")
