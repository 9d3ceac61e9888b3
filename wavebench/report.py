"""`wavebench report`: merge score and speed runs into one report, comparisons and HTML page.

Reading and merging the run folders is :mod:`wavebench.runs`; this module summarizes,
compares, draws and writes. The command's options are in :mod:`wavebench.commands.report`.
"""
from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from reports import (
    Image,
    Section,
    compare_systems,
    markdown_text,
    render_html,
    summarize,
    to_markdown,
    write_csv,
    write_html,
    write_parquet,
)
from reports.paper import PaperColumn, paper_latex, paper_markdown, paper_table
from reports.table import usable
from wavebench.runs import (
    MARKERS,
    RUN_FILE,
    Run,
    check_definitions,
    check_shards,
    load_runs,
    merge_score_runs,
    merge_speed_runs,
    merge_train_runs,
)
from wavebench_base.errors import InputError
from wavebench_base.files import atomic_write_text, building, locked
from wavebench_base.fingerprint import FINGERPRINT_FILE, check_replaceable, files_signature

#: The columns of the paper table (``report --table paper``, paper.md, report.tex), in the order
#: vocoder papers (HiFi-GAN, BigVGAN, Vocos, CARGAN) print them: metric and header label.
PAPER_COLUMNS = (("mcd", "MCD"), ("mel_l1", "Mel L1"), ("mrstft", "M-STFT"), ("pesq_wb", "PESQ"),
                 ("periodicity_rmse", "Periodicity"), ("vuv_f1", "V/UV F1"),
                 ("f0_rmse_cents", "F0 RMSE"), ("stoi", "STOI"), ("dnsmos_ovrl", "DNSMOS OVRL"))
#: Best and worst utterances drawn per system: each spectrogram costs a figure.
EXTREMES_PER_SYSTEM = 1
HEADLINE_METRIC = "mcd"
ORACLE_PREFIX = "oracle_"


@dataclass
class ReportResult:
    """What ``build_report`` wrote and found.

    Attributes
    ----------
    out_dir : Path
    files : dict[str, Path]
        Output name (``"report.html"``, ``"results.csv"``, ...) to path, in writing order.
    runs : list of Run
    results : pd.DataFrame or None
        The merged long table (results.csv): systems in several runs named ``run/system``.
    summary, comparisons, speed : pd.DataFrame or None
        The tables written to summary.csv, comparisons.csv and speed.csv.
    training : pd.DataFrame or None
        The validations of the training runs (training.csv): run, step, seconds, val_bits, lr.
    baseline, headline : str or None
        The system the others were compared with, and the metric shown first.
    paper : pd.DataFrame or None
        The paper table: a row per system, a column per metric of :data:`PAPER_COLUMNS` that
        the runs have, each cell a mean with its 95% interval (paper.md, report.tex).
    notes : list of str
        What the reader should know (renamed systems, skipped figures).
    missing_shards : list of str
        Shards of a sharded scoring job that were not given, as ``"2/4"``.
    """

    out_dir: Path
    runs: list
    files: dict = field(default_factory=dict)
    results: pd.DataFrame | None = None
    summary: pd.DataFrame | None = None
    comparisons: pd.DataFrame | None = None
    speed: pd.DataFrame | None = None
    training: pd.DataFrame | None = None
    baseline: str | None = None
    headline: str | None = None
    paper: pd.DataFrame | None = None
    notes: list = field(default_factory=list)
    missing_shards: list = field(default_factory=list)

    def describe(self) -> str:
        """A few lines for the terminal: what was merged, the headline means, the files."""
        kinds = pd.Series([r.kind for r in self.runs]).value_counts()
        lines = ["merged " + ", ".join(f"{n} {k} run{'s' * (n > 1)}" for k, n in kinds.items())]
        if self.summary is not None and self.headline:
            spec = _metric_spec(self.headline)
            rows = self.summary[self.summary["metric"].eq(self.headline)]
            means = "; ".join(f"{r.system} {_num(r.mean)} [{_num(r.ci_low)}, {_num(r.ci_high)}]"
                              for r in rows.itertuples())
            lines.append(f"{self.headline} ({_direction(spec)}), mean [95% CI]: {means}")
        if self.comparisons is not None and self.headline:
            rows = self.comparisons[self.comparisons["metric"].eq(self.headline)]
            verdicts = "; ".join(f"{r.system} {r.mean_diff:+.3g} ({_verdict(r)})"
                                 for r in rows.itertuples())
            lines.append(f"vs baseline {self.baseline} on {self.headline}: {verdicts}")
        if self.missing_shards:
            lines.append(f"incomplete: shards {', '.join(self.missing_shards)} missing")
        lines.append(f"wrote {self.files['report.html']} (+ "
                     + ", ".join(n for n in self.files if n != "report.html") + ")")
        return "\n".join(lines)


    def paper_text(self) -> str:
        """The paper table as Markdown, and where it was written."""
        if self.paper is None:
            return "no score runs: no paper table"
        return (paper_markdown(self.paper) + f"\nwrote {self.files['paper.md']} and "
                f"{self.files['report.tex']}")


