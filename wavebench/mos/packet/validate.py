"""Check a built packet: integrity, balance, leaks and the key commitment (``mos validate``)."""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from wavebench.mos.packet_files import (
    check_key,
    check_manifest,
    parse_json,
    read_bytes,
    read_json,
)
from wavebench_base.errors import InputError
from wavebench_base.runinfo import file_sha256

MIN_LEAK_LENGTH = 4  # shorter names match by chance (in base32 ids); reported as unchecked


@dataclass
class ValidationReport:
    """Problems (``errors``), ``warnings`` and ``info`` lines found in a packet."""

    packet_id: str = ""
    n_files: int = 0
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    info: list = field(default_factory=list)


def _locate(path: Path) -> tuple[Path, Path | None]:
    """(packet folder, private folder or None) for OUT or OUT/packet.

    Raises
    ------
    InputError
        If no ``manifest.json`` is found.
    """
    path = Path(path)
    if (path / "packet" / "manifest.json").is_file():
        return path / "packet", path / "private"
    if (path / "manifest.json").is_file():
        private = path.parent / "private"
        return path, private if private.is_dir() else None
    raise InputError("no manifest.json here or in packet/; is this a wavebench packet?", path)


def validate_packet(path) -> ValidationReport:
    """Validate a packet folder (``OUT`` or ``OUT/packet``).

    Parameters
    ----------
    path : str or Path
        The packet; balance, leak and commitment checks need ``private/`` beside it.

    Returns
    -------
    ValidationReport
        Empty ``errors`` when the packet is sound.

    Raises
    ------
    InputError
        If there is no manifest, the manifest or key is not JSON of the expected structure
        (the file and field are named), or the manifest or key names a path outside the packet.
    """
    packet, private = _locate(path)
    manifest = _manifest(packet)
    report = ValidationReport(packet_id=manifest["packet_id"])
    files = _packet_files(packet, report)
    _integrity(packet, manifest, files, report)
    _wav_format(packet, manifest, files, report)
    if private is None:
        report.warnings.append("no private/ folder beside the packet: balance, leak and key "
                               "checks skipped")
        return report
    key, key_sha256 = _key(packet, private)
    if key_sha256 != manifest["key_commitment"]:
        report.errors.append("private/key.json does not match manifest key_commitment "
                             "(a swapped or edited key)")
    unlisted = sorted(s["file"] for s in key["stimuli"].values()
                      if s["file"] not in manifest["files"])
    if unlisted:
        report.errors.append(f"private/key.json: stimulus file {unlisted[0]} is not in the "
                             f"manifest ({len(unlisted)} such files)")
    _balance(key, report)
    _leaks(packet, key, files, report)
    if not report.errors:  # durations need every stimulus readable
        _durations(packet, key, report)
    return report


def _manifest(packet: Path) -> dict:
    """The manifest, its structure checked and its paths kept inside ``packet``."""
    path = packet / "manifest.json"
    return check_manifest(read_json(path, "packet manifest"), packet, path)


def _key(packet: Path, private: Path) -> tuple[dict, str]:
    """The private key, its structure checked and its stimulus files kept inside ``packet``,
    and the sha256 of its bytes (read once)."""
    path = private / "key.json"
    raw = read_bytes(path, "packet key")
    key = check_key(parse_json(raw, path, "packet key"), packet, path)
    return key, hashlib.sha256(raw).hexdigest()


def _packet_files(packet: Path, report: ValidationReport) -> list[Path]:
    """The files in the packet, sorted; a link to a file outside it is an error, never read."""
    root, files = packet.resolve(), []
    for p in sorted(packet.rglob("*")):
        if not p.is_file():
            continue
        if not p.resolve().is_relative_to(root):
            report.errors.append(f"{p.relative_to(packet).as_posix()}: a link to a file "
                                 "outside the packet")
            continue
        files.append(p)
    return files


def _integrity(packet: Path, manifest: dict, files: list, report: ValidationReport) -> None:
    """Every listed file present with its hash; no unlisted files."""
    listed = manifest["files"]
    for rel, digest in sorted(listed.items()):
        p = packet / rel
        if not p.is_file():
            report.errors.append(f"{rel}: listed in the manifest but missing")
        elif file_sha256(p) != digest:
            report.errors.append(f"{rel}: sha256 differs from the manifest (file changed)")
    present = {p.relative_to(packet).as_posix() for p in files}
    for rel in sorted(present - set(listed) - {"manifest.json"}):
        report.errors.append(f"{rel}: in the packet but not in the manifest")
    report.n_files = len(present)


