"""Audio file I/O: checked loading to mono float32, atomic WAV writing, and finding audio files
(by path, or keyed by their relative path without extension)."""
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from wavebench_base.errors import InputError
from wavebench_base.files import atomic_path

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
MAX_SAMPLES = 2 ** 31  # 8 GiB of float32: about 12 hours of 48 kHz stereo
#: Sample rates wavebench reads, in Hz. Outside them a header is corrupt or hostile: a file that
#: says 1 Hz would be resampled 16000-fold to meet a 16 kHz reference.
MIN_RATE, MAX_RATE = 1000, 768_000

# Bits per sample of the integer subtypes. soundfile scales by 2^(bits-1), so the largest
# positive code reads as 1 - 2^-(bits-1) and the most negative as -1; a threshold half a step
# below the positive maximum counts both as "at full scale" despite float32 rounding.
_INT_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}


@dataclass(frozen=True)
class LoadedAudio:
    """A checked, mono audio signal and what was done to it on the way in.

    Attributes
    ----------
    audio : np.ndarray [shape=(n,)], float32
        Mono samples at ``sample_rate``.
    sample_rate : int
        Rate of ``audio`` in Hz (the requested rate if resampled, else the file's).
    original_rate : int
        Rate stored in the file.
    channels : int
        Number of channels in the file (``audio`` is always mono).
    subtype : str
        soundfile subtype of the file, e.g. ``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``.
    notes : tuple of str
        Human-readable notes: down-mixing, resampling, clipping, over-range float samples.
    """

    audio: np.ndarray
    sample_rate: int
    original_rate: int
    channels: int
    subtype: str
    notes: tuple[str, ...] = ()


def load_audio(path, sample_rate=None, *, allow_silent=False, min_samples=1,
               allow_nonfinite=False) -> LoadedAudio:
    """Read an audio file as checked mono float32, resampled to ``sample_rate`` if given.

    Parameters
    ----------
    path : str or Path
        A file soundfile can read (WAV, FLAC, OGG, AIFF, MP3, ...); MP3 files that soundfile
        cannot read go through audioread instead.
    sample_rate : int or None
        Target rate in Hz; ``None`` keeps the file's rate. Resampling uses soxr (VHQ), on the
        float32 mono signal (see :func:`resample_audio`).
    allow_silent : bool
        Accept a file whose samples are all zero.
    allow_nonfinite : bool
        Accept NaN or Inf samples (noted, not resampled), so a scorer can record the utterance
        as failed rather than stop; training data never allows them.
    min_samples : int
        Fewest samples acceptable after resampling.

    Returns
    -------
    LoadedAudio
        Mono float32 audio with its rates, channel count, subtype and notes. Float files whose
        peak exceeds 1 are left unclipped (with a note).

    Raises
    ------
    InputError
        ``"<path>: <problem>"`` for a missing path, a directory, an empty or unreadable file,
        a rate outside [:data:`MIN_RATE`, :data:`MAX_RATE`] (refused before the samples are
        read), no samples, fewer than ``min_samples`` samples, NaN or Inf samples, all-zero
        audio (also channels that cancel when mixed; both unless ``allow_silent``), or a
        resample to more than :data:`MAX_SAMPLES` samples; a plain message for a
        ``sample_rate`` that is not a positive whole number.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     sf.write(f"{folder}/stereo.wav", np.full((22050, 2), 0.25), 22050)
    ...     clip = load_audio(f"{folder}/stereo.wav", 16000)
    >>> clip.audio.dtype, clip.audio.shape, clip.sample_rate, clip.original_rate, clip.channels
    (dtype('float32'), (16000,), 16000, 22050, 2)
    >>> clip.notes
    ('mixed 2 channels to mono', 'resampled 22050 -> 16000 Hz (soxr VHQ)')
    """
    if sample_rate is not None and (int(sample_rate) != sample_rate or sample_rate <= 0):
        raise InputError(f"sample_rate must be a positive whole number of Hz, got {sample_rate}")
    path = Path(path)
    _check_is_file(path)
    data, rate, subtype = _read(path)
    channels = data.shape[1]
    if data.shape[0] == 0:
        raise InputError(f"no samples ({subtype}, {channels} channel(s) at {rate} Hz, "
                         f"0 frames)", path)
    finite = _all_finite(data)
    if not finite and not allow_nonfinite:
        _check_finite(data, path)
    if not allow_silent and not np.any(data):
        raise InputError(f"all {data.size} samples are zero (silent); nothing to learn or "
                         f"score from a silent clip", path)
    notes = _range_notes(data, subtype)
    audio = data[:, 0] if channels == 1 else data.mean(axis=1, dtype=np.float64)
    if channels > 1:
        notes.append(f"mixed {channels} channels to mono")
        _check_mix(audio, data, path, allow_silent)
    if not finite:
        notes.append(f"{int((~np.isfinite(audio)).sum())} NaN or Inf samples")
    clip = LoadedAudio(np.ascontiguousarray(audio, dtype=np.float32), rate, rate, channels,
                       subtype, tuple(notes))
    if sample_rate is not None:
        clip = resample_audio(clip, int(sample_rate), path)
    if len(clip.audio) < min_samples:
        raise InputError(f"only {len(clip.audio)} samples at {clip.sample_rate} Hz "
                         f"({len(clip.audio) / clip.sample_rate:.4f} s); need at least "
                         f"{min_samples}", path)
    return clip


