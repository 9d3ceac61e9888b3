"""DNSMOS: speechmos called directly, the ranking of known degradations, other rates, bad input."""
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile
import soxr

from metrics import MetricUnavailable, dnsmos
from metrics.dnsmos import (
    DNSMOS_RATE,
    NAMES,
    WINDOW,
    dnsmos_bak,
    dnsmos_ovrl,
    dnsmos_p808,
    dnsmos_scores,
    dnsmos_sig,
)
from wavebench_base.errors import InputError, MissingDependencyError

pytest.importorskip("onnxruntime")
speechmos_dnsmos = pytest.importorskip("speechmos.dnsmos")

DATA = Path(__file__).resolve().parent / "data"  # tests/data/README.md: sources and licences
VECTORS = DATA / "vectors"
SPEECH = DATA / "speech16k"
# speechmos's p808_mos is a float32 mean (one float32 step at 4 is 4.8e-7); the P.835 scores
# agree to about 1e-7 (onnxruntime's thread count can move the last float32 bit of a conv)
TOLERANCE = 1e-6


def _read(path):
    audio, rate = soundfile.read(path)  # float64
    assert rate == DNSMOS_RATE
    return audio


def _concatenated(seconds):
    """The speech16k files in name order, end to end, until the total is over ``seconds``."""
    parts, total = [], 0
    for path in sorted(SPEECH.glob("*.flac")):
        parts.append(_read(path))
        total += parts[-1].size
        if total > seconds * DNSMOS_RATE:
            return np.concatenate(parts)
    raise AssertionError(f"tests/data/speech16k holds under {seconds} s of speech")


def _speechmos(audio):
    """speechmos's DNSMOS with its defaults: model type "dnsmos" (not personalized)."""
    values = speechmos_dnsmos.run(audio, DNSMOS_RATE)
    return {"dnsmos_sig": values["sig_mos"], "dnsmos_bak": values["bak_mos"],
            "dnsmos_ovrl": values["ovrl_mos"], "dnsmos_p808": values["p808_mos"]}


@lru_cache(maxsize=None)
def _scores_of(name):
    """Our scores of a vectors file, computed once for the tests that share them."""
    return dnsmos_scores(generated=_read(VECTORS / name), sample_rate=DNSMOS_RATE)


@pytest.mark.parametrize("name", ["speech.wav", "speech_bab_0dB.wav"])
def test_equals_speechmos_on_the_golden_pair(name):
    # 3.1 s: repeated to 12.4 s by the reference's doubling, so three windows are averaged
    expected = _speechmos(_read(VECTORS / name))
    assert _scores_of(name) == pytest.approx(expected, abs=TOLERANCE)


def test_equals_speechmos_on_a_clip_longer_than_two_windows():
    audio = _concatenated(11)  # 12.8 s: three windows of 9.01 s a second apart, no repetition
    assert len(dnsmos._window_starts(audio.size)) == 3
    expected = _speechmos(audio)
    assert dnsmos_scores(generated=audio, sample_rate=DNSMOS_RATE) == pytest.approx(
        expected, abs=TOLERANCE)


def test_windows_the_reference_drops_are_dropped():
    # the reference ends window k at int((k + 9.01) * 16000), one sample short for k = 7..23
    seconds = 20 * DNSMOS_RATE  # 11 windows counted, 7..10 dropped
    assert dnsmos._window_starts(seconds) == [k * DNSMOS_RATE for k in range(7)]
    starts = dnsmos._window_starts(40 * DNSMOS_RATE)  # 31 counted, 7..23 dropped
    assert starts == [k * DNSMOS_RATE for k in [*range(7), *range(24, 31)]]
    assert dnsmos._window_starts(WINDOW) == [0]
    assert dnsmos._window_starts(WINDOW + DNSMOS_RATE - 1) == [0]


