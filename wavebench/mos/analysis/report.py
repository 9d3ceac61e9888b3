"""``wavebench mos analyze``: screening, tables, plots and the report with its checklist.

Reads ratings.csv (and raters.csv beside it when present) and the packet; writes every table
of listening-test.md 12.2-12.5 as CSV, the figures as PNG and SVG, and report.md, report.html and
report.json through :mod:`reports` (12.6). All writes are atomic; the bootstrap is seeded, so
the same inputs give the same outputs.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from reports import Image, Section, markdown_text, render_html, to_markdown, write_csv, write_html
from reports.files import untext_cells
from wavebench.mos.analysis import plots, screening
from wavebench.mos.analysis import tables as mos_tables
from wavebench.mos.analysis.ratings import Packet, load_packet, read_ratings, unblind
from wavebench_base.errors import InputError
from wavebench_base.files import atomic_write_bytes, atomic_write_text, building, locked
from wavebench_base.fingerprint import FINGERPRINT_FILE, check_replaceable, files_signature
from wavebench_base.runinfo import tool_version

NOT_REPORTED = "NOT REPORTED"
_NOT_COMPARABLE = ("MOS values are not comparable across tests: they depend on the other "
                   "conditions, the raters and the instructions (Le Maguer et al. 2024; Cooper "
                   "& Yamagishi 2023). Compare systems only within this test.")


@dataclass(frozen=True)
class AnalysisOptions:
    """Settings of one analysis (the command line's options).

    ``alpha`` and ``n_boot`` are ``--alpha`` and ``--bootstrap`` as given (and as recorded in
    the fingerprint); the statistics receive ``confidence = 1 - alpha`` and
    ``n_resamples = n_boot``.
    """

    screening_path: str | None = None
    ci: str = "all"                      # comma list of boot2way, crowdmos, t, lmm; all = 3 fast
    generalize: str = "raters+items"
    correction: str = "holm"
    alpha: float = 0.05
    baseline: str | None = None
    n_boot: int = 2000
    seed: int = 0
    compare_anchors: bool = False
    raters_path: str | None = None
    plots: bool = True
    raw_tests: bool = False       # add Mann-Whitney and Welch on raw ratings to pairwise.csv
    strict_report: bool = False   # a checklist field NOT REPORTED is an error


@dataclass
class AnalysisResult:
    """What ``analyze`` wrote and the headline table."""

    out_dir: Path
    system_scores: pd.DataFrame
    pairwise: pd.DataFrame
    screening: screening.ScreeningResult
    notes: list


def analysis_fingerprint(ratings_path: Path, packet: Packet, options: AnalysisOptions) -> dict:
    """The analysis's job (input paths and options) and the signatures of the files read."""
    raters = options.raters_path or ratings_path.with_name("raters.csv")
    files = {"ratings": ratings_path, "key": packet.root / "private" / "key.json",
             "raters": Path(raters), "screening": options.screening_path}
    files = {name: Path(path) for name, path in files.items()
             if path is not None and Path(path).is_file()}
    return {"kind": "MOS analysis",
            "inputs": {"ratings": str(ratings_path.resolve()), "packet": str(packet.root.resolve()),
                       **{name: str(path.resolve()) for name, path in files.items()
                          if name in ("raters", "screening")}},
            "options": {k: v for k, v in asdict(options).items()  # paths: resolved above
                        if k not in ("raters_path", "screening_path")},
            "files": files_signature(files)}


def durations(packet: Packet) -> dict:
    """Seconds per stimulus: private/processing.csv, else the WAV headers ({} if neither)."""
    processing = packet.root / "private" / "processing.csv"
    try:
        table = pd.read_csv(processing, dtype={"anon_id": str})
        return dict(zip(table["anon_id"], table["duration_s"].astype(float)))
    except (OSError, KeyError, ValueError, pd.errors.ParserError):
        pass  # absent or another layout: read the audio headers instead
    import soundfile as sf

    out = {}
    for anon, entry in packet.key["stimuli"].items():
        path = packet.root / "packet" / entry.get("file", f"stimuli/{anon}.wav")
        try:
            out[anon] = sf.info(str(path)).duration
        except (RuntimeError, OSError, ValueError):  # soundfile raises LibsndfileError
            continue
    return out


def _read_raters(path: Path | None, ratings_path: Path) -> pd.DataFrame | None:
    path = path or ratings_path.with_name("raters.csv")
    if not Path(path).is_file():
        return None
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        return untext_cells(table)  # write_csv's formula guard, undone
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"not a readable raters CSV ({str(err).splitlines()[0]})",
                         path) from None


