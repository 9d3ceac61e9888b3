"""Open a rendered report in headless Chromium and check it displays with no errors, offline.

Chromium is driven over the DevTools protocol on ``--remote-debugging-pipe`` (NUL-separated
JSON on file descriptors 3 and 4) by the small client below, so no extra package is needed.
"""
from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image as PILImage

from reports import (
    Image,
    Section,
    compare_systems,
    make_results_table,
    plot_metric_distribution,
    plot_spectrogram_pair,
    plot_speed,
    render_html,
    summarize,
    write_html,
)

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
TIMEOUT_S = 30.0

# Reads, for the page, whether each image finished loading with real pixels.
_PAGE_FACTS = """JSON.stringify({
  title: document.title,
  images: Array.from(document.images).map(i => ({complete: i.complete, w: i.naturalWidth})),
  tables: document.querySelectorAll('table').length,
  sections: document.querySelectorAll('section').length,
  height: document.documentElement.scrollHeight})"""


class DevToolsPipe:
    """A minimal DevTools-protocol client for a Chromium started with a debugging pipe."""

    def __init__(self, user_data_dir: Path):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def child_fds():
            # Move the pipe ends above 9 first so placing them on 3 and 4 cannot clobber them.
            read_end = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        args = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--hide-scrollbars",
                f"--user-data-dir={user_data_dir}", "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, close_fds=False,
                                     preexec_fn=child_fds)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next_id = 0
        self._inbox: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buffer = b""
        while chunk := os.read(self._from_chrome, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._inbox.put(json.loads(message))
        self._inbox.put(None)  # the browser closed the pipe

    def _next_message(self, deadline: float) -> dict:
        message = self._inbox.get(timeout=max(0.01, deadline - time.monotonic()))
        if message is None:
            raise RuntimeError("Chromium closed the DevTools pipe")
        if "id" not in message:
            self.events.append(message)
        return message

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and return its result, keeping the events that arrive meanwhile."""
        self._next_id += 1
        command = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            command["sessionId"] = session
        os.write(self._to_chrome, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            message = self._next_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def wait_event(self, method: str, session: str) -> dict:
        """Return the first event ``method`` of ``session``, seen already or still to come."""
        seen = 0
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            seen = len(self.events)
            self._next_message(deadline)

    def close(self):
        try:
            self.call("Browser.close")
        except (RuntimeError, queue.Empty, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)


def _errors(events: list[dict]) -> list[str]:
    """Console errors, uncaught exceptions and browser error logs (failed loads, CSP)."""
    found = []
    for e in events:
        p = e.get("params", {})
        if e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            found.append(f"console: {p.get('args')}")
        elif e.get("method") == "Runtime.exceptionThrown":
            found.append(f"exception: {p.get('exceptionDetails', {}).get('text')}")
        elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
            found.append(f"log: {p['entry'].get('text')}")
    return found


def _open(browser: DevToolsPipe, url: str) -> tuple[dict, list[str], bytes]:
    """Load ``url`` in a fresh tab; return page facts, error messages and a full screenshot."""
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget",
                           {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        browser.call(f"{domain}.enable", session=session)
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)
    first_event = len(browser.events)
    browser.call("Page.navigate", {"url": url}, session)
    browser.wait_event("Page.loadEventFired", session)
    facts = json.loads(browser.call("Runtime.evaluate", {"expression": _PAGE_FACTS,
                                                         "returnByValue": True},
                                    session)["result"]["value"])
    shot = base64.b64decode(browser.call("Page.captureScreenshot",
                                         {"format": "png", "captureBeyondViewport": True},
                                         session)["data"])
    errors = _errors([e for e in browser.events[first_event:] if e.get("sessionId") == session])
    browser.call("Target.closeTarget", {"targetId": target})
    return facts, errors, shot


@pytest.fixture(scope="module")
def report_page() -> str:
    """A report with every kind of section: text, each table, each kind of figure."""
    rng = np.random.default_rng(3)
    rows = [{"system": s, "utterance": f"u{u}", "metric": m, "value": float(v)}
            for s, shift in (("base", 0.0), ("new", -0.5))
            for u in range(12)
            for m, v in (("mcd", 5.0 + shift + rng.normal(0, 0.4)),
                         ("stoi", 0.8 + rng.normal(0, 0.05)))]
    table = make_results_table(rows, {"run": "browser-test"})
    directions = {"mcd": False, "stoi": True}
    speed = pd.DataFrame({"device": ["cpu"] * 4, "sampler": ["naive", "naive", "cached", "cached"],
                          "batch": [1, 8, 1, 8], "samples_per_s": [60.0, 400.0, 3e3, 2e4]})
    t = np.arange(8000) / 8000
    wave = np.sin(2 * np.pi * 300 * t) * np.exp(-3 * t)
    sections = [
        Section("About", text="Synthetic scores for the browser test.\n\nSecond paragraph."),
        Section("Summary", table=summarize(table, n_resamples=500)),
        Section("Comparisons", table=compare_systems(table, "base", directions, n_resamples=500),
                images=[Image(plot_metric_distribution(table, "mcd", unit="dB",
                                                       higher_is_better=False), "MCD")]),
        Section("Spectrograms", images=[plot_spectrogram_pair(
            wave, wave + rng.normal(0, 0.01, wave.size), 8000, title="u0")]),
        Section("Speed", table=speed, images=[Image(plot_speed(speed), "samples per second")]),
    ]
    return render_html(sections, "Browser test report")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    client = DevToolsPipe(tmp_path_factory.mktemp("chromium-profile"))
    yield client
    client.close()


def test_report_displays_offline_without_errors(browser, report_page, tmp_path):
    path = write_html(tmp_path / "report.html", report_page)
    facts, errors, shot = _open(browser, path.resolve().as_uri())

    assert errors == []
    assert facts["title"] == "Browser test report"
    assert facts["sections"] == 5 and facts["tables"] == 3
    assert len(facts["images"]) == 3
    assert all(i["complete"] and i["w"] > 0 for i in facts["images"]), facts["images"]
    pixels = PILImage.open(io.BytesIO(shot)).convert("RGB")
    # The full page is captured: at least the document's height, and the viewport's width.
    assert pixels.size[0] == 1200 and pixels.size[1] >= min(facts["height"], 900)
    # Text, tables and three plots give thousands of colours; a blank page gives one, and a
    # page of text alone a few hundred (anti-aliasing), so 1000 separates them.
    colours = pixels.getcolors(maxcolors=1 << 24)
    assert len(colours) > 1000


def test_checker_catches_broken_images_and_blocked_fetches(browser, report_page, tmp_path):
    # The same checks must fail on a page that tries the network or has a broken image:
    # otherwise the passing test above would prove nothing.
    page = report_page.replace(
        "</main>", '<img src="data:image/png;base64,AAAA" alt="broken">'
                   '<img src="https://example.invalid/x.png" alt="remote"></main>')
    path = write_html(tmp_path / "broken.html", page)
    facts, errors, _ = _open(browser, path.resolve().as_uri())

    assert sum(1 for i in facts["images"] if i["w"] == 0) == 2
    assert any("Content Security Policy" in e or "example.invalid" in e for e in errors), errors
