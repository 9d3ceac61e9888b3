"""The embedded default dataset: small, structured audio synthesized on the fly (no downloads).

Three clip families, one per "speaker" so that speaker conditioning has something to learn:

- ``tones``: short melodies of harmonic notes with vibrato and attack/decay envelopes;
- ``chords``: sustained major and minor triads (just intonation) with slow tremolo;
- ``formants``: a glottal-pulse-like source through three resonators gliding between vowels.

Every clip comes from its own seeded random stream and is rounded to the 16-bit grid, so the
same arguments give the same bytes on every call and every machine (last-bit differences in
``sin`` between CPUs vanish in the rounding), and a clip written as 16-bit WAV reads back
exactly.
"""
import hashlib
import json
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import lfilter

from reference_model.data import AudioSet, Utterance
from reference_model.mulaw import mu_law_encode
from wavebench_base.errors import InputError
from wavebench_base.files import atomic_path

GENERATOR = "wavebench-embedded"
GENERATOR_VERSION = 1
FAMILIES = ("tones", "chords", "formants")
VALID_EVERY = 5  # every 5th clip is validation: an 80/20 split that covers all three families
#: Clips in the default set: 320 train (10.7 minutes) and 80 valid. With the first 40 alone,
#: the demo's model memorized its 64 s of training audio: validation bits per sample rose
#: after 300 steps (4.39 -> 4.77 by step 1200) while 400 clips kept them falling.
DEFAULT_CLIPS = 400

# A pentatonic scale (semitones above the root) keeps the melodies tonal and predictable.
_PENTATONIC = np.array([0, 2, 4, 7, 9, 12, 14, 16])
# First three formant frequencies (Hz) of five vowels, after Peterson and Barney (1952).
_VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240],
                    [530, 1840, 2480], [570, 840, 2410]], dtype=float)


def embedded_audioset(sample_rate=16000, seed=0, n_clips=DEFAULT_CLIPS,
                      seconds=2.0) -> AudioSet:
    """Synthesize the embedded dataset: ``n_clips`` clips of ``seconds`` each, split 80/20.

    Parameters
    ----------
    sample_rate : int
        Rate in Hz, at least 8000 (the formants reach 3 kHz).
    seed : int
        Non-negative seed; each clip ``i`` draws from the stream ``(seed, i)``, so the first
        clips do not change when ``n_clips`` does.
    n_clips : int
        Number of clips, at least 2; clip ``i`` belongs to family ``i % 3``.
    seconds : float
        Duration of every clip.

    Returns
    -------
    AudioSet
        Clips named ``"<family>_<i>"`` with speaker = family index, float32 audio on the
        16-bit grid (peaks 0.5 to 0.9), uint8 mu-law codes (256 classes); every 5th clip is
        in ``valid``. The fingerprint hashes the generator version and the arguments.

    Raises
    ------
    InputError
        For a rate under 8000 Hz, a negative seed, fewer than 2 clips, or clips shorter than
        a tenth of a second.

    Examples
    --------
    >>> data = embedded_audioset()
    >>> len(data.train), len(data.valid), data.speakers
    (320, 80, ['tones', 'chords', 'formants'])
    """
    n = _check_args(sample_rate, seed, n_clips, seconds)
    synth = (_tones, _chords, _formants)
    train, valid = [], []
    for i in range(n_clips):
        family = i % len(FAMILIES)
        rng = np.random.default_rng([seed, i])
        audio = _finish(synth[family](rng, n, sample_rate), rng)
        clip = Utterance(f"{FAMILIES[family]}_{i:03d}", audio,
                         mu_law_encode(audio, 256).astype(np.uint8), family)
        (valid if i % VALID_EVERY == VALID_EVERY - 1 else train).append(clip)
    if not valid:  # fewer than 5 clips: the last one validates
        valid.append(train.pop())
    params = {"generator": GENERATOR, "version": GENERATOR_VERSION, "sample_rate": sample_rate,
              "seed": seed, "n_clips": n_clips, "seconds": float(seconds)}
    fingerprint = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    return AudioSet(sample_rate, 256, train, valid, list(FAMILIES), fingerprint)