def resampled_length(frames: int, rate: int, target: int) -> int:
    """Samples that soxr makes of ``frames`` samples resampled from ``rate`` to ``target`` Hz.

    soxr rounds ``frames * target / rate`` to the nearest whole sample, halves up; computed here
    in integers, so a length can be checked (and a resample refused) before any work.
    """
    return (2 * frames * target + rate) // (2 * rate)


def resample_audio(clip: LoadedAudio, sample_rate: int, path=None, *,
                   max_samples: int = MAX_SAMPLES) -> LoadedAudio:
    """``clip`` resampled to ``sample_rate`` with soxr (VHQ) and noted; ``clip`` if already there.

    Parameters
    ----------
    clip : LoadedAudio
    sample_rate : int
        Target rate in Hz.
    path : str or Path, optional
        The file ``clip`` came from, to name in errors.
    max_samples : int
        Most samples the result may have; the length is known from the rates, so a resample
        beyond it is refused before anything is allocated.

    Returns
    -------
    LoadedAudio
        float32 audio at ``sample_rate``; ``original_rate`` is still the file's.

    Raises
    ------
    InputError
        The result would exceed ``max_samples``, or ``clip`` has NaN or Inf samples (a
        resampler would smear them over the whole clip).
    """
    rate = clip.sample_rate
    if sample_rate == rate:
        return clip
    n = resampled_length(clip.audio.size, rate, sample_rate)
    if n > max_samples:
        raise InputError(f"{clip.audio.size} samples at {rate} Hz resampled to {sample_rate} Hz "
                         f"would be {n} samples, more than wavebench holds ({max_samples}); is "
                         f"the {rate} Hz in the header right?", path)
    if not _all_finite(clip.audio):
        raise InputError(f"NaN or Inf samples at {rate} Hz cannot be resampled to "
                         f"{sample_rate} Hz", path)
    audio = soxr.resample(clip.audio, rate, sample_rate, quality="VHQ")
    return replace(clip, audio=np.ascontiguousarray(audio, dtype=np.float32),
                   sample_rate=sample_rate,
                   notes=clip.notes + (f"resampled {rate} -> {sample_rate} Hz (soxr VHQ)",))


def _check_is_file(path: Path) -> None:
    """Raise InputError unless ``path`` is an existing, non-empty regular file."""
    if not path.exists():
        raise InputError("no such file", path)
    if path.is_dir():
        raise InputError("is a directory, not an audio file", path)
    if path.stat().st_size == 0:
        raise InputError("empty file (0 bytes)", path)