def paper_columns(metrics: Sequence[str]) -> list[PaperColumn]:
    """:data:`PAPER_COLUMNS` with units and directions from the registry (those it knows)."""
    columns = []
    for name, label in PAPER_COLUMNS:
        spec = _metric_spec(name)
        if spec is not None and name in metrics:
            columns.append(PaperColumn(name, label, spec.unit, spec.higher_is_better))
    return columns


def _verdict(row) -> str:
    return {row.system: "better", row.baseline: "worse"}.get(row.better, row.better)


def _num(x) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.4g}"


# --- reading run folders -----------------------------------------------------------------------

def _metric_spec(name: str):
    """The registry spec of ``name``, or None for a metric this wavebench does not know."""
    from metrics import METRICS  # on first use, so that `wavebench -h` stays quick
    return METRICS.get(name)


def _direction(spec) -> str:
    if spec is None:
        return "direction unknown"
    unit = f"{spec.unit}, " if spec.unit else ""
    return f"{unit}{'higher' if spec.higher_is_better else 'lower'} is better"


def choose_baseline(systems: Sequence[str], baseline: str | None) -> str | None:
    """The baseline: the one asked for, else the first system that is not an oracle.

    Parameters
    ----------
    systems : sequence of str
        The systems in order of appearance.
    baseline : str or None
        The system asked for with ``--baseline``.

    Returns
    -------
    str or None
        None when nothing is asked for and there is one system: nothing to compare.

    Raises
    ------
    InputError
        ``baseline`` is not one of ``systems`` (they are listed).
    """
    if baseline is not None:
        if baseline not in systems:
            raise InputError(f"unknown --baseline {baseline!r}; systems: {', '.join(systems)}")
        return baseline
    if len(systems) < 2:
        return None
    plain = [s for s in systems if not s.split("/")[-1].startswith(ORACLE_PREFIX)]
    return (plain or list(systems))[0]


def _compare(table: pd.DataFrame, baseline: str, notes: list, seed: int) -> pd.DataFrame | None:
    """Paired comparisons with ``baseline`` on every metric whose direction is known."""
    metrics = list(dict.fromkeys(table["metric"]))
    known = {m: _metric_spec(m).higher_is_better for m in metrics if _metric_spec(m)}
    unknown = [m for m in metrics if m not in known]
    if unknown:
        notes.append(f"not compared (unknown metric, direction unknown): {', '.join(unknown)}")
    if not known:
        return None
    return compare_systems(table[table["metric"].isin(list(known))], baseline, known, seed=seed)


def _headline_metric(metrics: Sequence[str]) -> str:
    """The metric shown first and used to pick best and worst utterances: mcd, else the first."""
    return HEADLINE_METRIC if HEADLINE_METRIC in metrics else metrics[0]


# --- figures -----------------------------------------------------------------------------------