@pytest.mark.slow
def test_equals_speechmos_where_it_drops_windows():
    audio = _concatenated(20)  # 21.1 s: 12 windows counted, the reference scores 7 of them
    assert len(dnsmos._window_starts(audio.size)) == 7
    expected = _speechmos(audio)
    assert dnsmos_scores(generated=audio, sample_rate=DNSMOS_RATE) == pytest.approx(
        expected, abs=TOLERANCE)


def test_single_functions_and_keys(monkeypatch):
    scores = _scores_of("speech.wav")
    assert tuple(scores) == NAMES
    assert all(isinstance(value, float) and 1 <= value <= 5 for value in scores.values())
    calls = []

    def joint(**inputs):
        calls.append(inputs)
        return scores
    monkeypatch.setattr(dnsmos, "dnsmos_scores", joint)
    for function in (dnsmos_sig, dnsmos_bak, dnsmos_ovrl, dnsmos_p808):
        assert function(generated="audio", sample_rate=22050) == scores[function.__name__]
    assert calls == [{"generated": "audio", "sample_rate": 22050}] * 4
    with pytest.raises(TypeError):
        dnsmos_scores(np.zeros(10), DNSMOS_RATE)  # keyword-only, like every metric


def test_clean_speech_outranks_babble_on_every_score():
    clean, noisy = _scores_of("speech.wav"), _scores_of("speech_bab_0dB.wav")
    for name in NAMES:
        assert clean[name] > noisy[name] + 0.5, name  # measured: 1.4 to 2.9 apart


@pytest.mark.parametrize("name", ["conf-getpin.flac", "vm-login.flac"])
def test_white_noise_lowers_background_and_overall_quality(name):
    clean = _read(SPEECH / name)  # 2.4 and 2.5 s: repeated to 9.6 and 10.2 s, one window
    noise = np.random.default_rng(0).standard_normal(clean.size)
    noisy = clean + noise * np.sqrt(np.mean(clean ** 2) / np.mean(noise ** 2) / 10 ** 0.5)  # 5 dB
    before = dnsmos_scores(generated=clean, sample_rate=DNSMOS_RATE)
    after = dnsmos_scores(generated=noisy, sample_rate=DNSMOS_RATE)
    drop = {key: before[key] - after[key] for key in NAMES}
    # measured drops: bak 2.5 and 2.5, ovrl 1.3 and 1.5, p808 1.5 and 1.5
    assert drop["dnsmos_bak"] > 1.0
    assert drop["dnsmos_ovrl"] > 0.5
    assert drop["dnsmos_p808"] > 0.5
    # SIG rates the speech itself, and steady noise under it moves it little, not always down:
    # measured drops of 0.09 and 0.31 here, but agent-alreadyon's SIG rises by 0.14
    assert abs(drop["dnsmos_sig"]) < 0.5
    assert abs(drop["dnsmos_sig"]) < drop["dnsmos_bak"] / 3


def test_other_rates_are_resampled_to_16k():
    clean = _read(VECTORS / "speech.wav")
    at_16k = _scores_of("speech.wav")
    at_22k = dnsmos_scores(generated=scipy.signal.resample_poly(clean, 441, 320),
                           sample_rate=22050)
    # P.835: measured 0.002 to 0.0035 apart (the resamplers' filters alone)
    for name in ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"):
        assert at_22k[name] == pytest.approx(at_16k[name], abs=0.01), name
    # P.808 moves more, 0.08 (so does any rate, 24 to 48 kHz, resampled by soxr): its log-mel
    # input reaches 8 kHz, and the resamplers' anti-alias filters take the band above ~7.6 kHz
    # out. The same clip low-passed at 7.6 kHz at 16 kHz moves the same way (measured 0.10).
    assert at_22k["dnsmos_p808"] == pytest.approx(at_16k["dnsmos_p808"], abs=0.15)
    low_passed = scipy.signal.sosfiltfilt(
        scipy.signal.butter(12, 7600, fs=DNSMOS_RATE, output="sos"), clean)
    band_limited = dnsmos_p808(generated=low_passed, sample_rate=DNSMOS_RATE)
    assert at_22k["dnsmos_p808"] == pytest.approx(band_limited, abs=0.03)