def list_sizes(packet: Packet) -> dict:
    sizes = {}
    for trial in packet.key["trials"].values():
        if trial.get("trial_type") not in ("training", "calibration"):
            sizes[trial["list_id"]] = sizes.get(trial["list_id"], 0) + 1
    return sizes


def _confidence(alpha: float) -> float:
    """``--alpha`` as the coverage of the intervals, 1 - alpha."""
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha must lie in (0, 1), got {alpha}")
    return 1.0 - alpha


def _ci_methods(ci: str) -> tuple[tuple, str]:
    """``--ci``: a comma list of methods, ``all`` for the three fast ones; the primary is
    boot2way when asked for, else the first given."""
    methods = []
    for name in (part.strip() for part in str(ci).split(",") if part.strip()):
        expanded = mos_tables.DEFAULT_CI_METHODS if name == "all" else (name,)
        for method in expanded:
            if method not in mos_tables.CI_METHODS:
                raise InputError(f"--ci {name!r} is not available; use a comma list of "
                                 f"{', '.join(mos_tables.CI_METHODS)} or all")
            if method not in methods:
                methods.append(method)
    if not methods:
        raise InputError("--ci names no method")
    return tuple(methods), "boot2way" if "boot2way" in methods else methods[0]


def run_analysis(ratings_path, packet_dir, out_dir, options: AnalysisOptions = AnalysisOptions(),
                 log=lambda line: None, force: bool = False) -> AnalysisResult:
    """Analyze a listening test end to end and write the report folder.

    Parameters
    ----------
    ratings_path : str or os.PathLike
        ratings.csv from ``wavebench mos import``.
    packet_dir : str or os.PathLike
        The packet's output folder (``packet/`` and ``private/``).
    out_dir : str or os.PathLike
        Report folder. The whole set is written aside and swapped in, so the folder always
        holds one complete analysis; it may be new, empty or an earlier analysis.
    options : AnalysisOptions
    log : callable
        Receives progress lines.
    force : bool
        Replace an analysis of other inputs or options at ``out_dir`` (refused without it).

    Returns
    -------
    AnalysisResult

    Raises
    ------
    InputError
        A swapped or missing key, ratings of another packet, an unreadable or truncated
        ratings file, bad screening rules, or no ratings left after screening; an ``out_dir``
        holding something other than an analysis, an analysis of other inputs (without
        ``force``), or one that another run is writing.
    """
    ratings_path, out_dir = Path(ratings_path), Path(out_dir)
    packet = load_packet(packet_dir)
    methods, primary = _ci_methods(options.ci)
    confidence = _confidence(options.alpha)
    rules, rules_sha = screening.load_rules(options.screening_path)
    trials = unblind(read_ratings(ratings_path, packet), packet)
    raters_csv = _read_raters(options.raters_path and Path(options.raters_path), ratings_path)
    completed = None if raters_csv is None else dict(zip(
        raters_csv["session_id"], raters_csv["completed"].str.lower().isin(["true", "1"])))
    log(f"screening {trials['session_id'].nunique()} sessions ({rules_sha[:12]})")
    screened = screening.screen(trials, rules, rules_sha, list_sizes=list_sizes(packet),
                                durations=durations(packet), completed=completed,
                                method=packet.method)
    if screened.kept.empty:
        raise InputError("no ratings left after screening; see the screening rules "
                         f"(sha256 {rules_sha[:12]})", ratings_path)
    log(f"bootstrapping {len(screened.kept)} ratings ({options.n_boot} replicates)")
    tables = _tables(trials, screened, packet, options, methods, primary, confidence)
    checklist = _checklist(packet, trials, raters_csv, screened, options, primary, tables,
                           ratings_path)
    missing = checklist.loc[checklist["value"].str.contains(NOT_REPORTED), "item"]
    if options.strict_report and len(missing):  # before anything is written
        raise InputError(f"--strict-report: {len(missing)} checklist field(s) not reported "
                         f"({', '.join(missing)}); fill the packet config's study block")
    fingerprint = analysis_fingerprint(ratings_path, packet, options)
    with locked(out_dir, "-o folder"):
        check_replaceable(out_dir, fingerprint, kind="MOS analysis", force=force,
                          markers=("report.json", "system_scores.csv"),
                          job_keys=("inputs", "options"))
        with building(out_dir) as tmp:
            for name, table in tables.items():
                if table is not None:
                    write_csv(table, tmp / f"{name}.csv")
            figures = _figures(tables, primary, screened.kept, tmp, _scale(packet)) \
                if options.plots else {}
            _write_report(tmp, packet, trials, raters_csv, tables, screened, figures, options,
                          primary, ratings_path, checklist)
            atomic_write_text(tmp / FINGERPRINT_FILE, json.dumps(fingerprint, indent=1) + "\n")
    return AnalysisResult(out_dir, tables["system_scores"], tables["pairwise"], screened,
                          screened.notes)


