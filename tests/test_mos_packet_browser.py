"""The offline page in headless Chromium: a whole ACR session by clicking, resume, download."""
import hashlib
import json
import time

import pytest
from test_mos_packet import make_systems
from test_reports_browser import CHROMIUM, DevToolsPipe, _errors

from wavebench.mos.packet.build import PacketOptions, build_packet

pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
              pytest.mark.slow]


def _eval(browser, session, expression):
    result = browser.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                               "awaitPromise": True}, session)
    return result["result"].get("value")


def _wait(browser, session, expression, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _eval(browser, session, expression):
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {expression}")


def _click(browser, session, selector):
    """A real mouse click (a user gesture, so audio may play) at the element's centre."""
    _wait(browser, session, f"!!document.querySelector({json.dumps(selector)}) && "
                            f"!document.querySelector({json.dumps(selector)}).disabled")
    box = _eval(browser, session, f"(() => {{ const r = document.querySelector("
                                  f"{json.dumps(selector)}); "
                                  f"r.scrollIntoView({{block: 'center'}}); "
                                  f"const b = r.getBoundingClientRect(); "
                                  f"return [b.x + b.width / 2, b.y + b.height / 2]; }})()")
    for kind in ("mousePressed", "mouseReleased"):
        browser.call("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1],
                                                  "button": "left", "clickCount": 1}, session)


def _do_trial(browser, session):
    kind = _eval(browser, session, "document.querySelector('h2').textContent")
    _click(browser, session, "#play")
    if kind == "Volume setting":
        _click(browser, session, "#next")
        return
    answer = {"Listening check": "3", "Headphone check": "2"}.get(kind, "4")
    _click(browser, session, f"input[name=score][value='{answer}']")
    _click(browser, session, "#next")


def test_whole_session_from_file_url(tmp_path):
    root = make_systems(tmp_path / "in", n_items=7)
    out = tmp_path / "out"
    build_packet([f"secret_sys={root / 'secret_sys'}", f"sysb={root / 'sysb'}"], out,
                 PacketOptions(reference=f"natural={root / 'natural_dir'}", votes=1,
                               headphone_check="woods"))
    manifest = json.loads((out / "packet" / "manifest.json").read_text())
    n_trials = len(manifest["lists"]["L01"])
    browser = DevToolsPipe(tmp_path / "profile")
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget",
                               {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.call(f"{domain}.enable", session=session)
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        browser.call("Browser.setDownloadBehavior", {"behavior": "allow",
                                                     "downloadPath": str(downloads)})
        url = (out / "packet" / "index.html").resolve().as_uri() + "?list=L01&rater=r1"
        browser.call("Page.navigate", {"url": url}, session)
        _click(browser, session, "#consent-agree")
        _click(browser, session, "#instructions-next")
        for _ in range(2):
            _do_trial(browser, session)
        browser.call("Page.reload", {}, session)  # autosave: the session resumes where it was
        _wait(browser, session, "document.querySelector('progress') && "
                                "document.querySelector('progress').value === 2")
        for _ in range(n_trials - 2):
            _do_trial(browser, session)
        _eval(browser, session, "document.getElementById('q-device').value = 'headphones'")
        _click(browser, session, "#questionnaire-next")
        code = _eval(browser, session, "document.getElementById('code').textContent")
        _click(browser, session, "#download")
        deadline = time.monotonic() + 10
        while not list(downloads.glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        errors = _errors([e for e in browser.events if e.get("sessionId") == session])
    finally:
        browser.close()
    files = list(downloads.glob("*.json"))
    assert [f.name for f in files] == [f"wavebench_{manifest['packet_id']}_L01_r1.json"]
    result = json.loads(files[0].read_text())
    payload = result["payload"]
    canonical = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert result["checksum"] == hashlib.sha256(canonical).hexdigest()  # Python's own sha256
    assert result["completion_code"] == code == result["checksum"][:8]
    responses = payload["responses"]
    assert [r["trial_id"] for r in responses] == [t["trial_id"] for t in
                                                   manifest["lists"]["L01"]]
    assert all(r["played_to_end"] and r["n_plays"] == 1 for r in responses)
    assert {r["score"] for r in responses if r["kind"] in ("rating", "training")} == {4}
    assert [r["choice"] for r in responses if r["kind"] == "trap"] == ["3"]
    assert [r["choice"] for r in responses if r["kind"] == "headphone"] == ["2"] * 6
    assert payload["completed"] and payload["questionnaire"]["device"] == "headphones"
    assert errors == []
