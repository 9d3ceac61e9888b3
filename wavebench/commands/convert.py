"""``wavebench convert``: the click layer over :func:`reference_model.convert.convert_checkpoint`."""
from __future__ import annotations

import click

from wavebench.commands.context import CONTEXT


@click.command("convert", context_settings=CONTEXT)
@click.option("--from", "source", required=True,
              type=click.Choice(["pytorch-wavenet", "wavenet-vocoder"]),
              help="The project that wrote CHECKPOINT.")
@click.argument("checkpoint")
@click.option("--hparams", default=None, metavar="JSON",
              help="The source's hyper-parameters as JSON: wavenet_vocoder's hparams (required), "
                   "or pytorch-wavenet's WaveNetModel arguments (for a bare state_dict).")
@click.option("-o", "--out", required=True, metavar="FILE", help="The wavebench checkpoint to write.")
def convert_command(source, checkpoint, hparams, out):
    """Convert another project's WaveNet checkpoint into a wavebench checkpoint.

    Reads pytorch-wavenet (a state_dict, or the whole pickled model, read without running its
    code) and wavenet_vocoder (train.py's checkpoints, with their hparams JSON). The hparams are
    checked against the weights; the checkpoint records the source file's SHA-256 and every
    transformation made.

    \b
    Examples:
      wavebench convert --from pytorch-wavenet snapshot.pt -o model.pt
      wavebench convert --from pytorch-wavenet state_dict.pt --hparams config.json -o model.pt
      wavebench convert --from wavenet-vocoder checkpoint_step000100000.pth \\
          --hparams hparams.json -o model.pt
    """
    from reference_model.convert import convert_checkpoint

    path, converted = convert_checkpoint(source, checkpoint, out, hparams=hparams)
    c = converted.config
    click.echo(f"wrote {path}: {c.blocks} x {c.layers} layers, receptive field "
               f"{c.receptive_field}, {c.input} input, {c.output} output, cond {c.cond}")
    for line in converted.transformations:
        click.echo(f"  - {line}")