def _check_rate(rate: int, path: Path) -> None:
    """Raise InputError for a rate outside [:data:`MIN_RATE`, :data:`MAX_RATE`]."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InputError(f"the header says {rate} Hz; wavebench reads {MIN_RATE} to {MAX_RATE} "
                         "Hz (corrupt header?)", path)


def _read(path: Path):
    """Decode ``path`` to float32 frames ``[n, channels]``; return (frames, rate, subtype)."""
    try:
        with sf.SoundFile(str(path)) as f:
            _check_rate(int(f.samplerate), path)
            if f.frames * f.channels > MAX_SAMPLES:
                raise InputError(f"header claims {f.frames} frames x {f.channels} channels, more "
                                 f"than wavebench reads ({MAX_SAMPLES} samples); corrupt header?",
                                 path)
            try:
                data = f.read(dtype="float32", always_2d=True)
            except MemoryError:
                raise InputError(f"not enough memory to read {f.frames} frames", path) from None
            return data, int(f.samplerate), str(f.subtype)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        # Drop soundfile's "Error opening '<path>': " prefix: InputError names the path already.
        problem = _one_line(re.sub(r"^Error opening .*?: ", "", str(err)))
    if path.suffix.lower() == ".mp3":
        return _read_mp3_fallback(path, problem)
    raise InputError(f"cannot read as audio: soundfile says: {problem}", path)


def _read_mp3_fallback(path: Path, sf_problem: str):
    """Decode an MP3 that libsndfile rejected (older libsndfile has no MP3) with audioread."""
    try:
        # audioread's backends import stdlib modules deprecated since Python 3.11 (aifc, ...).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import audioread
            with audioread.audio_open(str(path)) as f:
                channels, rate = int(f.channels), int(f.samplerate)
                pcm = b"".join(f)
    except Exception as err:  # audioread raises many unrelated types per backend
        said = _one_line(err)
        if type(err).__name__ == "NoBackendError":
            said = "no backend could decode it (it needs ffmpeg or GStreamer for MP3)"
        raise InputError(f"cannot read as audio: soundfile says: {sf_problem}; the MP3 "
                         f"fallback (audioread) says: {said}", path) from None
    _check_rate(rate, path)
    frames = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    return frames.reshape(-1, channels), rate, "MP3"


def _check_mix(mono: np.ndarray, data: np.ndarray, path: Path, allow_silent: bool) -> None:
    """Raise InputError if mixing to mono cancels the audio (phase-inverted channels).

    A rounding residue of a least significant bit or so can survive the cancellation, so
    "cancelled" means a mix 60 dB or more below the loudest channel, not exact zeros.
    """
    if allow_silent:  # silence is acceptable, and all-zero channels would divide by zero
        return
    ratio = float(np.max(np.abs(mono))) / float(np.max(np.abs(data)))
    if ratio < 1e-3:
        level = f"{20 * np.log10(ratio):.0f} dB" if ratio > 0 else "silent"
        raise InputError(f"the {data.shape[1]} channels cancel when mixed to mono (the mix is "
                         f"{level} against the loudest channel; is one the other inverted?)",
                         path)


def _one_line(err, limit: int = 200) -> str:
    """Squash an exception (or its message) to one short line for an error message."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _all_finite(data: np.ndarray) -> bool:
    """Whether no sample is NaN or infinite (min and max would be), without a per-sample mask."""
    return bool(np.isfinite(np.min(data)) and np.isfinite(np.max(data)))


def _check_finite(data: np.ndarray, path: Path) -> None:
    """Raise InputError naming how many samples are NaN or infinite and where the first one is."""
    finite = np.isfinite(data)
    if finite.all():
        return
    n_nan = int(np.isnan(data).sum())
    n_inf = int(data.size - finite.sum()) - n_nan
    first = int(np.argmin(finite.all(axis=1)))
    raise InputError(f"{n_nan} NaN and {n_inf} Inf samples (first at sample {first}); "
                     f"the file is damaged or was written from a diverged model", path)


