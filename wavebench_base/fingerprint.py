"""Fingerprints of a run's inputs, so that reusing an output folder never mixes two jobs.

A fingerprint is plain JSON: the resolved input folders, the options that change results, and a
signature of each input file (size, mtime and sha256). It is stored in the output folder; a later
run on the same folder compares its own fingerprint with it and names the first difference.

Hashing is the expensive part, so a file whose size and mtime match the stored signature keeps
its stored hash (as make and rsync trust them); a file whose size or mtime moved is hashed again,
and only a different hash counts as a change.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from wavebench_base.errors import InputError

FINGERPRINT_FILE = "fingerprint.json"


def file_signature(path, known: dict | None = None) -> dict:
    """``{"size", "mtime_ns", "sha256"}`` of a file; ``known``'s hash is reused if size and mtime match.

    Parameters
    ----------
    path : str or Path
    known : dict or None
        A signature stored by an earlier run for the same file.
    """
    stat = os.stat(path)
    signature = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if (isinstance(known, dict) and known.get("size") == stat.st_size
            and known.get("mtime_ns") == stat.st_mtime_ns and isinstance(known.get("sha256"), str)):
        signature["sha256"] = known["sha256"]
        return signature
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    signature["sha256"] = digest.hexdigest()
    return signature


def files_signature(paths: dict, known: dict | None = None) -> dict:
    """Signatures of named files: ``{name: {"path", "size", "mtime_ns", "sha256"}}``.

    Parameters
    ----------
    paths : dict[str, path]
        Name (such as ``"system/utterance:generated"``) to file.
    known : dict or None
        The same mapping from an earlier run, whose hashes are reused where size and mtime agree.
    """
    known = known if isinstance(known, dict) else {}
    out = {}
    for name, path in paths.items():
        resolved = str(Path(path).resolve())
        old = known.get(name)
        old = old if isinstance(old, dict) and old.get("path") == resolved else None
        out[name] = {"path": resolved, **file_signature(path, old)}
    return out


def first_difference(old, new, where: str = "") -> str | None:
    """A short description of the first place two JSON values differ, or None if equal.

    Keys are visited in ``new``'s order, so a caller lists the most telling parts first. File
    signatures are compared by path, size and hash (a new mtime alone is no change).

    Examples
    --------
    >>> first_difference({"a": {"b": 1}}, {"a": {"b": 2}})
    'a.b: 1 -> 2'
    """
    if isinstance(old, dict) and isinstance(new, dict):
        if "sha256" in old and "sha256" in new:
            old = {k: v for k, v in old.items() if k != "mtime_ns"}
            new = {k: v for k, v in new.items() if k != "mtime_ns"}
            if old != new:
                what = "content" if old.get("path") == new.get("path") else "file"
                return f"{where}: {what} changed ({new.get('path', '')})"
            return None
        for key in [*new, *(k for k in old if k not in new)]:  # the caller's order: most telling first
            here = f"{where}.{key}" if where else str(key)
            if key not in old:
                return f"{here}: new"
            if key not in new:
                return f"{here}: no longer given"
            found = first_difference(old[key], new[key], here)
            if found:
                return found
        return None
    if old != new:
        return f"{where}: {_short(old)} -> {_short(new)}"
    return None


def _short(value, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_fingerprint(path, key: str | None = None) -> dict | None:
    """The JSON object stored at ``path`` (or its ``key`` entry); None if absent or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and key is not None:
        data = data.get(key)
    return data if isinstance(data, dict) else None


def check_same_job(out_dir, old: dict | None, new: dict, *, force: bool, what: str,
                   exists: bool) -> None:
    """Refuse to reuse ``out_dir`` for a job whose fingerprint differs from the stored one.

    Parameters
    ----------
    out_dir : path
        Named in the error.
    old : dict or None
        The stored fingerprint (None: none was stored).
    new : dict
        This run's fingerprint.
    force : bool
        Start afresh instead of refusing (the caller discards the old results).
    what : str
        The kind of run, for the message ("score run", "report").
    exists : bool
        Whether ``out_dir`` holds results of an earlier run at all.

    Raises
    ------
    InputError
        One line naming the first difference and the way out (``--force`` or another ``-o``).
    """
    if force or not exists:
        return
    if old is None:
        change = "it has no input fingerprint (written by an older wavebench, or edited)"
    else:
        change = first_difference(old, new)
        if change is None:
            return
        change = f"the inputs changed: {change}"
    raise InputError(f"holds a {what} of another job; {change}. Use --force to start afresh "
                     f"(its results are replaced) or choose another -o", out_dir)


def check_replaceable(out_dir, fingerprint: dict, *, kind: str, markers: tuple, force: bool,
                      job_keys: tuple = ("job",)) -> None:
    """Check that ``out_dir`` may be replaced whole by a new ``kind`` output set.

    A folder that is swapped out is deleted, so only an empty folder or one this command wrote
    (it holds ``fingerprint.json`` of the same kind, or one of ``markers`` from an older
    wavebench) may be replaced; anything else is refused even with ``force``. A folder of
    another job (``fingerprint``'s ``job_keys`` differ) is replaced only with ``force``.

    Parameters
    ----------
    out_dir : path
    fingerprint : dict
        This run's fingerprint, with ``"kind"`` and the ``job_keys`` that identify the job.
    kind : str
        ``"report"``, ``"MOS analysis"``.
    markers : tuple of str
        File names that only this command writes (``"report.json"``).
    force : bool

    Raises
    ------
    InputError
        ``out_dir`` is a file, holds other files, or holds another job's output (without
        ``force``).
    """
    out_dir = Path(out_dir)
    if not out_dir.exists() and not out_dir.is_symlink():
        return
    if not out_dir.is_dir() or out_dir.is_symlink():
        raise InputError("exists and is not a folder; choose another -o", out_dir)
    if not any(out_dir.iterdir()):
        return
    stored = read_fingerprint(out_dir / FINGERPRINT_FILE)
    ours = (stored or {}).get("kind") == kind or (
        stored is None and any((out_dir / m).is_file() for m in markers))
    if not ours:
        raise InputError(f"holds files that are not a {kind}; it would be replaced whole, so "
                         f"choose a new or empty -o folder", out_dir)
    job = {key: fingerprint.get(key) for key in job_keys}
    old = None if stored is None else {key: stored.get(key) for key in job_keys}
    check_same_job(out_dir, old, job, force=force, what=kind, exists=True)
