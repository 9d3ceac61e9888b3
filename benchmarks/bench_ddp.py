"""Multi-process training scaling: optimizer steps per second with 1 process against N.

Usage: python benchmarks/bench_ddp.py [--presets tiny,reference] [--nproc 1,2] [--short 4]
       [--long 24]

Each configuration runs `wavebench train` twice from scratch, for ``--short`` and ``--long``
steps with validation only at the start and the end, and the rate is
(long - short) / (difference in wall time): start-up, data loading and validation cancel out.
All runs use the preset's global batch, so N processes each compute 1/N of it; with one
process torch uses every core, with N each gets cores/N threads (as `--nproc` sets them).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def wall_time(preset: str, nproc: int, steps: int, workdir: Path) -> float:
    out = workdir / f"{preset}-{nproc}-{steps}"
    command = [sys.executable, "-m", "wavebench", "train", "--preset", preset, "-o", str(out),
               "--nproc", str(nproc), "--steps", str(steps), "--eval-every", str(steps),
               "--checkpoint-every", str(steps), "--no-progress"]
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,reference")
    parser.add_argument("--nproc", default="1,2")
    parser.add_argument("--short", type=int, default=4)
    parser.add_argument("--long", type=int, default=24)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print("| preset | processes | steps/s | s/step | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            base = None
            for nproc in map(int, args.nproc.split(",")):
                extra = (wall_time(preset, nproc, args.long, Path(tmp))
                         - wall_time(preset, nproc, args.short, Path(tmp)))
                rate = (args.long - args.short) / extra
                base = base or rate
                print(f"| {preset} | {nproc} | {rate:.3f} | {1 / rate:.3f} | {rate / base:.2f}x |",
                      flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
