"""The prepared dataset: a folder of audio turned once into a memory-mappable store and a manifest.

Layout of a prepared folder::

    manifest.json   format, version, options, fingerprint, and one entry per file (written last)
    audio.npy       float32, every file's mono audio concatenated
    codes.npy       uint8, mu-law codes of audio.npy

Each manifest entry gives the file's ``offset`` and ``length`` in the two arrays.
"""
import hashlib
import json
import math
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from reference_model.config import shown
from reference_model.mulaw import mu_law_encode
from wavebench_base.audio import find_audio_files, load_audio
from wavebench_base.errors import InputError
from wavebench_base.files import building, clear_stale, locked
from wavebench_base.runinfo import file_sha256

FORMAT = "wavebench-prepared"
VERSION = 1
NORMALIZE = (None, "peak", "loudness")
PEAK_TARGET = 0.95  # headroom below full scale, so mu-law's top codes are not all clipped
LOUDNESS_DBFS = -20.0
# What prepare and load_prepared read from each manifest entry.
_ENTRY_KEYS = ("path", "sha256", "size", "mtime_ns", "duration", "offset", "length", "split",
               "speaker", "notes")
SPLITS = ("train", "valid")
# A clip may be a few samples longer than its file's duration times the rate (resampling
# rounds up); anything beyond this slack means the manifest was edited.
_LENGTH_SLACK = 1.01, 64
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class Utterance:
    """One clip of a dataset: mono float32 audio, its mu-law codes, and its speaker id."""

    name: str
    audio: np.ndarray
    codes: np.ndarray
    speaker: int = 0


@dataclass
class AudioSet:
    """A dataset split into train and validation clips, as the trainer consumes it.

    Attributes
    ----------
    sample_rate, classes : int
        Rate in Hz of every clip, and the number of mu-law classes of its codes.
    train, valid : list of Utterance
    speakers : list of str
        Speaker names; an utterance's ``speaker`` indexes this list.
    fingerprint : str
        Stable hash of the content (file hashes and options), recorded in checkpoints.
    """

    sample_rate: int
    classes: int
    train: list
    valid: list
    speakers: list
    fingerprint: str


@dataclass
class PrepareResult:
    """What :func:`prepare` did: counts, total duration, and notes on the inputs."""

    out_dir: Path
    reused: bool
    n_files: int
    n_train: int
    n_valid: int
    seconds: float
    notes: list = field(default_factory=list)


