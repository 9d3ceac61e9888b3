"""``mos packet --config mos.yaml``: the packet options as a file (MOS.md section 14).

The file's sections map onto :class:`wavebench.mos.packet.PacketOptions`; options given on
the command line win over the file. Settings the builder cannot honour yet (another scale,
several sessions per rater, repeat or bandwidth trials) are refused with one line rather than
ignored, and the ``study`` block is kept in ``private/config.resolved.yaml``, where the
analysis report's checklist reads it.
"""
from __future__ import annotations

import json
from pathlib import Path

from reference_model.errors import InputError

SECTIONS = ("method", "attribute", "question", "scale", "design", "audio", "anchors", "checks",
            "session", "exports", "study")
DEFAULT_SCALE_ID = "acr5"


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


def packet_options_from_config(data: dict, path) -> dict:
    """PacketOptions keyword arguments from a config dict (only the settings it gives)."""
    def section(name):
        value = data.get(name) or {}
        if not isinstance(value, dict):
            raise InputError(f"section {name!r} must be a mapping", path)
        return value

    out = {k: data[k] for k in ("method", "attribute", "question") if k in data}
    design, audio, checks, session = (section(n) for n in ("design", "audio", "checks",
                                                            "session"))
    scale = section("scale")
    if scale and scale.get("id", DEFAULT_SCALE_ID) not in (DEFAULT_SCALE_ID, "mushra100"):
        raise InputError(f"scale {scale.get('id')!r} is not built yet; ACR uses acr5 and "
                         "MUSHRA mushra100", path)
    _refuse(path, design.get("sessions_per_rater", 1) != 1, "design.sessions_per_rater other "
            "than 1 is not built yet")
    _refuse(path, audio.get("true_peak_max_dbtp", -1.0) != -1.0,
            "audio.true_peak_max_dbtp is fixed at -1.0 dBTP")
    _refuse(path, bool(checks.get("repeat")), "checks.repeat (consistency repeats) is not built "
            "yet; set it to 0")
    _refuse(path, bool(checks.get("bandwidth")), "checks.bandwidth is not built yet")
    _refuse(path, "training" in checks and checks["training"] not in (3, 4, 5),
            "checks.training: the packet builds 3 to 5 training trials")
    renames = {"votes": design.get("votes"), "seed": design.get("seed"),
               "holdout": design.get("holdout_items"),
               "trials_per_session": design.get("trials_per_session"),
               "sample_rate": audio.get("sample_rate"), "bit_depth": audio.get("bit_depth"),
               "level": audio.get("level"), "gold": checks.get("gold"),
               "traps": checks.get("traps"), "headphone_check": checks.get("headphone"),
               "break_after_min": session.get("break_after_min"),
               "max_min": session.get("max_min")}
    out.update({k: v for k, v in renames.items() if v is not None})
    if out.get("trials_per_session") == "auto":
        out["trials_per_session"] = None
    if "sample_rate" in out:
        out["sample_rate"] = str(out["sample_rate"])
    for name in ("anchors", "exports"):
        if name in data:
            value = data[name]
            if not isinstance(value, list):
                raise InputError(f"{name} must be a list", path)
            out[name] = [str(v) for v in value]
    if "study" in data:
        out["study"] = section("study")
    return out


def _refuse(path, condition: bool, message: str) -> None:
    if condition:
        raise InputError(message, path)
