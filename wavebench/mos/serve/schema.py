"""The bodies the served page posts, checked field by field before anything is stored.

Every check raises :class:`Refused` with the HTTP status and one line saying what is wrong;
nothing here touches the database. The shapes are those of the page's results JSON
(``wavebench/mos/FORMAT.md``): an answer is one entry of ``responses``.
"""
from __future__ import annotations

import json
import math
import re

from wavebench.mos.analysis.ratings import MAX_INT, SCORED_TYPES, Packet, answer_scale
from wavebench.mos.packet.page import CHOICE_QUESTIONS

#: Largest request body read, in bytes (a 12-stimulus MUSHRA page posts about 6 KB).
MAX_BODY_BYTES = 64 * 1024
#: Longest text field kept (``comment`` fields: :data:`MAX_COMMENT`).
MAX_TEXT = 200
MAX_COMMENT = 2000
MAX_ID = 128
#: The fields of one answer, exactly as the page records them, and their JSON types.
ANSWER_FIELDS = {"trial_index": "int", "trial_id": "str", "kind": "str", "page_id": "str",
                 "stimulus_id": "str", "stimulus_b_id": "str", "presented_first": "str",
                 "score": "score", "choice": "str", "n_plays": "int", "played_to_end": "bool",
                 "listen_ms": "int", "response_ms": "int", "answered_at": "str",
                 "comment": "str"}
#: The session fields the page sends when it finishes (its results payload less responses).
FINISH_FIELDS = {"started_at": "str", "finished_at": "str", "completed": "bool",
                 "user_agent": "str", "audio_context_rate": "rate", "questionnaire": "object",
                 "platform": "str"}
QUESTIONNAIRE_FIELDS = ("device", "native_language", "age_band", "hearing_self_report",
                        "comment")
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
# Ids from links (rater, Prolific ids): printable, no spaces, no markup.
_ID = re.compile(r"[A-Za-z0-9_.:@+-]{1,%d}" % MAX_ID)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}")


class Refused(Exception):
    """A request that is not stored: its HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def parse_body(raw: bytes) -> dict:
    """A JSON object from a request body, or :class:`Refused` (400)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise Refused(400, "body is not UTF-8") from None
    except ValueError as err:  # JSONDecodeError, or an integer of more than 4300 digits
        raise Refused(400, f"body is not valid JSON: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise Refused(400, f"body must be a JSON object, got {type(data).__name__}")
    return data


def _kind_ok(value, kind: str) -> bool:
    if kind == "int":
        return type(value) is int and 0 <= value <= MAX_INT
    if kind == "score":
        return value is None or (type(value) in (int, float) and math.isfinite(value))
    if kind == "rate":
        return value is None or (type(value) is int and 0 <= value <= 10**6)
    if kind == "bool":
        return type(value) is bool
    if kind == "object":
        return type(value) is dict
    if kind == "list":
        return type(value) is list
    return type(value) is str


def _fields(obj, spec: dict, what: str) -> None:
    """``obj`` is an object with exactly the fields of ``spec``, each of its type."""
    if not isinstance(obj, dict):
        raise Refused(422, f"{what} must be an object")
    missing = [name for name in spec if name not in obj]
    extra = [name for name in obj if name not in spec]
    if missing or extra:
        raise Refused(422, f"{what}: " + "; ".join(
            part for part in (missing and f"missing {', '.join(missing)}",
                              extra and f"unknown field {str(extra[0])[:40]!r}") if part))
    for name, kind in spec.items():
        value = obj[name]
        if not _kind_ok(value, kind):
            raise Refused(422, f"{what}: {name} has the wrong type or range")
        if kind == "str":
            limit = MAX_COMMENT if name == "comment" or name == "user_agent" else MAX_TEXT
            if len(value) > limit:
                raise Refused(422, f"{what}: {name} is longer than {limit} characters")


def identity(body: dict) -> dict:
    """The rater's ids from a session request: ``rater_id`` and the optional Prolific ids."""
    spec = {"rater_id": "str", "study_id": "str", "prolific_session_id": "str",
            "platform": "str"}
    _fields(body, spec, "session request")
    for name in spec:
        value = body[name]
        if (value or name == "rater_id") and not _ID.fullmatch(value):
            raise Refused(422, f"{name} must be 1-{MAX_ID} letters, digits or _.:@+-")
    return body


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None when absent)."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not _TOKEN.fullmatch(token.strip()):
        raise Refused(401, "malformed Authorization header; expected 'Bearer <token>'")
    return token.strip()


