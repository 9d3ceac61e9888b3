"""``wavebench mos``: the click group of ``plan``, ``packet``, ``validate``, ``import``, ``analyze``.

Each command reads its options and calls one function of :mod:`wavebench.mos.packet` or
:mod:`wavebench.mos.analysis`, imported when the command runs, so that ``wavebench --help``
loads neither half.
"""
from __future__ import annotations

from pathlib import Path

import click

from wavebench.commands.context import CONTEXT, log_to_stderr
from wavebench_base.errors import InputError


@click.group("mos", context_settings=CONTEXT)
def mos_group():
    """MOS listening tests: plan, build a blind offline packet, validate it, analyze ratings.

    A packet can also be run online: mos serve, then mos status and mos import --db.

    \b
    A whole study:
      wavebench mos plan --systems 2 --items 40 --raters 60          # how wide, what difference
      wavebench mos packet base=out/base new=out/new --reference natural=data/test --out mos
      wavebench mos validate mos                # then send mos/packet.zip to the raters
      wavebench mos import results/*.json --packet mos -o ratings.csv
      wavebench mos analyze ratings.csv --packet mos -o mos_report
    """


def _read_items(value: str):
    """``auto`` -> None; else a file with one item key per line."""
    if value == "auto":
        return None
    path = Path(value)
    if not path.is_file():
        raise InputError("no such items file", path)
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


@mos_group.command("packet", context_settings=CONTEXT)
@click.argument("systems", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True,
              help="Output folder (packet/, private/, packet.zip).")
@click.option("--reference", default=None, help="Natural recordings as a condition: natural=DIR.")
@click.option("--method", type=click.Choice(["acr", "mushra"]), default="acr", show_default=True)
@click.option("--seed", default=1, show_default=True, help="Seed of the design and ids.")
@click.option("--votes", default=10, show_default=True, help="Votes per (item, condition).")
@click.option("--trials-per-session", default="auto", show_default=True,
              help="ACR rating trials per session (a multiple of the conditions) or MUSHRA pages.")
@click.option("--items", default="auto", show_default=True, help="File of item keys, or auto.")
@click.option("--holdout", default=4, show_default=True, help="Items kept for gold/trap/training.")
@click.option("--level", default="p56:-26", show_default=True, help="p56:DB, lufs:LUFS or none.")
@click.option("--sample-rate", default="auto", show_default=True, help="auto or Hz.")
@click.option("--bit-depth", type=click.Choice(["16", "24"]), default="16", show_default=True)
@click.option("--anchors", default="auto", show_default=True,
              help="Comma list of lp<Hz>, mnru<Q>; auto: lp3500,lp7000 for MUSHRA, none for ACR.")
@click.option("--gold", type=click.Choice(["auto", "none"]), default="auto", show_default=True)
@click.option("--traps", type=click.Choice(["tones", "none"]), default="tones", show_default=True)
@click.option("--downmix", is_flag=True, help="Mix two-channel files to mono instead of refusing.")
@click.option("--export", "exports", default="", help="Comma list of exports: trials "
              "(packet/exports/trials.csv for Gorilla, Qualtrics or jsPsych).")
@click.option("--headphone-check", type=click.Choice(["woods", "none"]), default="none",
              show_default=True, help="woods: six antiphase trials after calibration; raters "
              "below 5/6 are screened out (for crowdsourced tests).")
@click.option("--config", "config_path", default=None,
              help="YAML file of packet settings (listening-test.md 14); options given here win.")
@click.option("--force", is_flag=True,
              help="Replace an earlier packet at --out. The old one, private key included, is "
                   "kept beside it as OUT.replaced-<UTC time> (hard links: no extra space).")
