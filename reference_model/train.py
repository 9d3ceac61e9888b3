"""The trainer: one readable loop with small named helpers, resumable from its checkpoints."""
from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from reference_model.batches import Cropper, example_length
from reference_model.checkpoint import first_sentence, read_checkpoint, save_checkpoint, stored_config
from reference_model.config import ModelConfig
from reference_model.devices import resolve_device
from reference_model.distributed import Processes
from reference_model.model import WaveNet
from reference_model.train_config import TrainConfig, lr_at
from wavebench_base.errors import InputError
from wavebench_base.files import atomic_path, clear_stale_in

if TYPE_CHECKING:  # annotations only: the trainer takes any object with AudioSet's fields
    from reference_model.data import AudioSet

LN2 = math.log(2)
EVAL_SEED = 7919  # validation crops come from their own stream, fixed for the whole run


@dataclass
class TrainResult:
    """What a training run produced, with its validation history in bits per sample (``unit``:
    per excitation code for a linear-prediction model)."""

    out_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    step: int
    initial_val_bits: float | None
    best_val_bits: float | None
    stopped_early: bool
    samples_per_s: float
    history: list = field(default_factory=list)
    unit: str = "bits/sample"


def validation_unit(config: ModelConfig) -> str:
    """What the validation loss counts: sample codes, or a predicting model's excitation codes."""
    return "bits/excitation code" if config.lpc_order else "bits/sample"


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params, wd = model.parameters(), config.weight_decay
    if config.optimizer == "adam":
        if wd:
            return torch.optim.AdamW(params, lr=config.lr, betas=(config.beta1, config.beta2),
                                     weight_decay=wd)
        return torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, config.beta2))
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, momentum=config.momentum, weight_decay=wd)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=wd)


def loss_on(model, batch, crop: int, device) -> torch.Tensor:
    """Mean cross-entropy (nats) over the last ``crop`` samples of each example.

    ``model`` is a WaveNet or a DistributedDataParallel wrapping one.
    """
    codes, mel, speaker, targets = (None if t is None else t.to(device) for t in batch)
    config = getattr(model, "module", model).config
    logits = model(codes, mel, speaker if config.uses_speaker else None, last=crop)
    return F.cross_entropy(logits, targets[:, -crop:])


@torch.inference_mode()
def evaluate(model, batches, crop: int, device, processes: Processes = Processes()) -> float:
    """Mean validation loss in nats per sample over fixed batches (shared out over processes)."""
    was_training = model.training
    model.eval()
    mine = batches[processes.rank::processes.world]
    total = processes.sum(sum(loss_on(model, b, crop, device).item() for b in mine))
    model.train(was_training)
    return total / len(batches)


def update_ema(ema_model, model, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema_model.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)


