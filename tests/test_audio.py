"""Tests of wavebench_base.audio: loading, checks, notes, atomic writing, finding files."""
import re
import struct
import wave

import numpy as np
import pytest
import soundfile as sf

from wavebench_base import audio as audio_mod
from wavebench_base.audio import AUDIO_EXTENSIONS, find_audio_files, load_audio, save_wav
from wavebench_base.errors import InputError
from wavebench_base.files import atomic_path, atomic_write_bytes

RATE = 16000


def _noise(n=4000, seed=0, peak=0.9):
    return np.random.default_rng(seed).uniform(-peak, peak, n)


def _err(path, problem):
    """A match pattern for "<path>: ...<problem>" (problem is a regular expression)."""
    return rf"^{re.escape(str(path))}: .*{problem}"


# Round trips through libsndfile's writer. Integer subtypes: libsndfile writes with a scale
# of 2^(b-1) - 1 and reads with 2^(b-1), so the error is up to one quantization step
# 2^-(b-1), not half of one (measured: 0.9999 steps for WAV PCM_16). 32-bit and float files
# are limited by our float32 read instead: half a float32 ulp at 1.0 is 2^-24.
ROUND_TRIPS = [
    ("wav", "WAV", "PCM_U8", 2.0 ** -7),
    ("wav", "WAV", "PCM_16", 2.0 ** -15),
    ("wav", "WAV", "PCM_24", 2.0 ** -23),
    ("wav", "WAV", "PCM_32", 2.0 ** -24),
    ("wav", "WAV", "FLOAT", 2.0 ** -24),
    ("flac", "FLAC", "PCM_16", 2.0 ** -15),
    ("flac", "FLAC", "PCM_24", 2.0 ** -23),
    ("aiff", "AIFF", "PCM_16", 2.0 ** -15),
    ("aif", "AIFF", "PCM_24", 2.0 ** -23),
    ("aiff", "AIFF", "PCM_32", 2.0 ** -24),
    ("aiff", "AIFF", "FLOAT", 2.0 ** -24),
]


@pytest.mark.parametrize("ext, fmt, subtype, tol", ROUND_TRIPS)
def test_round_trip_matches_written_array(tmp_path, ext, fmt, subtype, tol):
    x = _noise()
    path = tmp_path / f"clip.{ext}"
    sf.write(path, x, RATE, subtype=subtype, format=fmt)
    clip = load_audio(path)
    assert clip.audio.dtype == np.float32 and clip.audio.shape == x.shape
    assert (clip.sample_rate, clip.original_rate, clip.channels) == (RATE, RATE, 1)
    assert clip.subtype == subtype
    assert clip.notes == ()  # peak 0.9 mono at the file's rate: nothing to remark on
    np.testing.assert_allclose(clip.audio, x, rtol=0, atol=tol)  # tol: see ROUND_TRIPS


def test_ogg_vorbis_round_trip_is_close(tmp_path):
    # Vorbis is lossy: compare a tone by signal-to-error ratio (measured 38 dB at the
    # default quality; 20 dB still proves the decode is the same signal, in time and sign).
    t = np.arange(RATE) / RATE
    x = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "tone.ogg"
    sf.write(path, x, RATE, format="OGG", subtype="VORBIS")
    clip = load_audio(path)
    assert clip.subtype == "VORBIS" and len(clip.audio) == len(x)
    snr = 10 * np.log10(np.sum(x ** 2) / np.sum((clip.audio - x) ** 2))
    assert snr > 20


@pytest.mark.parametrize("sampwidth, subtype", [(1, "PCM_U8"), (2, "PCM_16"), (3, "PCM_24")])
def test_pcm_wav_against_stdlib_wave_module(tmp_path, sampwidth, subtype):
    # Independent reference: write integer PCM with Python's own `wave` module and decode it
    # by hand; soundfile's float reading divides by 2^(bits-1) (8-bit WAV is unsigned).
    bits = 8 * sampwidth
    rng = np.random.default_rng(1)
    ints = rng.integers(-2 ** (bits - 1), 2 ** (bits - 1), 3000)
    if sampwidth == 1:
        raw = (ints + 128).astype(np.uint8).tobytes()
    else:
        raw = b"".join(struct.pack("<i", int(v))[:sampwidth] for v in ints)
    path = tmp_path / "stdlib.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(sampwidth), w.setframerate(RATE)
        w.writeframes(raw)
    clip = load_audio(path)
    assert clip.subtype == subtype
    # Exact: every integer of up to 24 bits divided by a power of two is a float32.
    np.testing.assert_array_equal(clip.audio, (ints / 2.0 ** (bits - 1)).astype(np.float32))


