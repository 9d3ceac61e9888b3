"""Level alignment of the stimuli, and the steps around it: a common rate, a global true-peak
guard, PCM out."""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from wavebench.mos.packet.levels import measure_level, true_peak_dbtp
from wavebench_base.errors import InputError
from wavebench_base.files import atomic_path

MAX_RATE = 48000
TRUE_PEAK_MAX_DBTP = -1.0
MAX_PEAK_REDUCTION_DB = 6.0
FIXED_MTIME = 946684800  # 2000-01-01 UTC: packet files carry no build time (byte-identical zips)


def packet_rate(requested, native_rates: list) -> int:
    """``auto``: the highest native rate, capped at 48 kHz; else the requested rate.

    Raises
    ------
    InputError
        For a rate that is not a positive whole number.
    """
    if requested in (None, "auto"):
        return min(max(native_rates), MAX_RATE)
    try:
        rate = int(requested)
    except ValueError:
        rate = 0
    if rate <= 0:
        raise InputError(f"--sample-rate must be auto or a positive number of Hz, "
                         f"got {requested!r}")
    return rate


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample with soxr VHQ (upsampling adds no bandwidth)."""
    if rate == target:
        return np.asarray(audio, np.float64)
    return soxr.resample(np.asarray(audio, np.float64), rate, target, quality="VHQ")


def align_levels(stimuli: dict, sample_rate: int, method: str, target: float | None) -> dict:
    """Gains that bring every stimulus to one level, lowered globally to respect the peak limit.

    Parameters
    ----------
    stimuli : dict
        anon id -> np.ndarray [shape=(n,)] at ``sample_rate``.
    sample_rate : int
    method : str
        ``p56``, ``lufs`` or ``none``.
    target : float or None
        Target level (dBov for p56, LUFS for lufs); None for ``none``.

    Returns
    -------
    dict
        ``gains`` (anon -> dB), ``levels_in`` (anon -> dB), ``true_peaks`` (anon -> dBTP after
        gain), ``target`` (the target actually used) and ``reduction_db`` (global lowering).

    Raises
    ------
    InputError
        If more than 6 dB of global reduction would be needed; names the offending stimuli.
    """
    levels, gains, peaks = {}, {}, {}
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")  # short-clip fallbacks are expected for beeps etc.
        for anon, audio in stimuli.items():
            levels[anon] = measure_level(audio, sample_rate, method)
    for anon, audio in stimuli.items():
        gains[anon] = 0.0 if target is None else target - levels[anon]
        peaks[anon] = true_peak_dbtp(audio) + gains[anon]
    excess = max(peaks.values()) - TRUE_PEAK_MAX_DBTP
    reduction = max(0.0, excess)
    if reduction > MAX_PEAK_REDUCTION_DB:
        worst = sorted((a for a in peaks if peaks[a] - TRUE_PEAK_MAX_DBTP > MAX_PEAK_REDUCTION_DB),
                       key=lambda a: -peaks[a])
        raise InputError(f"true peak guard: {len(worst)} stimuli would need more than "
                         f"{MAX_PEAK_REDUCTION_DB:g} dB of global level reduction to stay below "
                         f"{TRUE_PEAK_MAX_DBTP:g} dBTP ({', '.join(worst[:8])}; see "
                         f"private/processing.csv); choose a lower --level target")
    gains = {a: g - reduction for a, g in gains.items()}
    peaks = {a: p - reduction for a, p in peaks.items()}
    used = None if target is None else target - reduction
    return {"gains": gains, "levels_in": levels, "true_peaks": peaks, "target": used,
            "reduction_db": reduction}


def quantize(audio: np.ndarray, bit_depth: int, seed_text: str) -> np.ndarray:
    """Quantize to integer PCM codes with TPDF dither (seeded by ``seed_text``: reproducible).

    Returns
    -------
    np.ndarray [shape=audio.shape]
        int16 codes for 16-bit; int32 codes (24 significant bits, left-aligned) for 24-bit.
    """
    seed = int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    full = 2 ** (bit_depth - 1)
    shape = np.shape(audio)  # (n,) or (n, channels)
    dither = rng.random(shape) - rng.random(shape)  # triangular, +-1 LSB
    codes = np.clip(np.round(np.asarray(audio, np.float64) * full + dither), -full, full - 1)
    if bit_depth == 16:
        return codes.astype(np.int16)
    return codes.astype(np.int32) << 8


def write_pcm(path: Path, codes: np.ndarray, sample_rate: int, bit_depth: int) -> Path:
    """Write PCM codes as a plain WAV (fmt + data only), atomically, with a fixed mtime."""
    subtype = "PCM_16" if bit_depth == 16 else "PCM_24"
    with atomic_path(path) as tmp:
        sf.write(str(tmp), codes, int(sample_rate), subtype=subtype, format="WAV")
    os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    return path