def _tables(trials, screened, packet, options, methods, primary, confidence) -> dict:
    """Every table of the report (pairwise is None with fewer than 2 compared conditions)."""
    kept = screened.kept
    rated_conditions = sorted(kept["condition"].unique())
    if options.baseline and options.baseline not in rated_conditions:
        raise InputError(f"baseline {options.baseline!r} is not among the rated conditions: "
                         f"{', '.join(rated_conditions)}")
    scores = mos_tables.system_scores(kept, methods=methods, primary=primary,
                                      confidence=confidence, n_resamples=options.n_boot,
                                      seed=options.seed, generalize=options.generalize,
                                      scale=_scale(packet))
    compared = [c for c, r in zip(scores["condition"], scores["role"])
                if options.compare_anchors or r == "system"]
    if options.baseline and options.baseline not in compared:
        compared.append(options.baseline)
    pairs = mos_tables.pairwise(kept, conditions=compared, baseline=options.baseline,
                                correction=options.correction, alpha=options.alpha,
                                n_resamples=options.n_boot, seed=options.seed,
                                generalize=options.generalize,
                                raw_tests=options.raw_tests) if len(compared) > 1 else None
    return {
        "system_scores": scores,
        "pairwise": pairs,
        "per_item": mos_tables.per_item(kept),
        "per_rater": mos_tables.per_rater(trials, screened.unscreened, screened.sessions,
                                          screened.raters),
        "screening_log": screened.log,
        "design_balance": mos_tables.design_balance(screened.unscreened, kept,
                                                    packet.key.get("votes")),
        "sensitivity": mos_tables.sensitivity(screened.unscreened, screened.objective_only,
                                              kept),
        "list_counts": _list_counts(screened),
    }


def _scale(packet: Packet) -> tuple[float, float]:
    scale = packet.manifest.get("scale") or {}
    return float(scale.get("min", 1)), float(scale.get("max", 5))


def _list_counts(screened) -> pd.DataFrame:
    s = screened.sessions
    return (s.groupby("list_id").agg(sessions=("session_id", "size"),
                                     sessions_kept=("excluded", lambda e: int((~e).sum())))
            .reset_index())


def _figures(tables: dict, primary: str, kept: pd.DataFrame, out_dir: Path,
             scale: tuple) -> dict:
    """Write every figure as PNG and SVG; return name -> PNG Image for the HTML page."""
    order = list(tables["system_scores"]["condition"])
    specs = [("system_mos", "System MOS with the primary interval",
              lambda: plots.plot_system_mos(tables["system_scores"], primary,
                                                     scale=scale)),
             ("rating_distribution", "Rating distribution per condition",
              lambda: plots.plot_distribution(kept, order)),
             ("rater_bias", "Rater bias vs consensus correlation",
              lambda: plots.plot_rater_scatter(tables["per_rater"])),
             ("item_heatmap", "Item x condition mean ratings",
              lambda: plots.plot_item_heatmap(tables["per_item"], order)),
             ("votes_per_cell", "Votes per (item, condition) after screening",
              lambda: plots.plot_votes_histogram(tables["design_balance"]))]
    if tables["pairwise"] is not None:
        in_pairs = set(tables["pairwise"][["sys_a", "sys_b"]].to_numpy().ravel())
        compared = [c for c in order if c in in_pairs]
        specs.insert(2, ("pairwise_matrix", "Pairwise differences and adjusted p-values",
                         lambda: plots.plot_pairwise_matrix(tables["pairwise"],
                                                                     compared)))
    figures = {}
    for name, caption, make in specs:
        rendered = make()
        for fmt, data in rendered.items():
            atomic_write_bytes(out_dir / f"{name}.{fmt}", data)
        figures[name] = Image(rendered["png"], caption)
    return figures


