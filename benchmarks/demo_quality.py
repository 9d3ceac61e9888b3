"""The demo's copy-synthesis quality for other training settings, without the rest of the demo.

Usage:
    python benchmarks/demo_quality.py OUT STEPS [--temperatures 0.6,1.0] [-- TRAIN OPTIONS ...]

Trains the tiny mel-conditioned WaveNet as ``wavebench demo`` does (``wavebench train --preset
tiny --cond mel --steps STEPS --eval-every STEPS/10``, two processes where there are two cores,
plus any ``train`` options after ``--``, such as ``--lr 0.02`` or ``--config other.toml``), into
OUT/train; an OUT that already holds a trained model is scored again without training. Then
resynthesizes the demo's four validation clips as the demo does (first second of each, the
demo's sampler, float64, seed 0, all four in one batch) at each temperature and prints one JSON line:
the teacher-forced ``nll_bits`` and, per temperature, the mean and per-clip MCD and mel L1, plus
the training time. Copies are made and scored through the demo's own ``copy_synthesize`` and 16-bit
WAV files, so the figures are the demo's.
Measured for issue 16 (2-core Xeon, family 6 model 167, AVX-512), without a predictor and with 40
mel bands: 300 steps gave MCD 8.22 dB and mel L1 1.23 at temperature 0.6, 1200 steps 6.41 and 1.02.
On a 2-core AMD EPYC (family 25 model 1, AVX2), 300 steps at temperature 0.6, with
``-- --lpc-order 64`` and 40 bands: MCD 5.12, mel L1 0.79, nll 3.55 bits (600 steps: 5.11, 0.82,
3.55); with ``-- --config F.toml`` setting ``n_mels = 80`` and ``lpc_order = 128`` (the demo's
model then): 3.21, 0.50, 3.20 bits (600 steps: 3.29, 0.54, 3.19); with ``n_mels = 160``: 2.97, 0.46,
3.03 bits; with ``n_mels = 256`` (the tiny preset's now): 3.09, 0.46, 2.97 bits (seed 1: 2.98, 0.46,
2.98 bits); with ``n_mels = 320``: 3.04, 0.47, 2.955 bits.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metrics import score_pair  # noqa: E402
from reference_model.checkpoint import load_checkpoint  # noqa: E402
from reference_model.embedded import write_embedded_audio  # noqa: E402
from reference_model.features import log_mel  # noqa: E402
from wavebench.demo import (  # noqa: E402
    copy_synthesize,
    crop_references,
    demo_sampler,
    spread_over_families,
)
from wavebench.score_checkpoint import likelihood_record  # noqa: E402
from wavebench_base.audio import load_audio  # noqa: E402


def train(out: Path, steps: int, options: list[str]) -> float:
    """Train into ``out/train`` as the demo does; returns the wall time (0 if already trained)."""
    if (out / "train" / "best.pt").exists():
        return 0.0
    nproc = "2" if (os.cpu_count() or 1) >= 2 else "1"
    command = [sys.executable, "-m", "wavebench", "train", "-o", str(out / "train"), "--preset",
               "tiny", "--cond", "mel", "--steps", str(steps), "--eval-every",
               str(max(steps // 10, 1)), "--nproc", nproc, "--no-progress", *options]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("steps", type=int)
    parser.add_argument("--temperatures", default="0.6")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args, options = parser.parse_args(argv[:cut]), argv[cut + 1:]
    seconds = train(args.out, args.steps, options)
    model, _ = load_checkpoint(args.out / "train" / "best.pt")
    rate, hop = model.config.sample_rate, model.config.hop_length
    clips = spread_over_families(write_embedded_audio(args.out / "embedded_valid",
                                                      sample_rate=rate), 4)
    references = crop_references(clips, args.out / "references", 1.0, rate)
    n = rate // hop * hop
    mels = np.stack([log_mel(audio[:n], model.config) for audio in references.values()])
    nll = [likelihood_record(model, "x", path.stem, audio, [])["rows"][0]["value"]
           for path, audio in references.items()]
    result = {"out": str(args.out), "steps": args.steps, "options": options,
              "train_seconds": round(seconds, 1), "nll_bits": round(float(np.mean(nll)), 3)}
    for temperature in (float(t) for t in args.temperatures.split(",")):
        copies = args.out / f"copies_T{temperature:g}"
        copy_synthesize(model, references, mels, copies, demo_sampler(model), progress=False,
                        temperature=temperature)
        scores = {"mcd": [], "mel_l1": []}
        for path, audio in references.items():
            pair = score_pair(tuple(scores), reference=audio, sample_rate=rate,
                              generated=load_audio(copies / path.name).audio)
            for name in scores:
                scores[name].append(pair[name].value)
        result[f"T={temperature:g}"] = {name: {"mean": round(float(np.mean(v)), 3),
                                               "clips": [round(x, 3) for x in v]}
                                        for name, v in scores.items()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
