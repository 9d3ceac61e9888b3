"""Run folders as `wavebench report` reads them: score, speed and training runs, checked and merged.

A run is a folder written by ``wavebench score`` (per_utterance.csv), ``wavebench speed``
(speed.csv) or ``wavebench train`` (log.jsonl), with its run.json when present. Loading
refuses truncated tables and differing metric definitions; shards of one sharded scoring job
are merged, refusing overlaps and naming the missing ones.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from reports import concat_results, name_systems_by_run, read_csv_table
from reports.files import parse_numbers, read_csv_strings
from wavebench_base.errors import InputError

RUN_FILE = "run.json"
#: The file that marks a folder as a run of each kind when it has no run.json.
MARKERS = {"per_utterance.csv": "score", "speed.csv": "speed", "log.jsonl": "train"}
SPEED_REQUIRED = ("device", "sampler", "batch", "samples_per_s")
SPEED_NUMERIC = ("batch", "threads", "samples", "seconds_median", "samples_per_s",
                 "samples_per_s_per_stream", "rtf", "peak_mem_mb", "speedup")
#: Counts: stored as integers when every row has one, so a batch reads "8", not "8.0".
SPEED_COUNTS = ("batch", "threads", "samples")

@dataclass
class Run:
    """One run folder as read: its kind, run.json (``{}`` when absent) and table.

    ``table`` is the long results table of a score run or the speed table of a speed run;
    ``names`` are the run names its rows carry in the ``run`` column.
    """

    kind: str
    path: Path
    info: dict
    table: pd.DataFrame
    definitions: dict = field(default_factory=dict)
    names: tuple = ()


def _read_run_info(folder: Path) -> dict:
    """run.json of a run folder as a dict (``{}`` when there is none).

    Raises
    ------
    InputError
        run.json is not a JSON object.
    """
    path = folder / RUN_FILE
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"not valid JSON ({err}); the file may be truncated", path) from None
    if not isinstance(info, dict):
        raise InputError(f"expected a JSON object, found {type(info).__name__}", path)
    return info


def _run_kind(folder: Path, info: dict) -> str:
    """The kind of run in ``folder``: run.json's ``kind``, else the marker file it holds.

    Raises
    ------
    InputError
        A missing folder, a file, an unknown kind, or a folder that is not a run.
    """
    if not folder.exists():
        raise InputError("no such folder", folder)
    if not folder.is_dir():
        raise InputError("not a folder; give the output folder of wavebench score, speed or train",
                         folder)
    if info:
        kind = info.get("kind")
        if kind not in LOADERS:
            raise InputError(f"run.json has kind {kind!r}; wavebench report reads runs of kind "
                             f"{', '.join(LOADERS)}", folder)
        return kind
    for marker, kind in MARKERS.items():
        if (folder / marker).is_file():
            return kind
    markers = [RUN_FILE, *MARKERS]
    raise InputError(f"not a wavebench run (no {', '.join(markers[:-1])} or {markers[-1]})",
                     folder)


def _load_score_run(folder: Path, info: dict) -> Run:
    """A score run: per_utterance.csv (checked, refusing truncation) and its metric definitions."""
    path = folder / "per_utterance.csv"
    if not path.exists():
        raise InputError("no per_utterance.csv; the score run did not finish (run wavebench "
                         "score again with the same -o to complete it)", folder)
    table = read_csv_table(path, allow_no_rows="shard" in info)  # a shard may get nothing
    settings = info.get("settings") or {}
    definitions = settings.get("definitions") or {} if isinstance(settings, dict) else None
    if not isinstance(definitions, dict):
        raise InputError("settings.definitions must map metric names to descriptions",
                         folder / RUN_FILE)
    return Run("score", folder, info, table, dict(definitions),
               tuple(dict.fromkeys(table["run"])))


def _load_speed_run(folder: Path, info: dict) -> Run:
    """A speed run: speed.csv with numbers parsed; skipped rows keep NaN speeds."""
    path = folder / "speed.csv"
    if not path.exists():
        raise InputError("no speed.csv; the speed run did not finish", folder)
    table = read_csv_strings(path, "a CSV speed table")
    missing = [c for c in SPEED_REQUIRED if c not in table.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; a speed table has at least "
                         f"{', '.join(SPEED_REQUIRED)}", path)
    for name in SPEED_NUMERIC:
        if name in table.columns:
            values = parse_numbers(table[name], name, path)
            table[name] = values
            if name in SPEED_COUNTS and np.all(np.isfinite(values) & (values == np.round(values))):
                table[name] = values.astype(np.int64)
    speeds = table["samples_per_s"].to_numpy()
    bad = np.flatnonzero(~np.isnan(speeds) & ~(speeds > 0))
    if bad.size:
        raise InputError(f"record {bad[0] + 2}: samples_per_s is {speeds[bad[0]]}; a measured "
                         "speed is positive (leave it empty for a skipped device)", path)
    name = str(info.get("run") or folder.name)
    table.insert(0, "run", name)
    return Run("speed", folder, info, table, {}, (name,))


def _load_train_run(folder: Path, info: dict) -> Run:
    """A training run: the validations of its log.jsonl as a table (run, step, seconds,
    val_bits, lr); ``seconds`` is NaN in logs written before the trainer recorded its clock.

    Raises
    ------
    InputError
        A line that is not a JSON object (with its number), or a log with no validation.
    """
    path = folder / "log.jsonl"
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"line {number} is not JSON ({err}); the log may be cut short "
                             "(resuming the training trims it)", path) from None
        if not isinstance(record, dict):
            raise InputError(f"line {number} is not a JSON object", path)
        if record.get("event") == "validation":
            rows.append({name: record.get(name) for name in ("step", "seconds", "val_bits", "lr")})
    if not rows:
        raise InputError("no validation in log.jsonl yet; nothing to plot", path)
    table = pd.DataFrame(rows)
    for name in ("step", "seconds", "val_bits", "lr"):
        table[name] = pd.to_numeric(table[name], errors="coerce")
    name = str(info.get("run") or folder.name)
    table.insert(0, "run", name)
    return Run("train", folder, info, table, {}, (name,))


#: How each kind of run is read; a new kind (MOS) adds its loader here and a marker above.
LOADERS: dict[str, Callable[[Path, dict], Run]] = {"score": _load_score_run,
                                                     "speed": _load_speed_run,
                                                     "train": _load_train_run}


def load_runs(run_dirs: Sequence, notes: list) -> list[Run]:
    """Read every run folder, naming runs uniquely (a second ``scores`` becomes ``scores#2``).

    Parameters
    ----------
    run_dirs : sequence of path
        Run folders; each kind is read by its loader in :data:`LOADERS`.
    notes : list of str
        Renamed runs are noted here.

    Returns
    -------
    list of Run
        In the order given, each table's ``run`` column holding the run's unique name.

    Raises
    ------
    InputError
        No folders, a folder given twice, or any problem reading one (see the loaders).
    """
    if not run_dirs:
        raise InputError("no run folders given")
    runs, seen, taken = [], {}, set()
    for position, folder in enumerate(map(Path, run_dirs), start=1):
        key = folder.resolve()
        if key in seen:
            raise InputError(f"given twice (as {seen[key]} and {folder})", folder)
        seen[key] = folder
        info = _read_run_info(folder) if folder.is_dir() else {}
        run = LOADERS[_run_kind(folder, info)](folder, info)
        rename = {n: f"{n}#{position}" for n in run.names if n in taken}
        for old, new in rename.items():
            notes.append(f"two runs are named {old!r}: the one in {folder} is shown as {new!r}")
        run.table["run"] = run.table["run"].replace(rename)
        run.names = tuple(rename.get(n, n) for n in run.names)
        taken.update(run.names)
        runs.append(run)
    return runs


def check_definitions(runs: Sequence[Run], notes: list) -> None:
    """Refuse score runs whose same-named metric was computed differently.

    A score run without recorded definitions (no run.json) cannot be checked: noted.

    Parameters
    ----------
    runs : sequence of Run
    notes : list of str

    Raises
    ------
    InputError
        Naming the metric, both runs and both definitions.
    """
    first: dict = {}
    for run in runs:
        if run.kind == "score" and not run.definitions:
            notes.append(f"run {run.names[0]!r} records no metric definitions (no run.json): "
                         "check by hand that its metrics match the other runs'")
        for metric, definition in run.definitions.items():
            if metric not in first:
                first[metric] = (run, definition)
                continue
            other, known = first[metric]
            if definition != known:
                raise InputError(
                    f"metric {metric!r} is defined differently in run {other.names[0]!r} "
                    f"({other.path}: {known!r}) and run {run.names[0]!r} ({run.path}: "
                    f"{definition!r}); their values cannot be compared: rescore both with one "
                    "wavebench version")


def _shard_info(run: Run) -> dict | None:
    """run.json's ``shard`` ({index, count, job}) of a score run, None when unsharded.

    Raises
    ------
    InputError
        A ``shard`` entry that is not ``{"index": I, "count": N, "job": str}``, 1 <= I <= N.
    """
    shard = run.info.get("shard") if run.kind == "score" else None
    if shard is None:
        return None
    index = shard.get("index") if isinstance(shard, dict) else None
    count = shard.get("count") if isinstance(shard, dict) else None
    if not (isinstance(index, int) and isinstance(count, int) and 1 <= index <= count
            and isinstance(shard.get("job"), str)):
        raise InputError(f"shard must be {{\"index\": I, \"count\": N, \"job\": ...}} with "
                         f"1 <= I <= N, found {shard!r}", run.path / RUN_FILE)
    return shard


def check_shards(runs: Sequence[Run], notes: list) -> list[str]:
    """Refuse overlapping shards of one scoring job and list the shards not given.

    Score runs whose run.json records the same ``shard.job`` are shards of one job: they
    must be split the same number of ways and share no (system, utterance, metric).

    Parameters
    ----------
    runs : sequence of Run
    notes : list of str
        A note per job with missing shards is added here.

    Returns
    -------
    list of str
        The missing shards as ``"I/N"``, over all jobs.

    Raises
    ------
    InputError
        Two shards of one job split differently, or sharing rows; the message names both runs.
    """
    jobs: dict = {}
    for run in runs:
        shard = _shard_info(run)
        if shard is not None:
            jobs.setdefault(shard["job"], []).append((shard, run))
    missing = []
    for job, members in jobs.items():
        first_shard, first = members[0]
        seen: dict = {}
        for shard, run in members:
            if shard["count"] != first_shard["count"]:
                raise InputError(f"runs {first.path} and {run.path} are shards of one job split "
                                 f"{first_shard['count']} and {shard['count']} ways; give the "
                                 "shards of one split")
            for earlier in seen.values():
                _refuse_overlap(earlier, run)
            seen.setdefault(shard["index"], run)
        count = first_shard["count"]
        absent = [f"{i}/{count}" for i in range(1, count + 1) if i not in seen]
        if absent:
            notes.append(f"incomplete scoring job {job}: shards {', '.join(absent)} missing "
                         f"(given: {', '.join(f'{i}/{count}' for i in sorted(seen))})")
            missing += absent
    return missing


def _refuse_overlap(first: Run, second: Run) -> None:
    """Raise when two shards hold the same (system, utterance, metric), or are one shard."""
    keys = ["system", "utterance", "metric"]
    shared = first.table[keys].merge(second.table[keys], on=keys)
    same = first.info["shard"]["index"] == second.info["shard"]["index"]
    if len(shared) or same:
        where = (f"e.g. {shared.iloc[0]['system']}/{shared.iloc[0]['utterance']} "
                 f"{shared.iloc[0]['metric']}" if len(shared) else "no rows")
        raise InputError(f"runs {first.path} and {second.path} overlap as shards of one job "
                         f"(shard {first.info['shard']['index']} and "
                         f"{second.info['shard']['index']}; {len(shared)} shared rows, {where}); "
                         "give each shard once")


# --- merging and statistics --------------------------------------------------------------------

def merge_score_runs(runs: Sequence[Run], notes: list):
    """One results table of all score runs, each (system, utterance, metric) once.

    A system in several runs that scored the same utterances is split into ``run/system``
    (two measurements, not twice the data); one whose runs scored disjoint utterances (shards
    of one scoring job) keeps its name.

    Parameters
    ----------
    runs : sequence of Run
        Only the score runs are merged.
    notes : list of str
        Renamed and merged systems are noted here.

    Returns
    -------
    (merged, named) : tuple of pd.DataFrame, or (None, None) without score runs
        The stacked tables as read, and the same rows (same index) with systems renamed.
    """
    tables = [(r.table, r.path / "per_utterance.csv") for r in runs if r.kind == "score"]
    if not tables:
        return None, None
    merged = concat_results(tables)
    repeated = merged.duplicated(["system", "utterance", "metric"], keep=False)
    overlap = merged["system"].isin(set(merged.loc[repeated, "system"])).to_numpy()
    named = merged.copy()
    if overlap.any():
        named.loc[overlap, "system"] = name_systems_by_run(merged[overlap])["system"].to_numpy()
        for system in dict.fromkeys(merged.loc[overlap, "system"]):
            notes.append(f"system {system!r} scored the same utterances in several runs; "
                         "shown per run as run/system")
    for system, group in named[~overlap].groupby("system", sort=False)["run"]:
        if group.nunique() > 1:
            notes.append(f"system {system!r}: disjoint utterances from runs "
                         f"{', '.join(dict.fromkeys(group))} merged as shards of one run")
    return merged, named


def merge_train_runs(runs: Sequence[Run]) -> pd.DataFrame | None:
    """All training curves stacked, or None without training runs."""
    tables = [r.table for r in runs if r.kind == "train"]
    return pd.concat(tables, ignore_index=True) if tables else None


def merge_speed_runs(runs: Sequence[Run]) -> pd.DataFrame | None:
    """All speed tables stacked (columns in first-seen order), or None without speed runs."""
    tables = [r.table for r in runs if r.kind == "speed"]
    return pd.concat(tables, ignore_index=True, sort=False) if tables else None