def answers(body: dict, packet: Packet, list_id: str) -> list:
    """The answers of one trial posted by the page, checked against the rater's own list.

    Parameters
    ----------
    body : dict
        ``{"session_id": str, "answers": [answer, ...]}``: one answer per trial, or one per
        stimulus of a MUSHRA page, all of the same trial.
    packet : Packet
    list_id : str
        The list of the session posting (a trial of another list is refused).

    Returns
    -------
    list of dict
        The answers, as posted (key order kept: the checksum depends on it).

    Raises
    ------
    Refused
        422 naming the first problem: a field missing, unknown or of the wrong type; a trial
        not in this list or not at its position; answers of several trials; a stimulus not
        the trial's or given twice; a score off the scale, missing on a rated trial or given
        on a choice trial; a choice not offered.
    """
    _fields(body, {"session_id": "str", "answers": "list"}, "answers request")
    given = body["answers"]
    if not 1 <= len(given) <= 64:
        raise Refused(422, "answers must be a list of 1 to 64 answers of one trial")
    for k, answer in enumerate(given):
        _fields(answer, ANSWER_FIELDS, f"answer {k}")
        if not _ISO.fullmatch(answer["answered_at"]):
            raise Refused(422, f"answer {k}: answered_at is not an ISO-8601 UTC time")
    trial_id = given[0]["trial_id"]
    trials = packet.manifest["lists"][list_id]
    position = next((n for n, t in enumerate(trials) if t.get("trial_id") == trial_id), None)
    if position is None:
        raise Refused(422, f"trial {trial_id[:40]!r} is not in this rater's list")
    trial = trials[position]
    stimuli = list(trial["stimuli"])
    page = packet.method.startswith("mushra") and trial["kind"] in ("rating", "training")
    wanted = len(stimuli) if page else 1
    if len(given) != wanted:
        raise Refused(422, f"trial {trial_id} takes {wanted} answer(s), got {len(given)}")
    scale, seen = answer_scale(packet), set()
    scored = trial["kind"] in SCORED_TYPES
    choices = CHOICE_QUESTIONS.get(trial["kind"], (None, []))[1]
    for k, answer in enumerate(given):
        if answer["trial_id"] != trial_id or answer["trial_index"] != position \
                or answer["kind"] != trial["kind"]:
            raise Refused(422, f"answer {k}: trial id, index or kind do not match trial "
                          f"{trial_id} at position {position} of this list")
        if answer["stimulus_id"] not in stimuli or answer["stimulus_id"] in seen:
            raise Refused(422, f"answer {k}: stimulus is not one of the trial's, or repeated")
        seen.add(answer["stimulus_id"])
        if answer["stimulus_b_id"] and answer["stimulus_b_id"] not in stimuli + [
                trial.get("reference")]:
            raise Refused(422, f"answer {k}: second stimulus is not one of the trial's")
        score = answer["score"]
        if scored:
            problem = "missing score" if score is None else scale.problem(score)
            if problem:
                raise Refused(422, f"answer {k}: {getattr(problem, 'reason', problem)}")
        elif score is not None:
            raise Refused(422, f"answer {k}: a {trial['kind']} trial takes no score")
        if (answer["choice"] or choices) and answer["choice"] not in choices:
            raise Refused(422, f"answer {k}: choice {answer['choice'][:20]!r} is not offered")
    return given


def finish(body: dict) -> dict:
    """The session fields of a finish request (``{"session_id", "meta", "checksum"}``)."""
    _fields(body, {"session_id": "str", "meta": "object", "checksum": "str"}, "finish request")
    meta = body["meta"]
    _fields(meta, FINISH_FIELDS, "finish meta")
    for name in ("started_at", "finished_at"):
        if not _ISO.fullmatch(meta[name]):
            raise Refused(422, f"finish meta: {name} is not an ISO-8601 UTC time")
    _fields(meta["questionnaire"], dict.fromkeys(QUESTIONNAIRE_FIELDS, "str"), "questionnaire")
    return meta
