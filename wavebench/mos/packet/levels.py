"""Level measurement for listening tests: P.56 active speech level, BS.1770 loudness, true peak."""
from __future__ import annotations

import warnings

import numpy as np
from scipy import signal

from wavebench_base.errors import InputError

# P.56 method B constants: envelope time constant, hangover and the margin between the active
# level and the threshold at which activity is counted.
_P56_TIME_CONSTANT_S = 0.03
_P56_HANGOVER_S = 0.2
_P56_MARGIN_DB = 15.9
# Thresholds on a 0.5 dB grid (P.56 uses powers of two); the crossing is interpolated anyway.
_P56_THRESHOLDS_DB = np.arange(-120.0, 0.5, 0.5)
_TINY = 1e-20


def active_speech_level(audio: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """ITU-T P.56 method B active speech level in dBov (0 dBov = power of a full-scale square).

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)], float
        Mono samples in [-1, 1].
    sample_rate : int
        Rate in Hz.

    Returns
    -------
    level_dbov : float
        Mean power over the active samples, in dB re full scale (a full-scale sine is -3.01).
    activity : float
        Share of samples counted as active, in [0, 1].

    Raises
    ------
    InputError
        If no threshold is crossed (the signal is silent or has no activity).
    """
    x = np.asarray(audio, dtype=np.float64)
    g = np.exp(-1.0 / (sample_rate * _P56_TIME_CONSTANT_S))
    # Two cascaded one-pole smoothers of |x| form the envelope, as in P.56 and G.191 sv56.
    env = signal.lfilter([1 - g], [1, -g], np.abs(x))
    env = signal.lfilter([1 - g], [1, -g], env)
    hang = int(round(_P56_HANGOVER_S * sample_rate))
    energy = float(np.sum(x * x))
    # Only thresholds between (mean power - margin - 1 dB) and the envelope peak can hold the
    # crossing, since the active level lies between the mean power and the peak.
    lo = 10 * np.log10(max(energy / len(x), _TINY)) - _P56_MARGIN_DB - 1.0
    peak = 20 * np.log10(max(float(env.max()), _TINY))
    grid = _P56_THRESHOLDS_DB[(_P56_THRESHOLDS_DB >= lo) & (_P56_THRESHOLDS_DB <= peak + 0.5)]
    if len(grid) < 2:
        raise InputError("no active speech found (P.56): the clip is silent")
    counts = np.array([_active_count(env >= 10 ** (t / 20), hang) for t in grid])
    with np.errstate(divide="ignore"):
        active_db = 10 * np.log10(np.maximum(energy, _TINY) / np.maximum(counts, 1))
    diff = np.where(counts > 0, active_db - grid, -np.inf)
    # The difference falls as the threshold rises; find where it crosses the margin.
    above = np.nonzero(diff >= _P56_MARGIN_DB)[0]
    if len(above) == 0 or energy <= 0:
        raise InputError("no active speech found (P.56): the clip is silent")
    j = above[-1]
    if j + 1 >= len(diff) or not np.isfinite(diff[j + 1]):
        return float(active_db[j]), float(counts[j] / len(x))
    frac = (diff[j] - _P56_MARGIN_DB) / (diff[j] - diff[j + 1])
    level = active_db[j] + frac * (active_db[j + 1] - active_db[j])
    return float(level), float(counts[j] / len(x))


def _active_count(above: np.ndarray, hang: int) -> int:
    """Samples above threshold or within ``hang`` samples after one that is (the hangover)."""
    pos = np.flatnonzero(above)
    if len(pos) == 0:
        return 0
    # Each above-threshold sample covers itself and the next ``hang`` samples; overlaps merge.
    gaps = np.diff(np.append(pos, len(above)))
    return int(np.sum(np.minimum(gaps, hang + 1)))


def _biquad(kind: str, fc: float, q: float, gain_db: float, fs: int):
    """RBJ-cookbook biquad (b, a): the BS.1770 K-weighting stages designed at any rate."""
    a_gain = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * fc / fs
    alpha = np.sin(w0) / (2 * q)
    cw = np.cos(w0)
    if kind == "high_shelf":
        sa = 2 * np.sqrt(a_gain) * alpha
        b = [a_gain * ((a_gain + 1) + (a_gain - 1) * cw + sa),
             -2 * a_gain * ((a_gain - 1) + (a_gain + 1) * cw),
             a_gain * ((a_gain + 1) + (a_gain - 1) * cw - sa)]
        a = [(a_gain + 1) - (a_gain - 1) * cw + sa,
             2 * ((a_gain - 1) - (a_gain + 1) * cw),
             (a_gain + 1) - (a_gain - 1) * cw - sa]
    else:  # high-pass
        b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    return np.array(b) / a[0], np.array(a) / a[0]


def k_weight(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Apply the BS.1770 K-weighting (4 dB high shelf at 1.5 kHz, then 38 Hz high-pass)."""
    b1, a1 = _biquad("high_shelf", 1500.0, 1 / np.sqrt(2), 4.0, sample_rate)
    b2, a2 = _biquad("high_pass", 38.0, 0.5, 0.0, sample_rate)
    return signal.lfilter(b2, a2, signal.lfilter(b1, a1, np.asarray(audio, np.float64)))


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """ITU-R BS.1770-4 integrated loudness of a mono clip in LUFS (gated, 400 ms blocks).

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)], float
        Mono samples in [-1, 1].
    sample_rate : int
        Rate in Hz.

    Returns
    -------
    float
        Loudness in LUFS. Clips shorter than one 400 ms block fall back to the ungated
        K-weighted power of the whole clip, with a warning (pyloudnorm raises there).

    Raises
    ------
    InputError
        If every block is below the -70 LUFS absolute gate (silence).
    """
    y = k_weight(audio, sample_rate)
    block, step = int(round(0.4 * sample_rate)), int(round(0.1 * sample_rate))
    if len(y) < block:
        warnings.warn(f"clip of {len(y) / sample_rate:.3f} s is shorter than a 400 ms block; "
                      f"using ungated K-weighted power", stacklevel=2)
        return float(-0.691 + 10 * np.log10(max(np.mean(y * y), _TINY)))
    starts = np.arange(0, len(y) - block + 1, step)
    csum = np.concatenate([[0.0], np.cumsum(y * y)])
    z = (csum[starts + block] - csum[starts]) / block
    loud = -0.691 + 10 * np.log10(np.maximum(z, _TINY))
    z = z[loud > -70.0]
    if len(z) == 0:
        raise InputError("no block above the -70 LUFS gate (BS.1770): the clip is silent")
    relative_gate = -0.691 + 10 * np.log10(np.mean(z)) - 10.0
    z = z[-0.691 + 10 * np.log10(z) > relative_gate]
    return float(-0.691 + 10 * np.log10(np.mean(z)))


def true_peak_dbtp(audio: np.ndarray) -> float:
    """True peak in dBTP: the largest magnitude after 4x oversampling (BS.1770 Annex 2 idea)."""
    up = signal.resample_poly(np.asarray(audio, np.float64), 4, 1)
    peak = max(float(np.max(np.abs(up))), float(np.max(np.abs(audio))))
    return float(20 * np.log10(max(peak, _TINY)))


def parse_level(spec: str) -> tuple[str, float | None]:
    """Parse ``p56:-26``, ``lufs:-23`` or ``none`` into (method, target).

    Raises
    ------
    InputError
        For any other form.
    """
    if spec == "none":
        return "none", None
    method, _, value = spec.partition(":")
    try:
        target = float(value)
    except ValueError:
        target = None
    if method not in ("p56", "lufs") or target is None or target >= 0:
        raise InputError(f"--level must be p56:<dB>, lufs:<LUFS> (negative) or none, got {spec!r}")
    return method, target


def measure_level(audio: np.ndarray, sample_rate: int, method: str) -> float:
    """The level of ``audio`` by ``method`` (``p56`` in dBov, ``lufs`` in LUFS, ``none``: 0)."""
    if method == "p56":
        return active_speech_level(audio, sample_rate)[0]
    if method == "lufs":
        return integrated_loudness(audio, sample_rate)
    return 0.0
