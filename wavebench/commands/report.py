"""``wavebench report``: the click layer over :func:`wavebench.report.build_report`."""
from __future__ import annotations

import click

from wavebench.commands.context import CONTEXT


@click.command("report", context_settings=CONTEXT)
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_DIR...")
@click.option("-o", "--out", "out_dir", required=True, help="Folder for the report and tables.")
@click.option("--baseline", default=None,
              help="System to compare the others with (default: the first non-oracle system).")
@click.option("--title", default=None, help="Title of the report (default: the run names).")
@click.option("--force", is_flag=True,
              help="Replace a report of other runs or options in -o (refused without it).")
@click.option("--table", "table", type=click.Choice(["summary", "paper"]), default="summary",
              show_default=True,
              help="What to print: the headline summary, or the paper table (a row per system, "
                   "a column per metric, mean [95% CI]).")
def report_command(run_dirs, out_dir, baseline, title, force, table):
    """Merge score and speed runs into one report, comparison table and HTML page.

    \b
    Example:
      wavebench score --generated out/hifigan --reference data/test -o runs/hifigan --oracle mulaw
      wavebench score --generated out/wavenet --reference data/test -o runs/wavenet
      wavebench speed --preset reference --devices cpu,cuda -o runs/speed
      wavebench report runs/hifigan runs/wavenet runs/speed --baseline hifigan -o report/

    Writes OUT/report.html (one self-contained page: metric meanings, summary, comparisons,
    distributions, best and worst spectrograms, speed chart), report.md, report.json,
    results.csv, summary.csv, comparisons.csv and speed.csv (Parquet copies with pyarrow), and
    the paper table as paper.md and report.tex (LaTeX, booktabs).
    Runs whose metrics of one name were computed differently are refused. The set is built
    aside and swapped in whole; -o holding a report of other runs or options is refused
    (naming the change) unless --force, and a folder holding anything else is always refused.
    """
    from wavebench.report import build_report

    result = build_report(run_dirs, out_dir, baseline=baseline, title=title, force=force)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(result.describe())
    if table == "paper":
        click.echo(result.paper_text())
