"""``wavebench demo``: the click layer over :func:`wavebench.demo.run_demo`."""
from __future__ import annotations

import click

from wavebench.commands.context import CONTEXT, log_to_stderr, no_progress_option, show_progress


@click.command("demo", context_settings=CONTEXT)
@click.option("-o", "--out", "out_dir", default="demo_out", show_default=True,
              help="Folder for everything the demo makes.")
@click.option("--steps", default=300, show_default=True,
              help="Training steps (two training processes where there are two cores).")
@no_progress_option(help="Hide the progress bars.")
def demo_command(out_dir, steps, no_progress):
    """Run the whole pipeline on the embedded default data (no downloads, a few minutes).

    \b
    Trains the tiny WaveNet, resynthesizes clips (checking that two samplers agree), scores
    them (with the mu-law oracle), builds a MOS listening-test packet, times the samplers and writes
    OUT/report/report.html.
    \b
    Example:
      wavebench demo -o demo_out && xdg-open demo_out/report/report.html
    """
    from wavebench.demo import run_demo

    result = run_demo(out_dir, steps=steps, progress=show_progress(no_progress), log=log_to_stderr)
    click.echo(result.summary)
    if result.mos_page:
        click.echo(f"listening test: open {result.mos_page} in a browser (offline)")
    click.echo(f"demo finished in {result.seconds:.0f} s; open {result.report_html}")
