"""The work of one scoring task, in a worker process: load a pair and run the metrics on it.

Kept apart from ``wavebench.score`` so that a worker imports only numpy-level code (no torch,
pandas or reports): process start-up is a visible part of scoring a small test set.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass

import numpy as np

from metrics import MetricResult, get_metric, score_pair
from metrics.registry import OUT_OF_MEMORY
from metrics.validation import allocation_failed, check_lengths
from reference_model.mulaw import mu_law_decode, mu_law_encode
from wavebench_base.audio import LoadedAudio, load_audio, resample_audio, resampled_length
from wavebench_base.errors import InputError

#: Systems made from the references themselves, each a yardstick for the metrics' scale:
#: ``mulaw``, the reference through 8-bit mu-law (the floor of a 256-class WaveNet), and
#: ``noise40``, the reference plus white Gaussian noise at -40 dBFS RMS (a copy that is exact
#: but for a faint hiss; on the demo's clips it scores an MCD of about 5 dB).
ORACLES = ("mulaw", "noise40")
NOISE_ORACLE_DBFS = -40.0


@dataclass(frozen=True)
class Task:
    """One utterance of one system to score (``generated`` None for an oracle system,
    ``reference`` None for reference-free metrics only)."""

    system: str
    utterance: str
    reference: str | None
    generated: str | None
    metrics: tuple
    strict_rate: bool
    oracle: str | None = None


def oracle_audio(kind: str, reference: np.ndarray) -> np.ndarray:
    """An oracle system's audio (see :data:`ORACLES`), the same on every call for the same
    reference: the noise is drawn from a seed hashed from the reference's samples, so the
    report redraws exactly what was scored, and clips of equal length get different noise."""
    if kind == "mulaw":
        return mu_law_decode(mu_law_encode(reference))
    if kind == "noise40":
        samples = np.ascontiguousarray(reference, dtype=np.float32)
        seed = int.from_bytes(hashlib.sha256(samples.tobytes()).digest()[:8], "little")
        noise = np.random.default_rng(seed).standard_normal(len(samples))
        return (samples + 10 ** (NOISE_ORACLE_DBFS / 20) * noise).astype(np.float32)
    raise InputError(f"unknown oracle {kind!r}; available: {', '.join(ORACLES)}")


def score_task(task: Task) -> dict:
    """Load a pair and score it; runs in a worker process.

    Unusable files raise InputError, and so does running out of memory while reading,
    resampling or encoding one (one line naming the file); a metric that runs out of memory on
    the pair gets the status ``out_of_memory`` and a note naming the file, as a metric's input
    error gets its status.
    """
    if task.reference is None:
        gen = _load(task.generated)
        results = score_pair(task.metrics, reference=None, generated=gen.audio,
                             sample_rate=gen.sample_rate)
        return _record(task, results, [f"{task.utterance}: {task.system} {n}" for n in gen.notes],
                       gen.sample_rate)
    ref = _load(task.reference)
    notes = [f"{task.utterance}: reference {n}" for n in ref.notes]
    if task.oracle:
        with _out_of_memory_names(task.reference):
            generated = oracle_audio(task.oracle, ref.audio)
        results = score_pair(task.metrics, reference=ref.audio, generated=generated,
                             sample_rate=ref.sample_rate)
    else:
        results, gen_notes = _score_generated(task, ref)
        notes += [f"{task.utterance}: {task.system} {n}" for n in gen_notes]
    return _record(task, results, notes, ref.sample_rate)


def _record(task: Task, results: dict, notes: list, sample_rate: int) -> dict:
    """The row record of one task: a row per metric, the notes, and the rate it was scored at."""
    rows = [{"metric": name, "value": r.value, "status": r.status} for name, r in results.items()]
    failed = {}  # one note per distinct error, naming the metrics it stopped
    for name, r in results.items():
        if r.detail:
            where = f" ({task.generated or task.reference})" if r.status == OUT_OF_MEMORY else ""
            failed.setdefault(r.detail + where, []).append(name)
    notes += [f"{task.utterance}: {task.system}: {', '.join(names)}: {detail}"
              for detail, names in failed.items()]
    for row in rows:
        row.update(system=task.system, utterance=task.utterance)
    return {"system": task.system, "utterance": task.utterance, "rows": rows, "notes": notes,
            "sample_rate": sample_rate}


def _load(path: str) -> LoadedAudio:
    """A file at its own rate, as scoring takes it (silent and NaN audio are scored as such)."""
    with _out_of_memory_names(path):
        return load_audio(path, allow_silent=True, allow_nonfinite=True)


def _score_generated(task: Task, ref: LoadedAudio) -> tuple[dict, tuple]:
    """The metrics of ``task`` on its generated file, read at its own rate and resampled to the
    reference's only if a metric needs it.

    The length the generated audio will have at the reference's rate is known before it is
    resampled. If it differs from the reference's by more than one hop, the metrics that compare
    aligned signals get ``length_mismatch`` at once, and the audio is resampled (within
    :data:`~wavebench_base.audio.MAX_SAMPLES`) only if a metric that aligns the two itself
    (``mcd_dtw``) is asked for. Only one copy of the generated audio is kept while the metrics
    run.

    Returns
    -------
    results : dict[str, MetricResult]
        By metric name, in the order of ``task.metrics``.
    notes : tuple of str
        The generated file's notes (resampling among them).
    """
    gen = _load(task.generated)
    if gen.sample_rate != ref.sample_rate and task.strict_rate:
        raise InputError(f"{gen.sample_rate} Hz but the reference is at {ref.sample_rate} Hz "
                         "(--strict-rate refuses to resample)", task.generated)
    refused = {}
    if gen.sample_rate != ref.sample_rate:
        at_reference_rate = resampled_length(gen.audio.size, gen.sample_rate, ref.sample_rate)
        try:
            check_lengths(ref.audio.size, at_reference_rate)
        except InputError as mismatch:
            detail = (f"{mismatch} (at {ref.sample_rate} Hz; found before resampling from "
                      f"{gen.sample_rate} Hz)")
            refused = {name: MetricResult(float("nan"), mismatch.reason, detail)
                       for name in task.metrics if get_metric(name).aligned}
    names = [name for name in task.metrics if name not in refused]
    results = {}
    if names:
        with _out_of_memory_names(task.generated):
            gen = resample_audio(gen, ref.sample_rate, task.generated)  # drops the file's copy
        results = score_pair(names, reference=ref.audio, generated=gen.audio,
                             sample_rate=ref.sample_rate)
    results.update(refused)
    return {name: results[name] for name in task.metrics}, gen.notes


@contextlib.contextmanager
def _out_of_memory_names(path: str):
    """Turn an allocator's failure inside the block into one InputError line naming ``path``."""
    try:
        yield
    except (MemoryError, RuntimeError) as error:
        if not allocation_failed(error):
            raise  # a bug: its traceback is what a report needs
        detail = " ".join(f"{type(error).__name__}: {error}".split())[:160]
        raise InputError(f"out of memory loading it ({detail}); score it with fewer --jobs, or "
                         "shorten it", path) from None


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


@contextlib.contextmanager
def one_thread_per_worker():
    """Set the thread variables while a pool starts: spawned workers read them at start-up,
    before numpy loads its BLAS (setting them inside a worker would be too late)."""
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: "1" for name in THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