def packet(systems, out_dir, reference, method, seed, votes, trials_per_session, items, holdout,
           level, sample_rate, bit_depth, anchors, gold, traps, downmix, exports,
           headphone_check, config_path, force):
    """Build a blind, balanced, level-aligned listening-test packet from folders of audio.

    The packet is built beside --out and swapped in when complete, so an interrupted run leaves
    the earlier packet whole. A packet with a private key is replaced only with --force.

    \b
    Example:
      wavebench mos packet base=out/base new=out/new --reference natural=data/wavs \\
          --out mos_packet --votes 8
    """
    from wavebench.mos.packet.build import PacketOptions, build_packet

    per = None if trials_per_session == "auto" else _int(trials_per_session, "--trials-per-session")
    opt = PacketOptions(method=method, reference=reference, seed=seed, votes=votes,
                        trials_per_session=per, items=_read_items(items), holdout=holdout,
                        level=level, sample_rate=sample_rate, bit_depth=int(bit_depth),
                        anchors=None if anchors == "auto" else anchors.split(","), gold=gold,
                        traps=traps, downmix=downmix,
                        exports=[e.strip() for e in exports.split(",") if e.strip()],
                        headphone_check=headphone_check)
    if config_path:  # the file's settings, except where the command line gave the option
        from dataclasses import replace

        from wavebench.mos.packet.config import packet_options_from_config, read_config
        ctx = click.get_current_context()
        given = {name for name in ctx.params
                 if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE}
        from_file = packet_options_from_config(read_config(config_path), config_path)
        opt = replace(opt, **{k: v for k, v in from_file.items() if k not in given})
    result = build_packet(list(systems), out_dir, opt, force=force)
    for note in result.notes:
        click.echo(note, err=True)
    click.echo(f"packet {result.packet_id}: {result.n_lists} lists (one per rater session), "
               f"{result.n_stimuli} files at {result.sample_rate} Hz, about "
               f"{result.minutes_per_session:.1f} min per session, in {result.out_dir}")


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{name} must be auto or a whole number, got {value!r}") from None


@mos_group.command("validate", context_settings=CONTEXT)
@click.argument("packet_dir")
def validate(packet_dir):
    """Check a packet: file integrity, balance, leaks of system names or paths, key commitment.

    \b
    Example:
      wavebench mos validate mos_packet
    """
    from wavebench.mos.packet.validate import validate_packet

    report = validate_packet(packet_dir)
    for line in report.warnings:
        click.echo(f"warning: {line}", err=True)
    for line in report.info:
        click.echo(line)
    if report.errors:
        for line in report.errors[1:]:
            click.echo(f"problem: {line}", err=True)
        more = f" (and {len(report.errors) - 1} more problems above)" if len(report.errors) > 1 else ""
        raise InputError(report.errors[0] + more)
    click.echo(f"packet {report.packet_id}: OK ({report.n_files} files checked)")


@mos_group.command("plan", context_settings=CONTEXT)
@click.option("--systems", type=int, required=True, help="Systems to compare.")
@click.option("--items", type=int, required=True, help="Items (utterances) per system.")
@click.option("--raters", type=int, required=True, help="Raters you can recruit.")
@click.option("--trials-per-session", type=int, default=20, show_default=True,
              help="Rated trials per session (checks come on top).")
@click.option("--sessions-per-rater", type=int, default=1, show_default=True)
@click.option("--pilot", "pilot_path", default=None,
              help="A pilot's ratings.csv: estimate the variance components from it.")
@click.option("--packet", "packet_dir", default=None, help="The pilot's packet (with --pilot).")
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--power", type=float, default=0.8, show_default=True,
              help="Power for the minimum detectable difference.")
