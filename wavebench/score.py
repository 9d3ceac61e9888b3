"""`wavebench score`: every metric on every (reference, generated) pair, resumable, in parallel."""
from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from metrics import DEFAULT_METRICS, METRICS, get_metric
from metrics.registry import GENERATED_INPUTS, PAIR_INPUTS
from reports import make_results_table, summarize, to_markdown, write_csv
from wavebench.names import check_system_name
from wavebench.pairs import match_pairs
from wavebench.score_worker import ORACLES, Task, one_thread_per_worker, score_task
from wavebench_base.audio import keyed_files
from wavebench_base.errors import InputError, MissingDependencyError
from wavebench_base.files import atomic_path, locked
from wavebench_base.fingerprint import check_same_job, files_signature, read_fingerprint
from wavebench_base.runinfo import git_revision, library_versions, stable_hash

ROWS_FILE = "rows.jsonl"  # results as they arrive; the run resumes from it
SETTINGS_FILE = "run.json"


@dataclass
class ScoreResult:
    out_dir: Path
    per_utterance: Path
    summary: Path
    summary_table: object
    n_scored: int
    n_resumed: int
    failures: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def read_done(path: Path) -> dict:
    """Results already written by an interrupted run: {(system, utterance): record}."""
    done = {}
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            done[(record["system"], record["utterance"])] = record
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut short by a kill: that utterance is scored again
    return done


def trim_partial_line(path: Path) -> None:
    """Cut a last line left unfinished by a kill, so the next record starts on its own line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def input_fingerprint(tasks, settings: dict, inputs: dict, shard, checkpoint_hash: str,
                      known: dict | None = None) -> dict:
    """What makes a score run one job: settings, shard, folders, pairs and every file's signature.

    Parameters
    ----------
    tasks : list of Task
    settings, inputs : dict
        As written to run.json.
    shard : dict or None
    checkpoint_hash : str
        Hash of the checkpoint whose likelihood records are scored with the pairs ("" if none).
    known : dict or None
        The fingerprint of an earlier run, whose file hashes are reused where size and mtime
        agree (so a resume costs a ``stat`` per file, not a read).
    """
    paths = {}
    for task in tasks:
        for path in (task.reference, task.generated):
            if path is not None:
                paths[str(Path(path).resolve())] = path
    files = files_signature(paths, (known or {}).get("files"))
    return {"settings": settings, "shard": shard, "inputs": inputs,
            "checkpoint_hash": checkpoint_hash,
            "pairs": sorted(f"{t.system}/{t.utterance}" for t in tasks), "files": files}


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` as ``(I, N)`` with ``1 <= I <= N``; None or ``""`` means no sharding.

    Raises
    ------
    InputError
        Not two integers ``I/N`` with ``N >= 1`` and ``1 <= I <= N``.
    """
    if text is None or text == "":
        return None
    index, sep, count = str(text).partition("/")
    try:
        index, count = int(index), int(count)
    except ValueError:
        index = count = None
    if not sep or index is None or count < 1 or not 1 <= index <= count:
        raise InputError(f"--shard {text!r}: expected I/N with 1 <= I <= N, such as 2/4")
    return index, count


#: How utterances are assigned to shards (part of the job id).
SHARD_SCHEME = "sha256(utterance) mod N"