def _config(packet: Packet) -> dict:
    """The packet's resolved config (JSON text, which YAML readers also accept); {} if absent."""
    path = packet.root / "private" / "config.resolved.yaml"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        try:
            import yaml
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except Exception:  # absent file, no PyYAML or not YAML: the checklist says so
            data = {}
    return data if isinstance(data, dict) else {}


def _header(packet, options, primary, screened) -> pd.DataFrame:
    test = ("Wilcoxon signed-rank on per-rater mean differences of item-adjusted scores "
            f"(Mann-Whitney on rater means below {mos_tables.MIN_PAIRED_RATERS} paired raters)")
    rows = [("packet_id", packet.packet_id),
            ("key commitment verified", f"yes (sha256 {packet.key_commitment})"),
            ("tool version", f"wavebench {tool_version()}"),
            ("bootstrap seed", str(options.seed)),
            ("bootstrap replicates", str(options.n_boot)),
            ("screening rules sha256", screened.rules_sha256),
            ("primary CI", f"{primary} (generalizes over {options.generalize})"),
            ("test", test), ("correction", options.correction), ("alpha", str(options.alpha))]
    return pd.DataFrame(rows, columns=["field", "value"])


def _checklist(packet, trials, raters_csv, screened, options, primary, tables,
               ratings_path) -> pd.DataFrame:
    m, key, cfg = packet.manifest, packet.key, _config(packet)
    study, design = cfg.get("study") or {}, cfg.get("design") or {}
    scale = m.get("scale") or {}
    conds = key.get("conditions") or sorted(trials["condition"].unique())
    votes = tables["design_balance"]["votes_kept"]
    n_sessions = trials["session_id"].nunique()
    done = int(raters_csv["completed"].str.lower().eq("true").sum()) if raters_csv is not None \
        else None
    kept_raters = screened.kept["rater_id"].nunique()
    first_list = next(iter(m.get("lists", {}).values()), [])
    items_per_condition = screened.unscreened.groupby("condition")["item"].nunique().max()

    def val(x):
        empty = x is None or (isinstance(x, (str, list, dict)) and len(x) == 0)
        return NOT_REPORTED if empty else str(x)

    rows = [
        ("1. Method and standard", val(f"{packet.method.upper()}; standard and deviations: "
                                       f"{study.get('standard', NOT_REPORTED)}")),
        ("2. Attribute", val(m.get("attribute"))),
        ("2. Question (verbatim)", val(m.get("question"))),
        ("3. Scale", val(f"{scale.get('id', '')} {scale.get('min', '')}-{scale.get('max', '')} "
                         f"step {scale.get('step', '')}; labels {scale.get('labels', '')}"
                         if scale else None)),
        ("4. Conditions", val(", ".join(conds))),
        ("4. Items per condition", val(int(items_per_condition))),
        ("4. Delivered audio", val(f"{m.get('sample_rate')} Hz, {m.get('bit_depth')}-bit"
                                   if m.get("sample_rate") else None)),
        ("4. Level alignment", val(cfg.get("level") or (cfg.get("audio") or {}).get("level"))),
        ("4. System versions / checkpoints", val(study.get("systems"))),
        ("5. Votes per stimulus (target / achieved median)",
         f"{val(key.get('votes'))} / {float(np.median(votes)) if len(votes) else 'none'}"),
        ("5. Trials per session", val(len(first_list))),
        ("5. Sessions per rater", val(design.get("sessions_per_rater", 1))),
        ("5. Lists", val(len(m.get("lists", {})))),
        ("5. Checks used", val(", ".join(sorted(set(trials["trial_type"]) - {"rating"})))),
        ("6. Platform", val(study.get("platform"))),
        ("6. Recruitment", val(study.get("recruitment"))),
        ("6. Raters: sessions / completed / raters after screening",
         f"{n_sessions} / {val(done)} / {kept_raters}"),
        ("6. Listening device", val(", ".join(sorted(set(raters_csv["device"]) - {""})))
         if raters_csv is not None else NOT_REPORTED),
        ("6. Environment", val(study.get("environment"))),
        ("6. Payment per hour", val(study.get("payment_per_hour"))),
        ("6. Date range", val(f"{raters_csv['started_at'].min()} to "
                              f"{raters_csv['finished_at'].max()}")
         if raters_csv is not None else NOT_REPORTED),
        ("7. Screening", f"pre-registered rules sha256 {screened.rules_sha256[:16]}; "
                         "counts per rule and sensitivity table below"),
        ("8. Statistics", f"primary CI {primary} over {options.generalize}; rater-level "
                          f"Wilcoxon on item-adjusted scores; {options.correction}; "
                          f"alpha {options.alpha}; wavebench {tool_version()}"),
        ("9. Results", "MOS with intervals for every condition incl. natural and anchors; "
                       + _NOT_COMPARABLE),
        ("10. Data availability", f"{ratings_path} and raters.csv (pseudonymized)"),
    ]
    return pd.DataFrame(rows, columns=["item", "value"])