@click.option("-o", "--out", "out_path", default=None, help="Write the grid as CSV here too.")
def plan(systems, items, raters, trials_per_session, sessions_per_rater, pilot_path, packet_dir,
         alpha, power, out_path):
    """Expected MOS interval half-width and minimum detectable difference of a design.

    \b
    Example:
      wavebench mos plan --systems 5 --items 40 --raters 60 --trials-per-session 20
      wavebench mos plan --systems 5 --items 40 --raters 60 --pilot pilot.csv --packet mos_out
    """
    from reports import to_markdown, write_csv
    from wavebench.mos.analysis import plan as planning

    if (pilot_path is None) != (packet_dir is None):
        raise click.UsageError("--pilot and --packet go together (the packet unblinds the pilot)")
    design = planning.Design(systems, items, raters, trials_per_session, sessions_per_rater)
    components = (planning.pilot_components(pilot_path, packet_dir) if pilot_path
                  else planning.Components(*planning.DEFAULT_COMPONENTS))
    mine = planning.expected(components, design, alpha=alpha, power=power)
    click.echo(f"variance components: item {components.item:.3f}, rater {components.rater:.3f}, "
               f"residual {components.resid:.3f} ({components.source})")
    click.echo(f"{systems} systems x {items} items, {raters} raters x {trials_per_session} trials "
               f"x {sessions_per_rater} session(s): {mine['votes']:.1f} votes per stimulus")
    click.echo(f"expected {100 * (1 - alpha):g}% interval: MOS +- {mine['half_width']:.3f}; "
               f"minimum detectable difference {mine['mdd']:.3f} "
               f"({100 * power:g}% power, unpaired, conservative)")
    more, fewer = planning.raters_versus_sessions(components, design, alpha=alpha, power=power)
    click.echo(f"same number of ratings: {more['raters']} raters x {more['trials_per_session']} "
               f"trials gives +- {more['half_width']:.3f}; {fewer['raters']} raters x "
               f"{fewer['trials_per_session']} trials gives +- {fewer['half_width']:.3f} "
               "(more raters with shorter sessions shrink the rater term)")
    table = planning.grid(components, design, alpha=alpha, power=power)
    shown = table.drop(columns=["systems", "sessions_per_rater"]).round(
        {"votes": 2, "se": 4, "half_width": 3, "mdd": 3})
    click.echo(f"\nDesigns around it ({systems} systems, {sessions_per_rater} session(s) per "
               f"rater), narrowest interval first:\n" + to_markdown(shown), nl=False)
    if out_path:
        write_csv(table, out_path)
        click.echo(f"grid: {out_path}")


@mos_group.command("import", context_settings=CONTEXT)
@click.argument("results", nargs=-1, type=click.Path(path_type=str))
@click.option("--packet", "packet_dir", required=True,
              help="The packet's output folder (with packet/ and private/).")
@click.option("--from", "source", type=click.Choice(["html"]), default="html", show_default=True,
              help="Results format: html = the offline page's JSON downloads.")
@click.option("--db", "db_path", default=None,
              help="Import the study database of mos serve instead of results files.")
@click.option("-o", "--out", "out_path", required=True, help="ratings.csv to write.")
@click.option("--raters", "raters_path", default=None,
              help="Sessions table to write (default: raters.csv beside the ratings).")
def import_command(results, packet_dir, source, db_path, out_path, raters_path):
    """Import listening-test results into the canonical ratings.csv (and raters.csv).

    Each file's checksum, packet id, list, trials and stimuli are checked against the
    packet's key, itself checked against the manifest's commitment. With --db, every session
    of a served study (finished or not) is imported the same way; it can run while the
    server does.

    \b
    Example:
      wavebench mos import downloads/wavebench_*.json --packet mos_out -o ratings.csv
      wavebench mos import --db study.sqlite --packet mos_out -o ratings.csv
    """
    from wavebench.mos.analysis.ratings import (
        check_import_outputs,
        import_documents,
        import_results,
        load_packet,
        output_paths,
        write_ratings,
    )

    if bool(results) == bool(db_path):
        raise click.UsageError("give results files or --db, not both" if results
                               else "give results files to import, or --db study.sqlite")
    packet = load_packet(packet_dir)
    ratings, raters, rejects = output_paths(out_path, raters_path)
    check_import_outputs(list(results) + ([db_path] if db_path else []), packet.root, {
        "-o": ratings, ("--raters" if raters_path else "raters.csv beside -o"): raters,
        "rejects.csv beside -o": rejects})
    if db_path:
        from wavebench.mos.serve.db import StudyDB

        db = StudyDB(db_path, packet)
        try:
            documents = db.results_documents()
        finally:
            db.close()
        if not documents:
            raise InputError("no answers stored yet; nothing to import", db_path)
        result = import_documents(documents, packet)
    else:
        result = import_results(results, packet)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    write_ratings(result, ratings, raters)
    if len(result.rejects):
        click.echo(f"{len(result.rejects)} responses rejected (not counted), listed in "
                   f"{rejects}", err=True)
    click.echo(f"imported {len(result.ratings)} judgements from {len(result.raters)} sessions "
               f"({result.raters['rater_id'].nunique()} raters) into {ratings}; sessions in "
               f"{raters}")


