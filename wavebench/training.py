"""Orchestration of `wavebench prepare` and `wavebench train`: choose data, configs, resume."""
from __future__ import annotations

import re
from pathlib import Path

import torch

from reference_model.checkpoint import read_checkpoint, stored_config
from reference_model.config import architecture, get_preset, load_toml, model_config_from_sources
from reference_model.data import is_prepared, load_prepared, prepare
from reference_model.devices import resolve_device
from reference_model.distributed import Processes, as_peer_lost, processes_from_env, start, stop
from reference_model.embedded import embedded_audioset
from reference_model.train import TrainResult, train
from reference_model.train_config import train_config_from_dict
from wavebench_base.errors import InputError

RESUMABLE = ("steps", "max_minutes", "device", "threads", "audio_seconds")


def open_data(data_path, sample_rate: int, out_dir: Path, log=print, progress: bool = True):
    """The AudioSet to train on: a prepared store, a raw audio folder (prepared into
    ``out_dir/data``), or the embedded default when ``data_path`` is None."""
    if data_path is None:
        log("data: the embedded default (synthesized tones, chords and formant sweeps)")
        return embedded_audioset(sample_rate=sample_rate)
    data_path = Path(data_path)
    if not data_path.exists():
        raise InputError("data folder not found", data_path)
    if is_prepared(data_path):
        return load_prepared(data_path)
    target = out_dir / "data"
    log(f"data: preparing {data_path} into {target}")
    prepare(data_path, target, sample_rate=sample_rate, progress=progress)
    return load_prepared(target)


def wait_for_prepared(data_path, out_dir: Path, poll_s: float = 1.0) -> None:
    """Wait until rank 0 has prepared a raw audio folder into ``out_dir/data`` (at once for
    the embedded set or an already prepared store). No timeout: the launcher, or torchrun,
    stops this process if rank 0 fails."""
    import time
    if data_path is None or not Path(data_path).exists() or is_prepared(Path(data_path)):
        return
    while not is_prepared(out_dir / "data"):
        time.sleep(poll_s)


def build_configs(preset: str, toml_path, model_overrides: dict, train_overrides: dict):
    """Model and train configs from a preset, an optional TOML file, then command-line options."""
    toml = load_toml(toml_path) if toml_path else {}
    source = str(toml_path) if toml_path else "config"
    unknown = sorted(set(toml) - {"model", "train"})
    if unknown:
        raise InputError(f"unknown table(s) {', '.join(unknown)}; valid tables: model, train",
                         source)
    table = toml.get("model", {}) if isinstance(toml.get("model"), dict) else {}
    chosen = {**get_preset(preset).model.to_dict(), **table,
              **{k: v for k, v in model_overrides.items() if v is not None}}
    if "speaker" in str(chosen.get("cond")) and not chosen.get("n_speakers"):
        # a placeholder: run_training sets it to the data's speaker count once the data is open
        model_overrides = {**model_overrides, "n_speakers": 1}
    model = model_config_from_sources(preset, toml, source, **model_overrides)
    base = {**get_preset(preset).train, **toml.get("train", {})}
    base.update({k: v for k, v in train_overrides.items() if v is not None})
    return model, train_config_from_dict(base, f"{source} [train]")


def resolve_run(*, out_dir, preset="tiny", config_file=None, resume=None,
                model_overrides=None, train_overrides=None, log=print, preset_given=False):
    """The model config, train config and checkpoint path a run will use.

    ``resume`` continues a run from a checkpoint (``"auto"``: ``out_dir/last.pt`` when it
    exists, or the newest readable step checkpoint when it cannot be read, see
    :func:`auto_resume`; else a new run) with its stored configs; only the settings in
    ``RESUMABLE`` may change on resume. A preset the user named (``preset_given``) must describe the
    checkpoint's model.
    """
    out_dir = Path(out_dir)
    model_overrides, train_overrides = dict(model_overrides or {}), dict(train_overrides or {})
    if resume == "auto":
        resume, payload = auto_resume(out_dir, log)
    elif resume is not None:
        payload = read_checkpoint(resume)
    if resume is None:
        model, tconf = build_configs(preset, config_file, model_overrides, train_overrides)
        return model, tconf, None
    model = stored_config(payload, resume)
    if preset_given:
        check_preset_matches(model, preset, model_overrides.get("cond"), resume)
    stored = payload.get("train_config") or {}
    if not isinstance(stored, dict):
        raise InputError("checkpoint's 'train_config' entry is not a dict of settings", resume)
    # settings that change how long or where a run goes on, never what it computes
    live = {k: train_overrides[k] for k in RESUMABLE if train_overrides.get(k) is not None}
    ignored = sorted(k for k, v in {**train_overrides, **model_overrides}.items()
                     if v is not None and k not in RESUMABLE)
    if ignored:
        log(f"note: resuming keeps the checkpoint's settings; ignored: {', '.join(ignored)} "
            f"(only {', '.join(RESUMABLE)} may change)")
    tconf = train_config_from_dict({**stored, **live}, str(resume))
    log(f"resuming from {resume} at step {payload.get('step', 0)}")
    return model, tconf, Path(resume)


