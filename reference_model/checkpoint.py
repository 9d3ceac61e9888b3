"""The checkpoint format: one file, written atomically, readable with ``weights_only=True``."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from reference_model.config import ModelConfig, config_from_dict, shown
from reference_model.model import WaveNet, state_shapes
from wavebench_base.errors import InputError
from wavebench_base.files import atomic_path
from wavebench_base.runinfo import library_versions

FORMAT = "wavebench-checkpoint"
VERSION = 1
WRAPPER_PREFIXES = ("_orig_mod.", "module.")  # torch.compile and DistributedDataParallel


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
        names = [str(k).encode("unicode_escape").decode("ascii")[:40] for k in keys[:6]]
        return "a dict with keys " + ", ".join(names) + (" ..." if len(keys) > 6 else "")
    return f"a {type(obj).__name__}"


ZIP_START, ZIP_END = b"PK\x03\x04", b"PK\x05\x06"  # local file header, end of directory
ZIP_END_SEARCH = 22 + 65535  # the end record, after a comment of at most 64 KiB


def cut_short(path: Path) -> bool:
    """Whether ``path`` starts as a zip archive (torch's format) but lacks the end record that
    the last bytes of a complete one hold: a write or copy that stopped part way."""
    try:
        with open(path, "rb") as f:
            if f.read(len(ZIP_START)) != ZIP_START:
                return False
            f.seek(max(0, path.stat().st_size - ZIP_END_SEARCH))
            return ZIP_END not in f.read()
    except OSError:
        return False


def unreadable_reason(exc: BaseException, path: Path) -> str:
    """Why ``torch.load`` failed, in one whole sentence (never cut off).

    A torch archive cut short is said so plainly (torch reports it as anything from a miniz
    error to ``EINVAL``). Otherwise torch's messages run to several sentences and lines
    (advice on ``weights_only``, links): the first sentence names the problem, except for the
    weights-only unpickler, whose own complaint comes after that advice.
    """
    if cut_short(path):
        return "the file is cut short: its zip archive has no end record"
    text = str(exc).strip()
    if isinstance(exc, pickle.UnpicklingError) and "WeightsUnpickler error:" in text:
        detail = first_sentence(text.split("WeightsUnpickler error:", 1)[1])
        return f"holds objects that weights_only loading refuses: {detail}"
    if isinstance(exc, EOFError) or not text:
        return "the file is empty or ends early"
    return first_sentence(text)


def first_sentence(text: str) -> str:
    """The first non-blank line of ``text``, up to the end of its first sentence (no period)."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line.partition(". ")[0].rstrip(".") or line


def read_checkpoint(path) -> dict:
    """Load and validate a checkpoint's contents (on the CPU) without building a model.

    Besides the format, the stored config is validated (it is bounded, see
    ``reference_model.config.LIMITS``) and every stored state_dict is compared, tensor by
    tensor, with the shapes that config implies (found on the ``meta`` device, with no
    storage), so that nothing is built from a checkpoint whose weights do not fit.

    Raises
    ------
    InputError
        One line naming ``path``: missing, unreadable or foreign file, newer format version,
        a config out of bounds, or weights that do not match the config.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("checkpoint not found", path)
    if not path.is_file():
        raise InputError("checkpoint path is not a file", path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise InputError(f"not a readable wavebench checkpoint "
                         f"({unreadable_reason(exc, path)})", path) from None
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
    expected = state_shapes(stored_config(payload, path))
    check_weights(expected, payload["model"], path)
    if payload.get("ema_state"):
        check_weights(expected, payload["ema_state"], path, "ema_state")
    return payload


def stored_config(payload: dict, path) -> ModelConfig:
    """The ModelConfig of a checkpoint's contents; InputError naming ``path`` if it is invalid."""
    try:
        return config_from_dict(payload["config"], source=str(path))
    except InputError as exc:
        message = str(exc)
        if str(path) in message:
            raise
        raise InputError(message.removeprefix("config: "), path) from None


def check_weights(expected: dict, state: dict, path, entry: str = "model") -> None:
    """Refuse a state_dict whose tensors are not the ``expected`` ones, before a model is built.

    ``expected`` maps each tensor's name to its shape, as :func:`~reference_model.model.
    state_shapes` finds them on the ``meta`` device (no storage), so a checkpoint whose weights
    disagree with its config costs no allocation. The first mismatched tensor, in the model's
    own order, is named.
    """
    for key, shape in expected.items():
        value = state.get(key)
        if value is None:
            problem = f"tensor {key} is missing"
        elif not is_plain_weight(value):
            problem = f"{key} is {describe_value(value)}, not a dense floating-point tensor"
        elif tuple(value.shape) != shape:
            problem = (f"tensor {key} has shape {list(value.shape)}, the config implies "
                       f"{list(shape)}")
        else:
            continue
        raise InputError(f"weights do not match the stored config: {entry} {problem}", path)
    extra = [key for key in state if key not in expected]
    if extra:
        raise InputError(f"weights do not match the stored config: {entry} has {len(extra)} "
                         f"tensor(s) the config does not define, first {shown(extra[0])}", path)


def is_plain_weight(value) -> bool:
    """Whether ``value`` can be copied into a parameter: a dense floating-point CPU tensor
    (a sparse or ``meta`` tensor also loads under ``weights_only``, but cannot be copied)."""
    return (isinstance(value, torch.Tensor) and value.is_floating_point()
            and value.layout == torch.strided and value.device.type == "cpu")


def describe_value(value) -> str:
    """A few words on a state_dict entry that is not what it should be."""
    if isinstance(value, torch.Tensor):
        layout = "" if value.layout == torch.strided else f"{value.layout} ".removeprefix("torch.")
        return f"a {layout}tensor of {str(value.dtype).removeprefix('torch.')} on {value.device}"
    return f"a {type(value).__name__}"


def load_checkpoint(path, *, device="cpu", use_ema: bool = True) -> tuple[WaveNet, dict]:
    """Build the WaveNet stored in a checkpoint, in eval mode.

    Returns the model (with the moving-average weights when the checkpoint has them and
    ``use_ema``) and the checkpoint's contents.

    Raises
    ------
    InputError
        Missing or unreadable file, another tool's checkpoint, a newer format version, a
        config out of bounds, or weights that do not fit the stored config (all found by
        :func:`read_checkpoint` before the model is built).
    """
    payload = read_checkpoint(path)
    model = WaveNet(stored_config(payload, path))
    state = payload["ema_state"] if use_ema and payload.get("ema_state") else payload["model"]
    model.load_state_dict(state)
    return model.to(device).eval(), payload