def test_stereo_is_mixed_to_mono_with_a_note(tmp_path):
    left, right = _noise(seed=1, peak=0.5), _noise(seed=2, peak=0.5)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), RATE, subtype="FLOAT")
    clip = load_audio(path)
    assert clip.channels == 2 and clip.audio.ndim == 1
    assert "mixed 2 channels to mono" in clip.notes
    # Float file: only float32 rounding of the inputs and the mean (a few ulp at 0.5).
    np.testing.assert_allclose(clip.audio, (left + right) / 2, rtol=0, atol=1e-7)


def test_resampling_keeps_a_1khz_sine_at_1khz(tmp_path):
    t = np.arange(44100) / 44100
    path = tmp_path / "cd.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 1000 * t), 44100, subtype="PCM_16")
    clip = load_audio(path, 16000)
    assert (clip.sample_rate, clip.original_rate) == (16000, 44100)
    assert len(clip.audio) == 16000  # 1 s at the new rate
    assert "resampled 44100 -> 16000 Hz (soxr VHQ)" in clip.notes
    spectrum = np.abs(np.fft.rfft(clip.audio * np.hanning(len(clip.audio))))
    freqs = np.fft.rfftfreq(len(clip.audio), 1 / 16000)
    assert freqs[np.argmax(spectrum)] == pytest.approx(1000, abs=1.0)  # 1 Hz bins
    # Amplitude kept too: VHQ's passband ripple is far below 1%.
    assert np.max(np.abs(clip.audio[100:-100])) == pytest.approx(0.5, rel=0.01)


def test_same_rate_is_not_resampled(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _noise(), RATE)
    assert load_audio(path, RATE).notes == ()


def test_full_scale_samples_are_noted(tmp_path):
    x = _noise()
    x[[10, 20, 30]] = [1.0, -1.0, 1.2]  # 1.2 saturates to full scale in PCM_16
    path = tmp_path / "hot.wav"
    sf.write(path, x, RATE, subtype="PCM_16")
    assert "3 samples at full scale (clipped?)" in load_audio(path).notes


def test_float_over_full_scale_is_noted_not_clipped(tmp_path):
    x = _noise()
    x[7] = 1.5
    path = tmp_path / "loud.wav"
    sf.write(path, x, RATE, subtype="FLOAT")
    clip = load_audio(path)
    assert clip.audio[7] == pytest.approx(1.5)  # value kept, float32 exact for 1.5
    assert any(n.startswith("float samples beyond full scale: peak 1.500 (+3.5 dBFS)")
               for n in clip.notes)


def test_mp3_is_read(tmp_path):
    # libsndfile 1.1+ decodes MP3 itself; MP3 is lossy and delays/pads, so check the pitch.
    t = np.arange(RATE) / RATE
    path = tmp_path / "tone.mp3"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 500 * t), RATE, format="MP3")
    clip = load_audio(path)
    spectrum = np.abs(np.fft.rfft(clip.audio))
    freqs = np.fft.rfftfreq(len(clip.audio), 1 / RATE)
    assert freqs[np.argmax(spectrum)] == pytest.approx(500, abs=2.0)  # 1 Hz bins, MP3 padding


class _FakeAudioread:
    """Stands in for audioread.audio_open: 2 channels of interleaved int16 in two buffers."""

    channels, samplerate = 2, 8000

    def __init__(self, path):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __iter__(self):
        pcm = np.array([[1000, -1000], [2000, 0], [-32768, 32767]], dtype="<i2")
        return iter([pcm[:2].tobytes(), pcm[2:].tobytes()])


def _make_soundfile_fail(monkeypatch):
    def fail(*args, **kwargs):
        raise sf.LibsndfileError(0, prefix="Error opening 'x.mp3': ")
    monkeypatch.setattr(audio_mod.sf, "SoundFile", fail)


def test_mp3_fallback_decodes_when_soundfile_cannot(tmp_path, monkeypatch):
    import audioread
    path = tmp_path / "old.mp3"
    path.write_bytes(b"ID3 stand-in bytes")
    _make_soundfile_fail(monkeypatch)
    monkeypatch.setattr(audioread, "audio_open", _FakeAudioread)
    clip = load_audio(path)
    assert (clip.sample_rate, clip.channels, clip.subtype) == (8000, 2, "MP3")
    # int16 / 32768, then the mean of the two channels; all exact in float32.
    np.testing.assert_array_equal(clip.audio, np.float32([0.0, 1000 / 32768, -0.5 / 32768]))