def test_nan_and_empty_audio_have_no_value():
    audio = _read(VECTORS / "speech.wav")
    audio[100] = np.nan
    with pytest.raises(MetricUnavailable) as unavailable:
        dnsmos_scores(generated=audio, sample_rate=DNSMOS_RATE)
    assert unavailable.value.reason == "nonfinite_generated"
    # the reference's doubling of an empty clip never ends
    with pytest.raises(MetricUnavailable, match="too_short"):
        dnsmos_scores(generated=np.zeros(0), sample_rate=DNSMOS_RATE)
    with pytest.raises(MetricUnavailable, match="too_short"):
        dnsmos_scores(generated=np.zeros(0, np.float32), sample_rate=44100)


def test_bad_arrays_and_rates_raise_input_error():
    audio = _read(VECTORS / "speech.wav")
    with pytest.raises(InputError, match="dtype int16"):
        dnsmos_scores(generated=(audio * 32767).astype(np.int16), sample_rate=DNSMOS_RATE)
    with pytest.raises(InputError, match="mono"):
        dnsmos_scores(generated=np.stack([audio, audio]), sample_rate=DNSMOS_RATE)
    with pytest.raises(InputError, match="positive"):
        dnsmos_scores(generated=audio, sample_rate=0)


def test_digital_silence_has_the_reference_values():
    silence = np.zeros(WINDOW)  # one window
    scores = dnsmos_scores(generated=silence, sample_rate=DNSMOS_RATE)
    assert scores == pytest.approx(_speechmos(silence), abs=TOLERANCE)
    # about 2.5, 3.5, 1.8, 2.1: a value, each under clean speech's (3.6, 4.0, 3.2, 4.0)
    clean = _scores_of("speech.wav")
    assert all(1 <= scores[name] < clean[name] for name in NAMES)


def test_a_very_short_clip_is_repeated_as_the_reference_does():
    short = _read(VECTORS / "speech.wav")[8000:9600]  # 0.1 s, repeated 128 times to 12.8 s
    scores = dnsmos_scores(generated=short, sample_rate=DNSMOS_RATE)
    assert scores == pytest.approx(_speechmos(short), abs=TOLERANCE)


def test_sessions_are_made_once_with_one_thread():
    sessions = dnsmos._sessions()
    assert dnsmos._sessions() is sessions
    for session in sessions.values():
        options = session.get_session_options()
        assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
        assert session.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.parametrize("module", ["onnxruntime", "speechmos"])
def test_a_missing_package_says_how_to_install_it(module, monkeypatch):
    monkeypatch.setattr(dnsmos, "_sessions", dnsmos._sessions.__wrapped__)  # no cached sessions
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=rf"{module}.*wavebench\[dnsmos\]"):
        dnsmos_scores(generated=np.zeros(100), sample_rate=DNSMOS_RATE)


def test_float32_input_and_soxr_at_another_rate():
    window = np.tile(_read(VECTORS / "speech.wav"), 3)[:WINDOW]  # one window, no repetition
    at_16k = dnsmos_scores(generated=window, sample_rate=DNSMOS_RATE)
    # float32 audio: the features are computed in float64 either way
    single = dnsmos_scores(generated=window.astype(np.float32), sample_rate=DNSMOS_RATE)
    assert single == pytest.approx(at_16k, abs=1e-5)  # float32 rounding of the samples
    # at another rate the module resamples with soxr VHQ, so doing that here gives its input
    at_48k = soxr.resample(window, DNSMOS_RATE, 48000, quality="VHQ")
    back = soxr.resample(at_48k, 48000, DNSMOS_RATE, quality="VHQ")
    assert back.size == WINDOW
    assert dnsmos_scores(generated=at_48k, sample_rate=48000) == dnsmos_scores(
        generated=back, sample_rate=DNSMOS_RATE)
