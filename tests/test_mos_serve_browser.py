"""The served page in headless Chromium: three raters to completion, one reloading midway.

Every answer goes to the server as it is given; ``import --db`` must then give the same
ratings as the JSON the page downloads for the same answers (the offline import path), and
no response the server sent may name a system (the packet leak check, over every byte).
"""
from __future__ import annotations

import json
import time

import pytest
from test_mos_packet_browser import _click, _do_trial, _eval, _wait
from test_mos_serve import LiveServer, build_small_packet
from test_reports_browser import CHROMIUM, DevToolsPipe, _errors

from wavebench.mos.analysis.ratings import import_documents, import_results, load_packet
from wavebench.mos.packet.validate import _leak_strings
from wavebench.mos.serve.db import StudyDB

pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
              pytest.mark.slow]
pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

from wavebench.mos.serve.app import Settings, create_app  # noqa: E402


class Recorder:
    """ASGI wrapper keeping every byte of every response (headers and body) the app sends."""

    def __init__(self, app):
        self.app, self.responses = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        record = {"path": scope["path"], "bytes": bytearray()}
        self.responses.append(record)

        async def keep(message):
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
                for name, value in message.get("headers", []):
                    record["bytes"] += name + b": " + value + b"\n"
            elif message["type"] == "http.response.body":
                record["bytes"] += message.get("body", b"")
            await send(message)

        await self.app(scope, receive, keep)


def _rater(browser, port, rater, downloads, reload_after=None):
    """One rater through the served page; returns the completion code shown."""
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target,
                                                     "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        browser.call(f"{domain}.enable", session=session)
    browser.call("Page.navigate", {"url": f"http://127.0.0.1:{port}/?rater={rater}"}, session)
    _click(browser, session, "#consent-agree")
    _click(browser, session, "#instructions-next")
    n = 0
    while _eval(browser, session, "!document.getElementById('q-device')"):
        _wait(browser, session, "!!document.querySelector('h2') || "
                                "!!document.getElementById('q-device')")
        if _eval(browser, session, "!!document.getElementById('q-device')"):
            break
        _do_trial(browser, session)
        n += 1
        if n == reload_after:
            _wait(browser, session, f"document.querySelector('progress') && "
                                    f"document.querySelector('progress').value === {n}")
            browser.call("Page.reload", {}, session)
            _wait(browser, session, f"document.querySelector('progress') && "
                                    f"document.querySelector('progress').value === {n}")
    _eval(browser, session, "document.getElementById('q-device').value = 'headphones'")
    _click(browser, session, "#questionnaire-next")
    _wait(browser, session, "!!document.getElementById('code')")
    code = _eval(browser, session, "document.getElementById('code').textContent")
    before = set(downloads.glob("*.json"))
    _click(browser, session, "#download")
    deadline = time.monotonic() + 10
    while set(downloads.glob("*.json")) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    errors = _errors([e for e in browser.events if e.get("sessionId") == session])
    browser.call("Target.closeTarget", {"targetId": target})
    return code, n, errors


def test_three_raters_through_the_served_page(tmp_path):
    out = build_small_packet(tmp_path)
    packet = load_packet(out)
    db = StudyDB(tmp_path / "study.sqlite", packet, create=True)
    app = Recorder(create_app(packet, db, Settings(rate_per_s=0)))
    server = LiveServer(app)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser = DevToolsPipe(tmp_path / "profile")
    try:
        browser.call("Browser.setDownloadBehavior", {"behavior": "allow",
                                                     "downloadPath": str(downloads)})
        shown = {r: _rater(browser, server.port, r, downloads, reload_after=3 if r == "r2"
                           else None) for r in ("r1", "r2", "r3")}
    finally:
        browser.close()
        server.close()
    files = sorted(downloads.glob("*.json"))
    assert len(files) == 3
    for rater, (code, n_trials, errors) in shown.items():
        assert errors == [], (rater, errors)  # no CSP violation, no script error
        doc = json.loads(next(f for f in files if f.name.endswith(f"_{rater}.json")).read_text())
        assert doc["completion_code"] == code  # the server's code is the page's own checksum
        assert n_trials == len(packet.manifest["lists"][doc["payload"]["list_id"]])
    assert {json.loads(f.read_text())["payload"]["list_id"] for f in files} == {"L01", "L02", "L03"}
    from_db = import_documents(db.results_documents(), packet)
    from_json = import_results(files, packet)
    db.close()
    assert len(from_json.ratings) == sum(n for _, n, _ in shown.values())
    assert from_db.ratings.equals(from_json.ratings)
    assert from_db.raters.drop(columns="code_ok").equals(from_json.raters.drop(columns="code_ok"))
    assert from_db.raters["code_ok"].all() and from_db.raters["completed"].all()
    # The packet's leak check over every byte the server sent to the browser.
    look, _ = _leak_strings(packet.key)
    needles = {t.lower().encode() for t in look} | {b"secret_sys"}
    assert len(app.responses) > 3 * 16
    for response in app.responses:
        data = bytes(response["bytes"]).lower()
        assert not [n for n in needles if n in data], response["path"]
    assert {r["path"] for r in app.responses} >= {"/", "/api/session", "/api/answers",
                                                  "/api/finish"}