@mos_group.command("analyze", context_settings=CONTEXT)
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
    from wavebench.mos.analysis.report import AnalysisOptions, run_analysis

    options = AnalysisOptions(screening_path=screening_path, ci=ci, generalize=generalize,
                              correction=correction, alpha=alpha, baseline=baseline,
                              n_boot=n_boot, seed=seed, compare_anchors=compare_anchors,
                              raters_path=raters_path, plots=not no_plots,
                              raw_tests=raw_tests, strict_report=strict_report)
    result = run_analysis(ratings, packet_dir, out_dir, options,
                          log=log_to_stderr, force=force)
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


@mos_group.command("serve", context_settings=CONTEXT)
@click.argument("packet_dir")
@click.option("--db", "db_path", required=True,
              help="Study database (SQLite); created when missing, carried on when it exists.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; keep 127.0.0.1 behind a TLS reverse proxy.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--completion-url", default=None,
              help="Send finished raters here (e.g. Prolific's completion link; {code} in it "
                   "becomes the completion code). Default: show the code.")
@click.option("--admin-token", envvar="WAVEBENCH_ADMIN_TOKEN", default=None,
              help="Token of the /admin status page (or env WAVEBENCH_ADMIN_TOKEN); without "
                   "it a random one is made and printed.")
@click.option("--abandon-minutes", type=click.FloatRange(min=1), default=60.0,
              show_default=True, help="An unfinished session silent this long frees its list.")
@click.option("--rate-limit", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="POST requests per second per client (bursts of 30); 0: no limit.")
def serve_command(packet_dir, db_path, host, port, completion_url, admin_token,
                  abandon_minutes, rate_limit):
    """Run the listening test online: the packet's page, each answer saved as it is given.

    Raters open http://HOST:PORT/?rater=ID (or a Prolific link with PROLIFIC_PID, STUDY_ID
    and SESSION_ID). Each gets a list so that lists fill evenly, and resumes where they
    stopped. Answers go to the SQLite --db (WAL, synchronous=FULL): an acknowledged answer
    survives a crash, and a restart on the same --db carries on. Needs the serve extra:
    pip install 'wavebench[serve]'.

    \b
    Example:
      wavebench mos serve mos_out --db study.sqlite --port 8080 \\
          --completion-url 'https://app.prolific.com/submissions/complete?cc=C0DE'
      wavebench mos status --db study.sqlite --packet mos_out
      wavebench mos import --db study.sqlite --packet mos_out -o ratings.csv
    """
    import secrets

    from wavebench.mos.analysis.ratings import load_packet
    from wavebench.mos.serve.app import Settings, require_serve_extra, serve

    require_serve_extra()
    if completion_url and not completion_url.startswith(("https://", "http://")):
        raise InputError(f"--completion-url must be an http(s) URL, got {completion_url!r}")
    if admin_token is not None and len(admin_token) < 16:
        raise InputError("--admin-token must be at least 16 characters")
    if admin_token is None:
        admin_token = secrets.token_urlsafe(24)
        click.echo(f"admin token (for /admin): {admin_token}", err=True)
    packet = load_packet(packet_dir)
    settings = Settings(completion_url=completion_url, admin_token=admin_token,
                        abandon_minutes=abandon_minutes, rate_per_s=rate_limit)
    serve(packet, db_path, host=host, port=port, settings=settings,
          log=lambda line: click.echo(line, err=True))


@mos_group.command("status", context_settings=CONTEXT)
@click.option("--db", "db_path", required=True, help="The study database of mos serve.")
@click.option("--packet", "packet_dir", required=True,
              help="The packet's output folder (with packet/ and private/).")
@click.option("--abandon-minutes", type=click.FloatRange(min=1), default=60.0,
              show_default=True, help="An unfinished session silent this long is abandoned.")
@click.option("--screening", "screening_path", default=None,
              help="Screening rules (as mos analyze --screening); default: built-in rules.")
def status_command(db_path, packet_dir, abandon_minutes, screening_path):
    """How a served study stands: raters, votes per (item, condition), screening so far.

    \b
    Example:
      wavebench mos status --db study.sqlite --packet mos_out
    """
    from wavebench.mos.analysis.ratings import load_packet
    from wavebench.mos.serve.db import StudyDB
    from wavebench.mos.serve.status import format_status, study_status

    packet = load_packet(packet_dir)
    db = StudyDB(db_path, packet)
    try:
        status = study_status(db, timeout_s=abandon_minutes * 60, rules_path=screening_path)
    finally:
        db.close()
    click.echo(format_status(status), nl=False)