def _distribution_images(table: pd.DataFrame, notes: list) -> list[Image]:
    """One box-and-points plot per metric with usable values."""
    from reports import plot_metric_distribution
    images = []
    for metric in dict.fromkeys(table["metric"]):
        spec = _metric_spec(metric)
        if not usable(table[table["metric"].eq(metric)]).any():
            notes.append(f"no usable value of {metric}: no distribution plot")
            continue
        png = plot_metric_distribution(table, metric, unit=spec.unit if spec else "",
                                       higher_is_better=spec.higher_is_better if spec else None)
        images.append(Image(png, f"{metric} per utterance and system ({_direction(spec)})"))
    return images


def extreme_rows(table: pd.DataFrame, metric: str, higher_is_better: bool,
                 per_system: int = EXTREMES_PER_SYSTEM) -> list[tuple[str, int]]:
    """("best" or "worst", row index) of each system's extreme utterances on ``metric``.

    Ties are broken by utterance name, so the choice does not depend on row order; a system
    with fewer than ``2 * per_system`` usable utterances shows each once.

    Parameters
    ----------
    table : pd.DataFrame
        A results table; only usable rows (status ok, finite value) are candidates.
    metric : str
    higher_is_better : bool
        The metric's direction: which end is best.
    per_system : int
        Utterances shown at each end.

    Returns
    -------
    list of (str, int)
        System by system, best first, then worst (worst of all first).
    """
    rows = table[table["metric"].eq(metric) & usable(table)]
    picks = []
    for _, group in rows.groupby("system", sort=False):
        order = group.sort_values(["value", "utterance"], kind="stable").index.tolist()
        if higher_is_better:
            order.reverse()
        best = order[:per_system]
        worst = [i for i in reversed(order[-per_system:]) if i not in best]
        picks += [("best", i) for i in best] + [("worst", i) for i in worst]
    return picks


def _find_audio(folder: Path, utterance: str) -> Path:
    """The audio file of ``utterance`` (relative path without extension) under ``folder``."""
    from wavebench_base.audio import AUDIO_EXTENSIONS
    target = folder / utterance
    if target.parent.is_dir():
        for path in sorted(target.parent.iterdir()):
            if path.stem == target.name and path.suffix.lower() in AUDIO_EXTENSIONS:
                return path
    raise InputError(f"no audio file for utterance {utterance!r}", folder)


def _pair_audio(run: Run, system: str, utterance: str):
    """Reference and generated audio of one scored utterance, at the reference's rate.

    An oracle system's audio is recomputed from the reference, as the score run made it.

    Returns
    -------
    (reference, generated, sample_rate) : np.ndarray [shape=(n,)], np.ndarray [shape=(m,)], int
    """
    from wavebench_base.audio import load_audio
    inputs = run.info.get("inputs")
    if isinstance(inputs, dict) and "reference" in inputs and inputs["reference"] is None:
        raise InputError("scored without references, so there is no pair to draw", run.path)
    if not isinstance(inputs, dict) or not inputs.get("reference"):
        raise InputError("no run.json naming the audio folders", run.path)
    ref = load_audio(_find_audio(Path(inputs["reference"]), utterance), allow_silent=True)
    if system.startswith(ORACLE_PREFIX):
        from wavebench.score_worker import oracle_audio
        return ref.audio, oracle_audio(system[len(ORACLE_PREFIX):], ref.audio), ref.sample_rate
    generated = inputs.get("generated")
    folder = generated.get(system) if isinstance(generated, dict) else None
    if not folder:
        raise InputError(f"names no audio folder for system {system!r}", run.path / RUN_FILE)
    gen = load_audio(_find_audio(Path(folder), utterance), ref.sample_rate, allow_silent=True)
    return ref.audio, gen.audio, ref.sample_rate


def _spectrogram_images(named: pd.DataFrame, merged: pd.DataFrame, runs: Sequence[Run],
                       metric: str, notes: list) -> list[Image]:
    """Reference-over-generated spectrograms of each system's best and worst utterance.

    A system whose audio cannot be found or read (moved folders, a run without run.json) is
    skipped with a note: the figures illustrate the numbers, they are not the numbers.
    """
    from reports import plot_spectrogram_pair
    spec = _metric_spec(metric)
    unit = f" {spec.unit}" if spec and spec.unit else ""
    by_name = {name: run for run in runs if run.kind == "score" for name in run.names}
    images, problems = [], {}
    for label, i in extreme_rows(named, metric, bool(spec and spec.higher_is_better)):
        system, utterance = named.at[i, "system"], named.at[i, "utterance"]
        caption = f"{system}: {label} {metric} {_num(named.at[i, 'value'])}{unit}, {utterance}"
        try:
            audio = _pair_audio(by_name[merged.at[i, "run"]], merged.at[i, "system"], utterance)
            images.append(Image(plot_spectrogram_pair(*audio, title=caption), caption))
        except InputError as err:  # e.g. a clip of one sample
            problems.setdefault(system, str(err))
    notes += [f"spectrograms of {s} skipped: {p}" for s, p in problems.items()]
    return images


