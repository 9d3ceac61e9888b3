"""Anchor conditions rendered from the reference: zero-phase FIR low-passes and P.810 MNRU."""
from __future__ import annotations

import re

import numpy as np
from scipy import signal

from wavebench_base.errors import InputError

STOPBAND_DB = 65.0          # spec: at least 60 dB; 5 dB of headroom for the window estimate
TRANSITION_FRACTION = 0.05  # spec: transition band at most 5 % of the cutoff
VALIDITY_DB = -30.0         # energy above the cutoff below this (re total): the anchor ~ reference


def parse_anchor(name: str) -> tuple[str, float]:
    """Split an anchor name into its kind and parameter: ``lp3500`` -> ("lp", 3500.0).

    Raises
    ------
    InputError
        For a name that is not ``lp<Hz>`` or ``mnru<dB>``.
    """
    match = re.fullmatch(r"(lp|mnru)(\d+(?:\.\d+)?)", name)
    if not match:
        raise InputError(f"unknown anchor {name!r}; use lp<Hz> (e.g. lp3500, lp7000) or "
                         f"mnru<Q dB> (e.g. mnru10)")
    return match.group(1), float(match.group(2))


def lowpass_taps(cutoff_hz: float, sample_rate: int) -> np.ndarray:
    """Odd-length linear-phase Kaiser FIR low-pass with its transition band centred on the cutoff.

    Parameters
    ----------
    cutoff_hz : float
        -6 dB point in Hz; the transition band is ``cutoff * 0.05`` wide around it.
    sample_rate : int
        Rate in Hz.

    Returns
    -------
    np.ndarray [shape=(n_taps,)]
        Symmetric taps (``n_taps`` odd), so the delay is a whole number of samples.

    Raises
    ------
    InputError
        If the transition band reaches the Nyquist frequency.
    """
    nyquist = sample_rate / 2
    width = TRANSITION_FRACTION * cutoff_hz
    if cutoff_hz + width / 2 >= nyquist:
        need = 2 * (cutoff_hz + width / 2)
        raise InputError(f"anchor lp{cutoff_hz:g} needs a rate above {need:.0f} Hz; the packet rate "
                         f"is {sample_rate} Hz: drop this anchor")
    n_taps, beta = signal.kaiserord(STOPBAND_DB, width / nyquist)
    n_taps |= 1  # odd length: integer group delay, so 'same' convolution is exactly zero-phase
    return signal.firwin(n_taps, cutoff_hz, window=("kaiser", beta), fs=sample_rate)


def lowpass(audio: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    """Low-pass ``audio`` with :func:`lowpass_taps`, time-aligned (zero phase) with the input."""
    taps = lowpass_taps(cutoff_hz, sample_rate)
    return signal.fftconvolve(np.asarray(audio, np.float64), taps, mode="same")


def mnru(audio: np.ndarray, q_db: float, seed: int) -> np.ndarray:
    """P.810 modulated noise reference unit: ``y = x (1 + 10^(-Q/20) n)``, n white, unit variance.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)], float
    q_db : float
        Ratio of speech to modulated noise in dB (lower is worse).
    seed : int
        Seed of the noise, so a packet is reproducible.
    """
    noise = np.random.default_rng(seed).standard_normal(len(audio))
    x = np.asarray(audio, np.float64)
    return x * (1.0 + 10 ** (-q_db / 20) * noise)


def render_anchor(name: str, audio: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
    """Render anchor ``name`` (``lp<Hz>`` or ``mnru<Q>``) from a reference clip."""
    kind, value = parse_anchor(name)
    if kind == "lp":
        return lowpass(audio, sample_rate, value)
    return mnru(audio, value, seed)


def energy_above_db(audio: np.ndarray, sample_rate: int, cutoff_hz: float) -> float:
    """Energy above ``cutoff_hz`` relative to the total, in dB (how much a low-pass removes)."""
    spectrum = np.abs(np.fft.rfft(np.asarray(audio, np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / sample_rate)
    total = float(spectrum.sum())
    above = float(spectrum[freqs > cutoff_hz].sum())
    return 10 * np.log10(max(above, 1e-30) / max(total, 1e-30))


def anchor_validity(name: str, references: list, sample_rate: int) -> str | None:
    """A warning if anchor ``name`` barely changes the reference material, else None.

    Parameters
    ----------
    name : str
        Anchor name; only low-pass anchors can be near-identical to the reference.
    references : list of np.ndarray
        Reference clips at ``sample_rate``, pooled.
    """
    kind, value = parse_anchor(name)
    if kind != "lp" or not references:
        return None
    pooled = np.concatenate([np.asarray(r, np.float64) for r in references])
    removed = energy_above_db(pooled, sample_rate, value)
    if removed < VALIDITY_DB:
        return (f"{name} ~ reference for this material: it removes only {removed:.1f} dB of "
                f"energy (below {VALIDITY_DB:.0f} dB re total)")
    return None
