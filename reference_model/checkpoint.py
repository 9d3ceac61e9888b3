"""The checkpoint format: one file, written atomically, readable with ``weights_only=True``."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from reference_model.audio import atomic_path
from reference_model.config import ModelConfig, config_from_dict
from reference_model.errors import InputError
from reference_model.model import WaveNet

FORMAT = "wavebench-checkpoint"
VERSION = 1
WRAPPER_PREFIXES = ("_orig_mod.", "module.")  # torch.compile and DistributedDataParallel


PACKAGES = ("wavebench", "torch", "numpy", "scipy", "librosa", "pystoi", "pandas", "soundfile")


def library_versions() -> dict:
    """Python's and the installed versions of the libraries that shape wavebench's numbers."""
    import platform
    from importlib.metadata import PackageNotFoundError, version
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def clean_state_dict(state: dict) -> dict:
    """Strip wrapper prefixes so a compiled or DDP model saves the plain module's keys."""
    out = {}
    for key, value in state.items():
        for prefix in WRAPPER_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value.detach().cpu().clone() if isinstance(value, torch.Tensor) else value
    return out


def save_checkpoint(path, *, config: ModelConfig, model_state: dict, **fields) -> Path:
    """Write a checkpoint atomically (temporary file in the same folder, then rename).

    ``fields`` are stored as they are and must be plain data or tensors: ``optimizer``,
    ``scheduler``, ``step``, ``epoch``, ``best_val_loss``, ``rng``, ``data_fingerprint``,
    ``train_config``, ``ema_state`` and so on.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "config": config.to_dict(),
               "model": clean_state_dict(model_state), "versions": library_versions(), **fields}
    if payload.get("ema_state") is not None:
        payload["ema_state"] = clean_state_dict(payload["ema_state"])
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    return path


def describe(obj) -> str:
    """A few words on what a foreign checkpoint holds, for the error message."""
    if isinstance(obj, dict):
        keys = list(obj)
        if keys and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return f"a bare state_dict with {len(keys)} tensors"
        return "a dict with keys " + ", ".join(map(str, keys[:6])) + (" ..." if len(keys) > 6 else "")
    return f"a {type(obj).__name__}"


def read_checkpoint(path) -> dict:
    """Load and validate a checkpoint's contents (on the CPU) without building a model."""
    path = Path(path)
    if not path.exists():
        raise InputError("checkpoint not found", path)
    if not path.is_file():
        raise InputError("checkpoint path is not a file", path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"not a readable wavebench checkpoint ({reason[:160]})", path) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else None
        what = f"format {found!r}" if found else describe(payload)
        raise InputError(f"not a wavebench checkpoint: found {what}", path)
    version = payload.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise InputError(f"checkpoint format version {version!r} is not supported by this "
                         f"wavebench (reads up to {VERSION}); upgrade wavebench", path)
    for key in ("config", "model"):
        if not isinstance(payload.get(key), dict):
            raise InputError(f"wavebench checkpoint has no valid {key!r} entry (a dict)", path)
    if payload.get("ema_state") is not None and not isinstance(payload["ema_state"], dict):
        raise InputError("wavebench checkpoint has an 'ema_state' entry that is not a dict", path)
    return payload


def load_checkpoint(path, *, device="cpu", use_ema: bool = True) -> tuple[WaveNet, dict]:
    """Build the WaveNet stored in a checkpoint, in eval mode.

    Returns the model (with the moving-average weights when the checkpoint has them and
    ``use_ema``) and the checkpoint's contents.

    Raises
    ------
    InputError
        Missing or unreadable file, another tool's checkpoint, a newer format version, or
        weights that do not fit the stored config.
    """
    payload = read_checkpoint(path)
    try:
        config = config_from_dict(payload["config"], source=str(path))
    except InputError as exc:
        message = str(exc)
        if str(path) in message:
            raise
        raise InputError(message.removeprefix("config: "), path) from None
    model = WaveNet(config)
    state = payload["ema_state"] if use_ema and payload.get("ema_state") else payload["model"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"weights do not match the stored config ({first[:160]})", path) from None
    return model.to(device).eval(), payload
