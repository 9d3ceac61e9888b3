"""Multi-process training scaling: optimizer steps per second with 1 process against N.

Usage: python benchmarks/bench_ddp.py [--presets tiny,reference] [--nproc 2] [--short 4]
       [--long 24] [--repeats 3]

Each configuration runs `wavebench train` twice from scratch, for ``--short`` and ``--long``
steps with validation only at the start and the end, and the rate is
(long - short) / (difference in wall time): start-up, data loading and validation cancel out.
The median over ``--repeats`` such pairs is printed, the pairs of all configurations
interleaved so that a change in machine load affects them alike.
All runs use the preset's global batch, so N processes each compute 1/N of it. One process is
timed twice, with torch's default threads (every core) and with one thread; N processes get
cores/N threads each (as `--nproc` sets them). Speed-up is against one process, every core.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def wall_time(preset: str, nproc: int, threads: int, steps: int, workdir: Path) -> float:
    out = workdir / f"{preset}-{nproc}-{threads}-{steps}"
    command = [sys.executable, "-m", "wavebench", "train", "--preset", preset, "-o", str(out),
               "--nproc", str(nproc), "--steps", str(steps), "--eval-every", str(steps),
               "--checkpoint-every", str(steps), "--threads", str(threads), "--no-progress"]
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,reference")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--short", type=int, default=4)
    parser.add_argument("--long", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print("| preset | processes x threads | steps/s | s/step | speed-up |")
    print("| --- | --- | ---: | ---: | ---: |")
    cores = os.cpu_count() or 1
    runs = [(1, 0, f"1 x {cores} (default)"), (1, 1, "1 x 1"),
            (args.nproc, 0, f"{args.nproc} x {max(1, cores // args.nproc)}")]
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            rates = {label: [] for _, _, label in runs}
            for _ in range(args.repeats):
                for nproc, threads, label in runs:
                    extra = (wall_time(preset, nproc, threads, args.long, Path(tmp))
                             - wall_time(preset, nproc, threads, args.short, Path(tmp)))
                    rates[label].append((args.long - args.short) / extra)
            base = statistics.median(rates[runs[0][2]])
            for label, values in rates.items():
                rate = statistics.median(values)
                print(f"| {preset} | {label} | {rate:.3f} | {1 / rate:.3f} | {rate / base:.2f}x |",
                      flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
