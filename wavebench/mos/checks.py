"""Generated quality-control signals: gold-low degradation and the tone-count trap (MOS.md s. 8)."""
from __future__ import annotations

import numpy as np

from wavebench.mos.anchors import lowpass, mnru

GOLD_LOW_MNRU_DB = 5.0     # spec: hold-out clip + MNRU Q = 5 dB + 3.5 kHz low-pass
GOLD_LOW_CUTOFF_HZ = 3500.0
BEEP_HZ = 1000.0
BEEP_S = 0.15
BEEP_RAMP_S = 0.01


def gold_low(audio: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
    """A clearly bad version of a natural clip: MNRU at 5 dB, then a 3.5 kHz low-pass.

    The low-pass is skipped when the rate cannot hold it (8 kHz material); MNRU alone is
    still far below "Fair".
    """
    degraded = mnru(audio, GOLD_LOW_MNRU_DB, seed)
    if sample_rate / 2 > GOLD_LOW_CUTOFF_HZ * 1.05:
        degraded = lowpass(degraded, sample_rate, GOLD_LOW_CUTOFF_HZ)
    return degraded


def beep(sample_rate: int) -> np.ndarray:
    """One 150 ms, 1 kHz beep with 10 ms raised-cosine ramps (no clicks), peak 1."""
    t = np.arange(int(BEEP_S * sample_rate)) / sample_rate
    tone = np.sin(2 * np.pi * BEEP_HZ * t)
    ramp = int(BEEP_RAMP_S * sample_rate)
    window = np.ones_like(tone)
    window[:ramp] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    window[-ramp:] = window[:ramp][::-1]
    return tone * window


def tone_count_trap(audio: np.ndarray, sample_rate: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Mix 2-4 beeps into a clip; the rater must report how many (language-neutral trap).

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)], float
        A hold-out clip at ``sample_rate`` (at least about 1 s long for 4 beeps to be apart).
    sample_rate : int
    rng : np.random.Generator
        Seeded generator: the count and the positions.

    Returns
    -------
    trap : np.ndarray [shape=(n',)], float64
        The clip with beeps mixed in, 6 dB above its RMS; padded with silence so that beeps
        stay at least 300 ms apart.
    count : int
        Number of beeps (the expected answer; it goes to the key only).
    """
    count = int(rng.integers(2, 5))
    b = beep(sample_rate)
    gap = int(0.3 * sample_rate) + len(b)
    length = max(len(audio), gap * (count + 1))
    out = np.zeros(length)
    out[:len(audio)] = audio
    rms = float(np.sqrt(np.mean(np.asarray(audio, np.float64) ** 2)))
    slot = length // count
    for k in range(count):
        # One beep per equal slot, jittered inside it, so beeps never overlap or merge.
        start = k * slot + int(rng.integers(0, max(1, slot - gap + 1)))
        out[start:start + len(b)] += 2.0 * rms * b
    return out, count