def prepare(audio_dir, out_dir, *, sample_rate=16000, trim_db=None, normalize=None,
            valid_fraction=0.2, seed=0, classes=256, progress=True) -> PrepareResult:
    """Read every audio file under ``audio_dir`` once into a prepared store in ``out_dir``.

    Each file is loaded to mono at ``sample_rate``, optionally trimmed and normalized, and
    mu-law encoded. Files are split into train and validation by a seeded hash of their
    relative path, so adding a file never moves another. Speakers are the first folder of
    each relative path ("" for files at the top). Nothing is written unless every file reads
    cleanly; the store is built in a temporary folder and swapped into place, manifest last.
    ``out_dir`` is locked for the run, and temporary folders that killed runs left beside it
    are removed first. An existing manifest that fails validation (see
    :func:`check_manifest`) is not reused: the store is prepared again, with a note saying why.

    Parameters
    ----------
    audio_dir : str or Path
        Folder tree of .wav, .flac, .ogg, .aiff/.aif and .mp3 files (at least 2).
    out_dir : str or Path
        Destination folder; it must be absent, empty, or an earlier prepared dataset.
    sample_rate : int
        Rate in Hz of the prepared audio.
    trim_db : float or None
        Trim leading and trailing audio quieter than this many dB below the clip's peak.
    normalize : {None, "peak", "loudness"}
        ``"peak"`` scales each clip's peak to 0.95; ``"loudness"`` scales its RMS to -20 dBFS,
        lowered where needed to keep the peak at or below 0.95.
    valid_fraction : float
        Expected share of files in validation, in (0, 1).
    seed : int
        Seed of the split.
    classes : int
        Mu-law classes, 2 to 256 (codes are stored as uint8).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    PrepareResult
        ``reused`` is True when ``out_dir`` already held this exact preparation.

    Raises
    ------
    InputError
        Bad options, a missing or empty ``audio_dir``, fewer than 2 files, any unreadable
        file (named), an ``out_dir`` that is something else, or another prepare writing to
        ``out_dir`` now.

    Examples
    --------
    Ten half-second tones by two speakers, prepared, prepared again unchanged, and loaded:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     for i in range(10):
    ...         speaker = Path(folder, "recordings", ("alice", "bob")[i % 2])
    ...         speaker.mkdir(parents=True, exist_ok=True)
    ...         tone = 0.5 * np.sin(2 * np.pi * 110 * (i + 1) * np.arange(8000) / 16000)
    ...         sf.write(speaker / f"{i}.wav", tone, 16000)
    ...     first = prepare(Path(folder, "recordings"), Path(folder, "data"), progress=False)
    ...     again = prepare(Path(folder, "recordings"), Path(folder, "data"), progress=False)
    ...     data = load_prepared(Path(folder, "data"))
    ...     print(len(data.train), len(data.valid), data.sample_rate, data.speakers)
    6 4 16000 ['alice', 'bob']
    >>> first.n_files, first.n_train, first.n_valid, first.seconds, first.reused
    (10, 6, 4, 5.0, False)
    >>> again.reused
    True
    """
    options = _options(sample_rate, trim_db, normalize, valid_fraction, seed, classes)
    audio_dir, out_dir = Path(audio_dir), Path(out_dir)
    files = find_audio_files(audio_dir)
    if len(files) < 2:
        raise InputError(f"only 1 audio file ({files[0].name}); at least 2 are needed to "
                         f"split into train and validation", audio_dir)
    _check_out_dir(out_dir)
    rels = [f.relative_to(audio_dir).as_posix() for f in files]
    stats = [f.stat() for f in files]
    with locked(out_dir, "output folder for the prepared dataset"):
        old, note = _reusable_manifest(out_dir, options, audio_dir, rels, stats)
        if old is not None:
            clear_stale(out_dir)  # temporary folders of killed runs; building() clears them too
            return _result(out_dir, old, reused=True)
        with building(out_dir) as tmp:
            entries = _write_store(tmp, files, rels, stats, options, progress)
            manifest = _manifest(options, entries)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return _result(out_dir, manifest, reused=False, notes=[note] if note else [])


def _options(sample_rate, trim_db, normalize, valid_fraction, seed, classes) -> dict:
    """Validate the preparation options and return them as the manifest records them."""
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise InputError(f"sample_rate must be a positive whole number of Hz, got {sample_rate}")
    if trim_db is not None and not trim_db > 0:
        raise InputError(f"trim_db must be a positive number of dB below the peak, got {trim_db}")
    if normalize not in NORMALIZE:
        raise InputError(f"normalize must be one of {', '.join(map(str, NORMALIZE))}; "
                         f"got {normalize!r}")
    if not 0.0 < valid_fraction < 1.0:
        raise InputError(f"valid_fraction must be between 0 and 1 (exclusive), "
                         f"got {valid_fraction}")
    if int(classes) != classes or not 2 <= classes <= 256:
        raise InputError(f"classes must be a whole number from 2 to 256 (codes are stored as "
                         f"uint8), got {classes}")
    return {"sample_rate": int(sample_rate), "trim_db": None if trim_db is None else float(trim_db),
            "normalize": normalize, "valid_fraction": float(valid_fraction), "seed": int(seed),
            "classes": int(classes)}