STEP_CHECKPOINT = re.compile(r"step_(\d+)\.pt")


def auto_resume(out_dir: Path, log=print):
    """What ``--resume auto`` continues from: ``(path, contents)``, or ``(None, None)`` for a
    new run.

    ``out_dir/last.pt`` when it can be read; when it cannot (a kill or a full disk cut it
    short), the newest readable ``out_dir/checkpoints/step_*.pt``, saying which and why.

    Raises
    ------
    InputError
        ``last.pt`` is unreadable and no step checkpoint can stand in for it.
    """
    last = out_dir / "last.pt"
    if not last.exists():
        log(f"no {last} yet: starting a new run")
        return None, None
    try:
        return last, read_checkpoint(last)
    except InputError as exc:
        problem = str(exc)
    for candidate in step_checkpoints(out_dir / "checkpoints"):
        try:
            payload = read_checkpoint(candidate)
        except InputError as exc:
            log(f"warning: {exc}; trying an older step checkpoint")
            continue
        log(f"warning: {problem}; resuming from {candidate} instead, the newest readable "
            "step checkpoint")
        return candidate, payload
    raise InputError(f"{problem}; and {out_dir / 'checkpoints'} holds no readable step_*.pt "
                     "to resume from instead (move last.pt away to start a new run)")


def step_checkpoints(folder: Path) -> list[Path]:
    """``folder``'s ``step_N.pt`` files, newest (highest N) first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir()
             if (m := STEP_CHECKPOINT.fullmatch(p.name)) and p.is_file()]
    return [p for _, p in sorted(found, reverse=True)]


def check_preset_matches(model, preset: str, cond, checkpoint) -> None:
    """Refuse to resume a checkpoint whose architecture (or, when ``--cond`` is given, whose
    conditioning) is not what the command line names."""
    named, mine = architecture(get_preset(preset).model), architecture(model)
    differ = [k for k in named if named[k] != mine[k]]
    if cond and cond != model.cond:
        differ.append("cond")
    if differ:
        raise InputError(f"checkpoint's model is not --preset {preset}"
                         f"{f' --cond {cond}' if cond else ''} (differs in {', '.join(differ)}); "
                         "leave out --preset to resume it", checkpoint)


def check_processes(tconf, nproc: int) -> None:
    """Refuse, before the launcher starts any process, a run that cannot be split over
    ``nproc`` (``train`` itself refuses a batch that does not split, under torchrun too)."""
    if nproc < 1:
        raise InputError(f"--nproc must be at least 1, got {nproc}")
    Processes(0, nproc).check_batch(tconf.batch_size)
    if str(tconf.device).startswith("cuda"):
        count = torch.cuda.device_count()
        if count and nproc > count:
            raise InputError(f"--nproc {nproc} asks for more processes than the {count} GPU(s)")


def run_training(*, data, out_dir, preset="tiny", config_file=None, resume=None,
                 model_overrides=None, train_overrides=None, progress=True,
                 log=print, preset_given=False) -> TrainResult:
    """Train from the command line's choices (see ``resolve_run`` for ``resume``).

    Under torchrun (``WORLD_SIZE`` > 1) this process joins the group and trains its part of
    each batch; only rank 0 prints, prepares raw audio and writes files.
    """
    out_dir = Path(out_dir)
    processes = processes_from_env()
    if not processes.is_main:
        log, progress = (lambda _line: None), False
    model, tconf, resume = resolve_run(out_dir=out_dir, preset=preset, config_file=config_file,
                                       resume=resume, model_overrides=model_overrides,
                                       train_overrides=train_overrides, log=log,
                                       preset_given=preset_given)
    device = start(processes, resolve_device(tconf.device))
    try:
        if processes.enabled:
            log(f"{processes.world} processes ({'gloo' if device.type == 'cpu' else 'nccl'}), "
                f"{tconf.batch_size // processes.world} examples each per step")
        if processes.is_main:  # one process prepares a raw folder; the others then reuse it
            data_set = open_data(data, model.sample_rate, out_dir, log, progress)
        else:  # poll rather than wait in a collective, which would time out on a long prepare
            wait_for_prepared(data, out_dir)
        processes.barrier()
        if not processes.is_main:
            data_set = open_data(data, model.sample_rate, out_dir, log, progress)
        if model.uses_speaker and model.n_speakers < len(data_set.speakers):
            model = model.replace(n_speakers=len(data_set.speakers))
        log(f"model: {model.blocks} blocks x {model.layers} layers, cond={model.cond}, "
            f"receptive field {model.receptive_field} samples; "
            f"{len(data_set.train)} training and {len(data_set.valid)} validation files")
        return train(model, tconf, data_set, out_dir, resume=resume, progress=progress, log=log,
                     processes=processes, device=device)
    except RuntimeError as exc:
        lost = as_peer_lost(exc) if processes.enabled else exc
        if lost is exc:
            raise
        raise lost from exc
    finally:
        stop(processes)