def _wav_format(packet: Path, manifest: dict, files: list, report: ValidationReport) -> None:
    """Every WAV has the manifest's rate, bit depth and channel count (two channels for the
    headphone check's tones)."""
    want = (manifest["sample_rate"], f"PCM_{manifest['bit_depth']}", manifest["channels"])
    audio = manifest["audio"]
    stereo = {audio.get(anon) for trials in manifest["lists"].values()
              for t in trials if t["kind"] == "headphone" for anon in t["stimuli"]}
    for p in (p for p in files if p.suffix == ".wav"):
        try:
            info = sf.info(str(p))
        except (sf.LibsndfileError, RuntimeError) as exc:
            problem = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
            report.errors.append(f"{p.relative_to(packet)}: not a readable WAV ({problem[-120:]})")
            continue
        got = (info.samplerate, info.subtype, info.channels)
        if p.relative_to(packet).as_posix() in stereo:
            got = got[:2] + (want[2] if info.channels == 2 else info.channels,)
        if got != want:
            report.errors.append(f"{p.relative_to(packet)}: {got} differs from the packet "
                                 f"format {want}")


def _balance(key: dict, report: ValidationReport) -> None:
    """Votes per (item, condition) and per-list condition counts, from the key."""
    rating = [t for t in key["trials"].values() if t["trial_type"] == "rating"]
    per_list: dict = {}
    for t in rating:
        per_list.setdefault(t["list_id"], []).append(t)
    for list_id, trials in sorted(per_list.items()):
        items = [t["item"] for t in trials]
        if len(set(items)) != len(items):
            report.errors.append(f"list {list_id}: an item is rated twice")
        conds = Counter(t["condition"] for t in trials if t["condition"] is not None)
        if conds and len(set(conds.values())) > 1:
            report.errors.append(f"list {list_id}: conditions unbalanced {dict(conds)}")
    if key["method"] != "acr":
        return
    cells = Counter((t["item"], t["condition"]) for t in rating if not t["filler"])
    items = {i for i, _ in cells}
    missing = [(i, c) for i in items for c in key["conditions"] if (i, c) not in cells]
    counts = set(cells.values())
    if missing or len(counts) > 1 or counts != {key["votes"]}:
        report.errors.append(f"votes per (item, condition) are not all {key['votes']}: "
                             f"counts {sorted(counts)}, {len(missing)} empty cells")
    else:
        report.info.append(f"balance: {len(cells)} cells x {key['votes']} votes, "
                           f"{len(per_list)} lists")


def _leak_strings(key: dict) -> tuple[set, set]:
    """(strings to look for, names too short to check) from systems, sources and folders."""
    look, short = set(), set()
    # The natural reference's name ("natural") is no secret and may appear in the question.
    natural = {s["system"] for s in key["stimuli"].values() if s["role"] == "natural"}
    for s in key["stimuli"].values():
        if s["role"] == "headphone":  # synthesized tones: no system or file to hide
            continue
        source = Path(s["source"])
        names = [str(source), str(source.parent)]
        if s["system"] not in natural:
            names += [s["system"], source.parent.name]
        for text in names:
            (look if len(text) >= MIN_LEAK_LENGTH else short).add(text)
    return look, short


def _leaks(packet: Path, key: dict, files: list, report: ValidationReport) -> None:
    """No system name, source path or folder name in any file of the packet (any case)."""
    look, short = _leak_strings(key)
    needles = sorted({t.lower().encode(errors="surrogatepass") for t in look})
    for p in files:
        data = p.read_bytes().lower()
        for needle in needles:
            if needle in data:
                report.errors.append(f"{p.relative_to(packet)}: contains "
                                     f"{needle.decode(errors='replace')!r} (a system name, "
                                     f"path or folder name)")
        if any(n in p.relative_to(packet).as_posix().lower().encode() for n in needles):
            report.errors.append(f"{p.relative_to(packet)}: its name leaks a system or folder")
    if short:
        report.warnings.append(f"names too short to check for leaks: {', '.join(sorted(short))}")


def _durations(packet: Path, key: dict, report: ValidationReport) -> None:
    """Per-condition mean duration; warn when one is more than 10 % longer than the shortest."""
    means = {}
    for cond in key["conditions"]:
        files = [s["file"] for s in key["stimuli"].values()
                 if s["system"] == cond and s["file"].startswith("stimuli/")
                 and s["role"] != "reference"]
        if files:
            means[cond] = float(np.mean([sf.info(str(packet / f)).duration for f in files]))
    if means:
        report.info.append("mean duration per condition: " + ", ".join(
            f"{c} {d:.2f} s" for c, d in means.items()))
        if max(means.values()) > 1.1 * min(means.values()):
            report.warnings.append("one condition is systematically more than 10 % longer: "
                                   "raters may tell conditions apart by length")
