"""``mos packet --config mos.yaml``: the packet options as a file (listening-test.md 14).

The file's sections map onto :class:`wavebench.mos.packet.build.PacketOptions`; options given on
the command line win over the file. Settings the builder cannot honour yet (another scale,
several sessions per rater, repeat or bandwidth trials) are refused with one line rather than
ignored, and the ``study`` block is kept in ``private/config.resolved.yaml``, where the
analysis report's checklist reads it.
"""
from __future__ import annotations

import json
from pathlib import Path

from wavebench_base.errors import InputError

SECTIONS = ("method", "attribute", "question", "scale", "design", "audio", "anchors", "checks",
            "session", "exports", "study")
DEFAULT_SCALE_ID = "acr5"
P800 = {5: "Excellent", 4: "Good", 3: "Fair", 2: "Poor", 1: "Bad"}


def read_config(path) -> dict:
    """The YAML (or JSON) file as a dict, refusing unknown sections."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such config file", path)
    text = path.read_text(encoding="utf-8")
    try:
        import yaml
        data = yaml.safe_load(text)
    except ImportError:
        try:
            data = json.loads(text)
        except ValueError:
            raise InputError("not JSON, and PyYAML is not installed to read YAML "
                             "(pip install pyyaml)", path) from None
    except Exception as exc:  # yaml.YAMLError and its subclasses
        raise InputError(f"not valid YAML ({str(exc).splitlines()[0]})", path) from None
    if not isinstance(data, dict):
        raise InputError("expected a mapping of sections (method, design, audio, ...)", path)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise InputError(f"unknown section(s) {', '.join(unknown)}; known: "
                         f"{', '.join(SECTIONS)}", path)
    return data


#: The keys each section may hold: key -> (PacketOptions field or None if checked only, type).
SCHEMA = {
    "design": {"votes": ("votes", int), "seed": ("seed", int),
               "holdout_items": ("holdout", int), "trials_per_session": ("trials_per_session",
                                                                         (int, str)),
               "sessions_per_rater": (None, int)},
    "audio": {"sample_rate": ("sample_rate", (int, str)), "bit_depth": ("bit_depth", int),
              "level": ("level", str), "true_peak_max_dbtp": (None, (int, float))},
    "checks": {"headphone": ("headphone_check", (str, bool)), "gold": ("gold", str),
               "traps": ("traps", str), "repeat": (None, int), "training": (None, int),
               "bandwidth": (None, bool)},
    "session": {"break_after_min": ("break_after_min", (int, float)),
                "max_min": ("max_min", (int, float))},
    "scale": {"id": (None, str), "labels": (None, dict), "step": (None, (int, float))},
}
TOP_LEVEL = {"method": str, "attribute": str, "question": str}


def packet_options_from_config(data: dict, path) -> dict:
    """PacketOptions keyword arguments from a config dict (only the settings it gives).

    Every key is checked: an unknown key, a value of the wrong type or a setting the builder
    cannot honour is refused with one line naming it.
    """
    out = {}
    for key, kind in TOP_LEVEL.items():
        if key in data:
            out[key] = _typed(data[key], kind, key, path)
    given = {}
    for name, keys in SCHEMA.items():
        section = data.get(name) or {}
        if not isinstance(section, dict):
            raise InputError(f"section {name!r} must be a mapping", path)
        unknown = sorted(set(section) - set(keys))
        if unknown:
            raise InputError(f"{name}: unknown key(s) {', '.join(map(str, unknown))}; known: "
                             f"{', '.join(keys)}", path)
        for key, value in section.items():
            field, kind = keys[key]
            value = _typed(value, kind, f"{name}.{key}", path)
            given[f"{name}.{key}"] = value
            if field is not None:
                out[field] = value
    _refuse(path, given.get("scale.id", DEFAULT_SCALE_ID) not in (DEFAULT_SCALE_ID, "mushra100"),
            f"scale {given.get('scale.id')!r} is not built yet; ACR uses acr5 and MUSHRA "
            "mushra100")
    labels = {str(k): v for k, v in (given.get("scale.labels") or {}).items()}
    _refuse(path, bool(labels) and labels not in ({str(k): v for k, v in P800.items()},),
            "scale.labels: custom labels are not built yet; ACR uses the P.800 labels "
            "(5 Excellent ... 1 Bad)")
    _refuse(path, given.get("design.sessions_per_rater", 1) != 1,
            "design.sessions_per_rater other than 1 is not built yet")
    _refuse(path, given.get("audio.true_peak_max_dbtp", -1.0) != -1.0,
            "audio.true_peak_max_dbtp is fixed at -1.0 dBTP")
    _refuse(path, bool(given.get("checks.repeat")), "checks.repeat (consistency repeats) is not "
            "built yet; set it to 0")
    _refuse(path, bool(given.get("checks.bandwidth")), "checks.bandwidth is not built yet")
    _refuse(path, given.get("checks.training", 3) != 3,
            "checks.training: the packet builds 3 training trials (1 MUSHRA page)")
    if out.get("headphone_check") is False:  # YAML reads `no` / `off` as false
        out["headphone_check"] = "none"
    if isinstance(out.get("trials_per_session"), str):
        _refuse(path, out["trials_per_session"] != "auto",
                "design.trials_per_session must be a number or auto")
        out["trials_per_session"] = None
    if "sample_rate" in out:
        out["sample_rate"] = str(out["sample_rate"])
    for name in ("anchors", "exports"):
        if name in data:
            value = data[name]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InputError(f"{name} must be a list of names", path)
            out[name] = list(value)
    if "study" in data:
        if not isinstance(data["study"], dict):
            raise InputError("section 'study' must be a mapping", path)
        out["study"] = {str(k): v for k, v in data["study"].items()}
    return out


def _typed(value, kind, name: str, path):
    """``value`` when it has the type ``kind`` (bools are not numbers), else InputError."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        wanted = " or ".join(k.__name__ for k in kinds)
        raise InputError(f"{name} must be {wanted}, got {value!r}", path)
    return value


def _refuse(path, condition: bool, message: str) -> None:
    if condition:
        raise InputError(message, path)