def _check_args(sample_rate, seed, n_clips, seconds) -> int:
    """Validate the arguments; return the clip length in samples."""
    if int(sample_rate) != sample_rate or sample_rate < 8000:
        raise InputError(f"sample_rate must be a whole number of Hz, at least 8000, "
                         f"got {sample_rate}")
    if int(seed) != seed or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed}")
    if int(n_clips) != n_clips or n_clips < 2:
        raise InputError(f"n_clips must be at least 2 (one train, one valid), got {n_clips}")
    if not seconds >= 0.1:
        raise InputError(f"seconds must be at least 0.1, got {seconds}")
    return int(round(seconds * sample_rate))


def _finish(audio: np.ndarray, rng) -> np.ndarray:
    """Scale to a random peak in [0.5, 0.9], add faint noise, round to the 16-bit grid."""
    audio = audio * (rng.uniform(0.5, 0.9) / np.max(np.abs(audio)))
    audio = audio + rng.normal(0.0, 10 ** (-50 / 20), len(audio))  # noise floor at -50 dBFS
    codes16 = np.clip(np.round(audio * 32768), -32768, 32767)
    return (codes16 / 32768).astype(np.float32)


def _harmonic(phase: np.ndarray, amplitudes) -> np.ndarray:
    """Sum of harmonics k = 1, 2, ... of a phase track (radians), with the given amplitudes.

    sin(k phase) comes from the recurrence s_(k+1) = 2 cos(phase) s_k - s_(k-1), which costs a
    multiply-add per harmonic instead of a sine (a few harmonics keep it accurate).
    """
    two_cos = 2 * np.cos(phase)
    prev, cur = np.zeros_like(phase), np.sin(phase)
    total = np.zeros_like(phase)
    for a in amplitudes:
        total += a * cur
        prev, cur = cur, two_cos * cur - prev
    return total


def _vibrato(rng, n: int, sr: int) -> np.ndarray:
    """A frequency multiplier around 1: depth 0.3 to 1.2 %, rate 4 to 6.5 Hz."""
    t = np.arange(n) / sr
    return 1 + rng.uniform(0.003, 0.012) * np.sin(2 * np.pi * rng.uniform(4, 6.5) * t)


def _note(rng, n: int, sr: int, f0: float, vibrato=None) -> np.ndarray:
    """One harmonic note with vibrato and an attack / exponential-decay / release envelope."""
    t = np.arange(n) / sr
    vibrato = _vibrato(rng, n, sr) if vibrato is None else vibrato
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / sr
    n_harm = max(1, min(8, int(0.45 * sr / f0)))
    tone = _harmonic(phase, rng.uniform(0.3, 1.0, n_harm) / np.arange(1, n_harm + 1))
    attack, release = rng.uniform(0.005, 0.04), 0.01
    envelope = (np.minimum(1, t / attack) * np.exp(-t * rng.uniform(0.5, 3.0))
                * np.clip((n / sr - t) / release, 0, 1))
    return tone * envelope


def _tones(rng, n: int, sr: int) -> np.ndarray:
    """A melody of 2 to 4 pentatonic notes over a root between 110 and 220 Hz."""
    root = 110 * 2 ** rng.uniform(0, 1)
    bounds = np.linspace(0, n, rng.integers(2, 5) + 1).astype(int)
    notes = [_note(rng, b - a, sr, root * 2 ** (rng.choice(_PENTATONIC) / 12))
             for a, b in zip(bounds[:-1], bounds[1:])]
    return np.concatenate(notes)


def _chords(rng, n: int, sr: int) -> np.ndarray:
    """One or two sustained triads with slow tremolo.

    Just intonation (4:5:6 major, 10:12:15 minor) and one shared vibrato keep the three
    notes locked together, so each chord repeats exactly at its common period.
    """
    bounds = np.linspace(0, n, rng.integers(1, 3) + 1).astype(int)
    parts = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        root = 130 * 2 ** rng.uniform(0, 1)
        ratios = (1.0, 5 / 4, 3 / 2) if rng.random() < 0.5 else (1.0, 6 / 5, 3 / 2)
        vibrato = _vibrato(rng, b - a, sr)
        chord = sum(_note(rng, b - a, sr, root * r, vibrato) for r in ratios)
        t = np.arange(b - a) / sr
        parts.append(chord * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(1, 3) * t)))
    return np.concatenate(parts)