def _speed_images(speed: pd.DataFrame, notes: list) -> list[Image]:
    """The speed chart, bars labelled by run as well when several speed runs are merged."""
    from reports import plot_speed
    rows = speed[speed["samples_per_s"].notna()]
    if rows.empty:
        notes.append("no measured speed (every row skipped): no speed chart")
        return []
    if speed["run"].nunique() > 1:
        rows = rows.assign(device=rows["run"] + ": " + rows["device"].astype(str))
    return [Image(plot_speed(rows), "samples per second by batch size, per device and sampler "
                                    "(higher is better)")]


def _training_images(training: pd.DataFrame, notes: list) -> list[Image]:
    """The training curve: validation bits per sample against wall-clock seconds."""
    from reports import plot_training_curve
    if training["seconds"].isna().all():
        notes.append("the training logs hold no times (written before wavebench recorded "
                     "them): no training curve")
        return []
    return [Image(plot_training_curve(training), "validation bits per sample against training "
                                                 "wall time (lower is better)")]


TRAINING_TEXT = ("Validation loss of each training run as it trained: bits per sample of the "
                 "reference audio under the model (teacher-forced; 8 bits is a uniform guess "
                 "over 256 mu-law codes), against the training's wall-clock seconds, which "
                 "depend on the machine.")


# --- the report's parts ------------------------------------------------------------------------

SPEED_SHOWN = ("run", "device", "sampler", "batch", "threads", "samples_per_s",
               "samples_per_s_per_stream", "rtf", "peak_mem_mb", "speedup", "status")
SUMMARY_TEXT = ("Mean over utterances with its 95% confidence interval (percentile bootstrap, "
                "10,000 resamples of the utterances, seeded). n counts the utterances with a "
                "value; n_failed those without one (their reason is the status in results.csv).")


def _runs_table(runs: Sequence[Run]) -> pd.DataFrame:
    return pd.DataFrame([{"run": ", ".join(r.names), "kind": r.kind, "folder": str(r.path),
                          "git_rev": str(r.info.get("git_rev") or "")} for r in runs])


def _metrics_table(table: pd.DataFrame, runs: Sequence[Run]) -> pd.DataFrame:
    """What each metric in the table means: unit, better direction and definition."""
    rows = []
    for metric in dict.fromkeys(table["metric"]):
        spec = _metric_spec(metric)
        known = spec.description if spec else "not in this wavebench's metric registry"
        definition = next((r.definitions[metric] for r in runs if metric in r.definitions), known)
        better = "unknown" if spec is None else ("higher" if spec.higher_is_better else "lower")
        rows.append({"metric": metric, "unit": (spec.unit if spec else "") or "none",
                     "better": better, "definition": definition})
    return pd.DataFrame(rows)


def _comparison_text(baseline: str) -> str:
    return (f"Each system against the baseline {baseline!r}, metric by metric: mean_diff is "
            "system minus baseline over the utterances both scored, with its 95% paired-"
            "bootstrap interval and two-sided p-value. 'better' names the better system when "
            "the interval excludes 0, taking each metric's direction into account.")


def _speed_text() -> str:
    from metrics import DEFINITIONS
    return (f"samples_per_s: {DEFINITIONS['samples_per_s']}, all streams of the batch together; "
            "samples_per_s_per_stream: the same for one stream. "
            f"rtf: {DEFINITIONS['rtf']}. speedup: samples_per_s relative to the speed run's "
            "baseline. Rows without numbers are devices or samplers that were skipped.")