def test_mp3_fallback_failure_reports_both_decoders(tmp_path, monkeypatch):
    path = tmp_path / "broken.mp3"
    path.write_bytes(b"not an mp3 at all")
    _make_soundfile_fail(monkeypatch)
    with pytest.raises(InputError, match=_err(path, "soundfile says: .*MP3 fallback")):
        load_audio(path)


# ---- every problem load_audio reports -------------------------------------------------------

def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(InputError, match=_err(path, "no such file")):
        load_audio(path)


def test_directory(tmp_path):
    path = tmp_path / "folder.wav"
    path.mkdir()
    with pytest.raises(InputError, match=_err(path, "is a directory")):
        load_audio(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.flac"
    path.touch()
    with pytest.raises(InputError, match=_err(path, r"empty file \(0 bytes\)")):
        load_audio(path)


@pytest.mark.parametrize("content", [b"this is a text file, not audio\n",
                                     b"RIFF\x24\x00\x00\x00WAVEfmt "])  # truncated header
def test_non_audio_content(tmp_path, content):
    path = tmp_path / "fake.wav"
    path.write_bytes(content)
    with pytest.raises(InputError, match=_err(path, "cannot read as audio: soundfile says: ")) as e:
        load_audio(path)
    assert "\n" not in str(e.value)


def test_zero_samples(tmp_path):
    path = tmp_path / "none.wav"
    sf.write(path, np.zeros(0), RATE)
    with pytest.raises(InputError, match=_err(path, r"no samples .*0 frames")):
        load_audio(path)


def test_too_few_samples_counts_after_resampling(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, _noise(441), 44100)
    assert len(load_audio(path, 16000, min_samples=160).audio) == 160
    with pytest.raises(InputError, match=_err(path, "only 160 samples at 16000 Hz .*need at "
                                                    "least 1000")):
        load_audio(path, 16000, min_samples=1000)


def test_nan_and_inf_samples(tmp_path):
    x = _noise()
    x[[5, 9, 11]] = [np.nan, np.inf, np.nan]
    path = tmp_path / "bad.wav"
    sf.write(path, x, RATE, subtype="FLOAT")
    with pytest.raises(InputError, match=_err(path, r"2 NaN and 1 Inf samples \(first at "
                                                    r"sample 5\)")):
        load_audio(path)


def test_silent_file(tmp_path):
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(100), RATE)
    with pytest.raises(InputError, match=_err(path, "all 100 samples are zero")):
        load_audio(path)
    assert np.array_equal(load_audio(path, allow_silent=True).audio, np.zeros(100, np.float32))
    stereo = tmp_path / "quiet_stereo.wav"
    sf.write(stereo, np.zeros((100, 2)), RATE)
    with pytest.raises(InputError, match=_err(stereo, "all 200 samples are zero")):
        load_audio(stereo)
    assert np.array_equal(load_audio(stereo, allow_silent=True).audio, np.zeros(100))


def test_channels_that_cancel_when_mixed(tmp_path):
    x = _noise()
    path = tmp_path / "inverted.wav"
    sf.write(path, np.stack([x, -x], axis=1), RATE, subtype="PCM_16")
    # libsndfile rounds -x and x asymmetrically, so the mix keeps about one LSB (-90 dB).
    with pytest.raises(InputError, match=_err(path, r"the 2 channels cancel when mixed to "
                                                    r"mono \(the mix is -\d+ dB against")):
        load_audio(path)
    assert load_audio(path, allow_silent=True).channels == 2


@pytest.mark.parametrize("rate", [0, -16000, 16000.5])
def test_bad_target_rate(tmp_path, rate):
    path = tmp_path / "a.wav"
    sf.write(path, _noise(), RATE)
    with pytest.raises(InputError, match=f"^sample_rate must be a positive whole number of "
                                         f"Hz, got {rate}$"):
        load_audio(path, rate)


# ---- writing --------------------------------------------------------------------------------

def test_save_wav_round_trip_and_parent_folders(tmp_path):
    x = _noise()
    path = save_wav(tmp_path / "a" / "b" / "out.wav", x, RATE, subtype="PCM_24")
    assert sf.info(path).subtype == "PCM_24" and sf.info(path).samplerate == RATE
    np.testing.assert_allclose(load_audio(path).audio, x, atol=2.0 ** -23)  # one 24-bit step
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.wav"]  # no temp file left


