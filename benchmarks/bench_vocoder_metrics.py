"""Seconds of compute per audio second for every metric of the vocoder table, beside pystoi.

Usage:
    python benchmarks/bench_vocoder_metrics.py [--data tests/data/speech16k] [--repeats 3]
        [--pairs N]

All in one process, one after another on the same pairs: the speech clips of ``--data`` joined
end to end and cut into 3-second 16 kHz pairs, each against itself plus white noise at 20 dB SNR.
Every metric group is called once untimed first (caches, ONNX sessions, the CREPE model), then
timed over all pairs; the best of ``--repeats`` is printed as CPU and wall seconds per audio
second (lower is faster), with pystoi's STOI on the same pairs as the yardstick. Numpy/BLAS run on one thread
(set before they load); torchcrepe is timed at 1 thread and at every core, since torch's own
threads are what a single scoring worker can use. The CPU model and vector ISA are printed:
hosts here differ by 3x or more.
"""
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RATE, SECONDS = 16000, 3


def host() -> str:
    """CPU model (family/model) and the vector ISA flags that matter for the kernels."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""

    def field(key):
        return next((line.split(":", 1)[1].strip() for line in info.splitlines()
                     if line.startswith(key)), "?")
    flags = set(field("flags").split())
    isa = [f for f in ("avx2", "avx512f", "avx512bw", "avx512vl") if f in flags] or ["no avx2"]
    return (f"{field('model name')} (family {field('cpu family')}, model {field('model')}), "
            f"{os.cpu_count()} CPUs, {' '.join(isa)}")


def pairs(folder: Path) -> list:
    speech = np.concatenate([sf.read(f, dtype="float64")[0] for f in sorted(folder.glob("*.flac"))])
    n = RATE * SECONDS
    out = []
    for i in range(speech.size // n):
        clean = speech[i * n:(i + 1) * n]
        noise = np.random.default_rng(i).standard_normal(n)
        noise *= np.sqrt(np.mean(clean ** 2) / np.mean(noise ** 2) / 100)  # 20 dB SNR
        out.append((clean, clean + noise))
    return out


def groups() -> dict:
    """Name -> (callable on a pair, the package it needs or None)."""
    from pystoi import stoi as pystoi_stoi

    from metrics.cepstral_distance import mel_cepstral_scores
    from metrics.intelligibility import intelligibility_scores
    from metrics.mel import mel_l1
    from metrics.spectral import mrstft
    found = {
        "pystoi STOI (yardstick)": (lambda r, g: pystoi_stoi(r, g, RATE), None),
        "stoi + estoi": (lambda r, g: intelligibility_scores(reference=r, generated=g,
                                                             sample_rate=RATE), None),
        "mcd + c0_rmse_db + mcd_speech": (lambda r, g: mel_cepstral_scores(
            reference=r, generated=g, sample_rate=RATE), None),
        "mel_l1": (lambda r, g: mel_l1(reference=r, generated=g, sample_rate=RATE), None),
        "mrstft": (lambda r, g: mrstft(reference=r, generated=g, sample_rate=RATE), None),
    }
    if importlib.util.find_spec("pesq"):
        from metrics.perceptual_quality import pesq_scores
        found["pesq_wb + pesq_nb"] = (lambda r, g: pesq_scores(reference=r, generated=g,
                                                                sample_rate=RATE), "pesq")
    if importlib.util.find_spec("speechmos") and importlib.util.find_spec("onnxruntime"):
        from metrics.dnsmos import dnsmos_scores
        found["dnsmos (4 scores, generated only)"] = (
            lambda r, g: dnsmos_scores(generated=g, sample_rate=RATE), "dnsmos")
    if importlib.util.find_spec("torchcrepe"):
        import torch

        from metrics.pitch import pitch_scores

        def crepe(threads):
            def run(r, g):
                before = torch.get_num_threads()
                torch.set_num_threads(threads)
                try:
                    return pitch_scores(reference=r, generated=g, sample_rate=RATE)
                finally:
                    torch.set_num_threads(before)
            return run
        found["pitch (torchcrepe full), 1 torch thread"] = (crepe(1), "pitch")
        cores = os.cpu_count() or 1
        if cores > 1:
            found[f"pitch (torchcrepe full), {cores} torch threads"] = (crepe(cores), "pitch")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data" / "speech16k")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=None,
                        help="only the first N pairs (CREPE takes about 10 CPU-s per pair-second)")
    args = parser.parse_args(argv)
    data = pairs(args.data)[:args.pairs]
    audio_seconds = len(data) * SECONDS
    print(f"host: {host()}")
    print(f"{len(data)} pairs of {SECONDS} s at {RATE} Hz ({audio_seconds} s of audio), "
          f"best of {args.repeats}\n")
    rows = []
    for name, (function, _) in groups().items():
        function(*data[0])  # untimed: caches, sessions, model weights
        wall, cpu = min(_timed(function, data) for _ in range(args.repeats))
        rows.append((name, cpu / audio_seconds, wall / audio_seconds))
    yardstick = rows[0][1]
    print("| metric group | CPU s per audio s | wall s per audio s | CPU, x pystoi STOI |\n"
          "| --- | ---: | ---: | ---: |")
    for name, cpu, wall in rows:
        print(f"| {name} | {cpu:.4f} | {wall:.4f} | {cpu / yardstick:.2f} |")
    return 0


def _timed(function, data) -> tuple[float, float]:
    """(wall, CPU) seconds of one pass over the pairs; CPU counts every thread."""
    wall, cpu = time.perf_counter(), time.process_time()
    for reference, generated in data:
        function(reference, generated)
    return time.perf_counter() - wall, time.process_time() - cpu


if __name__ == "__main__":
    sys.exit(main())