def _report_sections(result: ReportResult, merged, runs, notes,
                     preface: str | None = None) -> list[Section]:
    """The HTML page: overview, metric meanings, tables, distributions, spectrograms, speed,
    training."""
    table = result.results
    tables = ", ".join(name for name in result.files if name.endswith(".csv"))
    sections = [Section("Overview", f"Runs merged into this report: {len(runs)}. Tables beside "
                        f"this page: {tables} (results.csv has every utterance).",
                        _runs_table(runs))]
    if preface:
        sections.append(Section("Reading these numbers", preface))
    if table is not None:
        sections += [
            Section("Metrics", "What each metric measures, its unit, and which direction is "
                    "better.", _metrics_table(table, runs)),
            Section("Summary", SUMMARY_TEXT, result.summary)]
        if result.comparisons is not None:
            sections.append(Section("Comparisons", _comparison_text(result.baseline),
                                    result.comparisons))
        sections.append(Section("Metric distributions", "Every utterance is a point; the box "
                                "spans the quartiles.", images=_distribution_images(table, notes)))
        sections.append(Section(
            "Best and worst utterances", f"Spectrograms of each system's best and worst "
            f"utterance by {result.headline}, reference above generated, on one colour scale.",
            images=_spectrogram_images(table, merged, runs, result.headline, notes)))
    if result.speed is not None:
        shown = [c for c in SPEED_SHOWN if c in result.speed.columns]
        sections.append(Section("Speed", _speed_text(), result.speed[shown],
                                 _speed_images(result.speed, notes)))
    if result.training is not None:
        sections.append(Section("Training", TRAINING_TEXT, result.training,
                                _training_images(result.training, notes)))
    if notes:
        sections.append(Section("Notes", "\n\n".join(notes)))
    return sections


def _report_markdown(result: ReportResult, runs: Sequence[Run], title: str,
                     preface: str | None = None) -> str:
    """The report as Markdown: the same tables as the HTML page, without figures."""
    parts = [f"# {markdown_text(title)}", "## Runs", to_markdown(_runs_table(runs))]
    if preface:
        parts += ["## Reading these numbers", markdown_text(preface)]
    if result.results is not None:
        parts += ["## Metrics", to_markdown(_metrics_table(result.results, runs)),
                  "## Summary", SUMMARY_TEXT, to_markdown(result.summary)]
    if result.comparisons is not None:
        parts += ["## Comparisons", _comparison_text(result.baseline),
                  to_markdown(result.comparisons)]
    if result.speed is not None:
        shown = [c for c in SPEED_SHOWN if c in result.speed.columns]
        parts += ["## Speed", _speed_text(), to_markdown(result.speed[shown])]
    if result.training is not None:
        parts += ["## Training", TRAINING_TEXT, to_markdown(result.training)]
    if result.notes:
        parts += ["## Notes", "\n".join(f"- {markdown_text(note)}" for note in result.notes)]
    parts.append("Figures: see report.html.")
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"


def _records(df: pd.DataFrame | None):
    if df is None:
        return None

    def plain(v):
        v = v.item() if isinstance(v, np.generic) else v
        return None if isinstance(v, float) and not math.isfinite(v) else v
    return [{str(k): plain(v) for k, v in zip(df.columns, row)}
            for row in df.itertuples(index=False, name=None)]


def _report_json(result: ReportResult, runs: Sequence[Run], title: str) -> str:
    """The report as strict JSON (NaN as null): runs, metrics, summary, comparisons, speed."""
    doc = {"title": title,
           "runs": [{"names": list(r.names), "kind": r.kind, "folder": str(r.path.resolve()),
                     "git_rev": r.info.get("git_rev", "")} for r in runs],
           "metrics": _records(None if result.results is None
                               else _metrics_table(result.results, runs)),
           "baseline": result.baseline, "headline_metric": result.headline,
           "summary": _records(result.summary), "comparisons": _records(result.comparisons),
           "speed": _records(result.speed), "training": _records(result.training),
           "notes": result.notes}
    return json.dumps(doc, indent=1, allow_nan=False, ensure_ascii=False) + "\n"


