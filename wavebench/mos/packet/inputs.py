"""Find, match and check the input clips of a listening test (listening-test.md 3)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wavebench.mos.packet.levels import active_speech_level
from wavebench_base.audio import load_audio
from wavebench_base.errors import InputError

MIN_DURATION_S = 0.2       # shorter clips cannot be rated (or levelled) meaningfully: error
WARN_DURATION_S = 0.4      # spec: a warning below this
SILENT_DBOV = -60.0        # spec: active level below this is silence
CLIP_LEVEL = 0.999         # spec: >= 3 consecutive samples at |x| >= 0.999 is clipping
CLIP_RUN = 3
MAX_NAME_LIST = 8          # how many missing items an error message names per system


@dataclass
class Clip:
    """One checked input clip.

    Attributes
    ----------
    system : str
        Condition name given on the command line (``name=dir``).
    item : str
        Relative path without extension, the key that matches clips across systems.
    path : Path
        Source file.
    audio : np.ndarray [shape=(n,)], float32
        Mono samples at ``sample_rate`` (the file's native rate).
    sample_rate : int
        Native rate in Hz.
    """

    system: str
    item: str
    path: Path
    audio: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.audio) / self.sample_rate


def parse_system(spec: str) -> tuple[str, Path]:
    """Split ``NAME=DIR`` into its name and folder.

    Raises
    ------
    InputError
        If there is no ``=``, the name is empty or has characters other than letters, digits,
        ``_``, ``-`` and ``.``.
    """
    name, sep, folder = spec.partition("=")
    if not sep or not name or not folder:
        raise InputError(f"systems are given as NAME=DIR, got {spec!r}")
    if not all(c.isalnum() or c in "_-." for c in name):
        raise InputError(f"system name {name!r} may hold only letters, digits, '_', '-' and '.'")
    return name, Path(folder)


def match_items(systems: dict, items: list | None = None) -> list:
    """The sorted item keys every system has (or ``items``, checked to be present in all).

    Parameters
    ----------
    systems : dict
        System name -> {item key -> Path}.
    items : list of str or None
        Items to use; None uses all items, which must then be the same in every system.

    Raises
    ------
    InputError
        Listing, per system, the items it lacks.
    """
    every = set().union(*[set(v) for v in systems.values()])
    wanted = set(every if items is None else items)
    problems = []
    for name, files in systems.items():
        missing = sorted(wanted - set(files))
        if missing:
            shown = ", ".join(missing[:MAX_NAME_LIST])
            extra = len(missing) - MAX_NAME_LIST
            more = f" and {extra} more" if extra > 0 else ""
            problems.append(f"{name} lacks {len(missing)} ({shown}{more})")
    if problems:
        raise InputError("items do not match across systems: " + "; ".join(problems)
                         + " (pass --items FILE to narrow the set)")
    return sorted(wanted)


def load_clip(system: str, item: str, path: Path, *, downmix: bool = False) -> Clip:
    """Load and check one clip (decodable, finite, not silent, not clipped, not too short).

    Raises
    ------
    InputError
        ``"<path>: <problem>"`` for unreadable, empty, NaN/Inf, silent, clipped, too short or
        multichannel files (two channels are accepted with ``downmix``).
    """
    loaded = load_audio(path)
    if loaded.channels > 2 or (loaded.channels == 2 and not downmix):
        hint = "" if loaded.channels > 2 else "; pass --downmix to mix it to mono"
        raise InputError(f"{loaded.channels} channels; listening-test stimuli are mono{hint}",
                         path)
    audio, rate = loaded.audio, loaded.sample_rate
    if len(audio) < MIN_DURATION_S * rate:
        raise InputError(f"too short: {len(audio) / rate:.3f} s (need at least "
                         f"{MIN_DURATION_S} s)", path)
    run = _longest_run(np.abs(audio) >= CLIP_LEVEL)
    if run >= CLIP_RUN:
        raise InputError(f"clipped: {run} consecutive samples at |x| >= {CLIP_LEVEL}", path)
    try:
        level = active_speech_level(audio, rate)[0]
    except InputError:
        level = -np.inf
    if level < SILENT_DBOV:
        raise InputError(f"silent: active level {level:.1f} dBov is below {SILENT_DBOV:.0f} dBov",
                         path)
    return Clip(system, item, Path(path), audio, rate)


def _longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True in ``mask``."""
    if not mask.any():
        return 0
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return int(np.max(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)))


def clip_warnings(clips: dict, method: str) -> list:
    """Warnings on rates, durations and DC offsets (listening-test.md 3), one line each.

    Parameters
    ----------
    clips : dict
        (system, item) -> Clip.
    method : str
        ``acr`` or ``mushra`` (MUSHRA items over 12 s get a warning).

    Raises
    ------
    InputError
        If the sample rate differs within one system.
    """
    notes = []
    by_system: dict = {}
    for clip in clips.values():
        by_system.setdefault(clip.system, []).append(clip)
    for system, group in by_system.items():
        rates = sorted({c.sample_rate for c in group})
        if len(rates) > 1:
            raise InputError(f"system {system} mixes sample rates {rates}; convert its files "
                             f"to one rate")
    for item in sorted({c.item for c in clips.values()}):
        group = [c for c in clips.values() if c.item == item]
        durations = [c.duration for c in group]
        if max(durations) / min(durations) > 1.5:
            notes.append(f"item {item}: durations differ by more than 1.5x across systems")
        if min(durations) < WARN_DURATION_S:
            notes.append(f"item {item}: a clip is shorter than {WARN_DURATION_S} s")
        if method == "mushra" and max(durations) > 12.0:
            notes.append(f"item {item}: longer than 12 s (webMUSHRA strict mode rejects it)")
    for clip in clips.values():
        if abs(float(np.mean(clip.audio))) > 0.01:
            notes.append(f"{clip.path}: DC offset above 1 % of full scale")
    return notes


def bandwidth_hz(audio: np.ndarray, sample_rate: int) -> float:
    """Frequency below which 99 % of the energy lies (tells "this system is effectively 8 kHz")."""
    spectrum = np.abs(np.fft.rfft(np.asarray(audio, np.float64))) ** 2
    cumulative = np.cumsum(spectrum) / max(float(spectrum.sum()), 1e-30)
    freqs = np.fft.rfftfreq(len(audio), 1 / sample_rate)
    return float(freqs[min(np.searchsorted(cumulative, 0.99), len(freqs) - 1)])
