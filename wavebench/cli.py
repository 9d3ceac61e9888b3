"""The `wavebench` command line: one click group; each command reads options and calls one function."""
from __future__ import annotations

import os
import sys
import traceback

import click

from wavebench_base.errors import PEER_LOST_EXIT, InputError, PeerLost

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def show_progress(no_progress: bool) -> bool:
    """Progress bars on an interactive terminal only: logs and pipes get plain lines."""
    return not no_progress and sys.stderr.isatty()


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs (or help lists it), so that a
    quick command does not pay for torch, numba or matplotlib imports it never uses."""

    lazy = {"generate": ("wavebench.generate", "generate_command"),
            "speed": ("wavebench.speed", "speed_command"),
            "report": ("wavebench.report", "report_command"),
            "mos": ("wavebench.mos.cli", "mos_group")}

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx, name):
        if name in self.lazy and name not in self.commands:
            module, attr = self.lazy[name]
            self.add_command(getattr(__import__(module, fromlist=[attr]), attr), name)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="wavebench")
def cli(debug):
    """wavebench: how good and how fast is a neural waveform generator?

    \b
    Quick start (no downloads, a few minutes on a laptop CPU):
      wavebench demo -o demo_out
    """


@cli.command(context_settings=CONTEXT)
@click.argument("audio_dir", type=click.Path(path_type=str))
@click.option("-o", "--out", "out_dir", required=True, help="Folder for the prepared dataset.")
@click.option("--sample-rate", default=16000, show_default=True, help="Rate of the prepared audio (Hz).")
@click.option("--trim-db", type=float, default=None,
              help="Trim leading/trailing audio quieter than this many dB below the peak.")
@click.option("--normalize", type=click.Choice(["peak", "loudness"]), default=None,
              help="Peak (to 0.95) or loudness (RMS -20 dBFS) normalization.")
@click.option("--valid-fraction", default=0.2, show_default=True, help="Share of files for validation.")
@click.option("--seed", default=0, show_default=True, help="Seed of the train/validation split.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def prepare(audio_dir, out_dir, sample_rate, trim_db, normalize, valid_fraction, seed, no_progress):
    """Prepare a folder of audio once for training (mono, resampled, mu-law, split 80/20).

    \b
    Example:
      wavebench prepare recordings/ -o data/ --sample-rate 16000 --trim-db 40
    """
    from reference_model.data import prepare as run_prepare

    result = run_prepare(audio_dir, out_dir, sample_rate=sample_rate, trim_db=trim_db,
                         normalize=normalize, valid_fraction=valid_fraction, seed=seed,
                         progress=show_progress(no_progress))
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    verb = "reused" if result.reused else "prepared"
    click.echo(f"{verb} {result.n_files} files ({result.seconds:.1f} s; {result.n_train} train, "
               f"{result.n_valid} validation) in {result.out_dir}")


@cli.command(context_settings=CONTEXT)
@click.option("--data", "data", default=None,
              help="Prepared dataset or a folder of audio; default: the embedded synthetic set.")
@click.option("-o", "--out", "out_dir", default="runs/train", show_default=True,
              help="Folder for checkpoints and logs.")
@click.option("--preset", default="tiny", show_default=True,
              help="tiny, reference, music, speech or ambient.")
@click.option("--config", "config_file", default=None, help="TOML file with [model] and [train] tables.")
@click.option("--cond", type=click.Choice(["none", "mel", "speaker", "mel+speaker"]), default=None,
              help="Conditioning (overrides the preset).")
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
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def train(data, out_dir, preset, config_file, cond, resume, nproc, no_progress, **options):
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

    log = lambda line: click.echo(line, err=True)  # noqa: E731
    preset_given = (click.get_current_context().get_parameter_source("preset")
                    is click.core.ParameterSource.COMMANDLINE)
    if nproc != 1 and "WORLD_SIZE" not in os.environ:  # this is the launcher, not a worker
        from wavebench.launch import launch
        from wavebench.training import check_processes, resolve_run
        from wavebench_base.errors import InputError

        _, tconf, _ = resolve_run(out_dir=out_dir, preset=preset, config_file=config_file,
                                  resume=resume, model_overrides={"cond": cond},
                                  train_overrides=options, log=lambda _line: None,
                                  preset_given=preset_given)
        check_processes(tconf, nproc)
        if data is not None and not os.path.exists(data):
            raise InputError("data folder not found", data)
        return launch(RAW_ARGS, nproc, log=log)
    result = run_training(data=data, out_dir=out_dir, preset=preset, config_file=config_file,
                          resume=resume, model_overrides={"cond": cond},
                          train_overrides=options, progress=show_progress(no_progress),
                          log=log, preset_given=preset_given)
    if rank_prefix():  # a worker other than rank 0: the launcher's main process reports
        return 0
    if result.initial_val_bits is not None and result.best_val_bits is not None:
        click.echo(f"validation: {result.initial_val_bits:.3f} -> {result.best_val_bits:.3f} "
                   f"bits/sample (lower is better); {result.samples_per_s:,.0f} samples/s")
    best = result.best_checkpoint or result.last_checkpoint
    click.echo(f"checkpoint: {best}")


def parse_systems(generated, system) -> dict:
    """``--generated DIR`` (named by --system or the folder) or ``--generated NAME=DIR``."""
    systems = {}
    for item in generated:
        name, sep, folder = item.partition("=")
        if not sep:
            name, folder = (system if system and len(generated) == 1 else None), item
            name = name or os.path.basename(os.path.normpath(folder)) or "generated"
        if name in systems:
            raise click.UsageError(f"system {name!r} given twice; name them with NAME=DIR")
        systems[name] = folder
    return systems


@cli.command(context_settings=CONTEXT)
@click.option("--reference", "reference_dir", required=True, help="Folder of reference recordings.")
@click.option("--generated", multiple=True,
              help="Folder of a system's audio (repeatable; NAME=DIR to name it).")
@click.option("--system", default=None, help="Name of the system in --generated DIR.")
@click.option("--checkpoint", default=None,
              help="Score a wavebench checkpoint: likelihood, and copy synthesis when mel-conditioned.")
@click.option("-o", "--out", "out_dir", required=True, help="Folder for the tables (resumable).")
@click.option("--metrics", default=None,
              help="Comma-separated metric names (default: mcd, c0_rmse_db, mel_l1, stoi, estoi).")
@click.option("--oracle", multiple=True, type=click.Choice(["mulaw"]),
              help="Add the reference through 8-bit mu-law as a system (the 256-class floor).")
@click.option("--jobs", default=1, show_default=True, help="Worker processes.")
@click.option("--strict-rate", is_flag=True, help="Refuse generated audio at another rate.")
@click.option("--allow-missing", is_flag=True, help="Score the common files, count the others.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--shard", default=None, metavar="I/N",
              help="Score only shard I of N (stable hash of the utterance); "
                   "wavebench report merges the shards' folders.")
@click.option("--force", is_flag=True,
              help="Start afresh when -o holds a run of other inputs (its results are replaced).")
def score(reference_dir, generated, system, checkpoint, out_dir, metrics, oracle, jobs,
          strict_rate, allow_missing, no_progress, shard, force):
    """Score generated audio against references with objective metrics.

    \b
    Examples:
      wavebench score --generated out/hifigan --reference data/test -o scores/ --oracle mulaw
      wavebench score --generated a=out/a --generated b=out/b --reference data/test -o s/ --jobs 2
      wavebench score --checkpoint runs/mel/best.pt --reference data/test -o scores/mel

    Writes OUT/per_utterance.csv (system, utterance, metric, value, status) and OUT/summary.csv
    (n, n_failed, mean, median, std, bootstrap 95% CI). An interrupted run resumes where it
    stopped when given the same -o; -o holding a run of other inputs (folders, files' contents,
    metrics, options) is refused, naming what changed, unless --force. One run at a time per -o.
    """
    from wavebench.score import parse_shard
    from wavebench.score import score as run_score

    shard = parse_shard(shard)
    if shard and checkpoint:
        raise click.UsageError("--shard applies to --generated and --oracle, not --checkpoint")
    if checkpoint and (generated or strict_rate or allow_missing):
        raise click.UsageError("--checkpoint scores the model's own output; give --generated, "
                               "--strict-rate and --allow-missing in a separate run")
    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    systems = parse_systems(generated, system)
    if checkpoint:
        from wavebench.score_checkpoint import score_checkpoint
        result = score_checkpoint(checkpoint, reference_dir=reference_dir, out_dir=out_dir,
                                  system=system, metrics=names, oracles=oracle, jobs=jobs,
                                  progress=show_progress(no_progress), force=force,
                                  log=lambda line: click.echo(line, err=True))
    else:
        result = run_score(reference_dir=reference_dir, generated=systems, out_dir=out_dir,
                           metrics=names, oracles=oracle, jobs=jobs, strict_rate=strict_rate,
                           allow_missing=allow_missing, progress=show_progress(no_progress),
                           log=lambda line: click.echo(line, err=True), shard=shard,
                           force=force)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if result.failures:
        counts = ", ".join(f"{status} ({n})" for status, n in result.failures.items())
        click.echo(f"warning: some values are NaN: {counts}; see per_utterance.csv", err=True)
    from reports import to_markdown
    columns = ["system", "metric", "n", "n_failed", "mean", "ci_low", "ci_high"]
    click.echo(to_markdown(result.summary_table[columns]))
    click.echo(f"tables: {result.per_utterance} and {result.summary}")


@cli.command(context_settings=CONTEXT)
@click.option("-o", "--out", "out_dir", default="demo_out", show_default=True,
              help="Folder for everything the demo makes.")
@click.option("--steps", default=300, show_default=True, help="Training steps.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
def demo(out_dir, steps, no_progress):
    """Run the whole pipeline on the embedded default data (no downloads, a few minutes).

    \b
    Trains the tiny WaveNet, resynthesizes clips with two samplers, scores them (with the
    mu-law oracle), builds a MOS listening-test packet, times the samplers and writes
    OUT/report/report.html.
    \b
    Example:
      wavebench demo -o demo_out && xdg-open demo_out/report/report.html
    """
    from wavebench.demo import run_demo

    result = run_demo(out_dir, steps=steps, progress=show_progress(no_progress),
                      log=lambda line: click.echo(line, err=True))
    click.echo(result.summary)
    if result.mos_page:
        click.echo(f"listening test: open {result.mos_page} in a browser (offline)")
    click.echo(f"demo finished in {result.seconds:.0f} s; open {result.report_html}")


RAW_ARGS: list[str] = []


def rank_prefix() -> str:
    """Names the process in errors from a distributed worker other than rank 0."""
    rank = os.environ.get("RANK", "0")
    return f"[rank {rank}] " if os.environ.get("WORLD_SIZE", "1") != "1" and rank != "0" else ""


def main(argv=None) -> int:
    """Entry point: one-line errors (exit 1 for input, 2 for usage), tracebacks with --debug."""
    argv = list(sys.argv[1:] if argv is None else argv)
    RAW_ARGS[:] = argv  # `train --nproc N` starts its workers with the same arguments
    debug = "--debug" in argv or os.environ.get("WAVEBENCH_DEBUG") == "1"
    if "--debug" in argv[1:]:  # accepted after the command too: move it in front
        argv = ["--debug"] + [a for a in argv if a != "--debug"]
    code = 0
    try:
        result = cli.main(args=argv, prog_name="wavebench", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        code = 130
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except KeyboardInterrupt:
        if not rank_prefix():  # Ctrl-C reaches every process; one says so
            click.echo("error: interrupted; outputs written so far are complete (resume to "
                       "continue)", err=True)
        code = 130
    except PeerLost:  # the process that failed has said why; the launcher reports it
        if debug:
            traceback.print_exc()
        code = PEER_LOST_EXIT
    except InputError as exc:
        if debug:
            traceback.print_exc()
        if debug or not rank_prefix():  # every process sees the same input: rank 0 says it
            one_line = str(exc).replace("\r", "\\r").replace("\n", "\\n")  # names from files
            click.echo(f"{rank_prefix()}error: {one_line}", err=True)
        code = 1
    except OSError as exc:
        if debug:
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"{rank_prefix()}error: {where}{exc.strerror or exc}", err=True)
        code = 1
    except (MemoryError, RuntimeError) as exc:
        from metrics.validation import allocation_failed
        if not allocation_failed(exc):
            raise  # a bug: its traceback is what a report needs
        if debug:
            traceback.print_exc()
        detail = " ".join(str(exc).split())[:160]
        click.echo(f"{rank_prefix()}error: out of memory ({type(exc).__name__}"
                   f"{': ' + detail if detail else ''}); try shorter inputs, fewer --jobs or a "
                   f"smaller batch", err=True)
        code = 1
    return code


def entry() -> None:
    sys.exit(main())