# --- the command -------------------------------------------------------------------------------

def _check_out_dir(out_dir, runs: Sequence[Run]) -> Path:
    """Refuse an output folder that is one of the runs or holds one (it is replaced whole).

    Raises
    ------
    InputError
        ``out_dir`` is a file, one of the runs, or a folder that holds one.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a folder; choose another -o", out_dir)
    target = out_dir.resolve()
    for run in runs:
        if target == run.path.resolve() or target in run.path.resolve().parents:
            raise InputError(f"is or holds {run.path}, one of the runs being reported; "
                             f"choose another -o", out_dir)
    return out_dir


def report_fingerprint(runs: Sequence[Run], baseline, title, seed, preface=None) -> dict:
    """The report's job (its runs and options) and the signatures of the files read."""
    options = {"baseline": baseline, "title": title, "seed": seed}
    if preface is not None:  # absent otherwise, so reports written before it still match
        options["preface"] = preface
    names = (RUN_FILE, *MARKERS)
    files = {f"{run.path.resolve()}/{name}": run.path / name
             for run in runs for name in names if (run.path / name).is_file()}
    return {"kind": "report", "runs": [str(run.path.resolve()) for run in runs],
            "options": options,
            "files": files_signature(files)}


def _paper_caption() -> str:
    return ("Mean over utterances with its 95% bootstrap confidence interval; the arrow gives the "
            "better direction. Written by wavebench report.")


def _write_tables(result: ReportResult) -> None:
    """results, summary, comparisons and speed as CSV, and Parquet where pyarrow is present."""
    out, files = result.out_dir, result.files
    parquet = importlib.util.find_spec("pyarrow") is not None
    for name, df in (("results", result.results), ("summary", result.summary),
                     ("comparisons", result.comparisons), ("speed", result.speed),
                     ("training", result.training)):
        if df is not None:
            files[f"{name}.csv"] = write_csv(df, out / f"{name}.csv")
            if parquet:
                files[f"{name}.parquet"] = write_parquet(df, out / f"{name}.parquet")


