"""The packet's files as both halves of the MOS layer read them (FORMAT.md).

:mod:`wavebench.mos.packet` writes ``manifest.json``, ``private/key.json`` and the stimuli;
:mod:`wavebench.mos.analysis` reads them back, with the page's results JSON. What both need
is here: JSON read with its size, nesting and item count bounded before parsing, the JSON types of
the manifest's and key's fields checked before use, and the sha256 of a file (the key
commitment and the manifest's file list).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from wavebench_base.errors import InputError

#: Deepest JSON nesting read (the results and the key nest 4 deep, the manifest 5).
MAX_JSON_DEPTH = 32


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b"[]{},")))
_DEPTH_STEP = np.zeros(256, np.int8)
_DEPTH_STEP[list(b"[{")], _DEPTH_STEP[list(b"]}")] = 1, -1


def json_shape(raw: bytes, chunk: int = 1 << 20) -> tuple[int, int]:
    """Nesting depth and number of commas of a JSON text, outside strings, without parsing.

    Parameters
    ----------
    raw : bytes
        The text (any bytes; invalid JSON gives some bounded answer).
    chunk : int
        Brackets summed at a time (bounds the memory of the running depth).

    Returns
    -------
    (int, int)
        The deepest bracket nesting and the number of commas.
    """
    # An unterminated string runs to the end, so every match succeeds at once: linear time.
    structure = _JSON_STRING.sub(b"", raw).translate(None, _NOT_STRUCTURE)
    steps = _DEPTH_STEP[np.frombuffer(structure, np.uint8)]
    depth = deepest = 0
    for start in range(0, steps.size, chunk):
        run = np.cumsum(steps[start:start + chunk], dtype=np.int64) + depth
        deepest, depth = max(deepest, int(run.max())), int(run[-1])
    return deepest, structure.count(b",")


def read_bytes(path: Path, what: str, max_bytes: int | None = None) -> bytes:
    """The bytes of a file, refused in one line when missing, unreadable or over ``max_bytes``.

    A file that is also hashed (the key and its commitment) is read once: hash these bytes
    and give them to :func:`parse_json`.
    """
    if not path.is_file():
        raise InputError(f"no {what} here" if not path.exists() else "not a file", path)
    try:
        with open(path, "rb") as f:
            raw = f.read() if max_bytes is None else f.read(max_bytes + 1)
    except OSError as err:
        raise InputError(f"cannot read {what}: {err.strerror}", path) from None
    if max_bytes is not None and len(raw) > max_bytes:
        raise InputError(f"{what} is larger than {max_bytes // 2**20} MiB, far more than a "
                         "listening session writes; not read", path)
    return raw


def read_json(path: Path, what: str, *, max_bytes: int | None = None,
              max_items: int | None = None) -> dict:
    """A JSON object from a file, its size, nesting and item count checked before parsing.

    Parameters
    ----------
    path : pathlib.Path
    what : str
        What the file is, for the messages (``"packet manifest"``, ``"results file"``).
    max_bytes, max_items : int, optional
        Refuse a larger file, or one with more items (commas outside strings).

    Returns
    -------
    dict

    Raises
    ------
    InputError
        A missing or unreadable file; one over ``max_bytes``, ``max_items`` or
        :data:`MAX_JSON_DEPTH`; not UTF-8, not JSON, or not a JSON object.
    """
    return parse_json(read_bytes(path, what, max_bytes), path, what, max_items=max_items)


def parse_json(raw: bytes, path: Path, what: str, *, max_items: int | None = None) -> dict:
    """A JSON object from the bytes of ``path`` (see :func:`read_json`, which reads them)."""
    depth, items = json_shape(raw)
    if depth > MAX_JSON_DEPTH:
        raise InputError(f"{what} is nested {depth} levels deep; at most {MAX_JSON_DEPTH} "
                         "are read", path)
    if max_items is not None and items > max_items:
        raise InputError(f"{what} holds {items} JSON items; at most {max_items} are read", path)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{what} is not UTF-8 text", path) from None
    except json.JSONDecodeError as err:
        raise InputError(f"{what} is not valid JSON (truncated or edited?): {err.msg} at "
                         f"line {err.lineno} column {err.colno}", path) from None
    except ValueError as err:  # an integer of more than 4300 digits
        raise InputError(f"{what} is not valid JSON: {str(err).splitlines()[0]}",
                         path) from None
    if not isinstance(data, dict):
        raise InputError(f"{what} must be a JSON object, got {type(data).__name__}", path)
    return data


# The fields each check reads, and their JSON types: anything else is refused before use.
_MANIFEST_FIELDS = {"packet_id": str, "key_commitment": str, "sample_rate": int,
                    "bit_depth": int, "channels": int, "files": dict, "audio": dict,
                    "lists": dict}
_LIST_TRIAL_FIELDS = {"kind": str, "stimuli": list}
_KEY_FIELDS = {"method": str, "votes": int, "conditions": list, "stimuli": dict, "trials": dict}
_KEY_STIMULUS_FIELDS = {"system": str, "item": str, "role": str, "source": str, "file": str}
_KEY_TRIAL_FIELDS = {"list_id": str, "trial_type": str, "item": str,
                     "condition": (str, type(None)), "filler": bool}
_JSON_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "an object",
               list: "a list", type(None): "null", float: "a number"}


def check_manifest(manifest, packet: Path, path: Path) -> dict:
    """Check a loaded manifest's structure and keep its paths inside ``packet``; return it.

    Raises
    ------
    InputError
        One line naming ``path`` and the first field that is missing or of the wrong type, or
        a path that leaves the packet.
    """
    _expect(manifest, dict, path, "the manifest")
    _fields(manifest, _MANIFEST_FIELDS, path)
    for rel, digest in manifest["files"].items():
        _inside(packet, rel, path, "files")
        _expect(digest, str, path, f"files[{rel!r}]")
    for anon, rel in manifest["audio"].items():
        _expect(rel, str, path, f"audio[{anon!r}]")
        _inside(packet, rel, path, "audio")
    for list_id, trials in manifest["lists"].items():
        _expect(trials, list, path, f"lists[{list_id!r}]")
        for n, trial in enumerate(trials):
            _record(trial, _LIST_TRIAL_FIELDS, path, f"lists[{list_id!r}][{n}]")
            _strings(trial["stimuli"], path, f"lists[{list_id!r}][{n}].stimuli")
    return manifest


def check_key(key, packet: Path, path: Path) -> dict:
    """Check a loaded private key's structure (see :func:`check_manifest`); return it."""
    _expect(key, dict, path, "the key")
    _fields(key, _KEY_FIELDS, path)
    _strings(key["conditions"], path, "conditions")
    for anon, stimulus in key["stimuli"].items():
        _record(stimulus, _KEY_STIMULUS_FIELDS, path, f"stimuli[{anon!r}]")
        _inside(packet, stimulus["file"], path, f"stimuli[{anon!r}].file")
    for trial_id, trial in key["trials"].items():
        _record(trial, _KEY_TRIAL_FIELDS, path, f"trials[{trial_id!r}]")
    return key


