"""Tests of reference_model.data: prepare a folder once, reuse it, load it back memory-mapped."""
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from reference_model.data import is_prepared, load_prepared, prepare
from reference_model.mulaw import mu_law_encode
from wavebench_base.audio import load_audio
from wavebench_base.errors import InputError

SPEECH = Path(__file__).resolve().parent / "data" / "speech16k"  # see tests/data/README.md
RATE = 16000


def _tone(seconds, rate, f0, seed, peak=0.6):
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.01, len(t))
    return peak * np.sin(2 * np.pi * f0 * t) + noise


def _make_corpus(root: Path) -> Path:
    """Six small files in two speaker folders: mono, stereo, 44.1 kHz, 24-bit, FLAC."""
    (root / "alice").mkdir(parents=True)
    (root / "bob").mkdir()
    sf.write(root / "alice/a1.wav", _tone(0.30, RATE, 220, 1), RATE, subtype="PCM_16")
    sf.write(root / "alice/a2.flac", _tone(0.25, 44100, 330, 2), 44100, subtype="PCM_16")
    sf.write(root / "alice/a3.wav", _tone(0.20, RATE, 440, 3), RATE, subtype="PCM_24")
    stereo = np.stack([_tone(0.3, RATE, 200, 4), _tone(0.3, RATE, 300, 5)], axis=1)
    sf.write(root / "bob/b1.wav", stereo, RATE, subtype="PCM_16")
    sf.write(root / "bob/b2.wav", _tone(0.35, RATE, 250, 6), RATE, subtype="FLOAT")
    sf.write(root / "bob/b3.flac", _tone(0.15, RATE, 500, 7), RATE, subtype="PCM_24")
    return root


@pytest.fixture
def corpus(tmp_path):
    return _make_corpus(tmp_path / "audio")


def _manifest(out):
    return json.loads((out / "manifest.json").read_text())


def _all(data):
    return {u.name: u for u in data.train + data.valid}