def _range_notes(data: np.ndarray, subtype: str) -> list:
    """Notes on full-scale (likely clipped) frames and float samples beyond [-1, 1]."""
    notes = []
    peak = float(max(np.max(data), -np.min(data)))  # NaN if any sample is; no |data| copy
    bits = _INT_BITS.get(subtype)
    full_scale = 1.0 - 1.5 / 2 ** (bits - 1) if bits else 1.0
    n_full = 0
    if not peak < full_scale:  # count only when there can be some: it takes temporary copies
        n_full = int(np.count_nonzero(np.any(np.abs(data) >= full_scale, axis=1)))
    if n_full:
        notes.append(f"{n_full} samples at full scale (clipped?)")
    if peak > 1.0:
        notes.append(f"float samples beyond full scale: peak {peak:.3f} "
                     f"({20 * np.log10(peak):+.1f} dBFS), left unclipped")
    return notes


def save_wav(path, audio, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write ``audio`` to a WAV file atomically, creating parent folders.

    Parameters
    ----------
    path : str or Path
        Destination; the previous file (if any) stays intact until the new one is complete.
    audio : np.ndarray [shape=(n,) or (n, channels)], float
        Samples in [-1, 1]; clipped to that range for integer subtypes.
    sample_rate : int
        Rate in Hz.
    subtype : str
        soundfile WAV subtype: ``"PCM_16"`` (default), ``"PCM_24"``, ``"PCM_32"``, ``"PCM_U8"``,
        ``"FLOAT"``, ``"DOUBLE"``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        For NaN or Inf samples, a bad shape, or a subtype WAV cannot hold.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = save_wav(Path(folder) / "out" / "tone.wav", np.zeros(16000), 16000)
    ...     info = sf.info(path)
    >>> path.name, info.frames, info.samplerate, info.subtype
    ('tone.wav', 16000, 16000, 'PCM_16')
    """
    path = Path(path)
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2) or audio.shape[0] == 0:
        raise InputError(f"audio must be a non-empty array of shape (n,) or (n, channels), "
                         f"got shape {audio.shape}", path)
    if not np.all(np.isfinite(audio)):
        raise InputError("audio has NaN or Inf samples; refusing to write them", path)
    if not sf.check_format("WAV", subtype):
        raise InputError(f"WAV cannot hold subtype {subtype!r}; use one of "
                         f"{', '.join(sorted(sf.available_subtypes('WAV')))}", path)
    if subtype in _INT_BITS:
        audio = np.clip(audio, -1.0, 1.0)  # integer formats would wrap around, not saturate
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio, int(sample_rate), subtype=subtype, format="WAV")
    return path


def find_audio_files(directory) -> list:
    """List the audio files under ``directory``, recursively, sorted by path.

    Parameters
    ----------
    directory : str or Path
        Folder to search; files match :data:`AUDIO_EXTENSIONS` case-insensitively. Hidden
        files (names starting with ``.``, such as our own temporary files) are skipped.

    Returns
    -------
    list of Path

    Raises
    ------
    InputError
        If ``directory`` is missing, is not a folder, or holds no audio files.
    """
    directory = Path(directory)
    if not directory.exists():
        raise InputError("no such folder", directory)
    if not directory.is_dir():
        raise InputError("is a file, not a folder of audio files", directory)
    files = sorted(p for p in directory.rglob("*")
                   if p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")
                   and p.is_file())
    if not files:
        raise InputError(f"no audio files found (looked for {', '.join(AUDIO_EXTENSIONS)}, "
                         f"any case, in all subfolders)", directory)
    return files


def keyed_files(folder, what: str = "utterance") -> dict[str, Path]:
    """Audio files under ``folder`` by key (relative path without extension); two files with
    one key (a.wav, a.flac) are an error that calls the key a ``what``."""
    folder = Path(folder)
    keyed: dict[str, Path] = {}
    for path in find_audio_files(folder):
        key = path.relative_to(folder).with_suffix("").as_posix()
        if key in keyed:
            raise InputError(f"two files for {what} {key!r}: {keyed[key].name} and {path.name}",
                             folder)
        keyed[key] = path
    return keyed