def _write_report(out_dir, packet, trials, raters_csv, tables, screened, figures, options,
                  primary, ratings_path, checklist) -> None:
    header = _header(packet, options, primary, screened)
    missing = int(checklist["value"].str.contains(NOT_REPORTED).sum())
    sections = [
        Section("Test", table=header),
        Section("Reporting checklist", text=f"{missing} field(s) NOT REPORTED: fill the "
                "packet config's study block.", table=checklist),
        Section("System MOS", text="Intervals: boot2way = two-way bootstrap over raters and "
                "items (primary); crowdmos = Ribeiro et al. 2011; t = naive t interval, which "
                "assumes independent ratings; lmm (when asked for) = linear mixed model with "
                "crossed rater and item intercepts. " + _NOT_COMPARABLE,
                table=tables["system_scores"]),
    ]
    if tables["pairwise"] is not None:
        sections.append(Section("Pairwise comparisons", text=f"Family: {len(tables['pairwise'])}"
                                f" comparisons; correction {options.correction}, alpha "
                                f"{options.alpha}.", table=tables["pairwise"]))
    sections += [
        Section("Screening waterfall", text=" ".join(screened.notes) or None,
                table=tables["screening_log"]),
        Section("Screening sensitivity", table=tables["sensitivity"]),
        Section("Raters", table=tables["per_rater"]),
        Section("Lists", table=tables["list_counts"]),
    ]
    if figures:
        sections.append(Section("Figures", images=list(figures.values())))
    title = f"MOS test {packet.packet_id}"
    write_html(out_dir / "report.html", render_html(sections, title))
    md = [f"# {markdown_text(title)}\n"]
    for s in sections:
        md.append(f"\n## {markdown_text(s.title)}\n")
        if s.text:
            md.append(f"\n{markdown_text(s.text)}\n")
        if s.table is not None:
            md.append("\n" + to_markdown(s.table))
    if figures:
        md.append("\nFigures (PNG and SVG beside this file): "
                  + ", ".join(f"{name}.png" for name in figures) + "\n")
    atomic_write_text(out_dir / "report.md", "".join(md))
    doc = {"header": dict(zip(header["field"], header["value"])),
           "checklist": dict(zip(checklist["item"], checklist["value"])),
           "screening_rules": screened.rules, "notes": screened.notes}
    for name in ("system_scores", "pairwise", "screening_log", "sensitivity"):
        if tables[name] is not None:
            doc[name] = json.loads(tables[name].to_json(orient="records"))
    atomic_write_text(out_dir / "report.json", json.dumps(doc, indent=1, allow_nan=False) + "\n")
