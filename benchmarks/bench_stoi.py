"""CPU time of STOI + ESTOI per audio second: pystoi called twice against the shared front end.

Scores every file of a folder of speech (default ``../shared/data/speech16k``) against a degraded
copy (``bench_metrics.degrade``: white noise at 20 dB SNR, then 8-bit mu-law), in one process
with one BLAS thread, two ways, alternating in each repeat so that load from other processes
falls on both alike:

- ``pystoi x2``: the pair resampled to 10 kHz once, then ``pystoi.stoi`` with extended False
  and True (what ``intelligibility_scores`` did before the front end was shared);
- ``shared``: :func:`metrics.intelligibility.intelligibility_scores`.

Prints CPU seconds per audio second for each (median and range over repeats), the speed-up, the
load averages before and after, and the largest relative difference of the values (NumPy's
global generator seeded alike for both, since ESTOI draws from it).

Usage: python benchmarks/bench_stoi.py [--data DIR] [--repeats 5] [--limit N]
"""
from __future__ import annotations

import os

# one BLAS thread, as in a scoring worker (set before numpy loads BLAS)
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from pystoi import stoi as pystoi_stoi  # noqa: E402
from pystoi.utils import resample_oct  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_metrics import DEFAULT_DATA, load_pairs  # noqa: E402

from metrics.intelligibility import STOI_RATE, intelligibility_scores  # noqa: E402


def pystoi_twice(reference: np.ndarray, generated: np.ndarray, rate: int) -> dict[str, float]:
    """The previous implementation: shared resampling, then pystoi's full ``stoi`` twice."""
    if rate != STOI_RATE:
        reference = resample_oct(reference, STOI_RATE, rate)
        generated = resample_oct(generated, STOI_RATE, rate)
    return {"stoi": pystoi_stoi(reference, generated, STOI_RATE),
            "estoi": pystoi_stoi(reference, generated, STOI_RATE, extended=True)}


def shared(reference: np.ndarray, generated: np.ndarray, rate: int) -> dict[str, float]:
    return intelligibility_scores(reference=reference, generated=generated, sample_rate=rate)


def cpu_seconds(score, pairs) -> tuple[float, list[dict[str, float]]]:
    """CPU time of one pass of ``score`` over ``pairs``, and its values (generator seeded)."""
    np.random.seed(0)
    start = time.process_time()
    values = [score(reference, generated, rate) for reference, generated, rate in pairs]
    return time.process_time() - start, values


def largest_relative_difference(first, second) -> float:
    return max(abs(a[key] - b[key]) / abs(a[key])
               for a, b in zip(first, second) for key in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="first N files only")
    args = parser.parse_args()
    files = sorted(args.data.glob("*.flac"))[: args.limit]
    if not files:
        sys.exit(f"error: {args.data}: no .flac files")
    pairs = load_pairs(files)
    audio_s = sum(reference.size / rate for reference, _, rate in pairs)
    methods = {"pystoi x2": pystoi_twice, "shared": shared}
    for score in methods.values():  # untimed warm-up (imports, FFT plans)
        score(*pairs[0])
    load_before = os.getloadavg()
    times = {name: [] for name in methods}
    values = {}
    for _ in range(args.repeats):
        for name, score in methods.items():
            seconds, values[name] = cpu_seconds(score, pairs)
            times[name].append(seconds / audio_s)
    load_after = os.getloadavg()
    print(f"{len(pairs)} files, {audio_s:.1f} s of audio, {args.repeats} repeats, 1 BLAS thread")
    print("load average (1, 5, 15 min): before " + ", ".join(f"{v:.2f}" for v in load_before)
          + "; after " + ", ".join(f"{v:.2f}" for v in load_after) + f"; {os.cpu_count()} CPUs")
    for name, per_second in times.items():
        print(f"{name:>10}: {1e3 * statistics.median(per_second):7.2f} ms CPU per audio second "
              f"(median; range {1e3 * min(per_second):.2f} to {1e3 * max(per_second):.2f})")
    speedup = statistics.median(times["pystoi x2"]) / statistics.median(times["shared"])
    print(f"speed-up {speedup:.2f}x; largest relative difference of the values "
          f"{largest_relative_difference(values['pystoi x2'], values['shared']):.1e}")


if __name__ == "__main__":
    main()
