"""Simulated raters against a running ``mos serve``: retries, double posts, dropped connections.

Used by the load and crash tests and by ``benchmarks/bench_mos_serve.py``. Each simulated
rater starts a session, posts every trial of its list as the page records it, and finishes.
It retries on any failure (connection refused or reset, 429, 5xx), sometimes posts an answer
twice (a double click or a retry after a lost acknowledgement), and sometimes drops the
connection right after sending (the server may or may not have stored it). It remembers what
the server acknowledged, so a check afterwards can show every acknowledged answer is stored
exactly once. Plain asyncio sockets: no HTTP client package.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field

from wavebench.mos.analysis.ratings import payload_checksum


@dataclass
class RaterLog:
    """What one simulated rater saw: its session, the answers acknowledged, its code."""

    rater_id: str
    session_id: str = ""
    list_id: str = ""
    token: str = ""
    acked: dict = field(default_factory=dict)   # trial_id -> answers posted (list of dicts)
    resumed_ok: list = field(default_factory=list)  # per resume: acked answers all returned
    completion_code: str = ""
    expected_code: str = ""


@dataclass
class LoadResult:
    raters: list
    latencies_s: list
    wall_s: float
    answers_acked: int
    errors: dict

    def quantile(self, q: float) -> float:
        values = sorted(self.latencies_s)
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def _request(port: int, path: str, body: dict, token: str, client: str,
                   drop: bool = False, timeout: float = 20.0):
    """POST JSON; return (status, reply) or None when the connection was dropped."""
    data = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(data)}\r\nConnection: close\r\nX-Forwarded-For: {client}"
            + (f"\r\nAuthorization: Bearer {token}" if token else "") + "\r\n\r\n").encode()
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(head + data)
        await writer.drain()
        if drop:
            writer.transport.abort()  # gone before the answer: stored or not, we cannot know
            return None
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, reply = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next((int(line.split(b":")[1]) for line in lines[1:]
                   if line.lower().startswith(b"content-length:")), None)
    if length is None or len(reply) != length:  # cut off: the server died while answering
        raise ValueError("truncated response")
    return int(lines[0].split()[1]), json.loads(reply)


class Rater:
    def __init__(self, port, manifest, key, rater_id, rng, stats, *, p_drop, p_repeat,
                 deadline):
        self.port, self.manifest, self.key, self.rng = port, manifest, key, rng
        self.stats, self.p_drop, self.p_repeat, self.deadline = stats, p_drop, p_repeat, deadline
        self.log = RaterLog(rater_id)
        self.client = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        self.pending_resume = False  # a connection failed mid-session: resume before going on

    async def call(self, path, body, *, timed=False, drop_ok=True):
        """POST until a final answer (anything but a dropped connection, 429 or 5xx); after a
        connection failure the session is resumed first, as the page does after a reload."""
        delay = 0.05
        while True:
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"{self.log.rater_id}: past the load test's deadline")
            if self.pending_resume and not await self.resume_after_error():
                await asyncio.sleep(delay * (0.5 + self.rng.random()))
                delay = min(delay * 2, 1.0)
                continue
            drop = drop_ok and self.rng.random() < self.p_drop
            t0 = time.perf_counter()
            try:
                out = await _request(self.port, path, body, self.log.token, self.client, drop)
            except (OSError, asyncio.TimeoutError, ValueError, IndexError) as err:
                self.stats[type(err).__name__] = self.stats.get(type(err).__name__, 0) + 1
                out = None
                self.pending_resume = bool(self.log.session_id)
            if out is not None and timed:
                self.stats["latency"].append(time.perf_counter() - t0)
            if out is None:
                self.stats["dropped"] = self.stats.get("dropped", 0) + drop
            elif out[0] == 429 or out[0] >= 500:
                self.stats[str(out[0])] = self.stats.get(str(out[0]), 0) + 1
            else:
                return out
            await asyncio.sleep(delay * (0.5 + self.rng.random()))
            delay = min(delay * 2, 1.0)

    async def resume_after_error(self) -> bool:
        """After a connection failure (e.g. the server was killed): resume the session and
        check that everything acknowledged came back. False while the server cannot answer."""
        try:
            out = await _request(self.port, "/api/session", self.ident(), self.log.token,
                                 self.client)
        except (OSError, asyncio.TimeoutError, ValueError, IndexError):
            return False  # still down: the next attempt tries again
        if out[0] != 200:
            return False  # rate-limited or restarting: try again
        stored = {}
        for answer in out[1]["responses"]:
            stored.setdefault(answer["trial_id"], []).append(answer)
        self.log.resumed_ok.append(all(stored.get(t) == a for t, a in self.log.acked.items()))
        self.pending_resume = False
        return True

    def ident(self):
        return {"rater_id": self.log.rater_id, "study_id": "", "prolific_session_id": "",
                "platform": "loadtest"}

    def answers(self, position, trial):
        expected = self.key["trials"][trial["trial_id"]].get("expected") or {}
        kind = trial["kind"]
        score = expected.get("min", 1 + self.rng.randrange(5))
        choice = expected.get("choice", {"trap": "3", "headphone": "2"}.get(kind, ""))
        return [{"trial_index": position, "trial_id": trial["trial_id"], "kind": kind,
                 "page_id": "", "stimulus_id": trial["stimuli"][0], "stimulus_b_id": "",
                 "presented_first": "", "score": score if kind in ("rating", "training") else None,
                 "choice": choice, "n_plays": 1, "played_to_end": True,
                 "listen_ms": self.rng.randrange(1000, 3000),
                 "response_ms": self.rng.randrange(1000, 6000),
                 "answered_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                 "comment": ""}]

    async def run(self):
        self.log.token = "%032x" % self.rng.getrandbits(128)
        status, start = await self.call("/api/session", self.ident())
        if status != 200:
            raise RuntimeError(f"{self.log.rater_id}: session refused: {start}")
        self.log.session_id, self.log.list_id = start["session_id"], start["list_id"]
        responses = []
        for position, trial in enumerate(self.manifest["lists"][self.log.list_id]):
            answers = self.answers(position, trial)
            body = {"session_id": self.log.session_id, "answers": answers}
            tries = 2 if self.rng.random() < self.p_repeat else 1
            replies = await asyncio.gather(*[self.call("/api/answers", body, timed=True)
                                             for _ in range(tries)])
            for status, reply in replies:
                if status != 200 or reply.get("status") not in ("stored", "duplicate"):
                    raise RuntimeError(f"{self.log.rater_id}: answer refused: {reply}")
            self.log.acked[trial["trial_id"]] = answers
            responses += answers
        meta = {"started_at": "2024-01-01T00:00:00.000Z", "finished_at": "2024-01-01T00:10:00.000Z",
                "completed": True, "user_agent": "loadtest", "audio_context_rate": 48000,
                "questionnaire": {k: "" for k in ("device", "native_language", "age_band",
                                                  "hearing_self_report", "comment")},
                "platform": "loadtest"}
        payload = {"packet_id": self.manifest["packet_id"], "list_id": self.log.list_id,
                   "rater_id": self.log.rater_id, "session_id": self.log.session_id,
                   "method": self.manifest.get("method", "acr"), **{
                       k: meta[k] for k in ("started_at", "finished_at", "completed",
                                            "user_agent", "audio_context_rate", "questionnaire")},
                   "responses": responses, "platform": "loadtest"}
        checksum = payload_checksum(payload)
        status, reply = await self.call("/api/finish", {"session_id": self.log.session_id,
                                                        "meta": meta, "checksum": checksum})
        if status != 200:
            raise RuntimeError(f"{self.log.rater_id}: finish refused: {reply}")
        self.log.completion_code, self.log.expected_code = reply["completion_code"], checksum[:8]
        return self.log


async def _load(port, manifest, key, n_raters, seed, p_drop, p_repeat, timeout_s, on_ack):
    rng = random.Random(seed)
    stats = {"latency": []}
    deadline = time.monotonic() + timeout_s
    raters = [Rater(port, manifest, key, f"sim{k:04d}", random.Random(rng.random()), stats,
                    p_drop=p_drop, p_repeat=p_repeat, deadline=deadline)
              for k in range(n_raters)]
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(r.run()) for r in raters]
    watcher = asyncio.create_task(on_ack(raters)) if on_ack else None
    logs = await asyncio.gather(*tasks)
    if watcher:
        await watcher
    wall = time.perf_counter() - t0
    latencies = stats.pop("latency")
    return LoadResult(logs, latencies, wall, sum(len(r.acked) for r in logs), stats)


def run_load(port: int, manifest: dict, key: dict, *, n_raters: int = 200, seed: int = 0,
             p_drop: float = 0.03, p_repeat: float = 0.05, timeout_s: float = 300.0,
             on_ack=None) -> LoadResult:
    """Run ``n_raters`` simulated raters at once against the server on 127.0.0.1:``port``.

    Parameters
    ----------
    port : int
    manifest, key : dict
        The packet's manifest and key (the key gives each check's right answer).
    n_raters, seed : int
    p_drop, p_repeat : float
        Chance that a request's connection is dropped right after sending, and that an
        answer is posted twice at once.
    timeout_s : float
        Every rater must finish within this time, else TimeoutError.
    on_ack : async callable, optional
        Runs beside the raters with their list (the crash test kills the server from it).

    Returns
    -------
    LoadResult
    """
    return asyncio.run(_load(port, manifest, key, n_raters, seed, p_drop, p_repeat, timeout_s,
                             on_ack))
