"""Run metadata shared by every command that writes a run folder: the installed version, the
git revision, the versions of the libraries that shape the numbers, and hashes."""
from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path


def tool_version() -> str:
    """The installed wavebench version ("unknown" when run from a source tree)."""
    try:
        return metadata.version("wavebench")
    except metadata.PackageNotFoundError:
        return "unknown"


def git_revision() -> str:
    """The source tree's git revision when wavebench runs from a checkout, else ''."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def stable_hash(data) -> str:
    """A short hash of JSON-able data, independent of key order."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks so that long files need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hash(path) -> str:
    """The first 12 hex digits of :func:`file_sha256`, to name a file's version in a run."""
    return file_sha256(path)[:12]


#: The libraries whose versions shape wavebench's numbers, recorded with checkpoints and scores.
PACKAGES = ("wavebench", "torch", "numpy", "scipy", "librosa", "pystoi", "pandas", "soundfile")


def library_versions() -> dict:
    """Python's and the installed versions of :data:`PACKAGES` (read from package metadata,
    without importing them: a score of audio files never loads torch)."""
    import platform
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found
