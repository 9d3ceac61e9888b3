"""The lowest nll_bits any 256-class mu-law model can reach on the embedded clips.

Usage:
    python benchmarks/embedded_nll_floor.py [--seconds 1.0] [NAME ...]

Every embedded clip is a clean synthesized signal plus white noise at -50 dBFS, rounded to
16 bits (``reference_model/embedded.py``). Even a model that knew the clean signal exactly
could not predict that noise: near zero a mu-law code is 1/5864 wide, so the noise spreads
each sample over about 18 codes. This script rebuilds each clip's clean signal from the
generator's own random stream, integrates the Gaussian noise over the mu-law bins around it,
and prints the entropy of the resulting code distribution per sample (bits), for the
validation clips of the default set or the clips named, over their first ``--seconds``. The
16-bit rounding is left out (it is finer than every mu-law bin). Measured: 2.35 bits over the
first second of the demo's clips (chords_004, formants_014, tones_009, chords_019).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference_model import embedded  # noqa: E402

NOISE = 10 ** (-50 / 20)  # the generator's noise floor (its _finish)


def code_entropy_bits(clean: np.ndarray, sigma: float, classes: int = 256) -> np.ndarray:
    """Entropy (bits) of mu_law_encode(clean + N(0, sigma^2)) at every sample."""
    mu = classes - 1
    y = np.clip((np.arange(mu + 2) - 0.5) / mu * 2 - 1, -1, 1)  # code c spans y of c -+ 0.5
    edges = np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu
    edges[0], edges[-1] = -np.inf, np.inf  # the end codes take everything clipped
    out = []
    for chunk in np.array_split(clean, max(1, clean.size // 4000)):
        p = np.diff(norm.cdf((edges[None, :] - chunk[:, None]) / sigma), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(-np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1))
    return np.concatenate(out)


def clean_clip(index: int, rate=16000, seed=0, seconds=2.0) -> np.ndarray:
    """Clip ``index`` of the embedded set before its noise, as the generator makes it."""
    synth = (embedded._tones, embedded._chords, embedded._formants)[index % 3]
    rng = np.random.default_rng([seed, index])
    audio = synth(rng, int(round(seconds * rate)), rate)
    return audio * (rng.uniform(0.5, 0.9) / np.max(np.abs(audio)))  # _finish's scaling draw


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="clips such as chords_004 (default: all valid)")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    names = args.names or sorted(u.name for u in embedded.embedded_audioset().valid)
    values = []
    for name in names:
        bits = code_entropy_bits(clean_clip(int(name.rsplit("_", 1)[1]))[:int(args.seconds * 16000)],
                                 NOISE)
        values.append(bits.mean())
        print(f"{name}: {bits.mean():.3f} bits/sample")
    print(f"mean over {len(names)} clips: {np.mean(values):.3f} bits/sample")
    return 0


if __name__ == "__main__":
    sys.exit(main())
