"""A hand-built MOS packet and simulated raters writing the page's results JSON (test helpers).

Everything that knows the packet and results formats (wavebench/mos/FORMAT.md) lives here, so
the analysis tests adapt in one place if the formats change. The few tests at the end check
that the simulated files are what the formats say.
"""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

#: True quality of each condition (the degradation order the analysis must recover).
TRUE_MOS = {"natural": 4.5, "sysA": 3.9, "sysB": 3.3, "sysC": 2.6, "lp3500": 1.7}
CLIP_SECONDS = 0.5


@dataclass
class SimPacket:
    """What a test needs to know about a hand-built packet."""

    root: Path
    packet_id: str
    conditions: list
    items: list
    lists: dict                 # list_id -> list of trial dicts (key entries with trial_id)
    key: dict
    manifest: dict
    stim_of: dict = field(default_factory=dict)   # (condition, item) -> anon id


def _anon(secret: str, *parts) -> str:
    digest = hashlib.sha256("\0".join((secret,) + tuple(parts)).encode()).digest()
    return base64.b32encode(digest).decode().lower()[:10]


def build_packet(root, *, conditions=tuple(TRUE_MOS), n_items: int = 20, trials: int = 10,
                 votes: int = 4, seed: int = 0, packet_id: str = "ptest0001",
                 write_audio: bool = True) -> SimPacket:
    """Write manifest.json, private/key.json and stimuli of a cyclic Latin-square ACR packet.

    Each list has ``trials`` rating trials (items of one chunk, conditions by (j + g + shift)
    mod C) plus a gold_high, a gold_low and a trap trial at the end.
    """
    root = Path(root)
    (root / "packet" / "stimuli").mkdir(parents=True)
    (root / "private").mkdir()
    rng = np.random.default_rng(seed)
    secret = f"secret{seed}"
    conditions, items = list(conditions), [f"spk{k % 3}/utt{k:02d}" for k in range(n_items)]
    n_c = len(conditions)
    stimuli, stim_of = {}, {}
    for cond in conditions:
        for item in items + ["hold/gold", "hold/trap"]:
            anon = _anon(secret, "system", cond, item)
            stim_of[(cond, item)] = anon
            role = ("natural" if cond == "natural"
                    else "anchor_" + cond if cond.startswith("lp") else "system")
            stimuli[anon] = {"system": cond, "item": item, "role": role,
                             "file": f"stimuli/{anon}.wav", "sha256": "0" * 64,
                             "source": f"/data/{cond}/{item}.wav"}
    key_trials, lists = {}, {}
    order = rng.permutation(n_items)
    chunks = [order[k:k + trials] for k in range(0, n_items, trials)]
    n_list = 0
    for rep in range(votes):
        shift = int(rng.integers(n_c))
        for chunk in chunks:
            for g in range(n_c):
                n_list += 1
                list_id = f"L{n_list:02d}"
                spec = [("rating", items[i], conditions[(j + g + shift) % n_c])
                        for j, i in enumerate(chunk)]
                spec = [spec[k] for k in rng.permutation(len(spec))]
                spec += [("gold_high", "hold/gold", "natural"),
                         ("gold_low", "hold/gold", conditions[-1]),
                         ("trap", "hold/trap", "natural")]
                lists[list_id] = []
                for pos, (ttype, item, cond) in enumerate(spec):
                    tid = "t" + _anon(secret, list_id, str(pos))
                    expected = {"gold_high": {"min": 4, "max": 5}, "gold_low": {"min": 1, "max": 2},
                                "trap": {"choice": "3"}}.get(ttype)
                    entry = {"list_id": list_id, "position": pos, "trial_type": ttype,
                             "item": item, "condition": cond, "stimuli": [stim_of[(cond, item)]],
                             "filler": False, "expected": expected}
                    key_trials[tid] = entry
                    lists[list_id].append(dict(entry, trial_id=tid))
    key = {"format": "wavebench-mos-key", "version": 1, "packet_id": packet_id,
           "packet_secret": secret, "method": "acr", "seed": seed, "votes": votes,
           "conditions": conditions, "stimuli": stimuli, "trials": key_trials}
    key_bytes = (json.dumps(key, indent=1, sort_keys=True) + "\n").encode()
    (root / "private" / "key.json").write_bytes(key_bytes)
    manifest = {
        "format": "wavebench-mos-manifest", "version": 1, "packet_id": packet_id,
        "method": "acr", "tool_version": "0.1.0", "attribute": "naturalness",
        "question": "How natural does this speech sound?",
        "scale": {"id": "acr5", "min": 1, "max": 5, "step": 1,
                  "labels": {"5": "Excellent", "4": "Good", "3": "Fair", "2": "Poor",
                             "1": "Bad"}},
        "sample_rate": 8000, "bit_depth": 16, "channels": 1,
        "lists": {lid: [{"trial_id": t["trial_id"],
                         "kind": "trap" if t["trial_type"] == "trap" else "rating",
                         "stimuli": t["stimuli"], "reference": None} for t in trials_]
                  for lid, trials_ in lists.items()},
        "files": {}, "key_commitment": hashlib.sha256(key_bytes).hexdigest()}
    (root / "packet" / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if write_audio:
        silence = np.zeros(int(8000 * CLIP_SECONDS), dtype=np.int16)
        for anon in stimuli:
            sf.write(root / "packet" / "stimuli" / f"{anon}.wav", silence, 8000)
    return SimPacket(root, packet_id, conditions, items, lists, key, manifest, stim_of)


def results_document(payload: dict) -> dict:
    """Wrap a payload as the page does: checksum of the compact JSON and a completion code."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    checksum = hashlib.sha256(text.encode()).hexdigest()
    return {"format": "wavebench-mos-results", "version": 1, "payload": payload,
            "checksum": checksum, "completion_code": checksum[:8]}


def load_sim_packet(root) -> SimPacket:
    """A SimPacket view of a packet on disk (e.g. one made by ``wavebench mos packet``)."""
    root = Path(root)
    manifest = json.loads((root / "packet" / "manifest.json").read_text())
    key = json.loads((root / "private" / "key.json").read_text())
    lists = {}
    for tid, trial in key["trials"].items():
        lists.setdefault(trial["list_id"], []).append(dict(trial, trial_id=tid))
    lists = {lid: sorted(v, key=lambda t: t["position"]) for lid, v in sorted(lists.items())}
    items = sorted({t["item"] for v in lists.values() for t in v
                    if t["trial_type"] == "rating"})
    return SimPacket(root, manifest["packet_id"], list(key["conditions"]), items, lists, key,
                     manifest)


def _true_score(packet: SimPacket, trial: dict, true_mos: dict) -> float:
    """What an unbiased listener would answer on average for a trial."""
    expected = trial.get("expected") or {}
    if "min" in expected:  # gold: the middle of the expected range
        return (expected["min"] + expected["max"]) / 2
    system = trial.get("condition") or packet.key["stimuli"][trial["stimuli"][0]]["system"]
    return true_mos.get(system, 3.0)


def simulate_session(packet: SimPacket, list_id: str, rater_id: str, rng, *,
                     rater_bias: float = 0.0, item_effects=None, noise: float = 0.6,
                     behaviour: str = "good", true_mos=None) -> dict:
    """One rater's results document for one list.

    ``behaviour``: ``good``; ``trap`` (answers the trap wrong); ``straight`` (3 on every
    rating trial); ``skip`` (rates without playing to the end, fast); ``speakers`` (fails
    every headphone-check trial).
    """
    item_effects, true_mos = item_effects or {}, true_mos or TRUE_MOS
    responses = []
    for index, trial in enumerate(packet.lists[list_id]):
        ttype = trial["trial_type"]
        true = _true_score(packet, trial, true_mos) + rater_bias \
            + item_effects.get(trial["item"], 0.0)
        score = int(np.clip(np.round(true + rng.normal(0, noise)), 1, 5))
        choice = ""
        if ttype == "trap":
            answer = int(trial["expected"]["choice"])
            score, choice = None, str(answer + 1 if behaviour == "trap" else answer)
        elif ttype == "headphone":  # over loudspeakers another tone sounds quietest
            answer = int(trial["expected"]["choice"])
            score, choice = None, str(answer % 3 + 1 if behaviour == "speakers" else answer)
        elif ttype == "calibration":
            score = None
        elif behaviour == "straight":
            score = 3
        fast = behaviour == "skip"
        responses.append({
            "trial_index": index, "trial_id": trial["trial_id"],
            "kind": ttype if ttype in ("trap", "headphone") else "rating", "page_id": "",
            "stimulus_id": trial["stimuli"][0], "stimulus_b_id": "", "presented_first": "",
            "score": score, "choice": choice, "n_plays": 1, "played_to_end": not fast,
            "listen_ms": 200 if fast else 500,
            "response_ms": 250 if fast else int(3000 + rng.integers(0, 2000)),
            "answered_at": f"2026-01-01T10:{index % 60:02d}:00Z", "comment": ""})
    payload = {"packet_id": packet.packet_id, "list_id": list_id, "rater_id": rater_id,
               "session_id": f"{list_id}-{rater_id}-abc", "method": "acr",
               "started_at": "2026-01-01T10:00:00Z", "finished_at": "2026-01-01T10:30:00Z",
               "completed": True, "user_agent": "sim", "audio_context_rate": 48000,
               "questionnaire": {"device": "headphones", "native_language": "yes",
                                 "age_band": "", "hearing_self_report": "", "comment": ""},
               "responses": responses}
    return results_document(payload)


def simulate_study(packet: SimPacket, out_dir, *, seed: int = 1, bad=None, true_mos=None):
    """One session per list; ``bad`` maps list_id -> behaviour. Returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    item_effects = {item: float(rng.normal(0, 0.3)) for item in packet.items}
    paths = []
    for k, list_id in enumerate(packet.lists):
        rater = f"r{k:03d}"
        doc = simulate_session(packet, list_id, rater, rng, rater_bias=float(rng.normal(0, 0.4)),
                               item_effects=item_effects,
                               behaviour=(bad or {}).get(list_id, "good"), true_mos=true_mos)
        path = out_dir / f"wavebench_{packet.packet_id}_{list_id}_{rater}.json"
        path.write_text(json.dumps(doc, ensure_ascii=False))
        paths.append(path)
    return paths


def import_ratings(paths, packet_dir, ratings_path: Path) -> Path:
    """Results documents into ratings.csv, as ``wavebench mos import`` does."""
    from wavebench.mos.analysis import ratings as R
    R.write_ratings(R.import_results(paths, R.load_packet(packet_dir)), ratings_path)
    return ratings_path


# ---------------------------------------------------------------- checks of the helpers

def test_packet_key_commitment_and_balance(tmp_path):
    packet = build_packet(tmp_path / "pk", write_audio=False)
    key_bytes = (tmp_path / "pk" / "private" / "key.json").read_bytes()
    assert hashlib.sha256(key_bytes).hexdigest() == packet.manifest["key_commitment"]
    votes = {}
    for trials in packet.lists.values():
        rated = [t for t in trials if t["trial_type"] == "rating"]
        assert len({t["item"] for t in rated}) == len(rated)  # no repeated item in a list
        for t in rated:
            votes[(t["item"], t["condition"])] = votes.get((t["item"], t["condition"]), 0) + 1
    # Every (item, condition) cell gets exactly `votes` = 4 votes.
    assert set(votes.values()) == {4} and len(votes) == 20 * 5


def test_results_document_checksum_is_of_compact_payload():
    doc = results_document({"b": 1, "a": "é"})
    assert doc["checksum"] == hashlib.sha256('{"b":1,"a":"é"}'.encode()).hexdigest()


def simulate_mushra_session(packet: SimPacket, list_id: str, rater_id: str, rng, *,
                            true_scores: dict, behaviour: str = "good") -> dict:
    """One MUSHRA session: a response per stimulus on each page (0-100).

    ``behaviour``: ``good``, or ``lazy_ref`` (rates the hidden reference about 60).
    """
    responses = []
    for index, trial in enumerate(packet.lists[list_id]):
        if trial["trial_type"] == "calibration":
            continue
        for anon in trial["stimuli"]:
            system = packet.key["stimuli"][anon]["system"]
            true = true_scores.get(system, 50.0)
            if behaviour == "lazy_ref" and packet.key["stimuli"][anon]["role"] == "natural":
                true = 60.0
            responses.append({
                "trial_index": index, "trial_id": trial["trial_id"], "kind": "rating",
                "page_id": trial["trial_id"], "stimulus_id": anon, "stimulus_b_id": "",
                "presented_first": "", "score": int(np.clip(round(true + rng.normal(0, 5)),
                                                            0, 100)),
                "choice": "", "n_plays": 2, "played_to_end": True, "listen_ms": 3000,
                "response_ms": 20000, "answered_at": "2026-01-01T10:00:00Z", "comment": ""})
    payload = {"packet_id": packet.packet_id, "list_id": list_id, "rater_id": rater_id,
               "session_id": f"{list_id}-{rater_id}-m", "method": "mushra",
               "started_at": "2026-01-01T10:00:00Z", "finished_at": "2026-01-01T10:30:00Z",
               "completed": True, "user_agent": "sim", "audio_context_rate": 48000,
               "questionnaire": {}, "responses": responses}
    return results_document(payload)