def _entries(folder):
    """Names in ``folder`` other than prepare's lock files (``.NAME.lock``, kept by design)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_manifest_fields(corpus, tmp_path):
    out = tmp_path / "data"
    result = prepare(corpus, out, progress=False)
    m = _manifest(out)
    assert (m["format"], m["version"], m["sample_rate"], m["classes"]) == (
        "wavebench-prepared", 1, 16000, 256)
    assert m["options"] == {"sample_rate": 16000, "trim_db": None, "normalize": None,
                            "valid_fraction": 0.2, "seed": 0, "classes": 256}
    files = {e["path"]: e for e in m["files"]}
    assert sorted(files) == ["alice/a1.wav", "alice/a2.flac", "alice/a3.wav", "bob/b1.wav",
                             "bob/b2.wav", "bob/b3.flac"]
    for rel, e in files.items():
        info = sf.info(corpus / rel)
        assert e["sha256"] == hashlib.sha256((corpus / rel).read_bytes()).hexdigest()
        assert (e["original_rate"], e["channels"], e["subtype"]) == (
            info.samplerate, info.channels, info.subtype)
        assert e["duration"] == pytest.approx(info.duration, abs=1e-12)
        assert e["speaker"] == rel.split("/")[0]
        assert e["split"] in ("train", "valid")
    assert files["alice/a2.flac"]["length"] == 4000  # 0.25 s at 16 kHz after resampling
    assert "resampled 44100 -> 16000 Hz (soxr VHQ)" in files["alice/a2.flac"]["notes"]
    assert "mixed 2 channels to mono" in files["bob/b1.wav"]["notes"]
    # Contiguous offsets in file order, and the store is exactly as long as the files.
    offsets = np.cumsum([0] + [e["length"] for e in m["files"]])
    assert [e["offset"] for e in m["files"]] == list(offsets[:-1])
    assert np.load(out / "audio.npy", mmap_mode="r").shape == (offsets[-1],)
    assert (result.n_files, result.n_train + result.n_valid, result.reused) == (6, 6, False)
    assert result.seconds == pytest.approx(offsets[-1] / RATE)
    assert "bob/b1.wav: mixed 2 channels to mono" in result.notes
    assert sorted(p.name for p in out.iterdir()) == ["audio.npy", "codes.npy", "manifest.json"]
    assert [n for n in _entries(tmp_path) if n.startswith(".")] == []  # no temp dirs


def test_loaded_audio_and_codes_match_the_files(corpus, tmp_path):
    prepare(corpus, tmp_path / "data", progress=False)
    data = load_prepared(tmp_path / "data")
    assert (data.sample_rate, data.classes, data.speakers) == (RATE, 256, ["alice", "bob"])
    clips = _all(data)
    assert len(clips) == 6
    for name, utt in clips.items():
        expected = load_audio(corpus / name, RATE).audio
        np.testing.assert_array_equal(utt.audio, expected)  # same code path, stored losslessly
        np.testing.assert_array_equal(utt.codes, mu_law_encode(expected).astype(np.uint8))
        assert utt.audio.dtype == np.float32 and utt.codes.dtype == np.uint8
        assert data.speakers[utt.speaker] == name.split("/")[0]
    assert not clips["alice/a1.wav"].audio.flags.writeable  # a read-only memory map


def test_split_is_deterministic_and_both_sides_used(corpus, tmp_path):
    first = prepare(corpus, tmp_path / "d1", progress=False)
    prepare(corpus, tmp_path / "d2", progress=False)
    split1 = {e["path"]: e["split"] for e in _manifest(tmp_path / "d1")["files"]}
    split2 = {e["path"]: e["split"] for e in _manifest(tmp_path / "d2")["files"]}
    assert split1 == split2
    assert first.n_train >= 1 and first.n_valid >= 1
    data = load_prepared(tmp_path / "d1")
    assert {u.name for u in data.valid} == {p for p, s in split1.items() if s == "valid"}


def test_adding_a_file_does_not_move_others(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(20):
        sf.write(root / f"f{i:02d}.wav", _tone(0.02, RATE, 200 + 10 * i, i), RATE)
    prepare(root, tmp_path / "d1", progress=False)
    sf.write(root / "new.wav", _tone(0.02, RATE, 900, 99), RATE)
    prepare(root, tmp_path / "d2", progress=False)
    before = {e["path"]: e["split"] for e in _manifest(tmp_path / "d1")["files"]}
    after = {e["path"]: e["split"] for e in _manifest(tmp_path / "d2")["files"]}
    assert {k: after[k] for k in before} == before
    assert all(e["speaker"] == "" for e in _manifest(tmp_path / "d2")["files"])  # no subfolders
    # A different seed gives a different split of the same 21 files (fixed seeds: no flake).
    prepare(root, tmp_path / "d3", seed=1, progress=False)
    other = {e["path"]: e["split"] for e in _manifest(tmp_path / "d3")["files"]}
    assert other != after


def test_two_files_get_one_train_and_one_valid(tmp_path):
    root = tmp_path / "two"
    root.mkdir()
    for i in range(2):
        sf.write(root / f"{i}.wav", _tone(0.02, RATE, 300, i), RATE)
    for fraction in (0.01, 0.99):  # hash alone would put both files on one side
        result = prepare(root, tmp_path / f"d{fraction}", valid_fraction=fraction,
                         progress=False)
        assert (result.n_train, result.n_valid) == (1, 1)


def test_peak_normalization(corpus, tmp_path):
    prepare(corpus, tmp_path / "data", normalize="peak", progress=False)
    for name, utt in _all(load_prepared(tmp_path / "data")).items():
        raw = load_audio(corpus / name, RATE).audio
        assert np.max(np.abs(utt.audio)) == pytest.approx(0.95, rel=1e-6)  # float32 scaling
        # A pure gain: the stored clip is the loaded clip times one number.
        gain = 0.95 / np.max(np.abs(raw))
        np.testing.assert_allclose(utt.audio, raw * gain, rtol=1e-6, atol=1e-7)


def test_loudness_normalization_and_peak_guard(tmp_path):
    root = tmp_path / "loud"
    root.mkdir()
    sf.write(root / "quiet.wav", _tone(0.2, RATE, 300, 1, peak=0.05), RATE, subtype="FLOAT")
    spiky = np.zeros(3200)
    spiky[::400] = 0.5  # RMS far below the peak: reaching -20 dBFS would clip
    sf.write(root / "spiky.wav", spiky, RATE, subtype="FLOAT")
    prepare(root, tmp_path / "data", normalize="loudness", progress=False)
    clips = _all(load_prepared(tmp_path / "data"))
    quiet = clips["quiet.wav"].audio.astype(np.float64)
    assert 20 * np.log10(np.sqrt(np.mean(quiet ** 2))) == pytest.approx(-20.0, abs=1e-4)
    spikes = clips["spiky.wav"].audio
    assert np.max(np.abs(spikes)) == pytest.approx(0.95, rel=1e-6)
    notes = {e["path"]: e["notes"] for e in _manifest(tmp_path / "data")["files"]}
    assert any("limited by the peak" in n for n in notes["spiky.wav"])


def test_trim_removes_silence_around_a_tone(tmp_path):
    root = tmp_path / "pad"
    root.mkdir()
    tone = _tone(0.5, RATE, 300, 1)
    padded = np.concatenate([np.zeros(8000), tone, np.zeros(8000)])
    sf.write(root / "padded.wav", padded, RATE, subtype="FLOAT")
    sf.write(root / "other.wav", tone, RATE, subtype="FLOAT")
    prepare(root, tmp_path / "data", trim_db=40, progress=False)
    entry = {e["path"]: e for e in _manifest(tmp_path / "data")["files"]}["padded.wav"]
    # librosa trims on frames (2048 long, hop 512), so up to one frame of silence may stay
    # on each side; all of the tone must stay.
    assert len(tone) <= entry["length"] <= len(tone) + 2 * 2048
    assert entry["duration"] == pytest.approx(len(padded) / RATE)  # the file, untrimmed
    assert any(n.startswith("trimmed ") for n in entry["notes"])


def test_prepare_is_reused_until_an_input_changes(corpus, tmp_path):
    out = tmp_path / "data"
    first = prepare(corpus, out, progress=False)
    manifest_bytes = (out / "manifest.json").read_bytes()
    fingerprint = load_prepared(out).fingerprint
    again = prepare(corpus, out, progress=False)
    assert again.reused and (again.n_train, again.n_valid) == (first.n_train, first.n_valid)
    assert (out / "manifest.json").read_bytes() == manifest_bytes
    # A new modification time with the same bytes is still the same input (sha256 decides).
    os.utime(corpus / "alice/a1.wav", ns=(1, 1))
    assert prepare(corpus, out, progress=False).reused
    # Changed content, or changed options, prepare anew.
    sf.write(corpus / "alice/a1.wav", _tone(0.30, RATE, 260, 11), RATE, subtype="PCM_16")
    redone = prepare(corpus, out, progress=False)
    assert not redone.reused
    assert load_prepared(out).fingerprint != fingerprint
    np.testing.assert_array_equal(_all(load_prepared(out))["alice/a1.wav"].audio,
                                  load_audio(corpus / "alice/a1.wav").audio)
    assert not prepare(corpus, out, seed=5, progress=False).reused
    assert [n for n in _entries(tmp_path) if n.startswith(".")] == []


def test_fingerprint_is_stable(corpus, tmp_path):
    prepare(corpus, tmp_path / "d1", progress=False)
    prepare(corpus, tmp_path / "d2", progress=False)
    assert load_prepared(tmp_path / "d1").fingerprint == load_prepared(tmp_path / "d2").fingerprint
    prepare(corpus, tmp_path / "d3", normalize="peak", progress=False)
    assert load_prepared(tmp_path / "d3").fingerprint != load_prepared(tmp_path / "d1").fingerprint


def test_progress_bar_when_asked(corpus, tmp_path, capsys):
    prepare(corpus, tmp_path / "data", progress=True)
    assert "prepare" in capsys.readouterr().err


# ---- bad input ------------------------------------------------------------------------------

def _err(path, problem):
    return rf"^{re.escape(str(path))}: .*{problem}"


def test_missing_and_empty_audio_dir(tmp_path):
    with pytest.raises(InputError, match=_err(tmp_path / "gone", "no such folder")):
        prepare(tmp_path / "gone", tmp_path / "data", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=_err(tmp_path / "empty", "no audio files found")):
        prepare(tmp_path / "empty", tmp_path / "data", progress=False)
    assert not (tmp_path / "data").exists()


def test_single_file_is_not_enough(tmp_path):
    root = tmp_path / "one"
    root.mkdir()
    sf.write(root / "only.wav", _tone(0.1, RATE, 300, 1), RATE)
    with pytest.raises(InputError, match=_err(root, r"only 1 audio file \(only.wav\); at least "
                                                    r"2 are needed")):
        prepare(root, tmp_path / "data", progress=False)


def test_one_bad_file_stops_the_run_and_writes_nothing(corpus, tmp_path):
    bad = corpus / "bob" / "b9.wav"
    bad.write_text("not audio")
    out = tmp_path / "out" / "data"
    with pytest.raises(InputError, match=_err(bad, "cannot read as audio")):
        prepare(corpus, out, progress=False)
    assert not out.exists()
    assert _entries(out.parent) == []  # no temporary folder left either


def test_failed_reprepare_keeps_the_previous_store(corpus, tmp_path):
    out = tmp_path / "data"
    prepare(corpus, out, progress=False)
    before = (out / "manifest.json").read_bytes()
    sf.write(corpus / "alice" / "silent.wav", np.zeros(100), RATE)
    with pytest.raises(InputError, match=_err(corpus / "alice" / "silent.wav", "are zero")):
        prepare(corpus, out, progress=False)
    assert (out / "manifest.json").read_bytes() == before
    assert len(_all(load_prepared(out))) == 6
    assert _entries(tmp_path) == ["audio", "data"]


def test_refuses_to_overwrite_other_folders(corpus, tmp_path):
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.txt").write_text("do not delete")
    with pytest.raises(InputError, match=_err(other, "not a wavebench prepared dataset")):
        prepare(corpus, other, progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=_err(tmp_path / "file", "exists and is a file")):
        prepare(corpus, tmp_path / "file", progress=False)
    assert (other / "thesis.txt").read_text() == "do not delete"
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare(corpus, empty, progress=False)  # an empty folder is fine
    assert is_prepared(empty)


@pytest.mark.parametrize("option, message", [
    ({"sample_rate": 0}, "sample_rate must be a positive whole number of Hz, got 0"),
    ({"trim_db": -3}, "trim_db must be a positive number of dB below the peak, got -3"),
    ({"normalize": "rms"}, "normalize must be one of None, peak, loudness; got 'rms'"),
    ({"valid_fraction": 1.0}, r"valid_fraction must be between 0 and 1 \(exclusive\), got 1.0"),
    ({"classes": 512}, "classes must be a whole number from 2 to 256 .*got 512"),
])
def test_bad_options(corpus, tmp_path, option, message):
    with pytest.raises(InputError, match=message):
        prepare(corpus, tmp_path / "data", progress=False, **option)
    assert not (tmp_path / "data").exists()


def test_is_prepared(corpus, tmp_path):
    assert not is_prepared(tmp_path / "nothing")
    assert not is_prepared(corpus)
    prepare(corpus, tmp_path / "data", progress=False)
    assert is_prepared(tmp_path / "data")


@pytest.fixture
def prepared(corpus, tmp_path):
    out = tmp_path / "data"
    prepare(corpus, out, progress=False)
    return out


def _edit_manifest(out, **changes):
    m = _manifest(out)
    m.update(changes)
    (out / "manifest.json").write_text(json.dumps(m))


def test_load_prepared_missing_and_not_prepared(tmp_path, corpus):
    with pytest.raises(InputError, match=_err(tmp_path / "gone", "no such folder; run "
                                                                 "`wavebench prepare")):
        load_prepared(tmp_path / "gone")
    with pytest.raises(InputError, match=_err(corpus, re.escape(
            "not a wavebench prepared dataset (no manifest.json); run `wavebench prepare "
            "AUDIO_DIR -o DATA_DIR`"))):
        load_prepared(corpus)
    with pytest.raises(InputError, match=_err(corpus / "alice/a1.wav", "is a file")):
        load_prepared(corpus / "alice/a1.wav")


def test_load_prepared_bad_manifest(prepared):
    (prepared / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match=_err(prepared, "manifest.json is not valid JSON")):
        load_prepared(prepared)
    (prepared / "manifest.json").write_text(json.dumps({"format": "someone-else"}))
    with pytest.raises(InputError, match=_err(prepared, "manifest format 'someone-else'")):
        load_prepared(prepared)


def test_load_prepared_wrong_version(prepared):
    _edit_manifest(prepared, version=99)
    with pytest.raises(InputError, match=_err(prepared, "format version 99; this wavebench "
                                                        "reads version 1")):
        load_prepared(prepared)


def test_load_prepared_damaged_entry(prepared):
    m = _manifest(prepared)
    m["files"][2]["split"] = "test"
    (prepared / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InputError, match=_err(prepared, r"file entry 2 \(alice/a3.wav\) is "
                                                        r"damaged: split must be one of")):
        load_prepared(prepared)


def test_load_prepared_missing_store(prepared):
    (prepared / "codes.npy").unlink()
    with pytest.raises(InputError, match=_err(prepared, "store file codes.npy is missing")):
        load_prepared(prepared)


def test_load_prepared_truncated_store(prepared):
    data = (prepared / "audio.npy").read_bytes()
    (prepared / "audio.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=_err(prepared, "store file audio.npy is truncated")):
        load_prepared(prepared)


def test_load_prepared_store_disagrees_with_manifest(prepared):
    np.save(prepared / "codes.npy", np.zeros(10, np.uint8))
    with pytest.raises(InputError, match=_err(prepared, r"codes.npy holds uint8 \(10,\), but "
                                                        r"the manifest needs")):
        load_prepared(prepared)


def test_real_speech_durations(tmp_path):
    speech = SPEECH
    root = tmp_path / "speech"
    root.mkdir()
    sources = sorted(speech.glob("*.flac"))[:3]
    assert len(sources) == 3
    for src in sources:
        (root / src.name).symlink_to(src)
    prepare(root, tmp_path / "data", progress=False)
    for e in _manifest(tmp_path / "data")["files"]:
        info = sf.info(speech / e["path"])
        assert e["duration"] == pytest.approx(info.duration, abs=1e-12)
        assert e["length"] == info.frames  # already 16 kHz: no resampling, no trimming
        assert (e["original_rate"], e["channels"]) == (16000, 1)