def shard_of(utterance: str, count: int) -> int:
    """The 1-based shard of an utterance key: a sha256 of it, stable everywhere.

    Every system's pair of one utterance lands in the same shard, so a shard reads each
    reference once. Python's ``hash`` of a string changes between processes, so it cannot
    assign shards that separate machines agree on.
    """
    digest = hashlib.sha256(utterance.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def select_shard(tasks: list, extra_records, settings: dict, shard) -> tuple:
    """Keep one shard's tasks and records; describe the shard for run.json.

    Parameters
    ----------
    tasks : list of Task
    extra_records : sequence of dict
    settings : dict
        The unsharded run's settings, hashed with every task's key into ``job``: shards of
        one job (same settings, same test set) share it wherever their folders are.
    shard : (int, int) or None
        ``(index, count)``, 1-based, or None for all.

    Returns
    -------
    (tasks, extra_records, info) : info is None without sharding, else
        ``{"index", "count", "job"}``.
    """
    if shard is None:
        return tasks, list(extra_records), None
    index, count = shard
    keys = sorted([f"{t.system}/{t.utterance}" for t in tasks]
                  + [f"{r['system']}/{r['utterance']}" for r in extra_records])
    # the scheme is hashed too: shards assigned another way never count as one job
    info = {"index": index, "count": count, "job": stable_hash({"settings": settings,
                                                                "keys": keys,
                                                                "scheme": SHARD_SCHEME})}
    tasks = [t for t in tasks if shard_of(t.utterance, count) == index]
    extra = [r for r in extra_records if shard_of(r["utterance"], count) == index]
    return tasks, extra, info


def score(*, reference_dir=None, generated=None, out_dir, metrics=None, oracles=(), jobs=1,
          strict_rate=False, allow_missing=False, progress=True, log=print,
          extra_records=(), checkpoint_hash="", shard=None, force=False) -> ScoreResult:
    """Score systems' audio against references and write the per-utterance and summary tables.

    Parameters
    ----------
    reference_dir : path or None
        Folder of reference recordings. None scores every file of each ``generated`` folder
        with the metrics that need no reference (a predicted MOS) only.
    generated : dict[str, path]
        System name -> folder of its generated audio, matched to the references by relative
        path without extension.
    metrics : sequence of str
        Metric names (default: ``metrics.DEFAULT_METRICS``, or without a reference every
        installed metric that needs none, see :func:`reference_free_metrics`).
    oracles : sequence of str
        Extra systems computed from the references themselves (``"mulaw"``).
    jobs : int
        Worker processes (one thread each).
    extra_records : sequence of dict
        Results computed elsewhere (``{"system", "utterance", "rows", "notes"}``), such as a
        checkpoint's likelihood, to be written into the same tables.
    shard : (int, int) or str, optional
        ``(I, N)`` or ``"I/N"``: score only the utterances of shard I of N (see
        :func:`shard_of`); ``wavebench report`` merges the shards' folders.
    force : bool
        Start afresh when ``out_dir`` holds a run of other inputs (its rows are discarded);
        without it such a folder is refused, naming what changed.

    Returns
    -------
    ScoreResult
        Paths of ``per_utterance.csv`` and ``summary.csv`` and the summary table.
    """
    out_dir = Path(out_dir)
    generated = dict(generated or {})
    for name in [*generated, *{r["system"] for r in extra_records}]:
        check_system_name(name)
    if not generated and not oracles and not extra_records:
        raise InputError("nothing to score: give --generated DIR (or --checkpoint, or --oracle)")
    if reference_dir is None and oracles:
        raise InputError("--oracle is made from the references: give --reference DIR")
    metric_names = check_metric_names(metrics, reference=reference_dir is not None, log=log)
    tasks, missing_total, notes = [], 0, []
    for system, folder in generated.items():
        if reference_dir is None:
            tasks += [Task(system, key, None, str(path), metric_names, strict_rate)
                      for key, path in sorted(keyed_files(folder).items())]
            continue
        pairs, missing, extra = match_pairs(reference_dir, folder, allow_missing=allow_missing)
        missing_total += len(missing)
        if missing or extra:
            notes.append(f"{system}: skipped {len(missing)} missing and {len(extra)} extra files")
        tasks += [Task(system, p.utterance, str(p.reference), str(p.generated), metric_names,
                       strict_rate) for p in pairs]
    if oracles:
        references = keyed_files(reference_dir)
        for kind in oracles:
            if kind not in ORACLES:
                raise InputError(f"unknown oracle {kind!r}; available: {', '.join(ORACLES)}")
            tasks += [Task(f"oracle_{kind}", key, str(path), None, metric_names, strict_rate,
                           kind) for key, path in sorted(references.items())]
    extra_metrics = sorted({row["metric"] for r in extra_records for row in r["rows"]})
    all_metrics = list(metric_names) + [m for m in extra_metrics if m not in metric_names]
    settings = {"metrics": all_metrics,
                "systems": sorted({t.system for t in tasks} | {r["system"] for r in extra_records}),
                "strict_rate": strict_rate,
                "definitions": {m: METRICS[m].description for m in all_metrics}}
    if isinstance(shard, str):
        shard = parse_shard(shard)
    tasks, extra_records, shard_info = select_shard(tasks, extra_records, settings, shard)
    inputs = {"reference": None if reference_dir is None else str(Path(reference_dir).resolve()),
              "generated": {name: str(Path(folder).resolve()) for name, folder in generated.items()}}
    out_dir.mkdir(parents=True, exist_ok=True)
    with locked(out_dir, "-o folder"):
        old = read_fingerprint(out_dir / SETTINGS_FILE, "fingerprint")
        fingerprint = input_fingerprint(tasks, settings, inputs, shard_info, checkpoint_hash, old)
        rows_path = out_dir / ROWS_FILE
        check_same_job(out_dir, old, fingerprint, force=force, what="score run",
                       exists=(out_dir / SETTINGS_FILE).exists() or rows_path.exists())
        if force:
            rows_path.unlink(missing_ok=True)
        info = write_run_info(out_dir, settings, inputs, shard_info, fingerprint)
        trim_partial_line(rows_path)
        done = read_done(rows_path)
        todo = [t for t in tasks if (t.system, t.utterance) not in done]
        if done:
            log(f"resuming: {len(tasks) - len(todo)} of {len(tasks)} already scored")
        for record in run_tasks(todo, rows_path, jobs, progress):
            done[(record["system"], record["utterance"])] = record
        records = [done[(t.system, t.utterance)] for t in tasks] + list(extra_records)
        for record in records:
            notes += record.get("notes", [])
        notes += resampling_notes(records, metric_names)
        return write_tables(out_dir, records, settings, info, notes, len(todo),
                            len(tasks) - len(todo), checkpoint_hash)


def reference_free_metrics() -> tuple[str, ...]:
    """The metrics that need no reference and whose optional package is installed."""
    names = []
    for name, spec in METRICS.items():
        if spec.inputs == GENERATED_INPUTS:
            try:
                spec.check_available()
            except InputError:
                continue
            names.append(name)
    return tuple(names)


def check_metric_names(metrics, *, reference: bool, log=print) -> tuple[str, ...]:
    """The metric names a run computes, checked before any work.

    Every name must be known, take audio, have its optional package installed (one line with
    the install command otherwise), and, without a reference, need none.
    """
    if metrics is None and not reference:
        names = reference_free_metrics()
        if not names:
            raise MissingDependencyError(
                "no --reference, and no metric that needs none is installed: pip install "
                "'wavebench[dnsmos]' for DNSMOS, or give --reference DIR")
        log(f"no --reference: scoring only the metrics that need none ({', '.join(names)})")
        return names
    names = DEFAULT_METRICS if metrics is None else tuple(metrics)
    for name in names:
        spec = get_metric(name)
        if spec.inputs not in (PAIR_INPUTS, GENERATED_INPUTS):
            raise InputError(f"metric {name!r} does not score audio files; it needs --checkpoint")
        if spec.needs_reference and not reference:
            raise InputError(f"metric {name!r} compares with a reference: give --reference DIR, "
                             "or leave it out")
        spec.check_available()
    return names


def resampling_notes(records, metric_names) -> list[str]:
    """A note for the metrics that work at a rate of their own and were given audio at another."""
    rates = {r["sample_rate"] for r in records if r.get("sample_rate")}
    by_rate = {}
    for name in metric_names:
        if METRICS[name].rate is not None:
            by_rate.setdefault(METRICS[name].rate, []).append(name)
    notes = []
    for own, names in sorted(by_rate.items()):
        other = sorted(rate for rate in rates if rate != own)
        if other:
            notes.append(f"{', '.join(names)}: audio at {', '.join(f'{r} Hz' for r in other)} "
                         f"resampled to {own} Hz inside the metric")
    return notes


#: Seconds a pool of scoring workers takes to start (spawn, import the metrics): measured at
#: 1.1 s of extra wall time for 2 workers on 6 short files, 2-core Xeon (family 6 model 167).
#: 0 always starts the pool when ``jobs > 1``.
POOL_STARTUP_S = 1.5


def task_bytes(task) -> int:
    """Bytes of a task's audio files, the measure of its work when choosing in-process scoring."""
    total = 0
    for path in (task.reference, task.generated):
        try:
            total += os.path.getsize(path) if path else 0
        except OSError:  # gone or unreadable: scoring it says so, in one line
            pass
    return max(total, 1)


def run_tasks(tasks, rows_path: Path, jobs: int, progress: bool):
    """Score tasks (in a process pool when ``jobs > 1`` and the work would outlast the pool's
    start-up), appending each result as it arrives."""
    bar = tqdm(total=len(tasks), disable=not progress, desc="score", unit="utt", dynamic_ncols=True)
    with open(rows_path, "a") as sink:
        def keep(record):
            sink.write(json.dumps(record) + "\n")
            sink.flush()
            os.fsync(sink.fileno())
            bar.update(1)
            return record
        if jobs > 1 and len(tasks) > 2 and POOL_STARTUP_S > 0:
            # Two tasks here first: the second's time per byte of audio (the first pays for
            # loading compiled kernels) says whether the rest would finish before a pool started.
            for task in tasks[:2]:
                started = time.perf_counter()
                record = score_task(task)
                seconds = time.perf_counter() - started
                yield keep(record)
            tasks = tasks[2:]
            if seconds * sum(map(task_bytes, tasks)) / task_bytes(task) < 2 * POOL_STARTUP_S:
                jobs = 1
        if jobs <= 1 or len(tasks) <= 1:
            for task in tasks:
                yield keep(score_task(task))
        else:
            import multiprocessing
            context = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state
            with one_thread_per_worker(), ProcessPoolExecutor(jobs, mp_context=context) as pool:
                futures = [pool.submit(score_task, task) for task in tasks]
                try:
                    for future in as_completed(futures):
                        yield keep(future.result())
                except BrokenProcessPool:
                    raise InputError("a scoring worker was killed (most likely by the kernel, "
                                     "out of memory); rerun with fewer --jobs to resume from "
                                     "the rows already saved", rows_path.parent) from None
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    bar.close()


def write_run_info(out_dir: Path, settings: dict, inputs: dict, shard=None,
                   fingerprint: dict | None = None) -> dict:
    info = {"kind": "score", "settings": settings, "inputs": inputs,
            "versions": library_versions(), "git_rev": git_revision(), "fingerprint": fingerprint}
    if shard is not None:
        info["shard"] = shard  # outside settings: every shard of a job has the same settings
    with atomic_path(out_dir / SETTINGS_FILE) as tmp:
        tmp.write_text(json.dumps(info, indent=2))
    return info


def write_tables(out_dir, records, settings, info, notes, n_scored, n_resumed,
                 checkpoint_hash="") -> ScoreResult:
    rows = [row for record in records for row in record["rows"]]
    meta = {"run": out_dir.name or "score", "config_hash": stable_hash(settings),
            "checkpoint_hash": checkpoint_hash,
            "versions": info["versions"], "device": "cpu", "git_rev": info["git_rev"]}
    table = make_results_table(rows, meta)
    summary = summarize(table)
    per_utterance = write_csv(table, out_dir / "per_utterance.csv")
    summary_path = write_csv(summary, out_dir / "summary.csv")
    with atomic_path(out_dir / "summary.md") as tmp:
        tmp.write_text(to_markdown(summary) + "\n")
    failures = table.loc[table["status"] != "ok", "status"].value_counts().to_dict()
    return ScoreResult(out_dir, per_utterance, summary_path, summary, n_scored, n_resumed,
                       failures, notes)
