"""Build a blind, balanced, level-aligned listening-test packet (``wavebench mos packet``)."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from wavebench.mos.packet import design as dz
from wavebench.mos.packet.anchors import anchor_validity, lowpass_taps, parse_anchor
from wavebench.mos.packet.anonymize import key_bytes, packet_id, packet_secret, trial_id
from wavebench.mos.packet.exports import check_exports, trials_csv
from wavebench.mos.packet.inputs import bandwidth_hz, clip_warnings, load_clip, match_items, parse_system
from wavebench.mos.packet.level_alignment import (
    FIXED_MTIME,
    align_levels,
    packet_rate,
    quantize,
    resample,
    write_pcm,
)
from wavebench.mos.packet.levels import parse_level
from wavebench.mos.packet.page import page_config, render_index, render_instructions
from wavebench.mos.packet.quality_checks import WOODS_TRIALS, gold_low
from wavebench.mos.packet.stimuli import StimulusSet
from wavebench.mos.packet.zipper import write_zip
from wavebench_base.audio import keyed_files
from wavebench_base.errors import InputError
from wavebench_base.files import atomic_write_bytes, building, locked, temp_sibling
from wavebench_base.runinfo import file_sha256, tool_version

METHODS = ("acr", "mushra")
ACR_SCALE = {"id": "acr5", "min": 1, "max": 5, "step": 1,
             "labels": {"5": "Excellent", "4": "Good", "3": "Fair", "2": "Poor", "1": "Bad"}}
MUSHRA_SCALE = {"id": "mushra100", "min": 0, "max": 100, "step": 20,
                "labels": {"100": "Excellent", "80": "Good", "60": "Fair", "40": "Poor",
                           "20": "Bad", "0": "Bad"}}
INSTRUCTIONS = ["Use headphones in a quiet room.",
                "Listen to each sample to the end, then answer. You may replay a sample.",
                "There are no right or wrong answers, except for a few listening checks."]


@dataclass
class PacketOptions:
    """Every option of ``mos packet`` (stored in ``private/config.resolved.yaml``)."""

    method: str = "acr"
    reference: str | None = None
    seed: int = 1
    votes: int = 10
    trials_per_session: int | None = None
    items: list | None = None
    holdout: int = 4
    level: str = "p56:-26"
    sample_rate: str = "auto"
    bit_depth: int = 16
    anchors: list | None = None
    gold: str = "auto"
    traps: str = "tones"
    downmix: bool = False
    question: str = "How natural does this speech sound?"
    attribute: str = "naturalness"
    break_after_min: float = 20.0
    max_min: float = 45.0
    exports: list | None = None  # names from wavebench.mos.packet.exports.EXPORTS
    headphone_check: str = "none"  # "woods": six antiphase trials after calibration
    study: dict | None = None  # the experimenter's study block, for the report's checklist


@dataclass
class PacketResult:
    """What ``build_packet`` made: where, the packet id, list count and notes for the log."""

    out_dir: Path
    packet_id: str
    n_lists: int
    n_stimuli: int
    sample_rate: int
    minutes_per_session: float
    notes: list = field(default_factory=list)
    backup: Path | None = None  # where the replaced packet went (``--force`` over a packet)


def _check_options(opt: PacketOptions) -> None:
    """Raise InputError for option values the builder cannot use."""
    if opt.method not in METHODS:
        raise InputError(f"--method {opt.method} is not built yet; available: {', '.join(METHODS)}")
    if opt.bit_depth not in (16, 24):
        raise InputError(f"--bit-depth must be 16 or 24, got {opt.bit_depth}")
    if opt.votes < 1 or opt.holdout < 0:
        raise InputError("--votes must be at least 1 and --holdout at least 0")
    if opt.traps not in ("tones", "none") or opt.gold not in ("auto", "none"):
        raise InputError("--traps must be tones or none; --gold auto or none")
    if opt.headphone_check not in ("woods", "none"):
        raise InputError(f"--headphone-check {opt.headphone_check} is not built yet; "
                         "available: woods, none")
    if opt.method == "mushra" and not opt.reference:
        raise InputError("MUSHRA needs the reference: pass --reference natural=DIR")
    check_exports(opt.exports)


def _load(systems: list, opt: PacketOptions, notes: list):
    """Parse, match and check all inputs; return (names, reference name, items, clips)."""
    specs = [parse_system(s) for s in systems]
    ref = parse_system(opt.reference) if opt.reference else None
    everything = specs + ([ref] if ref else [])
    names = [n for n, _ in everything]
    if len(set(names)) != len(names):
        raise InputError(f"condition names must be unique, got {', '.join(names)}")
    files = {name: keyed_files(folder, "item") for name, folder in everything}
    items = match_items(files, opt.items)
    clips, problems = {}, []
    for name in names:
        for item in items:
            try:
                clips[(name, item)] = load_clip(name, item, files[name][item], downmix=opt.downmix)
            except InputError as err:
                problems.append(str(err))
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InputError(problems[0] + more)
    notes.extend(clip_warnings(clips, opt.method))
    for name in names:
        bw = np.median([bandwidth_hz(clips[(name, i)].audio, clips[(name, i)].sample_rate)
                        for i in items])
        notes.append(f"{name}: 99 % of energy below {bw:.0f} Hz (median over items)")
    return [n for n, _ in specs], (ref[0] if ref else None), items, clips


def _anchors(opt: PacketOptions, reference: str | None, rate: int, names: list) -> list:
    """Resolve ``--anchors`` (auto: lp3500 + lp7000 for MUSHRA, none for ACR) and check them."""
    if opt.anchors is None:
        wanted = ["lp3500", "lp7000"] if opt.method == "mushra" else []
    else:
        wanted = [a for a in opt.anchors if a and a != "none"]
    for name in wanted:
        kind, value = parse_anchor(name)
        if kind == "lp":
            lowpass_taps(value, rate)  # raises when the packet rate cannot hold the cutoff
        if name in names:
            raise InputError(f"anchor name {name} clashes with a condition name")
    if wanted and reference is None:
        raise InputError(f"anchors {', '.join(wanted)} need --reference natural=DIR")
    return wanted


def build_packet(systems: list, out_dir, options: PacketOptions | None = None, *,
                 force: bool = False) -> PacketResult:
    """Build ``OUT/packet``, ``OUT/private`` and ``OUT/packet.zip`` from folders of audio.

    The three are built in a temporary folder beside ``OUT`` and swapped in at the end, under a
    lock on ``OUT``: a run killed at any moment leaves the earlier packet whole (the next run
    removes the temporary folder).

    Parameters
    ----------
    systems : list of str
        ``NAME=DIR`` for each system; items are matched by relative path without extension.
    out_dir : str or Path
        Output folder: absent, empty, or an earlier packet (replaced only with ``force``);
        anything else is refused.
    options : PacketOptions or None
        Method, reference, seed, votes, levels, anchors and checks (defaults: ACR, P.56 -26 dBov).
    force : bool
        Replace an earlier packet. Its private key is what unblinds its ratings, so the whole
        old folder is kept as ``NAME.replaced-<UTC time>`` beside ``OUT`` (``backup`` of the
        result).

    Returns
    -------
    PacketResult

    Raises
    ------
    InputError
        One line for the first input problem (mismatched items listed per system, unreadable,
        silent, clipped, NaN or too-short clips, too many MUSHRA conditions, bad options), an
        earlier packet without ``force``, or another run building the same ``OUT``.
    """
    opt = options or PacketOptions()
    _check_options(opt)
    out_dir = Path(out_dir)
    if out_dir.name in ("", ".", ".."):  # "--out ." names no sibling to build beside
        out_dir = Path(os.path.abspath(out_dir))
    with locked(out_dir, "--out"):
        replacing = _replaceable(out_dir, force)
        return _build(systems, out_dir, opt, replacing)


def _build(systems: list, out_dir: Path, opt: PacketOptions, replacing: bool) -> PacketResult:
    """Everything of :func:`build_packet` once ``out_dir`` is locked and may be replaced."""
    notes: list = []
    names, reference, items, clips = _load(systems, opt, notes)
    rate = packet_rate(opt.sample_rate, [c.sample_rate for c in clips.values()])
    level_method, level_target = parse_level(opt.level)
    anchors = _anchors(opt, reference, rate, names + ([reference] if reference else []))
    conditions = names + ([reference] if reference else []) + anchors
    if opt.method == "mushra" and len(conditions) > dz.MAX_MUSHRA_CONDITIONS:
        raise InputError(f"{len(conditions)} conditions on a MUSHRA page (at most "
                         f"{dz.MAX_MUSHRA_CONDITIONS}); split the systems into two tests that "
                         f"share the reference and anchors")
    secret = packet_secret(opt.seed, sorted(file_sha256(c.path) for c in clips.values()))
    audio = {k: resample(c.audio, c.sample_rate, rate) for k, c in clips.items()}
    sources = {k: (c.path, c.sample_rate) for k, c in clips.items()}
    stim = StimulusSet(secret, audio, sources, rate)
    rng = np.random.default_rng(opt.seed)
    order = [items[i] for i in rng.permutation(len(items))]
    holdout, rated = order[:opt.holdout], sorted(order[opt.holdout:])
    if opt.holdout and len(holdout) >= len(items):
        raise InputError(f"--holdout {opt.holdout} leaves no items to rate out of {len(items)}")
    ctx = dict(stim=stim, reference=reference, anchors=anchors, conditions=conditions,
               names=names, rng=rng, opt=opt, notes=notes)
    fixed = _fixed_trials(ctx, holdout)
    lists = _lists(ctx, rated, fixed)
    for name in anchors:
        warn = anchor_validity(name, [audio[(reference, i)] for i in rated], rate)
        if warn:
            notes.append(f"warning: {warn}")
    levels = align_levels({a: s.audio for a, s in stim.items.items() if s.role != "headphone"},
                          rate, level_method, level_target)
    for anon, s in stim.items.items():  # the headphone check's tones keep their own level
        if s.role == "headphone":
            levels["gains"][anon], levels["levels_in"][anon] = 0.0, float("nan")
            levels["true_peaks"][anon] = float(20 * np.log10(np.max(np.abs(s.audio))))
    if levels["reduction_db"] > 0:
        notes.append(f"true-peak guard: global level lowered by {levels['reduction_db']:.2f} dB "
                     f"to keep every stimulus below -1 dBTP")
    pid = packet_id(secret)
    backup = None
    with building(out_dir) as tmp:  # packet/, private/ and packet.zip are swapped in together
        _write_all(tmp, ctx, lists, levels, rate, pid, secret, systems)
        if replacing:  # last, so that a failed build leaves no backup behind
            backup = _keep_old(out_dir)
    if backup is not None:
        notes.append(f"note: the replaced packet, its private key included, is kept in {backup}")
    durations = [len(s.audio) / rate for s in stim.items.values() if s.folder == "stimuli"]
    per_session = max(len(v) for v in lists.values()) * (float(np.mean(durations)) * 1.6 + 5.0)
    return PacketResult(out_dir, pid, len(lists), len(stim.items), rate, per_session / 60, notes,
                        backup)


def _replaceable(out_dir: Path, force: bool) -> bool:
    """Whether ``out_dir`` holds an earlier packet to replace; refuse what may not be replaced.

    Raises
    ------
    InputError
        ``out_dir`` is a file or a link, a non-empty folder that is not a packet, or a packet
        with a private key while ``force`` is off.
    """
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise InputError("exists and is not a folder; choose another --out", out_dir)
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return False
    if not (out_dir / "private" / "key.json").is_file():
        raise InputError("exists and is not an earlier packet; choose another --out", out_dir)
    if not force:
        raise InputError("holds a packet whose private key unblinds its ratings; choose another "
                         f"--out, or pass --force to replace it (the old packet is then kept as "
                         f"{out_dir.name}.replaced-<UTC time>)", out_dir)
    return True


def _keep_old(out_dir: Path) -> Path:
    """Keep the packet at ``out_dir`` as ``NAME.replaced-<UTC time>`` beside it, before the swap.

    The copy is made of hard links (no extra space where the file system has them) under a
    temporary name first, and renamed before the swap, so a run
    killed at any moment leaves the old key at ``out_dir``, in the backup, or both; a backup moved
    aside only after the swap would sit under a temporary name that later runs clear.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    backup = out_dir.with_name(f"{out_dir.name}.replaced-{stamp}")
    n = 1
    while backup.exists() or backup.is_symlink():  # two --force runs within one second
        backup, n = out_dir.with_name(f"{out_dir.name}.replaced-{stamp}-{n}"), n + 1
    tmp = temp_sibling(out_dir)
    shutil.copytree(out_dir, tmp, symlinks=True, copy_function=_link_or_copy)
    os.rename(tmp, backup)
    return backup


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link ``src`` to ``dst``, or copy it where the file system has no hard links."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _fixed_trials(ctx: dict, holdout: list) -> dict:
    """Calibration, training and check trials from the hold-out items (same for every list)."""
    stim, ref, opt, names = ctx["stim"], ctx["reference"], ctx["opt"], ctx["names"]
    fixed = {"calibration": [], "headphone": [], "training": [], "checks": []}
    if opt.headphone_check == "woods":  # synthesized: needs no hold-out item
        fixed["headphone"] = [dict(trial_type="headphone", kind="headphone", item=f"woods{k}",
                                   stimuli=[anon], expected=stim.items[anon].expected)
                              for k in range(WOODS_TRIALS)
                              for anon in [stim.headphone_check(k)]]
    if not holdout:
        ctx["notes"].append("note: --holdout 0: no calibration, training, gold or trap trials")
        return fixed
    h = lambda k: holdout[k % len(holdout)]  # noqa: E731  (fewer hold-outs: reuse them)
    natural_or_first = ref or names[0]
    fixed["calibration"].append(dict(trial_type="calibration", kind="calibration", item=h(0),
        stimuli=[stim.add("calibration", natural_or_first, h(0),
                          stim.audio[(natural_or_first, h(0))], "checks",
                          (natural_or_first, h(0)))]))
    fixed["training"] = _training(ctx, h(3))
    if opt.method == "acr" and opt.gold == "auto" and ref:
        for k, kind in ((0, "gold_high"), (1, "gold_low")):
            anon = stim.gold(kind, ref, h(k))
            fixed["checks"].append(dict(trial_type=kind, kind="rating", item=h(k),
                                        stimuli=[anon], expected=stim.items[anon].expected))
    elif opt.gold == "auto" and opt.method == "acr":
        ctx["notes"].append("note: no gold trials: they need --reference natural=DIR")
    if opt.method == "acr" and opt.traps == "tones":
        anon = stim.trap(natural_or_first, h(2))
        fixed["checks"].append(dict(trial_type="trap", kind="trap", item=h(2), stimuli=[anon],
                                    expected=stim.items[anon].expected))
    return fixed


