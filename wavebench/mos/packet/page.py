"""Render the self-contained offline test page (``index.html``) and the printable instructions."""
from __future__ import annotations

import html
import json
from math import isqrt

from wavebench.mos.packet.page_script import SCRIPT, SERVED_SCRIPT, STYLE

CONSENT = ("This is a listening test. You will hear short audio samples and rate them. Your "
           "answers are stored anonymously with the id you were given. You may stop at any time.")
CALIBRATION = ("Play this sample and set your volume to a comfortable level. Do not change the "
               "volume after this step.")
TRAP_QUESTION = "How many beeps did you hear?"
HEADPHONE_QUESTION = ("You will hear three tones. Which one was the quietest: the first, the "
                      "second or the third?")
#: Trial kinds answered by picking one choice (not rated on the scale): question and choices.
CHOICE_QUESTIONS = {"trap": (TRAP_QUESTION, ["1", "2", "3", "4", "5"]),
                    "headphone": (HEADPHONE_QUESTION, ["1", "2", "3"])}


def _first_primes(n: int) -> list:
    primes, k = [], 2
    while len(primes) < n:
        if all(k % p for p in primes if p * p <= k):
            primes.append(k)
        k += 1
    return primes


def _icbrt(n: int) -> int:
    """Integer cube root (floor) by Newton's method: exact, unlike float cube roots."""
    x = 1 << ((n.bit_length() + 2) // 3)
    while True:
        y = (2 * x + n // (x * x)) // 3
        if y >= x:
            return x
        x = y


def sha256_constants() -> tuple[list, list]:
    """SHA-256 round constants K and initial hash H, computed exactly (FIPS 180-4 definition)."""
    primes = _first_primes(64)
    k = [_icbrt(p << 96) & 0xFFFFFFFF for p in primes]
    h = [isqrt(p << 64) & 0xFFFFFFFF for p in primes[:8]]
    # The page works on signed 32-bit ints (JS bit operators), so store them that way.
    signed = lambda v: v - (1 << 32) if v >= 1 << 31 else v  # noqa: E731
    return [signed(v) for v in k], [signed(v) for v in h]


def page_config(manifest: dict, audio: dict, instructions: list, session: dict) -> dict:
    """The JSON inlined into ``index.html``: lists, scale, texts and the anon-id -> file map."""
    return {"packet_id": manifest["packet_id"], "method": manifest["method"],
            "question": manifest["question"], "scale": manifest["scale"],
            "instructions": instructions, "consent": CONSENT, "calibration_text": CALIBRATION,
            "choice_questions": {kind: {"question": q, "choices": c}
                                 for kind, (q, c) in CHOICE_QUESTIONS.items()},
            "list_ids": sorted(manifest["lists"]), "lists": manifest["lists"], "audio": audio,
            "break_after_min": session["break_after_min"], "max_min": session["max_min"]}


def _inline_json(data: dict) -> str:
    """JSON safe inside a <script> element (no '</' sequences can end the element early)."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return text.replace("</", "<\\/")


def render_index(config: dict) -> str:
    """The complete ``index.html``: inline CSS, inline config JSON and inline script."""
    k, h = sha256_constants()
    script = SCRIPT.replace("SHA256_K", json.dumps(k)).replace("SHA256_H", json.dumps(h))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<link rel=\"icon\" href=\"data:,\">\n<title>Listening test</title>\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n<main id=\"app\"></main>\n"
            "<noscript>This listening test needs JavaScript.</noscript>\n"
            "<script type=\"application/json\" id=\"wb-config\">"
            f"{_inline_json(config)}</script>\n<script>{script}</script>\n</body>\n</html>\n")


def render_instructions(question: str, scale: dict, instructions: list) -> str:
    """``instructions.html``: the same instructions and scale as the page, printable."""
    values = range(int(scale["max"]), int(scale["min"]) - 1, -int(scale["step"]))
    labels = scale.get("labels") or {}
    items = "".join(f"<li>{v} = {html.escape(labels.get(str(v), ''))}</li>" for v in values
                    if str(v) in labels)
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in instructions)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<title>Instructions</title>\n</head>\n<body>\n<h1>Instructions</h1>\n"
            f"<p>{html.escape(CONSENT)}</p>\n{paragraphs}\n<p>{html.escape(question)}</p>\n"
            f"<ul>{items}</ul>\n<p>{html.escape(CALIBRATION)}</p>\n</body>\n</html>\n")


#: Where :func:`served_index` adds the served-mode script: the end of the page's script.
_SERVED_AT = "\nstart();\n})();\n</script>"


def served_index(index_html: str, served: dict) -> str:
    """The packet's ``index.html`` as ``mos serve`` sends it: the same page, plus
    :data:`~wavebench.mos.packet.page_script.SERVED_SCRIPT` (posting each answer) and its
    settings ``served`` inlined as ``<script type="application/json" id="wb-served">``.

    Raises
    ------
    ValueError
        The page is not one this version of wavebench wrote (the insertion point is missing).
    """
    if index_html.count(_SERVED_AT) != 1 or index_html.count("<script>") != 1:
        raise ValueError("index.html is not a page written by this wavebench (rebuild the "
                         "packet with mos packet)")
    data = ("<script type=\"application/json\" id=\"wb-served\">"
            f"{_inline_json(served)}</script>\n")
    page = index_html.replace("<script>", data + "<script>", 1)
    return page.replace(_SERVED_AT, "\n" + SERVED_SCRIPT + _SERVED_AT, 1)
