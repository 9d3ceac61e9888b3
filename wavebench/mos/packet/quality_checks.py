"""Generated quality-control signals (listening-test.md 8): gold-low degradation, the
tone-count trap and the Woods antiphase headphone check."""
from __future__ import annotations

import numpy as np

from wavebench.mos.packet.anchors import lowpass, mnru

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


WOODS_HZ = 200.0       # Woods, Siegel, Traer & McDermott (2017), Atten. Percept. Psychophys. 79
WOODS_TONE_S = 1.0
WOODS_GAP_S = 0.5
WOODS_RAMP_S = 0.1
WOODS_QUIET_DB = -6.0
WOODS_TRIALS = 6
WOODS_RMS_DBFS = -26.0  # about the level speech stimuli are aligned to (P.56 -26 dBov)


def woods_trial(sample_rate: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One trial of the antiphase headphone check: three 200 Hz tones, one 6 dB quieter, one
    with the two channels in antiphase; "which was the quietest?".

    Over headphones the quiet tone is the quietest. Over loudspeakers the antiphase tone
    cancels in the air and sounds quietest instead, so listeners without headphones fail.

    Returns
    -------
    stereo : np.ndarray [shape=(n, 2)], float64
    answer : int
        1, 2 or 3: the position of the quiet tone (the key's expected answer).
    """
    n = int(WOODS_TONE_S * sample_rate)
    t = np.arange(n) / sample_rate
    ramp = int(WOODS_RAMP_S * sample_rate)
    window = np.ones(n)
    window[:ramp] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    window[-ramp:] = window[:ramp][::-1]
    amplitude = np.sqrt(2) * 10 ** (WOODS_RMS_DBFS / 20)
    tone = amplitude * np.sin(2 * np.pi * WOODS_HZ * t) * window
    quiet, antiphase = rng.permutation(3)[:2]
    gap = np.zeros((int(WOODS_GAP_S * sample_rate), 2))
    parts = []
    for k in range(3):
        left = tone * (10 ** (WOODS_QUIET_DB / 20) if k == quiet else 1.0)
        right = -left if k == antiphase else left
        parts += [np.stack([left, right], axis=1)] + ([gap] if k < 2 else [])
    return np.concatenate(parts), int(quiet) + 1
