"""Click commands ``wavebench mos import`` and ``wavebench mos analyze``."""
from __future__ import annotations

import os
from pathlib import Path

import click

from reference_model.errors import InputError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.command("import", context_settings=CONTEXT)
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--packet", "packet_dir", required=True,
              help="The packet's output folder (with packet/ and private/).")
@click.option("--from", "source", type=click.Choice(["html"]), default="html", show_default=True,
              help="Results format: html = the offline page's JSON downloads.")
@click.option("-o", "--out", "out_path", required=True, help="ratings.csv to write.")
@click.option("--raters", "raters_path", default=None,
              help="Sessions table to write (default: raters.csv beside the ratings).")
def import_command(results, packet_dir, source, out_path, raters_path):
    """Import listening-test results into the canonical ratings.csv (and raters.csv).

    Each file's checksum, packet id, list, trials and stimuli are checked against the
    packet's key, itself checked against the manifest's commitment.

    \b
    Example:
      wavebench mos import downloads/wavebench_*.json --packet mos_out -o ratings.csv
    """
    from wavebench.mos.ratings import import_results, load_packet, write_ratings

    out = Path(out_path)
    check_import_outputs(results, packet_dir, {
        "-o": out, ("--raters" if raters_path else "raters.csv beside -o"):
            Path(raters_path) if raters_path else out.with_name("raters.csv"),
        "rejects.csv beside -o": out.with_name("rejects.csv")})
    packet = load_packet(packet_dir)
    result = import_results(results, packet)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    ratings, raters = write_ratings(result, out_path, raters_path)
    if len(result.rejects):
        click.echo(f"{len(result.rejects)} responses rejected (not counted), listed in "
                   f"{ratings.with_name('rejects.csv')}", err=True)
    click.echo(f"imported {len(result.ratings)} judgements from {len(result.raters)} sessions "
               f"({result.raters['rater_id'].nunique()} raters) into {ratings}; sessions in "
               f"{raters}")


def check_import_outputs(results, packet_dir, outputs: dict) -> None:
    """Refuse an output of ``mos import`` that is one of its inputs or lies inside the packet.

    Paths are compared resolved (links followed) and, where both exist, as the same file (hard
    links), so ``-o victim.json`` or ``-o PACKET/private/key.json`` never destroys what
    cannot be collected again.

    Parameters
    ----------
    results : sequence of str
        The results files being imported.
    packet_dir : str
        ``--packet``: the packet's output folder, or its ``packet/`` subfolder.
    outputs : dict
        Option name (``-o``, ``--raters``, ...) -> the file it would write.

    Raises
    ------
    InputError
        One line naming the output and what it would overwrite.
    """
    root = Path(packet_dir)
    if (root / "manifest.json").is_file() and not (root / "packet").is_dir():
        root = root.parent  # OUT/packet given: the key sits in OUT/private
    root = root.resolve()
    for option, out in outputs.items():
        target = Path(out).resolve()
        for given in results:
            if target == Path(given).resolve() or _same_file(out, given):
                raise InputError(f"{option} is the results file {given} being imported; write "
                                 "the output elsewhere", out)
        if target.is_relative_to(root):
            raise InputError(f"{option} is inside the packet folder {root}; write the output "
                             "outside it (the packet holds its key and is replaced whole)", out)


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


@click.command("analyze", context_settings=CONTEXT)
@click.argument("ratings", type=click.Path(path_type=str))
@click.option("--packet", "packet_dir", required=True,
              help="The packet's output folder (with packet/ and private/).")
@click.option("-o", "--out", "out_dir", required=True, help="Report folder.")
@click.option("--screening", "screening_path", default=None,
              help="Pre-registered screening rules (YAML or JSON); default: built-in rules.")
@click.option("--ci", default="all", show_default=True,
              help="Interval methods, a comma list of boot2way, crowdmos, t, lmm (mixed model, "
                   "slower); all = boot2way, crowdmos and t. boot2way is primary when present.")
@click.option("--generalize", type=click.Choice(["raters+items", "raters"]),
              default="raters+items", show_default=True, help="What the bootstrap resamples.")
@click.option("--correction", type=click.Choice(["holm", "bonferroni", "none"]), default="holm",
              show_default=True, help="Multiple-comparison correction.")
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--baseline", default=None, help="Compare each system with this one only.")
@click.option("--compare-anchors", is_flag=True,
              help="Include natural and anchors in the pairwise comparisons.")
@click.option("--bootstrap", "n_boot", type=click.IntRange(min=1), default=2000,
              show_default=True, help="Bootstrap replicates.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--raters", "raters_path", default=None,
              help="raters.csv (default: beside the ratings, when present).")
@click.option("--no-plots", is_flag=True, help="Skip the figures (faster).")
@click.option("--raw-tests", is_flag=True,
              help="Add Mann-Whitney and Welch p-values on raw ratings to pairwise.csv (as most "
                   "papers report; they ignore clustering and never decide significance).")
@click.option("--strict-report", is_flag=True,
              help="Fail when a reporting-checklist field is NOT REPORTED.")
@click.option("--force", is_flag=True,
              help="Replace an analysis of other inputs or options in -o (refused without it).")
def analyze_command(ratings, packet_dir, out_dir, screening_path, ci, generalize, correction,
                    alpha, baseline, compare_anchors, n_boot, seed, raters_path, no_plots,
                    raw_tests, strict_report, force):
    """Screen raters, estimate MOS with intervals, test pairs and write the report.

    \b
    Example:
      wavebench mos analyze ratings.csv --packet mos_out -o mos_report
      xdg-open mos_report/report.html

    The report folder is written aside and swapped in whole, so an interrupted run leaves the
    earlier analysis complete; -o holding an analysis of other inputs or options is refused,
    naming the change, unless --force, and a folder holding anything else is always refused.
    """
    from wavebench.mos.analysis_report import AnalysisOptions, run_analysis

    options = AnalysisOptions(screening_path=screening_path, ci=ci, generalize=generalize,
                              correction=correction, alpha=alpha, baseline=baseline,
                              n_boot=n_boot, seed=seed, compare_anchors=compare_anchors,
                              raters_path=raters_path, plots=not no_plots,
                              raw_tests=raw_tests, strict_report=strict_report)
    result = run_analysis(ratings, packet_dir, out_dir, options,
                          log=lambda line: click.echo(line, err=True), force=force)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    excluded = int(result.screening.sessions["excluded"].sum())
    click.echo(f"{excluded} of {len(result.screening.sessions)} sessions excluded by screening")
    primary = result.system_scores["ci_primary"].iloc[0]
    for row in result.system_scores.itertuples():
        click.echo(f"{row.condition:>16}  MOS {row.mean:.3f}  "
                   f"[{getattr(row, f'ci_lo_{primary}'):.3f}, "
                   f"{getattr(row, f'ci_hi_{primary}'):.3f}]  n={row.n_ratings}")
    click.echo(f"report: {result.out_dir / 'report.html'}")
