"""The trainer: one readable loop with small named helpers, resumable from its checkpoints."""
from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from reference_model.batches import Cropper, example_length
from reference_model.checkpoint import first_sentence, read_checkpoint, save_checkpoint, stored_config
from reference_model.config import ModelConfig
from reference_model.distributed import Processes
from reference_model.model import WaveNet
from reference_model.sampling import resolve_device
from reference_model.train_config import TrainConfig, lr_at
from wavebench_base.errors import InputError
from wavebench_base.files import atomic_path, clear_stale_in

LN2 = math.log(2)
EVAL_SEED = 7919  # validation crops come from their own stream, fixed for the whole run


@dataclass
class TrainResult:
    """What a training run produced, with its validation history in bits per sample."""

    out_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    step: int
    initial_val_bits: float | None
    best_val_bits: float | None
    stopped_early: bool
    samples_per_s: float
    history: list = field(default_factory=list)


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
    codes, mel, speaker = (None if t is None else t.to(device) for t in batch)
    config = getattr(model, "module", model).config
    logits = model(codes, mel, speaker if config.uses_speaker else None)
    return F.cross_entropy(logits[:, :, -crop:], codes[:, -crop:])


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
    out_dir = Path(out_dir)
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
    torch.manual_seed(config.seed)
    model = WaveNet(model_config).to(device)
    optimizer = make_optimizer(model, config)
    main = processes.is_main
    if not main:
        progress, log = False, _silent
    length = example_length(model_config, config.crop)
    train_crops = Cropper(data.train, model_config, length, augment=config.augment)
    eval_rng = np.random.default_rng([config.seed, EVAL_SEED])
    eval_crops = Cropper(data.valid, model_config, length)
    eval_batches = [eval_crops.batch(eval_rng, config.batch_size) for _ in range(config.eval_batches)]
    ema_model = copy.deepcopy(model) if config.ema else None
    rows = processes.part(config.batch_size)

    state = {"step": 0, "best_val_loss": math.inf, "evals_since_best": 0, "history": [],
             "initial_val_bits": None}
    if resume is not None:
        state = restore(resume, model, optimizer, ema_model, model_config, data, state)
    if main:
        trim_log(out_dir, state["step"] if resume is not None else -1)
    # wrapped after restoring, so every process starts from the same loaded weights
    # the last layer's residual output feeds nothing, so its weights get no gradient
    net = (torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
           if processes.enabled else model)
    # events from after the checkpoint (or from a killed start) are replayed: purge them
    writer = open_tensorboard(out_dir, state["step"] + 1 if resume is not None else 0) \
        if main else None
    best_path, last_path = out_dir / "best.pt", out_dir / "last.pt"
    samples_per_step = config.batch_size * config.crop * config.accumulate
    samples_per_epoch = max(sum(len(a) for a in train_crops.audio), 1)

    def checkpoint(path):
        if not main:
            return
        save_checkpoint(path, config=model_config, model_state=model.state_dict(),
                        ema_state=ema_model.state_dict() if ema_model else None,
                        optimizer=optimizer.state_dict(),
                        scheduler={"kind": config.schedule, "step": state["step"]},
                        step=state["step"], epoch=state["step"] * samples_per_step /
                        samples_per_epoch,
                        best_val_loss=state["best_val_loss"],
                        evals_since_best=state["evals_since_best"],
                        history=state["history"], initial_val_bits=state["initial_val_bits"],
                        rng={"torch": torch.get_rng_state()}, data_fingerprint=data.fingerprint,
                        train_config=config.to_dict())

    reference_logged = False  # the validation file goes to TensorBoard once per process

    def validate() -> bool:
        """Evaluate, keep the best checkpoint, and say whether to stop early."""
        nonlocal reference_logged
        val = evaluate(ema_model or model, eval_batches, config.crop, device, processes)
        bits = val / LN2
        if state["initial_val_bits"] is None:
            state["initial_val_bits"] = bits
        record = {"step": state["step"], "val_bits": bits, "lr": lr_at(state["step"], config)}
        state["history"].append(record)
        if writer:
            writer.add_scalar("val/bits_per_sample", bits, state["step"])
            if config.audio_seconds:
                log_audio_sample(writer, ema_model or model, eval_crops, config.audio_seconds,
                                 state["step"], device, config.seed,
                                 with_reference=not reference_logged)
                reference_logged = True
        if val < state["best_val_loss"] - 1e-6:
            state["best_val_loss"], state["evals_since_best"] = val, 0
            if state["step"] > 0:
                checkpoint(best_path)
        else:
            state["evals_since_best"] += 1
        if main:
            append_log(out_dir, {"event": "validation", **record})
        log(f"step {state['step']:>6} | validation {bits:.3f} bits/sample")
        return state["evals_since_best"] >= config.patience

    if state["step"] == 0:
        validate()
    bar = tqdm(total=config.steps, initial=state["step"], disable=not progress, desc="train",
               unit="step", dynamic_ncols=True)
    stopped_early, started, first_step = False, time.perf_counter(), state["step"]
    last_saved = None  # (step, evaluations) that last.pt holds
    model.train()
    deadline = started + 60 * config.max_minutes
    while state["step"] < config.steps and not stopped_early:
        # every process stops at one step; no collective per step when there is no budget
        if config.max_minutes and processes.any(time.perf_counter() > deadline):
            log(f"time budget of {config.max_minutes:g} minutes reached at step {state['step']}")
            if state["step"] % config.eval_every:
                validate()
            break
        step = state["step"]
        lr = lr_at(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(config.accumulate):
            batch = train_crops.batch(np.random.default_rng([config.seed, step, micro]),
                                      config.batch_size, rows)
            # gradients are averaged over processes once, on the last micro-batch
            last = micro == config.accumulate - 1
            with net.no_sync() if processes.enabled and not last else contextlib.nullcontext():
                loss = loss_on(net, batch, config.crop, device) / config.accumulate
                loss.backward()
            total += loss.item()
        total = processes.sum(total) / processes.world
        if not math.isfinite(total):
            raise InputError(f"training diverged at step {step} (loss {total}); lower --lr")
        if config.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        optimizer.step()
        if ema_model is not None:
            update_ema(ema_model, model, config.ema)
        state["step"] = step + 1
        bar.update(1)
        bar.set_postfix(loss=f"{total / LN2:.3f} bits", lr=f"{lr:.2e}")
        if writer:
            writer.add_scalar("train/bits_per_sample", total / LN2, state["step"])
            writer.add_scalar("train/lr", lr, state["step"])
        if state["step"] % config.eval_every == 0 or state["step"] == config.steps:
            stopped_early = validate()
        if state["step"] % config.checkpoint_every == 0:
            checkpoint(out_dir / "checkpoints" / f"step_{state['step']:07d}.pt")
            checkpoint(last_path)
            last_saved = (state["step"], len(state["history"]))
    bar.close()
    processes.barrier()
    elapsed = time.perf_counter() - started
    speed = (state["step"] - first_step) * samples_per_step / elapsed if elapsed > 0 else 0.0
    if last_saved != (state["step"], len(state["history"])):  # else the loop just wrote it
        checkpoint(last_path)
    if writer:
        writer.close()
    if stopped_early:
        log(f"stopped early at step {state['step']}: no improvement in {config.patience} evaluations")
    best_bits = state["best_val_loss"] / LN2 if math.isfinite(state["best_val_loss"]) else None
    return TrainResult(out_dir, last_path, best_path if best_path.exists() else None,
                       state["step"], state["initial_val_bits"], best_bits, stopped_early, speed,
                       state["history"])


def restore(path, model, optimizer, ema_model, model_config, data, state) -> dict:
    """Load a checkpoint into the live objects and return the loop state it recorded.

    ``read_checkpoint`` has compared the stored weights with the stored config; what else the
    checkpoint holds (optimizer state, RNG state, counters) is refused in one line when it
    does not fit either.
    """
    payload = read_checkpoint(path)
    stored = stored_config(payload, path)
    if stored != model_config:
        changed = [k for k, v in stored.to_dict().items() if model_config.to_dict()[k] != v]
        raise InputError(f"checkpoint model config differs from this run's in {', '.join(changed)}",
                         path)
    if payload.get("data_fingerprint") != data.fingerprint:
        raise InputError("checkpoint was trained on different data (fingerprint "
                         f"{payload.get('data_fingerprint')} != {data.fingerprint})", path)
    model.load_state_dict(payload["model"])
    if payload.get("optimizer"):
        with restoring(path, "optimizer state"):
            optimizer.load_state_dict(payload["optimizer"])
            check_optimizer_state(optimizer)
    if ema_model is not None:
        ema_model.load_state_dict(payload.get("ema_state") or payload["model"])
    with restoring(path, "training state (step, RNG, history)"):
        if payload.get("rng"):
            torch.set_rng_state(payload["rng"]["torch"])
        return {"step": int(payload.get("step", 0)),
                "best_val_loss": float(payload.get("best_val_loss", math.inf)),
                "evals_since_best": int(payload.get("evals_since_best", 0)),
                "history": list(payload.get("history", [])),
                "initial_val_bits": payload.get("initial_val_bits")}


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


def trim_log(out_dir: Path, step: int) -> None:
    """Keep only the log lines up to ``step`` (-1: none), the events the resumed checkpoint
    already holds, so that steps replayed after a kill are not logged twice. A line cut short
    by the kill is dropped too."""
    path = out_dir / "log.jsonl"
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("step", math.inf) <= step:
            kept.append(line + "\n")
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(kept))


def _silent(_line: str) -> None:
    pass
