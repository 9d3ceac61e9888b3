"""Load on ``wavebench mos serve``: N simulated raters at once, answers per second and latency.

Builds a small synthetic ACR packet, starts ``python -m wavebench mos serve`` on a free port of
127.0.0.1 (a separate process, SQLite WAL with synchronous=FULL), and runs the simulated raters
of :mod:`wavebench.mos.serve.loadtest` (retries, double posts, dropped connections). Prints
the answers acknowledged per second, p50/p99 latency of the answer posts, and the CPU.

    python benchmarks/bench_mos_serve.py --raters 200
"""
from __future__ import annotations

import argparse
import http.client
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from wavebench.mos.analysis.ratings import load_packet
from wavebench.mos.packet.build import PacketOptions, build_packet
from wavebench.mos.serve.loadtest import run_load

FS = 16000


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def make_packet(root: Path) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(int(0.8 * FS)) / FS
    for k in range(19):
        x = 0.3 * np.sin(2 * np.pi * (150 + 20 * k) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        x = x + 0.01 * rng.standard_normal(len(t))
        for name, y in (("natural", x), ("sysa", np.convolve(x, [0.5, 0.5], "same")),
                        ("sysb", x + 0.02 * rng.standard_normal(len(t)))):
            (root / name).mkdir(parents=True, exist_ok=True)
            sf.write(root / name / f"utt{k:02d}.wav", y, FS)
    build_packet([f"sysa={root / 'sysa'}", f"sysb={root / 'sysb'}"], root / "out",
                 PacketOptions(reference=f"natural={root / 'natural'}", votes=1,
                               trials_per_session=12))
    return root / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raters", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = make_packet(Path(tmp))
        packet = load_packet(out)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-m", "wavebench", "mos", "serve", str(out),
                                 "--db", str(Path(tmp) / "study.sqlite"), "--port", str(port),
                                 "--admin-token", "b" * 20], stderr=subprocess.DEVNULL)
        try:
            for _ in range(600):
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                    conn.request("GET", "/healthz")
                    if conn.getresponse().status == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            result = run_load(port, packet.manifest, packet.key, n_raters=args.raters,
                              seed=args.seed)
        finally:
            proc.terminate()
            proc.wait()
    trials = len(next(iter(packet.manifest["lists"].values())))
    print(f"{args.raters} raters x {trials} trials: {result.answers_acked} answers acknowledged "
          f"in {result.wall_s:.1f} s = {result.answers_acked / result.wall_s:.0f} answers/s")
    print(f"answer post latency: p50 {1000 * result.quantile(0.5):.1f} ms, "
          f"p99 {1000 * result.quantile(0.99):.1f} ms (client and server on one machine)")
    print(f"retries and drops: {result.errors}")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}; "
          f"SQLite WAL, synchronous=FULL")


if __name__ == "__main__":
    main()