def log_audio_sample(writer, model, crops: Cropper, seconds: float, step: int, device,
                     seed: int, with_reference: bool) -> None:
    """Generate a clip with the model as it is now and log it to TensorBoard, with the
    validation file whose mel frames and speaker condition it when ``with_reference``."""
    from reference_model.sampling import generate

    config = model.config
    n = max(1, int(seconds * config.sample_rate))
    cond = None
    if config.uses_mel:  # copy synthesis of the first validation file
        mel = crops.mels[0][:, :-(-n // config.hop_length)]
        n = min(n, mel.shape[1] * config.hop_length)
        cond = mel
    speaker = crops.speakers[0] if config.uses_speaker else None
    sampler = "fused" if device.type == "cpu" else "cached"
    clip = generate(model, n, cond=cond, speaker=speaker, seed=seed, device=device,
                    sampler=sampler).audio[0]
    writer.add_audio("audio/generated", torch.from_numpy(clip)[None], step,
                     sample_rate=config.sample_rate)
    if with_reference:
        reference = torch.from_numpy(crops.audio[0][:n].astype(np.float32))[None]
        writer.add_audio("audio/validation_file", reference, step, sample_rate=config.sample_rate)


def open_tensorboard(out_dir: Path, purge_step: int | None = None):
    """A SummaryWriter when TensorBoard is installed, else None (plain logs always).

    Events at steps >= ``purge_step`` that an earlier, stopped run logged are dropped, so
    replayed steps do not appear twice (as ``trim_log`` does for ``log.jsonl``).
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out_dir / "tensorboard"), purge_step=purge_step)


@dataclass
class TrainState:
    """What changes from step to step and survives a resume: the loop's counters and history.

    Its fields are the checkpoint entries of the same names (:meth:`to_payload`,
    :meth:`from_payload`); the weights, optimizer state and RNG state go into the same
    checkpoint beside them (see :func:`save`).

    Attributes
    ----------
    step : int
        Optimizer steps taken.
    best_val_loss : float
        Lowest validation loss so far, in nats per sample (``inf`` before the first).
    evals_since_best : int
        Validations since that best one, for early stopping (``patience``).
    history : list of dict
        One ``{"step", "val_bits", "lr"}`` record per validation.
    initial_val_bits : float or None
        The first validation loss of the run, in bits per sample.

    Examples
    --------
    >>> state = TrainState(step=3)
    >>> state.record_validation(5.0, lr=1e-3), state.record_validation(6.0, lr=1e-3)
    (True, False)
    >>> state.evals_since_best, [round(h["val_bits"], 3) for h in state.history]
    (1, [7.213, 8.656])
    >>> TrainState.from_payload(state.to_payload(epoch=0.5)) == state
    True
    """

    step: int = 0
    best_val_loss: float = math.inf
    evals_since_best: int = 0
    history: list = field(default_factory=list)
    initial_val_bits: float | None = None

    def record_validation(self, loss: float, lr: float) -> bool:
        """Add a validation ``loss`` (nats per sample) at this step; True if it is the best yet."""
        bits = loss / LN2
        if self.initial_val_bits is None:
            self.initial_val_bits = bits
        self.history.append({"step": self.step, "val_bits": bits, "lr": lr})
        if loss < self.best_val_loss - 1e-6:
            self.best_val_loss, self.evals_since_best = loss, 0
            return True
        self.evals_since_best += 1
        return False

    def to_payload(self, epoch: float) -> dict:
        """The checkpoint entries for this state, under the format's keys and in its order.

        ``epoch`` (passes over the training data so far) comes from the caller, since it
        depends on the run's batch shape, which is not part of the state.
        """
        return {"step": self.step, "epoch": epoch, "best_val_loss": self.best_val_loss,
                "evals_since_best": self.evals_since_best, "history": self.history,
                "initial_val_bits": self.initial_val_bits}

    @classmethod
    def from_payload(cls, payload: dict) -> TrainState:
        """The state a checkpoint recorded; entries it lacks take their start-of-run values."""
        return cls(step=int(payload.get("step", 0)),
                   best_val_loss=float(payload.get("best_val_loss", math.inf)),
                   evals_since_best=int(payload.get("evals_since_best", 0)),
                   history=list(payload.get("history", [])),
                   initial_val_bits=payload.get("initial_val_bits"))


@dataclass
class Trainer:
    """The fixed parts of one training run, built once by :func:`set_up`.

    ``net`` (the model, or DistributedDataParallel around it) and ``writer`` (TensorBoard) are
    attached by :func:`open_outputs` once the state is known: wrapping must follow the restore,
    and the writer purges events past the resumed step.
    """

    model_config: ModelConfig
    config: TrainConfig
    data: AudioSet
    out_dir: Path
    processes: Processes
    device: torch.device
    log: Callable[[str], None]
    model: WaveNet
    optimizer: torch.optim.Optimizer
    ema_model: WaveNet | None
    train_crops: Cropper
    eval_crops: Cropper
    eval_batches: list
    rows: range  # this process's rows of every global batch
    net: torch.nn.Module | None = None
    writer: object | None = None
    reference_logged: bool = False  # the validation file goes to TensorBoard once per call
    # the training clock of the log: seconds logged by the runs this one resumes, and when
    # this one started
    clock_offset: float = 0.0
    clock_start: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        """Wall-clock seconds of training so far, over this run and the ones it resumes."""
        return self.clock_offset + time.perf_counter() - self.clock_start

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def samples_per_step(self) -> int:
        return self.config.batch_size * self.config.crop * self.config.accumulate


def train(model_config: ModelConfig, config: TrainConfig, data, out_dir, *, resume=None,
          progress: bool = True, log=print, processes: Processes = Processes(),
          device=None) -> TrainResult:
    """Train a WaveNet on ``data`` (an AudioSet) and write checkpoints to ``out_dir``.

    Every batch is drawn from a generator seeded by ``(seed, step)``, so a run resumed from one
    of its checkpoints continues exactly as if it had not stopped.

    With several ``processes`` (their group already started, see ``reference_model.distributed``)
    the model is wrapped in DistributedDataParallel, each process computes its equal part of
    every global batch, and only the main process logs and writes files. ``device`` overrides
    ``config.device`` (each process's own GPU).

    Returns
    -------
    TrainResult
        Paths of the last and best checkpoints and the validation history (bits per sample,
        lower is better).
    """
    if not processes.is_main:
        progress, log = False, _silent
    run = set_up(model_config, config, data, Path(out_dir), processes, device, log)
    state = TrainState() if resume is None else restore(resume, run)
    open_outputs(run, state, resumed=resume is not None)
    if state.step == 0:
        validate(run, state)
    bar = tqdm(total=config.steps, initial=state.step, disable=not progress, desc="train",
               unit="step", dynamic_ncols=True)
    stopped_early, started, first_step = False, time.perf_counter(), state.step
    saved = None  # (step, validations) that last.pt holds
    run.model.train()
    deadline = started + 60 * config.max_minutes
    while state.step < config.steps and not stopped_early:
        if out_of_time(run, state, deadline):
            break
        loss, lr = train_step(run, state.step)
        state.step += 1
        show_step(run, bar, state.step, loss, lr)
        if state.step % config.eval_every == 0 or state.step == config.steps:
            stopped_early = validate(run, state)
        if state.step % config.checkpoint_every == 0:
            save(run, state, run.out_dir / "checkpoints" / f"step_{state.step:07d}.pt")
            save(run, state, run.last_path)
            saved = (state.step, len(state.history))
    bar.close()
    processes.barrier()
    elapsed = time.perf_counter() - started
    speed = (state.step - first_step) * run.samples_per_step / elapsed if elapsed > 0 else 0.0
    if saved != (state.step, len(state.history)):  # else the loop has just written it
        save(run, state, run.last_path)
    if run.writer is not None:
        run.writer.close()
    if stopped_early:
        log(f"stopped early at step {state.step}: no improvement in {config.patience} evaluations")
    best_bits = state.best_val_loss / LN2 if math.isfinite(state.best_val_loss) else None
    return TrainResult(run.out_dir, run.last_path,
                       run.best_path if run.best_path.exists() else None, state.step,
                       state.initial_val_bits, best_bits, stopped_early, speed, state.history,
                       validation_unit(run.model_config))


def set_up(model_config: ModelConfig, config: TrainConfig, data, out_dir: Path,
           processes: Processes, device, log) -> Trainer:
    """Check the run's inputs and build its model, optimizer, moving average and batches."""
    own = (model_config.input == "onehot" and model_config.output == "softmax"
           and model_config.mu_law == "wavebench")
    if not own:
        raise InputError("wavebench trains its own kind of WaveNet (one-hot input coded with "
                         "wavebench's mu-law, a softmax head); this config describes a model "
                         "converted from another project, which can be scored, sampled and "
                         "timed but not trained here")
    out_dir.mkdir(parents=True, exist_ok=True)
    if processes.is_main:  # what a killed run left half-written (last.pt, step checkpoints)
        for folder in (out_dir, out_dir / "checkpoints"):
            clear_stale_in(folder)
    if data.sample_rate != model_config.sample_rate:
        raise InputError(f"data is at {data.sample_rate} Hz but the model expects "
                         f"{model_config.sample_rate} Hz; prepare it with --sample-rate "
                         f"{model_config.sample_rate}")
    if not data.train or not data.valid:
        raise InputError("data needs at least one training and one validation file")
    processes.check_batch(config.batch_size)
    device = resolve_device(config.device) if device is None else device
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)  # the initial weights
    model = WaveNet(model_config).to(device)
    optimizer = make_optimizer(model, config)
    length = example_length(model_config, config.crop)
    train_crops = Cropper(data.train, model_config, length, augment=config.augment)
    eval_rng = np.random.default_rng([config.seed, EVAL_SEED])
    eval_crops = Cropper(data.valid, model_config, length)
    eval_batches = [eval_crops.batch(eval_rng, config.batch_size) for _ in range(config.eval_batches)]
    return Trainer(model_config, config, data, out_dir, processes, device, log, model, optimizer,
                   ema_model=copy.deepcopy(model) if config.ema else None,
                   train_crops=train_crops, eval_crops=eval_crops, eval_batches=eval_batches,
                   rows=processes.part(config.batch_size))


def open_outputs(run: Trainer, state: TrainState, resumed: bool) -> None:
    """Trim the log to the restored step, wrap the model for DDP and open TensorBoard."""
    main = run.processes.is_main
    if main:
        run.clock_offset = trim_log(run.out_dir, state.step if resumed else -1)
    run.clock_start = time.perf_counter()
    # wrapped after restoring, so every process starts from the same loaded weights;
    # the last layer's residual output feeds nothing, so its weights get no gradient
    run.net = (torch.nn.parallel.DistributedDataParallel(run.model, find_unused_parameters=True)
               if run.processes.enabled else run.model)
    # events from after the checkpoint (or from a killed start) are replayed: purge them
    run.writer = open_tensorboard(run.out_dir, state.step + 1 if resumed else 0) if main else None


def train_step(run: Trainer, step: int) -> tuple[float, float]:
    """Take optimizer step ``step``; return its loss (nats per sample, over the global batch)
    and learning rate."""
    config, processes = run.config, run.processes
    lr = lr_at(step, config)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    run.optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for micro in range(config.accumulate):
        batch = run.train_crops.batch(np.random.default_rng([config.seed, step, micro]),
                                      config.batch_size, run.rows)
        # gradients are averaged over processes once, on the last micro-batch
        last = micro == config.accumulate - 1
        with run.net.no_sync() if processes.enabled and not last else contextlib.nullcontext():
            loss = loss_on(run.net, batch, config.crop, run.device) / config.accumulate
            loss.backward()
        total += loss.item()
    total = processes.sum(total) / processes.world
    if not math.isfinite(total):
        raise InputError(f"training diverged at step {step} (loss {total}); lower --lr")
    if config.clip:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.clip)
    run.optimizer.step()
    if run.ema_model is not None:
        update_ema(run.ema_model, run.model, config.ema)
    return total, lr


def show_step(run: Trainer, bar, step: int, loss: float, lr: float) -> None:
    """Report a finished step on the progress bar and to TensorBoard."""
    bar.update(1)
    bar.set_postfix(loss=f"{loss / LN2:.3f} bits", lr=f"{lr:.2e}")
    if run.writer is not None:
        run.writer.add_scalar("train/bits_per_sample", loss / LN2, step)
        run.writer.add_scalar("train/lr", lr, step)


def out_of_time(run: Trainer, state: TrainState, deadline: float) -> bool:
    """Whether the time budget is spent (validating first, unless this step just was)."""
    config = run.config
    # every process stops at one step; no collective per step when there is no budget
    if not config.max_minutes or not run.processes.any(time.perf_counter() > deadline):
        return False
    run.log(f"time budget of {config.max_minutes:g} minutes reached at step {state.step}")
    if state.step % config.eval_every:
        validate(run, state)
    return True


def validate(run: Trainer, state: TrainState) -> bool:
    """Evaluate, record and log the result, keep the best checkpoint; True to stop early."""
    config = run.config
    loss = evaluate(run.ema_model or run.model, run.eval_batches, config.crop, run.device,
                    run.processes)
    improved = state.record_validation(loss, lr_at(state.step, config))
    record = state.history[-1]
    if run.writer is not None:
        run.writer.add_scalar("val/bits_per_sample", record["val_bits"], state.step)
        if config.audio_seconds:
            log_audio_sample(run.writer, run.ema_model or run.model, run.eval_crops,
                             config.audio_seconds, state.step, run.device, config.seed,
                             with_reference=not run.reference_logged)
            run.reference_logged = True
    if improved and state.step > 0:
        save(run, state, run.best_path)
    if run.processes.is_main:
        # the wall time goes to the log only: checkpoints stay equal between runs
        append_log(run.out_dir, {"event": "validation", **record,
                                 "seconds": round(run.seconds(), 3)})
    run.log(f"step {state.step:>6} | validation {record['val_bits']:.3f} "
            f"{validation_unit(run.model_config)}")
    return state.evals_since_best >= config.patience


def save(run: Trainer, state: TrainState, path: Path) -> None:
    """Write ``state`` with the live weights, optimizer and RNG state as a checkpoint at
    ``path`` (the main process only)."""
    if not run.processes.is_main:
        return
    config = run.config
    samples_per_epoch = max(sum(len(a) for a in run.train_crops.audio), 1)
    save_checkpoint(path, config=run.model_config, model_state=run.model.state_dict(),
                    ema_state=run.ema_model.state_dict() if run.ema_model else None,
                    optimizer=run.optimizer.state_dict(),
                    scheduler={"kind": config.schedule, "step": state.step},
                    **state.to_payload(epoch=state.step * run.samples_per_step / samples_per_epoch),
                    rng={"torch": torch.get_rng_state()}, data_fingerprint=run.data.fingerprint,
                    train_config=config.to_dict())


def restore(path, run: Trainer) -> TrainState:
    """Load a checkpoint into the run's model, optimizer and moving average and the torch RNG,
    and return the loop state it recorded.

    ``read_checkpoint`` has compared the stored weights with the stored config; what else the
    checkpoint holds (optimizer state, RNG state, counters) is refused in one line when it
    does not fit either.
    """
    payload = read_checkpoint(path)
    stored = stored_config(payload, path)
    if stored != run.model_config:
        changed = [k for k, v in stored.to_dict().items() if run.model_config.to_dict()[k] != v]
        raise InputError(f"checkpoint model config differs from this run's in {', '.join(changed)}",
                         path)
    if payload.get("data_fingerprint") != run.data.fingerprint:
        raise InputError("checkpoint was trained on different data (fingerprint "
                         f"{payload.get('data_fingerprint')} != {run.data.fingerprint})", path)
    run.model.load_state_dict(payload["model"])
    if payload.get("optimizer"):
        with restoring(path, "optimizer state"):
            run.optimizer.load_state_dict(payload["optimizer"])
            check_optimizer_state(run.optimizer)
    if run.ema_model is not None:
        run.ema_model.load_state_dict(payload.get("ema_state") or payload["model"])
    with restoring(path, "training state (step, RNG, history)"):
        if payload.get("rng"):
            torch.set_rng_state(payload["rng"]["torch"])
        return TrainState.from_payload(payload)


@contextlib.contextmanager
def restoring(path, what: str):
    """Turn a failure to restore ``what`` from the checkpoint at ``path`` into one InputError."""
    try:
        yield
    except InputError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError) as exc:
        reason = first_sentence(str(exc)) or type(exc).__name__
        raise InputError(f"cannot restore the {what}: {reason}", path) from None


