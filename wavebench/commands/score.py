"""``wavebench score``: the click layer over :func:`wavebench.score.score` (generated audio)
and :func:`wavebench.score_checkpoint.score_checkpoint` (a checkpoint's own output)."""
from __future__ import annotations

import os

import click

from wavebench.commands.context import CONTEXT, log_to_stderr, no_progress_option, show_progress


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


@click.command("score", context_settings=CONTEXT)
@click.option("--reference", "reference_dir", default=None,
              help="Folder of reference recordings (without it, only the metrics that need no "
                   "reference are computed).")
@click.option("--generated", multiple=True,
              help="Folder of a system's audio (repeatable; NAME=DIR to name it).")
@click.option("--system", default=None, help="Name of the system in --generated DIR.")
@click.option("--checkpoint", default=None,
              help="Score a wavebench checkpoint: likelihood, and copy synthesis when mel-conditioned.")
@click.option("-o", "--out", "out_dir", required=True, help="Folder for the tables (resumable).")
@click.option("--metrics", default=None,
              help="Comma-separated metric names (default: mcd, c0_rmse_db, mel_l1, stoi, estoi).")
@click.option("--oracle", multiple=True, type=click.Choice(["mulaw", "noise40"]),
              help="Add a system made from the references (repeatable): mulaw, the reference "
                   "through 8-bit mu-law (the 256-class floor); noise40, the reference plus white "
                   "noise at -40 dBFS RMS (a yardstick for the metrics' scale).")
@click.option("--jobs", default=1, show_default=True, help="Worker processes.")
@click.option("--strict-rate", is_flag=True, help="Refuse generated audio at another rate.")
@click.option("--allow-missing", is_flag=True, help="Score the common files, count the others.")
@no_progress_option()
@click.option("--shard", default=None, metavar="I/N",
              help="Score only shard I of N (stable hash of the utterance); "
                   "wavebench report merges the shards' folders.")
@click.option("--force", is_flag=True,
              help="Start afresh when -o holds a run of other inputs (its results are replaced).")
def score_command(reference_dir, generated, system, checkpoint, out_dir, metrics, oracle, jobs,
                  strict_rate, allow_missing, no_progress, shard, force):
    """Score generated audio against references with objective metrics.

    \b
    Examples:
      wavebench score --generated out/hifigan --reference data/test -o scores/ --oracle mulaw
      wavebench score --generated a=out/a --generated b=out/b --reference data/test -o s/ --jobs 2
      wavebench score --checkpoint runs/mel/best.pt --reference data/test -o scores/mel
      wavebench score --generated out/music -o scores/music    # no reference: DNSMOS only

    Without --reference, every file of each --generated folder is scored with the metrics that
    need no reference (DNSMOS, with wavebench[dnsmos] installed).

    Writes OUT/per_utterance.csv (system, utterance, metric, value, status) and OUT/summary.csv
    (n, n_failed, mean, median, std, bootstrap 95% CI). An interrupted run resumes where it
    stopped when given the same -o; -o holding a run of other inputs (folders, files' contents,
    metrics, options) is refused, naming what changed, unless --force. One run at a time per -o.
    """
    from wavebench.score import parse_shard, score

    if not (generated or checkpoint or oracle):
        raise click.UsageError("nothing to score: give --generated DIR (or --checkpoint, or "
                               "--oracle with --reference)")
    if reference_dir is None and (checkpoint or oracle):
        raise click.UsageError("--checkpoint and --oracle need --reference DIR")
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
                                  log=log_to_stderr)
    else:
        result = score(reference_dir=reference_dir, generated=systems, out_dir=out_dir,
                       metrics=names, oracles=oracle, jobs=jobs, strict_rate=strict_rate,
                       allow_missing=allow_missing, progress=show_progress(no_progress),
                       log=log_to_stderr, shard=shard, force=force)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if result.failures:
        counts = ", ".join(f"{status} ({n})" for status, n in result.failures.items())
        click.echo(f"warning: some values are NaN: {counts}; see per_utterance.csv", err=True)
    from reports import to_markdown
    columns = ["system", "metric", "n", "n_failed", "mean", "ci_low", "ci_high"]
    click.echo(to_markdown(result.summary_table[columns]))
    click.echo(f"tables: {result.per_utterance} and {result.summary}")
