"""``wavebench generate``: the click layer over :func:`wavebench.generate.run_generate`."""
from __future__ import annotations

from pathlib import Path

import click

from wavebench.commands.context import CONTEXT, no_progress_option


class SamplerChoice(click.Choice):
    """``auto`` and the registered samplers' names, looked up when first needed (parsing or
    ``generate --help``): the registry imports torch and numba, which listing the commands
    should not."""

    def __init__(self):
        super().__init__(())

    @property
    def choices(self) -> tuple:
        from reference_model.sampling import SAMPLERS
        return ("auto",) + SAMPLERS

    @choices.setter
    def choices(self, _value) -> None:  # click.Choice.__init__ assigns it; the registry rules
        pass


@click.command("generate", context_settings=CONTEXT)
@click.option("--checkpoint", default=None, help="A wavebench checkpoint.")
@click.option("--preset", default=None,
              help="Random weights of a preset instead (tiny, reference, ...), for benchmarking.")
@click.option("-o", "--out", "out_dir", required=True, help="Folder for the WAV files.")
@click.option("--seconds", type=float, default=None,
              help="Seconds per clip [default: the preset's (music 30, speech 10, ...), 1 for a "
                   "custom model, or the length of --mel-from].")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Clips generated together.")
@click.option("--temperature", type=float, default=None,
              help="Softmax temperature; 0 = most likely code [default: the preset's (a "
                   "checkpoint's preset is found from its architecture), else 1].")
@click.option("--prime", default=None, help="Audio file whose start the clips continue.")
@click.option("--prime-seconds", type=float, default=1.0, show_default=True,
              help="Seconds of --prime to use.")
@click.option("--mel-from", default=None,
              help="Audio file (at the model's rate) or .npy [n_mels, frames] to copy-synthesize.")
@click.option("--speaker", type=int, default=None, help="Speaker id (speaker-conditioned models).")
@click.option("--sampler", type=SamplerChoice(), default="auto",
              show_default=True,
              help="auto = fused on cpu, cuda-graph on cuda; cached for a model with --lpc-order.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--threads", type=int, default=None, help="CPU threads for torch and numba.")
@click.option("--float64", is_flag=True, help="Compute in float64 (slower; for checks).")
@no_progress_option()
def generate_command(no_progress, **options):
    """Generate audio with a WaveNet and write 16-bit WAV files.

    \b
    Examples:
      wavebench generate --checkpoint runs/tiny/best.pt -o out/ --seconds 2 --batch 4
      wavebench generate --checkpoint runs/mel/best.pt -o copy/ --mel-from speech.wav
      wavebench generate --checkpoint ckpt.pt -o cont/ --prime speech.flac --prime-seconds 0.5
      wavebench generate --preset reference -o bench/ --sampler fused --seed 1
    """
    from wavebench.generate import run_generate

    result = run_generate(progress=not no_progress, **options)
    click.echo(f"wrote {len(result.paths)} file(s) to {Path(result.paths[0]).parent} "
               f"({result.sampler}: {result.samples_per_s:,.0f} samples/s)")