def _training(ctx: dict, item: str) -> list:
    """Training trials spanning the quality range (natural, a degraded clip, a mid system)."""
    stim, ref, names, opt = ctx["stim"], ctx["reference"], ctx["names"], ctx["opt"]
    if opt.method == "mushra":
        page = [stim.condition(c, item, ref, ctx["anchors"]) for c in ctx["conditions"]]
        refer = stim.add("reference", ref, item, stim.audio[(ref, item)], "stimuli", (ref, item))
        for anon in page + [refer]:
            stim.items[anon].folder, stim.items[anon].role = "training", "training"
        return [dict(trial_type="training", kind="training", item=item, stimuli=page,
                     reference=refer)]
    picks = [(ref, "natural")] if ref else [(names[0], "system")]
    picks.append((names[len(names) // 2], "system"))
    trials = []
    for system, _ in picks:
        anon = stim.add("training", system, item, stim.audio[(system, item)], "training",
                        (system, item))
        trials.append(anon)
    if ref:  # the low end of the quality range: the gold-low degradation of this item
        audio = gold_low(stim.audio[(ref, item)], stim.rate, len(item))
        low = stim.add("training_low", ref, item, audio, "training", (ref, item))
        stim.items[low].role = "training"
        trials.insert(1, low)
    return [dict(trial_type="training", kind="training", item=item, stimuli=[a])
            for a in dict.fromkeys(trials)]


def _lists(ctx: dict, rated: list, fixed: dict) -> dict:
    """list_id -> ordered trials (dicts), for ACR Latin squares or MUSHRA pages."""
    stim, opt, rng, conds = ctx["stim"], ctx["opt"], ctx["rng"], ctx["conditions"]
    if opt.method == "acr":
        per = dz.trials_per_session(opt.trials_per_session, len(rated), len(conds))
        cells = dz.acr_lists(rated, conds, opt.votes, per, rng)
    else:
        cells = dz.mushra_lists(rated, opt.votes, opt.trials_per_session, rng)
    width = max(2, len(str(len(cells))))
    lists = {}
    for n, group in enumerate(cells, start=1):
        ratings = dz.order_ratings(group, rng) if opt.method == "acr" else \
            [group[i] for i in rng.permutation(len(group))]
        body = [_rating_trial(ctx, c) for c in ratings]
        checks = list(fixed["checks"])
        positions = dz.check_positions(len(body), len(checks), rng)
        order = [checks[i] for i in rng.permutation(len(checks))]
        for pos, check in zip(positions, order):
            body.insert(pos, dict(check))
        lists[f"L{n:0{width}d}"] = (fixed["calibration"] + fixed["headphone"]
                                    + fixed["training"] + body)
    for list_id, trials in lists.items():
        lists[list_id] = [dict(t, trial_id=trial_id(stim.secret, list_id, p), position=p)
                          for p, t in enumerate(trials)]
    return lists


def _rating_trial(ctx: dict, cell) -> dict:
    """One rating trial: an ACR (item, condition) or a MUSHRA page with shuffled conditions."""
    stim, ref, anchors = ctx["stim"], ctx["reference"], ctx["anchors"]
    if cell.condition is not None:
        return dict(trial_type="rating", kind="rating", item=cell.item, condition=cell.condition,
                    filler=cell.filler, stimuli=[stim.condition(cell.condition, cell.item, ref,
                                                                anchors)])
    page = [stim.condition(c, cell.item, ref, anchors) for c in ctx["conditions"]]
    page = [page[i] for i in ctx["rng"].permutation(len(page))]
    refer = stim.add("reference", ref, cell.item, stim.audio[(ref, cell.item)], "stimuli",
                     (ref, cell.item))
    return dict(trial_type="rating", kind="rating", item=cell.item, filler=cell.filler,
                stimuli=page, reference=refer)


def _file_of(stim, anon: str, training_names: dict) -> str:
    """Packet-relative file of a stimulus (training files are numbered t01, t02, ...)."""
    s = stim.items[anon]
    if s.folder == "training":
        return f"training/{training_names[anon]}.wav"
    return f"{s.folder}/{anon}.wav"


def _write_all(root: Path, ctx: dict, lists: dict, levels: dict, rate: int, pid: str,
               secret: str, systems: list) -> None:
    """Write audio, key, design, processing log, manifest, page, instructions and zip."""
    stim, opt = ctx["stim"], ctx["opt"]
    training = sorted(a for a, s in stim.items.items() if s.folder == "training")
    names = {a: f"t{i:02d}" for i, a in enumerate(training, start=1)}
    files = {a: _file_of(stim, a, names) for a in stim.items}
    packet = root / "packet"
    hashes = {}
    for anon in sorted(stim.items):
        gain = 10 ** (levels["gains"][anon] / 20)
        codes = quantize(stim.items[anon].audio * gain, opt.bit_depth, secret + anon)
        write_pcm(packet / files[anon], codes, rate, opt.bit_depth)
        hashes[anon] = file_sha256(packet / files[anon])
    key = _key(ctx, lists, files, hashes, pid, secret)
    private = root / "private"
    _write_text(private / "key.json", key_bytes(key))
    _write_text(private / "design.csv", _design_csv(lists).encode())
    _write_text(private / "processing.csv", _processing_csv(stim, files, levels, rate).encode())
    config = dict(asdict(opt), systems=systems, packet_secret=secret, packet_id=pid,
                  sample_rate_used=rate, level_target_used=levels["target"])
    _write_text(private / "config.resolved.yaml",  # JSON is valid YAML 1.2
                (json.dumps(config, indent=1, sort_keys=True) + "\n").encode())
    public_lists = {lid: [{"trial_id": t["trial_id"], "kind": t["kind"],
                           "stimuli": t["stimuli"], "reference": t.get("reference")}
                          for t in trials] for lid, trials in lists.items()}
    scale = ACR_SCALE if opt.method == "acr" else MUSHRA_SCALE
    manifest = {"format": "wavebench-mos-manifest", "version": 1, "packet_id": pid,
                "method": opt.method, "tool_version": tool_version(), "attribute": opt.attribute,
                "question": opt.question, "scale": scale, "sample_rate": rate,
                "bit_depth": opt.bit_depth, "channels": 1, "lists": public_lists,
                "audio": {a: files[a] for a in sorted(files)}}
    audio_map = manifest["audio"]
    session = {"break_after_min": opt.break_after_min, "max_min": opt.max_min}
    _write_text(packet / "index.html", render_index(
        page_config(manifest, audio_map, INSTRUCTIONS, session)).encode())
    _write_text(packet / "instructions.html",
                render_instructions(opt.question, scale, INSTRUCTIONS).encode())
    if "trials" in (opt.exports or []):
        _write_text(packet / "exports" / "trials.csv", trials_csv(manifest).encode())
    known = {files[anon]: digest for anon, digest in hashes.items()}  # hashed when written
    manifest["files"] = {rel: known.get(rel) or file_sha256(packet / rel)
                         for rel in (p.relative_to(packet).as_posix()
                                     for p in sorted(packet.rglob("*")) if p.is_file())}
    manifest["key_commitment"] = file_sha256(private / "key.json")
    _write_text(packet / "manifest.json",
                (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    write_zip(root / "packet.zip", packet, "packet")
    for path in sorted(root.rglob("*"), reverse=True):  # no file records the build time
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))


def _write_text(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)


def _key(ctx, lists, files, hashes, pid, secret) -> dict:
    """The private key: every stimulus's identity and every trial's type and expected answer."""
    stim, opt = ctx["stim"], ctx["opt"]
    stimuli = {a: {"system": s.system, "item": s.item, "role": s.role, "source": s.source,
                   "file": files[a], "sha256": hashes[a]} for a, s in stim.items.items()}
    trials = {}
    for list_id, seq in lists.items():
        for t in seq:
            trials[t["trial_id"]] = {"list_id": list_id, "position": t["position"],
                                     "trial_type": t["trial_type"], "item": t["item"],
                                     "condition": t.get("condition"), "stimuli": t["stimuli"],
                                     "reference": t.get("reference"),
                                     "filler": bool(t.get("filler", False)),
                                     "expected": t.get("expected")}
    return {"format": "wavebench-mos-key", "version": 1, "packet_id": pid,
            "packet_secret": secret, "method": opt.method, "seed": opt.seed,
            "votes": opt.votes, "conditions": ctx["conditions"], "stimuli": stimuli,
            "trials": trials}


def _design_csv(lists: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["list_id", "session_id", "position", "trial_id", "trial_type", "item",
                "condition", "stimulus_ids", "filler"])
    for list_id, seq in lists.items():
        for t in seq:
            w.writerow([list_id, list_id, t["position"], t["trial_id"], t["trial_type"],
                        t["item"], t.get("condition") or "", " ".join(t["stimuli"]),
                        int(bool(t.get("filler", False)))])
    return buf.getvalue()


def _processing_csv(stim, files: dict, levels: dict, rate: int) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["anon_id", "file", "role", "native_sr", "sample_rate", "duration_s",
                "level_in_db", "gain_db", "level_out_db", "true_peak_dbtp", "resampler"])
    for anon in sorted(stim.items):
        s = stim.items[anon]
        g = levels["gains"][anon]
        w.writerow([anon, files[anon], s.role, s.native_rate, rate,
                    f"{len(s.audio) / rate:.4f}", f"{levels['levels_in'][anon]:.2f}",
                    f"{g:.2f}", f"{levels['levels_in'][anon] + g:.2f}",
                    f"{levels['true_peaks'][anon]:.2f}",
                    "none" if s.native_rate == rate else "soxr VHQ"])
    return buf.getvalue()
