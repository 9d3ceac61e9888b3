"""Click commands ``wavebench mos import`` and ``wavebench mos analyze``."""
from __future__ import annotations

import click

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

    packet = load_packet(packet_dir)
    result = import_results(results, packet)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    ratings, raters = write_ratings(result, out_path, raters_path)
    click.echo(f"imported {len(result.ratings)} judgements from {len(result.raters)} sessions "
               f"({result.raters['rater_id'].nunique()} raters) into {ratings}; sessions in "
               f"{raters}")


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
def analyze_command(ratings, packet_dir, out_dir, screening_path, ci, generalize, correction,
                    alpha, baseline, compare_anchors, n_boot, seed, raters_path, no_plots,
                    raw_tests, strict_report):
    """Screen raters, estimate MOS with intervals, test pairs and write the report.

    \b
    Example:
      wavebench mos analyze ratings.csv --packet mos_out -o mos_report
      xdg-open mos_report/report.html
    """
    from wavebench.mos.analysis_report import AnalysisOptions, run_analysis

    options = AnalysisOptions(screening_path=screening_path, ci=ci, generalize=generalize,
                              correction=correction, alpha=alpha, baseline=baseline,
                              n_boot=n_boot, seed=seed, compare_anchors=compare_anchors,
                              raters_path=raters_path, plots=not no_plots,
                              raw_tests=raw_tests, strict_report=strict_report)
    result = run_analysis(ratings, packet_dir, out_dir, options,
                          log=lambda line: click.echo(line, err=True))
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