def check_import_shape(manifest, manifest_path: Path, key, key_path: Path) -> None:
    """The containers that ``mos import`` and ``analyze`` walk have their JSON types.

    Lighter than :func:`check_manifest` and :func:`check_key` (which ``mos validate`` applies):
    only ``lists`` (an object of lists of objects) and the key's ``stimuli`` and ``trials``
    (objects of objects) are read there.

    Raises
    ------
    InputError
        One line naming the file and the first container of the wrong type.
    """
    _expect(manifest, dict, manifest_path, "the manifest")
    _expect(manifest.get("lists"), dict, manifest_path, "lists")
    for list_id, trials in manifest["lists"].items():
        _expect(trials, list, manifest_path, f"lists[{list_id!r}]")
        for n, trial in enumerate(trials):
            _expect(trial, dict, manifest_path, f"lists[{list_id!r}][{n}]")
    _expect(key, dict, key_path, "the key")
    for name in ("stimuli", "trials"):
        _expect(key.get(name), dict, key_path, name)
        for entry_id, entry in key[name].items():
            _expect(entry, dict, key_path, f"{name}[{entry_id!r}]")


def _is(value, kinds: tuple) -> bool:
    # bool is an int to Python but not to a JSON schema: true is no vote count
    return any(isinstance(value, k) and not (k is int and isinstance(value, bool))
               for k in kinds)


def _expect(value, kinds, path: Path, name: str) -> None:
    """Raise a one-line InputError naming ``path`` and ``name`` unless ``value`` is ``kinds``."""
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if not _is(value, kinds):
        got = next((n for k, n in _JSON_NAMES.items() if _is(value, (k,))),
                   type(value).__name__)
        raise InputError(f"{name} must be {' or '.join(_JSON_NAMES[k] for k in kinds)}, got "
                         f"{got}; is this a wavebench packet?", path)


def _fields(doc: dict, spec: dict, path: Path, where: str = "") -> None:
    """Every field of ``spec`` present in ``doc`` with its type."""
    for name, kinds in spec.items():
        if name not in doc:
            raise InputError(f"{where}{name} is missing; is this a wavebench packet?", path)
        _expect(doc[name], kinds, path, f"{where}{name}")


def _record(value, spec: dict, path: Path, name: str) -> None:
    """``value`` is an object with the fields of ``spec``."""
    _expect(value, dict, path, name)
    _fields(value, spec, path, f"{name}.")


def _strings(values: list, path: Path, name: str) -> None:
    """Every element of ``values`` is a string."""
    for n, value in enumerate(values):
        _expect(value, str, path, f"{name}[{n}]")


def _inside(packet: Path, rel: str, path: Path, name: str) -> None:
    """Refuse a path that is absolute, climbs with ``..`` or resolves (links too) outside."""
    try:
        inside = (packet / rel).resolve().is_relative_to(packet.resolve())
    except (OSError, RuntimeError, ValueError):  # a link loop, a NUL byte, a lone surrogate
        inside = False
    if not inside or not rel or rel.startswith(("/", "\\")) \
            or ".." in rel.replace("\\", "/").split("/"):
        raise InputError(f"{name} entry {rel!r} is not a relative path inside the packet "
                         "(absolute, with '..' or through a link out of it)", path)
