"""Time to refuse each absurd or misfit checkpoint through ``load_checkpoint``, and peak memory.

Usage: python benchmarks/bench_refusals.py

The checkpoints are those of ``tests/test_checkpoint_guards.py`` (absurd config values, weights
that do not fit their config); each must be refused with an InputError before any model is built.
"""
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_checkpoint_guards import ABSURD, MISFITS, absurd_checkpoint, small_checkpoint  # noqa: E402

from reference_model.checkpoint import load_checkpoint  # noqa: E402
from wavebench_base.errors import InputError


def refusal_ms(path: Path) -> tuple[float, str]:
    """Milliseconds until ``load_checkpoint`` refuses ``path``, and its message."""
    started = time.perf_counter()
    try:
        load_checkpoint(path)
    except InputError as exc:
        return 1000 * (time.perf_counter() - started), str(exc).split(": ", 1)[-1]
    raise SystemExit(f"{path.name} was loaded, not refused")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        cases = [(f"absurd {kind}", absurd_checkpoint(Path(folder) / f"{kind}.pt", values))
                 for kind, (values, _) in ABSURD.items()]
        cases += [(f"misfit {kind}", small_checkpoint(Path(folder) / f"misfit_{kind}.pt", edit))
                  for kind, (edit, _) in MISFITS.items()]
        for label, path in cases:
            ms, message = refusal_ms(path)
            print(f"{label:24} refused in {ms:6.1f} ms: {message[:60]}")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
