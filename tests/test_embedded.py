"""Tests of reference_model.embedded: the built-in synthetic dataset."""
import hashlib
import time

import numpy as np
import pytest
import soundfile as sf
from scipy.linalg import solve_toeplitz

from reference_model.embedded import FAMILIES, embedded_audioset, write_embedded_audio
from reference_model.mulaw import mu_law_encode
from wavebench_base.audio import load_audio
from wavebench_base.errors import InputError


@pytest.fixture(scope="module")
def data():
    # the first 40 of the default 400 clips (the clips do not depend on the count)
    return embedded_audioset(n_clips=40)


def _digest(audioset):
    h = hashlib.sha256()
    for utt in audioset.train + audioset.valid:
        h.update(utt.name.encode() + utt.audio.tobytes() + utt.codes.tobytes())
        h.update(bytes([utt.speaker]))
    return h.hexdigest()


def test_deterministic_byte_for_byte(data):
    assert _digest(embedded_audioset(n_clips=40)) == _digest(data)
    assert embedded_audioset(n_clips=40).fingerprint == data.fingerprint
    default = embedded_audioset()
    assert (len(default.train), len(default.valid)) == (320, 80)
    assert _digest(embedded_audioset()) == _digest(default)
    other = embedded_audioset(seed=1, n_clips=40)
    assert _digest(other) != _digest(data) and other.fingerprint != data.fingerprint


def test_first_clips_do_not_depend_on_the_clip_count(data):
    few = embedded_audioset(n_clips=10)
    for a, b in zip(few.train, data.train):
        np.testing.assert_array_equal(a.audio, b.audio)


def test_sizes_and_splits(data):
    assert (data.sample_rate, data.classes, data.speakers) == (16000, 256, list(FAMILIES))
    assert (len(data.train), len(data.valid)) == (32, 8)  # 80/20 of 40 clips
    names = [u.name for u in data.train + data.valid]
    assert len(set(names)) == 40
    assert all(len(u.audio) == 32000 and len(u.codes) == 32000 for u in data.train + data.valid)
    for split in (data.train, data.valid):  # every family on both sides of the split
        assert {u.speaker for u in split} == {0, 1, 2}
    assert all(u.name.startswith(FAMILIES[u.speaker]) for u in data.train + data.valid)


def test_values(data):
    for utt in data.train + data.valid:
        assert utt.audio.dtype == np.float32 and utt.codes.dtype == np.uint8
        assert np.all(np.isfinite(utt.audio))
        assert 0.5 <= np.max(np.abs(utt.audio)) <= 0.9 + 2 ** -15  # peak +- a 16-bit step
        # On the 16-bit grid, so a 16-bit WAV holds it exactly.
        np.testing.assert_array_equal(utt.audio * 32768, np.round(utt.audio * 32768))
        np.testing.assert_array_equal(utt.codes, mu_law_encode(utt.audio).astype(np.uint8))


def _periodicity(x, frame=1024, lags=(20, 400)):
    """Median over frames of the best normalized autocorrelation at lags 20..400 samples.

    Pitch periods of 40 to 800 Hz at 16 kHz; 1 for a perfectly periodic signal, about 0.1 for
    white noise (checked below).
    """
    x = x.astype(np.float64)
    lo, hi = lags
    best = []
    for start in range(0, len(x) - frame - hi, frame):
        a = x[start:start + frame]
        shifted = np.lib.stride_tricks.sliding_window_view(x[start + lo:start + hi + frame], frame)
        corr = shifted @ a / np.sqrt((shifted ** 2).sum(axis=1) * (a @ a) + 1e-20)
        best.append(corr.max())
    return float(np.median(best))


def _prediction_gain_db(x, frame=2048, order=16):
    """Median over frames of the order-16 linear prediction gain, in dB.

    Classical LPC by the autocorrelation method (Levinson-Durbin in scipy's solve_toeplitz):
    gain = r0 / (r0 - a . r[1:]). How much of each frame its own past explains: about 0 dB
    for white noise (checked below), tens of dB for a few slowly changing sinusoids.
    """
    x = x.astype(np.float64)
    gains = []
    for start in range(0, len(x) - frame + 1, frame):
        f = x[start:start + frame] * np.hanning(frame)
        r = np.fft.irfft(np.abs(np.fft.rfft(f, 2 * frame)) ** 2)[:order + 1]
        a = solve_toeplitz(r[:order], r[1:])
        gains.append(10 * np.log10(r[0] / (r[0] - a @ r[1:])))
    return float(np.median(gains))


def test_clips_are_structured_enough_to_learn(data):
    # A WaveNet learns to predict the next sample from the past. Measured gains: 13 to 25 dB
    # for chords (24 partials exceed what order 16 can model), 20 to 30 dB for the rest.
    noise = np.random.default_rng(0).normal(size=32000)
    assert abs(_prediction_gain_db(noise)) < 1
    for utt in data.train + data.valid:
        assert _prediction_gain_db(utt.audio) > 10, utt.name


def test_pitched_families_are_periodic(data):
    # Tones and formants repeat each pitch period (measured medians 0.93 to 1.0); chords'
    # common periods can lie beyond the 400-sample lag range, so they are left out here.
    assert _periodicity(np.random.default_rng(0).normal(size=32000)) < 0.2
    for utt in data.train + data.valid:
        if FAMILIES[utt.speaker] != "chords":
            assert _periodicity(utt.audio) > 0.9, utt.name


def test_quick():
    start = time.perf_counter()
    embedded_audioset()
    # 400 clips: measured 2.0 s on a 2-core Xeon (family 6 model 167); a loose bound that
    # only catches a synthesis gone quadratic
    assert time.perf_counter() - start < 20.0


def test_other_rates_and_lengths():
    small = embedded_audioset(sample_rate=22050, n_clips=3, seconds=0.5)
    assert (len(small.train), len(small.valid)) == (2, 1)  # fewer than 5: the last validates
    assert all(len(u.audio) == 11025 for u in small.train + small.valid)


@pytest.mark.parametrize("kwargs, message", [
    ({"sample_rate": 4000}, "sample_rate must be a whole number of Hz, at least 8000, got 4000"),
    ({"seed": -1}, "seed must be a non-negative integer, got -1"),
    ({"n_clips": 1}, r"n_clips must be at least 2 \(one train, one valid\), got 1"),
    ({"seconds": 0.0}, "seconds must be at least 0.1, got 0.0"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(InputError, match=message):
        embedded_audioset(**kwargs)


def test_write_embedded_audio_reads_back_exactly(data, tmp_path):
    paths = write_embedded_audio(tmp_path / "refs")
    valid = embedded_audioset().valid  # the default set's, 80 clips
    assert [p.stem for p in paths] == sorted(u.name for u in valid)
    by_name = {u.name: u for u in valid}
    for path in paths:
        assert sf.info(path).subtype == "PCM_16" and sf.info(path).samplerate == 16000
        np.testing.assert_array_equal(load_audio(path).audio, by_name[path.stem].audio)
    assert sorted(p.name for p in (tmp_path / "refs").iterdir()) == [p.name for p in paths]
    assert len(write_embedded_audio(tmp_path / "all", split="all")) == 400


def test_write_embedded_audio_bad_split(tmp_path):
    with pytest.raises(InputError, match="split must be 'valid', 'train' or 'all', got 'test'"):
        write_embedded_audio(tmp_path, split="test")