def build_report(run_dirs: Sequence, out_dir, *, baseline: str | None = None,
                 title: str | None = None, seed: int = 0, force: bool = False,
                 preface: str | None = None) -> ReportResult:
    """Merge score, speed and training runs and write the report, its tables and one HTML page.

    Parameters
    ----------
    run_dirs : sequence of path
        Folders written by ``wavebench score``, ``wavebench speed`` or ``wavebench train``
        (a folder holding ``per_utterance.csv``, ``speed.csv`` or ``log.jsonl`` without
        ``run.json`` is read too; a training run gives the training curve).
    out_dir : path
        Output folder, created if needed; it must not be one of ``run_dirs``.
    baseline : str, optional
        The system the others are compared with; default: the first system that is not an
        oracle (none when there is one system).
    title : str, optional
        Title of the report; default names the runs.
    seed : int
        Seed of the bootstrap resampling.
    force : bool
        Replace a report of other runs or options at ``out_dir`` (refused without it).
    preface : str, optional
        A paragraph shown first, under "Reading these numbers" (the demo says there what its
        numbers mean for a model its size).

    Returns
    -------
    ReportResult
        The tables and the files written: report.html, report.md, report.json, results.csv,
        summary.csv, comparisons.csv, speed.csv (and .parquet copies with pyarrow), and
        fingerprint.json (the runs, options and files read). The whole set is written in a
        temporary folder and swapped in, so ``out_dir`` always holds one complete report.

    Raises
    ------
    InputError
        A missing folder or one that is not a run; a missing, empty or truncated table; runs
        whose metric of one name has different definitions; shards of one scoring job that
        overlap or are split differently; an unknown ``baseline``; an ``out_dir`` that holds
        something other than a report, or a report of other runs (without ``force``), or that
        another run is writing.

    Examples
    --------
    A folder holding only a ``per_utterance.csv`` (no ``run.json``), two systems, one metric:

    >>> import tempfile
    >>> from reports.table import make_results_table
    >>> values = {"a": [4.0, 4.5, 5.0, 5.5, 4.25, 4.75], "b": [3.0, 3.5, 3.0, 3.5, 4.5, 3.25]}
    >>> rows = [{"system": system, "utterance": f"u{i}", "metric": "mcd", "value": value}
    ...         for system in values for i, value in enumerate(values[system])]
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     scores = Path(folder, "scores")
    ...     scores.mkdir()
    ...     table = make_results_table(rows, {"run": "r1"})
    ...     table.to_csv(scores / "per_utterance.csv", index=False)
    ...     result = build_report([scores], Path(folder, "report"), baseline="a")
    >>> names = sorted(name for name in result.files if not name.endswith(".parquet"))
    >>> names[:5]
    ['comparisons.csv', 'fingerprint.json', 'paper.md', 'report.html', 'report.json']
    >>> names[5:]
    ['report.md', 'report.tex', 'results.csv', 'summary.csv']
    >>> result.summary[["system", "n", "mean", "ci_low", "ci_high"]].round(3)
      system  n   mean  ci_low  ci_high
    0      a  6  4.667   4.292    5.083
    1      b  6  3.458   3.125    3.917
    >>> columns = ["system", "baseline", "mean_diff", "ci_low", "ci_high", "better"]
    >>> result.comparisons[columns].round(3)
      system baseline  mean_diff  ci_low  ci_high better
    0      b        a     -1.208   -1.75   -0.542      b
    """
    notes: list = []
    runs = load_runs(run_dirs, notes)
    check_definitions(runs, notes)
    missing_shards = check_shards(runs, notes)
    merged, named = merge_score_runs(runs, notes)
    if named is None and baseline is not None:
        raise InputError(f"--baseline {baseline!r} needs score runs; none was given")
    result = ReportResult(Path(out_dir), runs, results=named, speed=merge_speed_runs(runs),
                          training=merge_train_runs(runs), notes=notes,
                          missing_shards=missing_shards)
    if named is not None:
        result.baseline = choose_baseline(list(dict.fromkeys(named["system"])), baseline)
        result.headline = _headline_metric(list(dict.fromkeys(named["metric"])))
    out_dir = _check_out_dir(out_dir, runs)
    fingerprint = report_fingerprint(runs, baseline, title, seed, preface)
    with locked(out_dir, "-o folder"):
        check_replaceable(out_dir, fingerprint, kind="report", force=force,
                          markers=("report.json", "report.html"), job_keys=("runs", "options"))
        if named is not None:
            result.summary = summarize(named, seed=seed)
            result.paper, _ = paper_table(result.summary,
                                          paper_columns(set(result.summary["metric"])))
            if result.baseline is not None:
                result.comparisons = _compare(named, result.baseline, notes, seed)
        title = title or "wavebench report: " + ", ".join(n for r in runs for n in r.names)
        with building(out_dir) as tmp:
            _write_report_files(result, tmp, merged, runs, notes, title, fingerprint, preface)
    result.files = {name: out_dir / path.name for name, path in result.files.items()}
    return result


def _write_report_files(result: ReportResult, folder: Path, merged, runs, notes, title,
                        fingerprint, preface=None) -> None:
    """Write every file of the report into ``folder`` (the temporary folder swapped in later)."""
    result.out_dir, final = folder, result.out_dir
    try:
        _write_tables(result)
        page = render_html(_report_sections(result, merged, runs, notes, preface), title)
        result.files["report.html"] = write_html(folder / "report.html", page)
        result.files["report.md"] = atomic_write_text(folder / "report.md",
                                                      _report_markdown(result, runs, title,
                                                                       preface))
        result.files["report.json"] = atomic_write_text(folder / "report.json",
                                                        _report_json(result, runs, title))
        if result.paper is not None:
            result.files["paper.md"] = atomic_write_text(folder / "paper.md",
                                                         paper_markdown(result.paper) + "\n")
            result.files["report.tex"] = atomic_write_text(
                folder / "report.tex", paper_latex(result.paper, caption=_paper_caption()) + "\n")
        result.files[FINGERPRINT_FILE] = atomic_write_text(
            folder / FINGERPRINT_FILE, json.dumps(fingerprint, indent=1) + "\n")
    finally:
        result.out_dir = final
