"""The work of one scoring task, in a worker process: load a pair and run the metrics on it.

Kept apart from ``wavebench.score`` so that a worker imports only numpy-level code (no torch,
pandas or reports): process start-up is a visible part of scoring a small test set.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np

from metrics import score_pair
from reference_model.audio import load_audio
from reference_model.errors import InputError
from reference_model.mulaw import mu_law_decode, mu_law_encode

ORACLES = ("mulaw",)


@dataclass(frozen=True)
class Task:
    """One utterance of one system to score (``generated`` None for an oracle system)."""

    system: str
    utterance: str
    reference: str
    generated: str | None
    metrics: tuple
    strict_rate: bool
    oracle: str | None = None


def oracle_audio(kind: str, reference: np.ndarray) -> np.ndarray:
    """The reference through 8-bit mu-law: the floor a 256-class WaveNet cannot beat."""
    if kind != "mulaw":
        raise InputError(f"unknown oracle {kind!r}; available: {', '.join(ORACLES)}")
    return mu_law_decode(mu_law_encode(reference))


def score_task(task: Task) -> dict:
    """Load a pair and score it; runs in a worker process. Unusable files raise InputError."""
    ref = load_audio(task.reference, allow_silent=True, allow_nonfinite=True)
    notes = [f"{task.utterance}: reference {n}" for n in ref.notes]
    if task.oracle:
        generated = oracle_audio(task.oracle, ref.audio)
    else:
        # read once: at the reference's rate (resampled, with a note), or as it is to refuse
        gen = load_audio(task.generated, None if task.strict_rate else ref.sample_rate,
                         allow_silent=True, allow_nonfinite=True)
        if gen.sample_rate != ref.sample_rate:
            raise InputError(f"{gen.sample_rate} Hz but the reference is at {ref.sample_rate} "
                             "Hz (--strict-rate refuses to resample)", task.generated)
        notes += [f"{task.utterance}: {task.system} {n}" for n in gen.notes]
        generated = gen.audio
    results = score_pair(task.metrics, reference=ref.audio, generated=generated,
                         sample_rate=ref.sample_rate)
    rows = [{"metric": name, "value": r.value, "status": r.status} for name, r in results.items()]
    failed = {}  # one note per distinct error, naming the metrics it stopped
    for name, r in results.items():
        if r.detail:
            failed.setdefault(r.detail, []).append(name)
    notes += [f"{task.utterance}: {task.system}: {', '.join(names)}: {detail}"
              for detail, names in failed.items()]
    for row in rows:
        row.update(system=task.system, utterance=task.utterance)
    return {"system": task.system, "utterance": task.utterance, "rows": rows, "notes": notes}


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
