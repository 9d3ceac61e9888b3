"""What both converters share: the result type, reading the source files, and shape checks."""
from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch

from reference_model.checkpoint import FORMAT, describe, unreadable_reason
from reference_model.config import ModelConfig, shown
from wavebench_base.errors import InputError


@dataclass
class Converted:
    """A converted model: its config, its state_dict and how it was made.

    ``transformations`` lists, in plain English, every change made on the way and every known
    difference from the source that the weights alone do not show.
    """

    config: ModelConfig
    state: dict[str, torch.Tensor]
    transformations: list[str] = field(default_factory=list)


def check_file(path: Path, what: str) -> None:
    """Refuse a missing path, a folder or an empty file, naming it."""
    if not path.exists():
        raise InputError(f"{what} not found", path)
    if not path.is_file():
        raise InputError(f"{what} is not a file", path)
    if path.stat().st_size == 0:
        raise InputError(f"{what} is empty (0 bytes)", path)


def read_hparams(path) -> dict:
    """A JSON object of hyper-parameters, with one-line errors naming ``path``."""
    path = Path(path)
    check_file(path, "hparams file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError("hparams file is not UTF-8 text (expected JSON)", path) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"hparams file is not valid JSON: {exc}", path) from None
    if not isinstance(data, dict):
        raise InputError(f"hparams file holds a JSON {type(data).__name__}, expected an object "
                         f"of hyper-parameters", path)
    return data


def is_weights_only_refusal(exc: BaseException) -> bool:
    """Whether ``torch.load(weights_only=True)`` failed in its unpickler (a global it does not
    allow, or a pickle it cannot read), rather than in the file's container."""
    text = str(exc)
    return isinstance(exc, pickle.UnpicklingError) and (
        "Weights only load failed" in text or "WeightsUnpickler error" in text)


def load_weights_only(path: Path, source: str):
    """``torch.load(path, weights_only=True)`` on the CPU; InputError naming ``path`` if it fails."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise InputError(f"not a readable {source} checkpoint "
                         f"({unreadable_reason(exc, path)})", path) from None


def tensor_dict(obj) -> dict | None:
    """``obj`` as a dict of tensors (a state_dict), or None if it is not one."""
    if isinstance(obj, dict) and obj and all(isinstance(k, str) for k in obj) \
            and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    return None


class Weights:
    """A source state_dict read key by key, so that the keys no rule used can be reported.

    Parameters
    ----------
    state : dict of str to Tensor
    path : Path
        The source file, named by every error.
    """

    def __init__(self, state: dict, path: Path):
        self.state = state
        self.path = path
        self.used: set[str] = set()
        self.dtypes: set[torch.dtype] = set()

    def __contains__(self, key: str) -> bool:
        return key in self.state

    def get(self, key: str, ndim: int | None = None) -> torch.Tensor:
        """The tensor ``key`` as float32, checked to be a dense, finite floating-point tensor."""
        if key not in self.state:
            raise InputError(f"tensor {key} is missing", self.path)
        value = self.state[key]
        if not (value.is_floating_point() and value.layout == torch.strided
                and value.device.type == "cpu"):
            raise InputError(f"tensor {key} is not a dense floating-point tensor "
                             f"({value.dtype}, {value.layout}, on {value.device})", self.path)
        if ndim is not None and value.dim() != ndim:
            raise InputError(f"tensor {key} has shape {list(value.shape)}, expected {ndim} "
                             f"dimensions", self.path)
        if not torch.isfinite(value).all():
            raise InputError(f"tensor {key} holds NaN or infinite values", self.path)
        self.used.add(key)
        self.dtypes.add(value.dtype)
        return value.detach().to(torch.float32).clone()

    def expect(self, key: str, shape: tuple) -> torch.Tensor:
        """The tensor ``key``, which must have ``shape``."""
        value = self.get(key, len(shape))
        if tuple(value.shape) != tuple(shape):
            raise InputError(f"tensor {key} has shape {list(value.shape)}, expected "
                             f"{list(shape)} from the other tensors", self.path)
        return value

    def dtype_notes(self) -> list[str]:
        """A note if any source tensor was not float32 (wavebench's models are float32)."""
        other = sorted(str(t).removeprefix("torch.") for t in self.dtypes - {torch.float32})
        return [f"weights stored as {', '.join(other)} in the source converted to float32"] \
            if other else []

    def check_all_used(self, what: str) -> None:
        """Refuse tensors that no rule used: the source has parts this converter does not know."""
        extra = [k for k in self.state if k not in self.used]
        if extra:
            raise InputError(f"{len(extra)} tensor(s) that are not part of {what}, first "
                             f"{shown(extra[0])}; this converter does not know that variant",
                             self.path)


def layer_count(state: dict, prefix: str, path: Path) -> int:
    """How many ``{prefix}.N.`` entries exist (N = 0, 1, ...), refusing gaps."""
    indices = set()
    for key in state:
        if key.startswith(prefix + "."):
            head = key[len(prefix) + 1:].split(".", 1)[0]
            if not head.isdigit():
                raise InputError(f"unexpected tensor {shown(key)}", path)
            indices.add(int(head))
    if indices and indices != set(range(len(indices))):
        missing = min(set(range(max(indices) + 1)) - indices)
        raise InputError(f"{prefix}.{missing} is missing but {prefix}.{max(indices)} exists", path)
    return len(indices)


def contradiction(source: Path, name: str, value, weights_say,
                  advice: str = "these hparams do not belong to this checkpoint") -> InputError:
    """The error for a hyper-parameter (or recorded attribute) that the weights contradict."""
    return InputError(f"{name} is {shown(value)} but the checkpoint's weights say "
                      f"{shown(weights_say)}; {advice}", source)


def int_param(hparams: dict, name: str, source: Path, *, minimum: int | None = None) -> int:
    """An integer hyper-parameter (no bools), at least ``minimum``."""
    value = hparams.get(name)
    if not isinstance(value, int) or isinstance(value, bool) \
            or (minimum is not None and value < minimum):
        kind = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise InputError(f"{name} must be {kind}, got {shown(value)}", source)
    return value


def number_param(hparams: dict, name: str, source: Path) -> float:
    """A finite real hyper-parameter."""
    value = hparams.get(name)
    if not isinstance(value, (int, float)) or isinstance(value, bool) \
            or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {shown(value)}", source)
    return float(value)


def make_config(source: Path, **fields) -> ModelConfig:
    """A ModelConfig from converted fields; its own checks become errors naming ``source``."""
    try:
        return ModelConfig(**fields)
    except InputError as exc:
        detail = str(exc).removeprefix("config: ")
        raise InputError(f"the converted model is out of wavebench's bounds: {detail}",
                         source) from None


def looks_like(state: dict) -> str | None:
    """Which project's key names a state_dict has: ``"pytorch-wavenet"``, ``"wavenet_vocoder"``
    or None."""
    if "start_conv.weight" in state and any(k.startswith("filter_convs.") for k in state):
        return "pytorch-wavenet"
    if any(k.startswith("first_conv.") for k in state) \
            and any(k.startswith("conv_layers.") for k in state):
        return "wavenet_vocoder"
    return None


#: The ``--from`` name that reads each project's checkpoints.
SOURCE_OPTION = {"pytorch-wavenet": "pytorch-wavenet", "wavenet_vocoder": "wavenet-vocoder"}


def not_this_source(state_or_obj, expected: str, path: Path, example: str) -> InputError:
    """The error for a file that is not a checkpoint of ``expected``, saying whose it looks like."""
    inner = state_or_obj.get("state_dict") if isinstance(state_or_obj, dict) else None
    state = tensor_dict(inner if inner is not None else state_or_obj)
    other = looks_like(state) if state else None
    if other and other != expected:
        return InputError(f"this is a {other} checkpoint, not a {expected} one: use --from "
                          f"{SOURCE_OPTION[other]}", path)
    if isinstance(state_or_obj, dict) and state_or_obj.get("format") == FORMAT:
        return InputError("this is already a wavebench checkpoint; nothing to convert", path)
    return InputError(f"not a {expected} checkpoint: found {describe(state_or_obj)}; expected "
                      f"{example}", path)
