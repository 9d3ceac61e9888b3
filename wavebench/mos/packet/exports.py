"""Packet exports for other test platforms (listening-test.md 10), built from the public
manifest only.

Only ``trials.csv`` is built so far: one row per (list, position) for Gorilla spreadsheets,
Qualtrics Loop & Merge or jsPsych timelines. It is made from what ``manifest.json`` already
shows raters (anonymous ids, public trial kinds, question and scale), so it cannot leak a
system name or which trials are gold: gold trials are ``rating`` trials here, as on the page.
"""
from __future__ import annotations

import csv
import io
import json

from wavebench.mos.packet.page import CALIBRATION, CHOICE_QUESTIONS
from wavebench_base.errors import InputError

EXPORTS = ("trials",)
PLANNED = ("webmushra", "beaqlejs", "p808")
TRIAL_COLUMNS = ["list_id", "position", "trial_id", "trial_type", "audio_a", "audio_b",
                 "audio_all", "reference", "question", "scale_id", "labels"]


def check_exports(names) -> list[str]:
    """The export names, refused with one line when unknown or not built yet."""
    names = [n for n in (names or []) if n]
    for name in names:
        if name in PLANNED:
            raise InputError(f"--export {name} is not built yet; available: {', '.join(EXPORTS)}")
        if name not in EXPORTS:
            raise InputError(f"unknown export {name!r}; available: {', '.join(EXPORTS)}")
    return names


def trials_csv(manifest: dict) -> str:
    """``exports/trials.csv``: paths relative to the packet folder, labels as JSON."""
    audio, scale = manifest["audio"], manifest["scale"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TRIAL_COLUMNS)
    for list_id in sorted(manifest["lists"]):
        for position, trial in enumerate(manifest["lists"][list_id]):
            files = [audio[a] for a in trial["stimuli"]]
            kind = trial["kind"]
            if kind in CHOICE_QUESTIONS:
                question, choices = CHOICE_QUESTIONS[kind]
                scale_id, labels = f"choice{len(choices)}", {c: c for c in choices}
            elif kind == "calibration":
                question, scale_id, labels = CALIBRATION, "", {}
            else:
                question, scale_id, labels = manifest["question"], scale["id"], scale["labels"]
            reference = trial.get("reference")
            writer.writerow([list_id, position, trial["trial_id"], kind, files[0],
                             files[1] if len(files) > 1 else "", " ".join(files),
                             audio[reference] if reference else "", question, scale_id,
                             json.dumps(labels, sort_keys=True)])
    return buffer.getvalue()