def _check_out_dir(out_dir: Path) -> None:
    """Refuse to replace a file or a folder of someone else's data with a prepared dataset."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is a file; choose a folder for the prepared dataset",
                         out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_prepared(out_dir):
        raise InputError("exists and is not a wavebench prepared dataset; choose an empty or "
                         "new folder (prepare replaces the folder's contents)", out_dir)


def _reusable_manifest(out_dir, options, audio_dir, rels, stats):
    """The existing manifest if it was made from these files with these options, else None;
    and a note when one was there but is damaged (then it is prepared again, not trusted).

    Size and modification time identify an unchanged file cheaply; where only the time
    differs (a copy, a ``touch``) the sha256 decides, so that alone forces no re-preparation.

    Returns
    -------
    (dict or None, str or None)
    """
    manifest = _read_manifest(out_dir)
    if (manifest is None or manifest.get("version") != VERSION
            or manifest.get("options") != options):
        return None, None
    try:
        check_manifest(manifest)
        _open_stores(out_dir, manifest)
    except (ManifestError, InputError) as exc:
        return None, f"{out_dir}: {exc}; not reused, prepared again"
    old = manifest["files"]
    if [e["path"] for e in old] != rels:
        return None, None
    for entry, rel, st in zip(old, rels, stats):
        if entry["size"] != st.st_size:
            return None, None
        if (entry["mtime_ns"] != st.st_mtime_ns
                and entry["sha256"] != file_sha256(audio_dir / rel)):
            return None, None
    return manifest, None


def _write_store(folder: Path, files, rels, stats, options, progress) -> list:
    """Load, process and append every file to raw arrays in ``folder``; return manifest entries.

    Audio streams to disk file by file, so memory holds one file at a time, not the corpus.
    """
    entries, offset = [], 0
    with open(folder / "audio.raw", "wb") as fa, open(folder / "codes.raw", "wb") as fc:
        for path, rel, st in tqdm(list(zip(files, rels, stats)), desc="prepare", unit="file",
                                  disable=not progress):
            clip = load_audio(path, options["sample_rate"])
            audio, notes = _process(clip.audio, options)
            codes = mu_law_encode(audio, options["classes"]).astype(np.uint8)
            fa.write(audio.astype("<f4").tobytes())
            fc.write(codes.tobytes())
            parts = rel.split("/")
            entries.append({
                "path": rel, "sha256": file_sha256(path), "size": st.st_size,
                "mtime_ns": st.st_mtime_ns, "original_rate": clip.original_rate,
                "channels": clip.channels, "subtype": clip.subtype,
                "duration": _file_duration(path, clip), "offset": offset, "length": len(audio),
                "split": _split(rel, options), "speaker": parts[0] if len(parts) > 1 else "",
                "notes": list(clip.notes) + notes})
            offset += len(audio)
    _force_both_splits(entries, options)
    _raw_to_npy(folder / "audio.raw", folder / "audio.npy", np.dtype("<f4"), offset)
    _raw_to_npy(folder / "codes.raw", folder / "codes.npy", np.dtype("u1"), offset)
    return entries


def _file_duration(path: Path, clip) -> float:
    """Duration in seconds of the file as stored (before resampling and trimming)."""
    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate
    except (sf.LibsndfileError, RuntimeError):  # read by the MP3 fallback decoder
        return len(clip.audio) / clip.sample_rate


def _process(audio: np.ndarray, options: dict):
    """Apply the optional trim and normalization; return (audio, notes).

    load_audio has rejected silent clips, so the peak is positive: trimming keeps at least the
    loudest frame and the normalizing gains are finite.
    """
    notes, rate = [], options["sample_rate"]
    if options["trim_db"] is not None:
        import librosa  # imported here: it is slow to import and only trimming needs it
        trimmed, (start, stop) = librosa.effects.trim(audio, top_db=options["trim_db"])
        if start or stop < len(audio):
            notes.append(f"trimmed {start / rate:.3f} s leading and "
                         f"{(len(audio) - stop) / rate:.3f} s trailing audio below "
                         f"{options['trim_db']:g} dB under the peak")
        audio = trimmed
    if options["normalize"] is not None:
        audio, note = _normalize(audio, options["normalize"])
        notes.append(note)
    return np.ascontiguousarray(audio, dtype=np.float32), notes


def _normalize(audio: np.ndarray, how: str):
    """Scale ``audio`` by peak or RMS loudness; return (audio, note)."""
    peak = float(np.max(np.abs(audio)))
    if how == "peak":
        gain = PEAK_TARGET / peak
        return audio * gain, (f"peak normalized to {PEAK_TARGET} "
                              f"(gain {20 * np.log10(gain):+.1f} dB)")
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    gain = 10 ** (LOUDNESS_DBFS / 20) / rms
    note = f"RMS normalized to {LOUDNESS_DBFS:g} dBFS (gain {20 * np.log10(gain):+.1f} dB)"
    if peak * gain > PEAK_TARGET:
        gain = PEAK_TARGET / peak
        note = (f"RMS normalization limited by the peak to {PEAK_TARGET} "
                f"(gain {20 * np.log10(gain):+.1f} dB, RMS {20 * np.log10(rms * gain):.1f} dBFS)")
    return audio * gain, note


def _split_key(rel: str, seed: int) -> float:
    """A uniform number in [0, 1) from a seeded hash of the relative path (stable everywhere)."""
    digest = hashlib.sha256(f"{seed}:{rel}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def _split(rel: str, options: dict) -> str:
    """``"valid"`` or ``"train"`` for one file, independent of every other file."""
    return "valid" if _split_key(rel, options["seed"]) < options["valid_fraction"] else "train"


def _force_both_splits(entries: list, options: dict) -> None:
    """Move the file nearest the boundary when a split came out empty (small folders)."""
    for missing, pick in (("valid", min), ("train", max)):
        if all(e["split"] != missing for e in entries):
            chosen = pick(entries, key=lambda e: _split_key(e["path"], options["seed"]))
            chosen["split"] = missing


def _raw_to_npy(raw: Path, npy: Path, dtype: np.dtype, length: int) -> None:
    """Turn a headerless array file into a ``.npy`` file (header, then the bytes, copied)."""
    with open(npy, "wb") as out, open(raw, "rb") as src:
        np.lib.format.write_array_header_1_0(
            out, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                  "shape": (length,)})
        shutil.copyfileobj(src, out, 1 << 24)
    raw.unlink()


def _manifest(options: dict, entries: list) -> dict:
    """The manifest document: format, options, fingerprint and file entries."""
    return {"format": FORMAT, "version": VERSION, "sample_rate": options["sample_rate"],
            "classes": options["classes"], "options": options,
            "fingerprint": _fingerprint(options, entries),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": entries}


def _fingerprint(options: dict, entries: list) -> str:
    """Stable hash of the options and each file's relative path and sha256."""
    doc = {"options": options, "files": [[e["path"], e["sha256"]] for e in entries]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _result(out_dir: Path, manifest: dict, reused: bool, notes=()) -> PrepareResult:
    """Summarize a manifest as a PrepareResult, after ``notes`` on the run itself."""
    files = manifest["files"]
    rate = manifest["sample_rate"]
    notes = [*notes, *(f"{e['path']}: {note}" for e in files for note in e["notes"])]
    n_valid = sum(e["split"] == "valid" for e in files)
    return PrepareResult(out_dir=out_dir, reused=reused, n_files=len(files),
                         n_train=len(files) - n_valid, n_valid=n_valid,
                         seconds=_store_length(manifest) / rate, notes=notes)


def is_prepared(path) -> bool:
    """Whether ``path`` is a folder holding a wavebench prepared dataset's manifest."""
    return _read_manifest(Path(path)) is not None


def _read_manifest(folder: Path):
    """The parsed manifest of ``folder``, or None if absent, unreadable or of another format."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None
    return manifest


def load_prepared(data_dir) -> AudioSet:
    """Open a prepared dataset, with each clip a memory-mapped view of the store.

    Parameters
    ----------
    data_dir : str or Path
        A folder written by :func:`prepare` (``wavebench prepare``).

    Returns
    -------
    AudioSet
        Train and validation utterances (audio float32, codes uint8, read-only views),
        speaker names, and the manifest's fingerprint.

    Raises
    ------
    InputError
        If the folder is missing, is not a prepared dataset, has another format version, a
        manifest that fails :func:`check_manifest` (an edited offset, say), or store files
        that are missing, truncated or inconsistent with the manifest.

    Examples
    --------
    :func:`prepare`'s example loads the store it prepares; any other folder is refused:

    >>> load_prepared("no/such/folder")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    wavebench_base.errors.InputError: no/such/folder: no such folder; run `wavebench prepare ...
    """
    data_dir = Path(data_dir)
    manifest = _checked_manifest(data_dir)
    files = manifest["files"]
    audio, codes = _open_stores(data_dir, manifest)
    speakers = sorted({e["speaker"] for e in files})
    speaker_id = {name: i for i, name in enumerate(speakers)}
    split = {"train": [], "valid": []}
    for e in files:
        window = slice(e["offset"], e["offset"] + e["length"])
        split[e["split"]].append(Utterance(e["path"], audio[window], codes[window],
                                           speaker_id[e["speaker"]]))
    return AudioSet(manifest["sample_rate"], manifest["classes"], split["train"],
                    split["valid"], speakers, manifest["fingerprint"])


def _checked_manifest(data_dir: Path) -> dict:
    """Read and validate ``data_dir/manifest.json``, raising InputError with what to do."""
    if not data_dir.exists():
        raise InputError("no such folder; run `wavebench prepare AUDIO_DIR -o DATA_DIR` first",
                         data_dir)
    if not data_dir.is_dir():
        raise InputError("is a file, not a prepared dataset folder", data_dir)
    hint = "run `wavebench prepare AUDIO_DIR -o DATA_DIR`"
    path = data_dir / "manifest.json"
    if not path.is_file():
        raise InputError(f"not a wavebench prepared dataset (no manifest.json); {hint}", data_dir)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"manifest.json is not valid JSON ({err}); {hint} again",
                         data_dir) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise InputError(f"not a wavebench prepared dataset (manifest format {found!r}, "
                         f"expected {FORMAT!r}); {hint}", data_dir)
    if manifest.get("version") != VERSION:
        raise InputError(f"prepared with format version {manifest.get('version')!r}; this "
                         f"wavebench reads version {VERSION}: {hint} again", data_dir)
    try:
        check_manifest(manifest)
    except ManifestError as exc:
        raise InputError(f"{exc}; {hint} again", data_dir) from None
    return manifest


class ManifestError(ValueError):
    """A manifest whose structure or values are not what :func:`prepare` writes."""


def check_manifest(manifest: dict) -> None:
    """Validate a manifest's structure and values, so that an edited one is never trusted.

    The options must be valid and agree with the top-level rate and classes; every entry must
    have its fields with the right types, lie in the store right after the one before
    (offsets are contiguous from 0, lengths positive), be no longer than its file's duration
    allows, and have a known split; paths must be unique; and the fingerprint must be the
    hash of the manifest's own options and files. The store's size is checked against the
    sum of the lengths when the store is opened.

    Raises
    ------
    ManifestError
        The first problem, naming manifest.json and the entry (index and path).
    """
    missing = [k for k in ("sample_rate", "classes", "fingerprint", "files", "options")
               if k not in manifest]
    if missing:
        raise ManifestError(f"manifest.json lacks {', '.join(missing)}")
    options = manifest["options"]
    try:
        valid = _options(**options) == options
    except (InputError, TypeError, ValueError, OverflowError):
        valid = False
    if not valid:
        raise ManifestError(f"manifest.json options are damaged: {shown(options)}")
    for key in ("sample_rate", "classes"):
        if type(manifest[key]) is not int or manifest[key] != options[key]:
            raise ManifestError(f"manifest.json {key} {shown(manifest[key])} differs from its "
                                f"options' {options[key]}")
    files = manifest["files"]
    if not isinstance(files, list) or not files:
        raise ManifestError("manifest.json files must be a non-empty list of entries")
    offset, seen = 0, set()
    for i, entry in enumerate(files):
        problem = _entry_problem(entry, offset, options["sample_rate"])
        name = entry.get("path") if isinstance(entry, dict) else None
        if problem is None and name in seen:
            problem = "its path is listed twice"
        if problem is not None:
            where = f" ({name})" if isinstance(name, str) else ""
            raise ManifestError(f"manifest.json file entry {i}{where} is damaged: {problem}")
        seen.add(name)
        offset += entry["length"]
    if manifest["fingerprint"] != _fingerprint(options, files):
        raise ManifestError("manifest.json fingerprint does not match its own options and files")


def _entry_problem(entry, offset: int, rate: int) -> str | None:
    """What is wrong with one manifest entry that should start at ``offset``, or None."""
    if not isinstance(entry, dict):
        return f"it is a {type(entry).__name__}, not an object"
    missing = [k for k in _ENTRY_KEYS if k not in entry]
    if missing:
        return f"it lacks {', '.join(missing)}"
    for key in ("path", "speaker"):
        if not isinstance(entry[key], str) or (key == "path" and not entry[key]):
            return f"{key} must be a text, got {shown(entry[key])}"
    if not isinstance(entry["sha256"], str) or not _SHA256.fullmatch(entry["sha256"]):
        return f"sha256 must be 64 hex digits, got {shown(entry['sha256'])}"
    for key in ("size", "mtime_ns", "offset", "length"):
        if not isinstance(entry[key], int) or isinstance(entry[key], bool):
            return f"{key} must be a whole number, got {shown(entry[key])}"
    if entry["offset"] != offset:
        return (f"offset must be {offset} (where the clip before it ends in the store), "
                f"got {shown(entry['offset'])}")
    if entry["length"] < 1 or entry["size"] < 0:
        return f"length and size must be positive, got {entry['length']} and {entry['size']}"
    duration = entry["duration"]
    if (not isinstance(duration, (int, float)) or isinstance(duration, bool)
            or not math.isfinite(duration) or duration <= 0):
        return f"duration must be a positive number of seconds, got {shown(duration)}"
    scale, slack = _LENGTH_SLACK
    if entry["length"] > duration * rate * scale + slack:
        return (f"length of {entry['length']} samples is more than its duration of "
                f"{duration:g} s holds at {rate} Hz")
    if entry["split"] not in SPLITS:
        return f"split must be one of {', '.join(SPLITS)}, got {shown(entry['split'])}"
    if not isinstance(entry["notes"], list) or not all(isinstance(n, str) for n in entry["notes"]):
        return "notes must be a list of texts"
    return None


def _store_length(manifest: dict) -> int:
    """Samples in the store of a checked manifest: where its last clip ends."""
    return sum(e["length"] for e in manifest["files"])


def _open_stores(folder: Path, manifest: dict) -> tuple[np.ndarray, np.ndarray]:
    """Memory-map ``folder``'s audio and codes stores, each checked against the manifest."""
    total = _store_length(manifest)
    return (_open_store(folder / "audio.npy", np.dtype("<f4"), total),
            _open_store(folder / "codes.npy", np.dtype("u1"), total))


def _open_store(path: Path, dtype: np.dtype, length: int) -> np.ndarray:
    """Memory-map one store array, checking it is present and has the manifest's length."""
    hint = "run `wavebench prepare` again"
    if not path.is_file():
        raise InputError(f"store file {path.name} is missing; {hint}", path.parent)
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise InputError(f"store file {path.name} is truncated or corrupt ({err}); {hint}",
                         path.parent) from None
    if array.dtype != dtype or array.shape != (length,):
        raise InputError(f"store file {path.name} holds {array.dtype} {array.shape}, but the "
                         f"manifest needs {dtype} ({length},); {hint}", path.parent)
    return array
