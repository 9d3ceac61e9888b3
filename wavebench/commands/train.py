"""``wavebench train``: the click layer over :func:`wavebench.training.run_training`, and the
launcher of ``--nproc N`` worker processes (:func:`wavebench.launch.launch`)."""
from __future__ import annotations

import os

import click

from wavebench.commands.context import (
    CONTEXT,
    RAW_ARGS,
    log_to_stderr,
    no_progress_option,
    rank_prefix,
    show_progress,
)


@click.command("train", context_settings=CONTEXT)
@click.option("--data", "data", default=None,
              help="Prepared dataset or a folder of audio; default: the embedded synthetic set.")
@click.option("-o", "--out", "out_dir", default="runs/train", show_default=True,
              help="Folder for checkpoints and logs.")
@click.option("--preset", default="tiny", show_default=True,
              help="tiny, reference, music, speech or ambient.")
@click.option("--config", "config_file", default=None, help="TOML file with [model] and [train] tables.")
@click.option("--cond", type=click.Choice(["none", "mel", "speaker", "mel+speaker"]), default=None,
              help="Conditioning (overrides the preset).")
@click.option("--lpc-order", type=click.IntRange(0, 128), default=None,
              help="Model the excitation of a linear predictor of this order computed from the "
                   "mel frames (LPCNet's split; needs --cond mel). 0 = off.")
@click.option("--steps", type=int, default=None, help="Optimizer steps in all.")
@click.option("--batch-size", type=int, default=None)
@click.option("--crop", type=int, default=None, help="Predicted samples per example.")
@click.option("--lr", type=float, default=None, help="Peak learning rate.")
@click.option("--optimizer", type=click.Choice(["adam", "rmsprop", "sgd"]), default=None)
@click.option("--schedule", type=click.Choice(["constant", "cosine", "step"]), default=None)
@click.option("--warmup", type=int, default=None, help="Linear warm-up steps.")
@click.option("--weight-decay", type=float, default=None)
@click.option("--clip", type=float, default=None, help="Gradient norm clip (0 = off).")
@click.option("--accumulate", type=int, default=None, help="Micro-batches per optimizer step.")
@click.option("--ema", type=float, default=None, help="Weight EMA decay, e.g. 0.999 (0 = off).")
@click.option("--eval-every", type=int, default=None, help="Validate every N steps.")
@click.option("--patience", type=int, default=None, help="Early stopping after N evaluations.")
@click.option("--checkpoint-every", type=int, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--device", default=None, help="cpu or cuda.")
@click.option("--threads", type=int, default=None, help="CPU threads (0 = PyTorch's default).")
@click.option("--max-minutes", type=float, default=None,
              help="Stop (validate and save) after this much wall time.")
@click.option("--audio-seconds", type=float, default=None,
              help="TensorBoard: log a clip this long, generated at each validation (copy "
                   "synthesis of a validation file for mel models); 0 = none.")
@click.option("--resume", default=None,
              help="Continue from a checkpoint, or 'auto': OUT/last.pt if it exists.")
@click.option("--nproc", type=int, default=1, show_default=True,
              help="Training processes on this machine (DistributedDataParallel; "
                   "--batch-size is split over them).")
@no_progress_option()
def train_command(data, out_dir, preset, config_file, cond, lpc_order, resume, nproc, no_progress,
                  **options):
    """Train a WaveNet (the embedded default data when --data is not given).

    \b
    Examples:
      wavebench train --preset tiny -o runs/tiny
      wavebench prepare speech/ -o data/speech
      wavebench train --data data/speech --preset reference --cond mel --steps 20000 -o runs/mel
      wavebench train -o runs/mel --resume auto --steps 40000
      wavebench train --nproc 2 --batch-size 16 -o runs/ddp   (or: torchrun ... -m wavebench train)
    """
    from wavebench.training import run_training

    preset_given = (click.get_current_context().get_parameter_source("preset")
                    is click.core.ParameterSource.COMMANDLINE)
    if nproc != 1 and "WORLD_SIZE" not in os.environ:  # this is the launcher, not a worker
        from wavebench.launch import launch
        from wavebench.training import check_processes, resolve_run
        from wavebench_base.errors import InputError

        _, tconf, _ = resolve_run(out_dir=out_dir, preset=preset, config_file=config_file,
                                  resume=resume, model_overrides={"cond": cond, "lpc_order": lpc_order},
                                  train_overrides=options, log=lambda _line: None,
                                  preset_given=preset_given)
        check_processes(tconf, nproc)
        if data is not None and not os.path.exists(data):
            raise InputError("data folder not found", data)
        return launch(RAW_ARGS, nproc, log=log_to_stderr)
    result = run_training(data=data, out_dir=out_dir, preset=preset, config_file=config_file,
                          resume=resume, model_overrides={"cond": cond, "lpc_order": lpc_order},
                          train_overrides=options, progress=show_progress(no_progress),
                          log=log_to_stderr, preset_given=preset_given)
    if rank_prefix():  # a worker other than rank 0: the launcher's main process reports
        return 0
    if result.initial_val_bits is not None and result.best_val_bits is not None:
        click.echo(f"validation: {result.initial_val_bits:.3f} -> {result.best_val_bits:.3f} "
                   f"{result.unit} (lower is better); {result.samples_per_s:,.0f} samples/s")
    best = result.best_checkpoint or result.last_checkpoint
    click.echo(f"checkpoint: {best}")