def _glottal_source(rng, n: int, sr: int) -> np.ndarray:
    """A Rosenberg-like glottal pulse train, differentiated (lip radiation), gliding in pitch."""
    t = np.arange(n) / sr
    f0 = rng.uniform(100, 200) * 2 ** (rng.uniform(-0.3, 0.3) * np.sin(
        2 * np.pi * rng.uniform(0.3, 1.0) * t + rng.uniform(0, 2 * np.pi)))
    p = np.cumsum(f0 / sr) % 1.0
    opening, closing = 0.4, 0.16
    pulse = np.where(p < opening, 0.5 * (1 - np.cos(np.pi * p / opening)),
                     np.where(p < opening + closing,
                              np.cos(np.pi * (p - opening) / (2 * closing)), 0.0))
    return np.diff(pulse, prepend=0.0)


def _formants(rng, n: int, sr: int, block: int = 160) -> np.ndarray:
    """The glottal source through three two-pole resonators gliding between two or three vowels.

    The three resonators run as one sixth-order filter (their denominators multiplied), whose
    coefficients change every ``block`` samples; the filter state carries across blocks
    (scipy's ``zi``) so the glide has no clicks.
    """
    source = _glottal_source(rng, n, sr)
    targets = _VOWELS[rng.choice(len(_VOWELS), size=rng.integers(2, 4), replace=False)]
    starts = np.arange(0, n, block)
    where = np.linspace(0, len(targets) - 1, len(starts))
    tracks = np.stack([np.interp(where, np.arange(len(targets)), targets[:, k])
                       for k in range(3)], axis=1)
    radius = np.exp(-np.pi * np.array([80.0, 100.0, 140.0]) / sr)  # bandwidths in Hz
    gain = np.prod(1 - radius)
    out, state = np.empty(n), np.zeros(6)
    for start, freqs in zip(starts, tracks):
        a = np.array([1.0])
        for r, f in zip(radius, freqs):
            a = np.convolve(a, [1.0, -2 * r * np.cos(2 * np.pi * f / sr), r * r])
        seg = slice(start, start + block)
        out[seg], state = lfilter([gain], a, source[seg], zi=state)
    t = np.arange(n) / sr
    return out * np.minimum(1, t / 0.02) * np.clip((n / sr - t) / 0.02, 0, 1)


def write_embedded_audio(out_dir, sample_rate=16000, seed=0, split="valid") -> list:
    """Write the embedded clips as 16-bit WAV files (atomically), e.g. as demo references.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write ``<name>.wav`` files into (created if needed).
    sample_rate, seed : int
        As for :func:`embedded_audioset` (with its default clip count and length).
    split : {"valid", "train", "all"}
        Which clips to write.

    Returns
    -------
    list of Path
        The files written, in clip order. Reading one back gives the clip's audio exactly.

    Raises
    ------
    InputError
        For an unknown ``split`` (and as :func:`embedded_audioset`).
    """
    if split not in ("valid", "train", "all"):
        raise InputError(f"split must be 'valid', 'train' or 'all', got {split!r}")
    data = embedded_audioset(sample_rate, seed)
    clips = {"valid": data.valid, "train": data.train, "all": data.train + data.valid}[split]
    paths = []
    for clip in sorted(clips, key=lambda c: c.name):
        path = Path(out_dir) / f"{clip.name}.wav"
        with atomic_path(path) as tmp:
            # Integer samples are written verbatim, so the file holds the 16-bit grid exactly.
            pcm = np.round(clip.audio.astype(np.float64) * 32768).astype(np.int16)
            sf.write(str(tmp), pcm, sample_rate, subtype="PCM_16", format="WAV")
        paths.append(path)
    return paths
