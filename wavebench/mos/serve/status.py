"""How a served study stands: raters, votes per (item, condition) against the target, screening.

``wavebench mos status`` prints it; the admin page of ``mos serve`` shows the same numbers.
Screening runs the analysis's own rules (:mod:`wavebench.mos.analysis.screening`) over the
sessions rebuilt from the database, so "would drop" means what ``mos analyze`` would do with
the ratings collected so far.
"""
from __future__ import annotations

import html
import time
from collections import Counter

from wavebench.mos.analysis import screening
from wavebench.mos.analysis.ratings import import_documents, unblind
from wavebench.mos.analysis.report import durations, list_sizes
from wavebench.mos.serve.db import StudyDB


def study_status(db: StudyDB, *, timeout_s: float, rules_path=None, now: float | None = None) -> dict:
    """The numbers of ``mos status`` and the admin page.

    Parameters
    ----------
    db : StudyDB
    timeout_s : float
        Seconds without a request after which an unfinished session counts as abandoned.
    rules_path : str, optional
        Screening rules (as ``mos analyze --screening``); default: the built-in rules.
    now : float, optional
        The clock (epoch seconds).

    Returns
    -------
    dict
        ``raters`` (started, completed, abandoned, active), ``target`` (votes per cell),
        ``cells`` (rows of item, condition, votes, votes_completed; the rating trials of the
        key, every cell listed even when empty), ``cells_at_target``, ``screening``
        (completed sessions, how many the rules would drop, and per rule how many fail),
        ``replays`` (refused answers that tried to change a stored one).
    """
    now = time.time() if now is None else now
    packet = db.packet
    key = packet.key
    out = {"packet_id": packet.packet_id, "raters": db.counts(now=now, timeout_s=timeout_s),
           "target": int(key.get("votes", 0)), "replays": len(db.replays())}
    completed = {s["session_id"] for s in db.sessions() if s["completed"]}
    cells = {}
    for trial in key["trials"].values():
        if trial.get("trial_type") == "rating":
            for anon in trial.get("stimuli") or ():
                stim = key["stimuli"].get(anon, {})
                cells.setdefault((stim.get("item", ""), stim.get("system", "")), [0, 0])
    docs = db.results_documents()
    votes, votes_done = Counter(), Counter()
    for _, doc in docs:
        sid = doc["payload"]["session_id"]
        for resp in doc["payload"]["responses"]:
            trial = key["trials"].get(resp["trial_id"], {})
            if trial.get("trial_type") != "rating":
                continue
            stim = key["stimuli"].get(resp["stimulus_id"], {})
            cell = (stim.get("item", ""), stim.get("system", ""))
            votes[cell] += 1
            votes_done[cell] += sid in completed
    out["cells"] = [{"item": item, "condition": cond, "votes": votes[item, cond],
                     "votes_completed": votes_done[item, cond]}
                    for item, cond in sorted(cells)]
    out["cells_at_target"] = sum(votes_done[c] >= out["target"] for c in cells)
    out["screening"] = _screening(docs, packet, completed, rules_path)
    return out


def _screening(docs: list, packet, completed: set, rules_path) -> dict:
    """Completed sessions, and how many the screening rules would drop (all rules, and each)."""
    result = {"sessions": len(completed), "dropped": 0, "rules": {}}
    docs = [d for d in docs if d[1]["payload"]["session_id"] in completed]
    if not docs:
        return result
    imported = import_documents(docs, packet)
    if imported.ratings.empty:
        return result
    trials = unblind(imported.ratings, packet)
    rules, sha = screening.load_rules(rules_path)
    done = dict(zip(imported.raters["session_id"], imported.raters["completed"]))
    screened = screening.screen(trials, rules, sha, list_sizes=list_sizes(packet),
                                durations=durations(packet), completed=done,
                                method=packet.method)
    sessions = screened.sessions
    result["dropped"] = int(sessions["excluded"].sum())
    failed = Counter(rule for text in sessions["failed"] for rule in text.split(";") if rule)
    result["rules"] = dict(sorted(failed.items()))
    return result


def format_status(status: dict) -> str:
    """The status as lines of text (``mos status``)."""
    r, s = status["raters"], status["screening"]
    cells = status["cells"]
    lines = [f"packet {status['packet_id']}",
             f"raters: {r['started']} started, {r['completed']} completed, {r['abandoned']} "
             f"abandoned, {r['active']} active",
             f"votes: {status['cells_at_target']} of {len(cells)} (item, condition) cells "
             f"have the target {status['target']} votes from completed sessions"]
    if cells:
        done = sorted(c["votes_completed"] for c in cells)
        lines.append(f"votes per cell (completed sessions): min {done[0]}, median "
                     f"{done[len(done) // 2]}, max {done[-1]}")
    lines.append(f"screening: the rules would drop {s['dropped']} of {s['sessions']} "
                 "completed sessions" + (" (" + ", ".join(f"{k} {v}" for k, v in
                                                          s["rules"].items()) + " fail)"
                                          if s["rules"] else ""))
    if status["replays"]:
        lines.append(f"replays refused (the first answer stood): {status['replays']}")
    lines.append("item\tcondition\tvotes\tvotes_completed")
    lines += [f"{c['item']}\t{c['condition']}\t{c['votes']}\t{c['votes_completed']}"
              for c in cells]
    return "\n".join(lines) + "\n"


def status_html(status: dict) -> str:
    """The admin page: the same numbers as :func:`format_status`, as static HTML."""
    text = format_status(status).split("\nitem\tcondition")[0]
    rows = "".join(f"<tr><td>{html.escape(c['item'])}</td><td>{html.escape(c['condition'])}"
                   f"</td><td>{c['votes']}</td><td>{c['votes_completed']}</td>"
                   f"<td>{status['target']}</td></tr>" for c in status["cells"])
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Study status</title></head><body><h1>Study status</h1>"
            + "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines())
            + "<table><thead><tr><th>item</th><th>condition</th><th>votes</th>"
              "<th>votes (completed)</th><th>target</th></tr></thead><tbody>"
            + rows + "</tbody></table></body></html>\n")