def check_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Refuse per-parameter optimizer state (moments, momentum) shaped unlike its parameter,
    which ``load_state_dict`` accepts but the first step would fail on."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            for name, value in optimizer.state.get(param, {}).items():
                if (isinstance(value, torch.Tensor) and value.dim() > 0
                        and value.shape != param.shape):
                    raise ValueError(f"{name} has shape {list(value.shape)} for a parameter of "
                                     f"shape {list(param.shape)}")


def append_log(out_dir: Path, record: dict) -> None:
    """One JSON line per event in ``out_dir/log.jsonl``."""
    with open(out_dir / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def trim_log(out_dir: Path, step: int) -> float:
    """Keep only the log lines up to ``step`` (-1: none), the events the resumed checkpoint
    already holds, so that steps replayed after a kill are not logged twice. A line cut short
    by the kill is dropped too. Returns the training seconds the kept lines reach (0.0 for
    none), where a resumed run's clock carries on."""
    path = out_dir / "log.jsonl"
    if not path.exists():
        return 0.0
    kept, seconds = [], 0.0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("step", math.inf) <= step:
            kept.append(line + "\n")
            if isinstance(record.get("seconds"), (int, float)):
                seconds = max(seconds, float(record["seconds"]))
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(kept))
    return seconds


def _silent(_line: str) -> None:
    pass