def test_save_wav_clips_integer_subtypes(tmp_path):
    path = save_wav(tmp_path / "hot.wav", np.array([1.7, -3.0, 0.25]), RATE)
    # Saturated at the 16-bit extremes rather than wrapped around to the other sign.
    np.testing.assert_allclose(load_audio(path).audio, [32767 / 32768, -1.0, 0.25], atol=2 ** -15)
    float_path = save_wav(tmp_path / "hot_float.wav", np.array([1.7, -3.0]), RATE, "FLOAT")
    np.testing.assert_allclose(load_audio(float_path).audio, [1.7, -3.0], rtol=1e-7)


def test_save_wav_failure_keeps_previous_file(tmp_path, monkeypatch):
    path = save_wav(tmp_path / "keep.wav", _noise(seed=3), RATE)
    before = path.read_bytes()

    def write_half_then_fail(file, data, *args, **kwargs):
        with open(file, "wb") as f:
            f.write(b"RIFF partial")
        raise OSError("disk full")

    monkeypatch.setattr(audio_mod.sf, "write", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_wav(path, _noise(seed=4), RATE)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.wav"]


@pytest.mark.parametrize("audio, problem", [
    (np.array([0.1, np.nan]), "NaN or Inf"),
    (np.zeros((2, 3, 4)), r"shape \(n,\) or \(n, channels\), got shape \(2, 3, 4\)"),
    (np.zeros(0), r"got shape \(0,\)"),
])
def test_save_wav_rejects_bad_audio(tmp_path, audio, problem):
    path = tmp_path / "x.wav"
    with pytest.raises(InputError, match=_err(path, problem)):
        save_wav(path, audio, RATE)
    assert not path.exists()


def test_save_wav_rejects_unknown_subtype(tmp_path):
    path = tmp_path / "x.wav"
    with pytest.raises(InputError, match=_err(path, "WAV cannot hold subtype 'VORBIS'")):
        save_wav(path, np.zeros(10), RATE, subtype="VORBIS")


def test_atomic_path_keeps_suffix_and_cleans_up(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".csv" and tmp != target
        tmp.write_text("a,b\n")
        assert not target.exists()  # invisible until the block ends
    assert target.read_text() == "a,b\n"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "a,b\n"
    assert [p.name for p in target.parent.iterdir()] == ["table.csv"]


def test_atomic_write_bytes(tmp_path):
    path = atomic_write_bytes(tmp_path / "blob.bin", b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01" and len(list(tmp_path.iterdir())) == 1


# ---- finding files --------------------------------------------------------------------------

def test_find_audio_files_recursive_sorted_any_case(tmp_path):
    names = ["b/2.flac", "a.WAV", "b/1.wav", "c/d/e.Mp3", "x.aif", "y.aiff", "z.ogg"]
    for name in names + ["notes.txt", "b/readme.md", "b/.hidden.wav"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = find_audio_files(tmp_path)
    assert found == sorted(tmp_path / n for n in names)


def test_find_audio_files_errors(tmp_path):
    with pytest.raises(InputError, match=_err(tmp_path / "gone", "no such folder")):
        find_audio_files(tmp_path / "gone")
    (tmp_path / "f.wav").write_bytes(b"x")
    with pytest.raises(InputError, match=_err(tmp_path / "f.wav", "is a file, not a folder")):
        find_audio_files(tmp_path / "f.wav")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("hi")
    listed = re.escape(", ".join(AUDIO_EXTENSIONS))
    with pytest.raises(InputError, match=_err(empty, f"no audio files found \\(looked for "
                                                     f"{listed}")):
        find_audio_files(empty)


def test_allow_nonfinite_keeps_nan_with_a_note(tmp_path):
    path = tmp_path / "nan.wav"
    data = np.full(800, 0.25, np.float32)
    data[10] = np.nan
    sf.write(path, data, 16000, subtype="FLOAT")
    clip = load_audio(path, allow_nonfinite=True)
    assert np.isnan(clip.audio[10]) and "1 NaN or Inf samples" in clip.notes
    with pytest.raises(InputError, match="nan.wav: NaN or Inf samples at 16000 Hz cannot be resampled"):
        load_audio(path, 8000, allow_nonfinite=True)
