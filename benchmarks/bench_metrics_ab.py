"""Metric speed of this tree against another checkout, side by side in one run.

Usage:
    git worktree add /tmp/before af109be
    python benchmarks/bench_metrics_ab.py --before /tmp/before [--rounds 7] [--metrics mcd,mel_l1,stoi]

Each round runs one worker process per tree, in alternating order, and each worker times every
metric on the same six 3-second 16 kHz pairs (the speech clips of ``tests/data/speech16k``
joined end to end, against themselves plus noise), one BLAS thread, after one untimed call per
metric. The table gives the best round per tree (ms per pair) and the ratio, with the CPU model
and vector ISA of the host, since hosts here differ by 3x or more.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
ENTRY = {"mcd": ("cepstral_distance", "mel_cepstral_scores"), "mel_l1": ("mel", "mel_l1"),
         "stoi": ("intelligibility", "intelligibility_scores"), "lsd": ("spectral", "lsd"),
         "mrstft": ("spectral", "mrstft")}

WORKER = r"""
import glob, importlib, json, sys, time
import numpy as np, soundfile as sf
names, data = sys.argv[1].split(","), sys.argv[2]
files = sorted(glob.glob(data + "/*.flac"))
speech = np.concatenate([sf.read(f, dtype="float64")[0] for f in files])
pairs = [(speech[i * 48000:(i + 1) * 48000], 16000) for i in range(6)]
pairs = [(a, a + 0.01 * np.random.default_rng(i).standard_normal(a.size), r)
         for i, (a, r) in enumerate(pairs)]
entry = json.loads(sys.argv[3])
out = {}
for name in names:
    module, function = entry[name]
    f = getattr(importlib.import_module("metrics." + module), function)
    f(reference=pairs[0][0], generated=pairs[0][1], sample_rate=16000)  # untimed: caches
    start = time.perf_counter()
    for a, g, r in pairs:
        f(reference=a, generated=g, sample_rate=r)
    out[name] = (time.perf_counter() - start) / len(pairs)
print(json.dumps(out))
"""


def host() -> str:
    """CPU model (with family/model) and the vector ISA flags that matter for BLAS kernels."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    field = lambda key: next((line.split(":", 1)[1].strip() for line in info.splitlines()  # noqa: E731
                              if line.startswith(key)), "?")
    flags = set(field("flags").split())
    isa = [f for f in ("avx2", "avx512f", "avx512bw", "avx512vl") if f in flags] or ["no avx2"]
    return (f"{field('model name')} (family {field('cpu family')}, model {field('model')}), "
            f"{os.cpu_count()} CPUs, {' '.join(isa)}")


def time_tree(tree: Path, names: list, data: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", WORKER, ",".join(names), str(data),
                          json.dumps(ENTRY)], env=env, cwd=tree, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="another checkout")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--metrics", default="mcd,mel_l1,stoi")
    parser.add_argument("--data", type=Path, default=HERE / "tests" / "data" / "speech16k")
    args = parser.parse_args()
    names = args.metrics.split(",")
    trees = {"before": args.before.resolve(), "now": HERE}
    best = {t: {} for t in trees}
    for k in range(args.rounds):
        for label in (list(trees) if k % 2 == 0 else list(trees)[::-1]):
            for name, seconds in time_tree(trees[label], names, args.data).items():
                best[label][name] = min(best[label].get(name, 1e9), seconds)
    print(f"host: {host()}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'metric':8} {'before ms':>10} {'now ms':>10} {'now/before':>11}   (best of "
          f"{args.rounds} rounds, per 3 s pair)")
    for name in names:
        b, n = 1000 * best["before"][name], 1000 * best["now"][name]
        print(f"{name:8} {b:10.2f} {n:10.2f} {n / b:11.2f}")


if __name__ == "__main__":
    main()
