"""The trainer's settings: a frozen dataclass that a TOML ``[train]`` table may set."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from reference_model.config import check_keys, shown
from wavebench_base.errors import InputError

OPTIMIZERS = ("adam", "rmsprop", "sgd")
SCHEDULES = ("constant", "cosine", "step")


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer, schedule, batching, validation and checkpointing of one training run.

    ``crop`` is the number of predicted samples per example; each example also carries the
    receptive field before it, so every predicted sample sees its full context.
    """

    steps: int = 2000
    batch_size: int = 8
    crop: int = 2048
    optimizer: str = "adam"
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup: int = 50
    step_size: int = 1000
    gamma: float = 0.5
    min_lr_ratio: float = 0.05
    clip: float = 1.0
    accumulate: int = 1
    ema: float = 0.0
    augment: bool = False
    eval_every: int = 100
    eval_batches: int = 4
    patience: int = 5
    checkpoint_every: int = 500
    seed: int = 0
    threads: int = 0
    device: str = "cpu"
    max_minutes: float = 0.0  # wall-time budget for this process (0 = none); then validate and save
    audio_seconds: float = 0.0  # TensorBoard: a generated clip this long at each validation

    def __post_init__(self):
        check_types(self)
        for name in ("steps", "batch_size", "crop", "accumulate", "eval_every", "eval_batches",
                     "checkpoint_every", "patience"):
            value = getattr(self, name)  # an int, not a bool: check_types saw to that
            if value < 1:
                raise InputError(f"train config: {name} must be a positive integer, got {value!r}")
        for name in ("warmup", "step_size", "threads", "seed"):
            if getattr(self, name) < 0:
                raise InputError(f"train config: {name} must be an integer >= 0")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"train config: optimizer must be one of {', '.join(OPTIMIZERS)}, "
                             f"got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"train config: schedule must be one of {', '.join(SCHEDULES)}, "
                             f"got {self.schedule!r}")
        if not self.lr > 0:
            raise InputError(f"train config: lr must be > 0, got {self.lr!r}")
        if not 0 <= self.ema < 1:
            raise InputError(f"train config: ema must be in [0, 1) (0 = off), got {self.ema!r}")
        if self.max_minutes < 0:
            raise InputError("train config: max_minutes must be >= 0 (0 = no limit)")
        if self.audio_seconds < 0:
            raise InputError("train config: audio_seconds must be >= 0 (0 = no audio samples)")
        if self.clip < 0 or self.weight_decay < 0:
            raise InputError("train config: clip and weight_decay must be >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "TrainConfig":
        return train_config_from_dict({**self.to_dict(), **changes})


def check_types(config: TrainConfig) -> None:
    """Refuse a value whose type is not its field's (from an edited checkpoint or TOML file),
    before a comparison with it fails with a TypeError. An integer may stand for a float."""
    for spec in dataclasses.fields(config):
        value, kind = getattr(config, spec.name), type(spec.default)
        allowed = (int, float) if kind is float else kind
        if not isinstance(value, allowed) or (isinstance(value, bool) and kind is not bool):
            raise InputError(f"train config: {spec.name} must be of type {kind.__name__}, "
                             f"got {shown(value)}")


def train_config_from_dict(data: dict, source: str = "train config") -> TrainConfig:
    """Build a TrainConfig from a plain dict, refusing unknown keys."""
    check_keys(data, TrainConfig, source)
    return TrainConfig(**data)


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warm-up, then the schedule."""
    if config.warmup and step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "step":
        return config.lr * config.gamma ** ((step - config.warmup) // max(config.step_size, 1))
    span = max(config.steps - config.warmup, 1)
    progress = min((step - config.warmup) / span, 1.0)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
