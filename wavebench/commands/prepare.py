"""``wavebench prepare``: the click layer over :func:`reference_model.data.prepare`."""
from __future__ import annotations

import click

from wavebench.commands.context import CONTEXT, no_progress_option, show_progress


@click.command("prepare", context_settings=CONTEXT)
@click.argument("audio_dir", type=click.Path(path_type=str))
@click.option("-o", "--out", "out_dir", required=True, help="Folder for the prepared dataset.")
@click.option("--sample-rate", default=16000, show_default=True, help="Rate of the prepared audio (Hz).")
@click.option("--trim-db", type=float, default=None,
              help="Trim leading/trailing audio quieter than this many dB below the peak.")
@click.option("--normalize", type=click.Choice(["peak", "loudness"]), default=None,
              help="Peak (to 0.95) or loudness (RMS -20 dBFS) normalization.")
@click.option("--valid-fraction", default=0.2, show_default=True, help="Share of files for validation.")
@click.option("--seed", default=0, show_default=True, help="Seed of the train/validation split.")
@no_progress_option()
def prepare_command(audio_dir, out_dir, sample_rate, trim_db, normalize, valid_fraction, seed,
                    no_progress):
    """Prepare a folder of audio once for training (mono, resampled, mu-law, split 80/20).

    \b
    Example:
      wavebench prepare recordings/ -o data/ --sample-rate 16000 --trim-db 40
    """
    from reference_model.data import prepare

    result = prepare(audio_dir, out_dir, sample_rate=sample_rate, trim_db=trim_db,
                     normalize=normalize, valid_fraction=valid_fraction, seed=seed,
                     progress=show_progress(no_progress))
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    verb = "reused" if result.reused else "prepared"
    click.echo(f"{verb} {result.n_files} files ({result.seconds:.1f} s; {result.n_train} train, "
               f"{result.n_valid} validation) in {result.out_dir}")
