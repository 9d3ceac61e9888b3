"""P.56 active speech level, BS.1770 loudness (against pyloudnorm), true peak and anchors."""
import numpy as np
import pytest
from scipy import signal

from wavebench.mos.packet.anchors import anchor_validity, lowpass, lowpass_taps, mnru, parse_anchor
from wavebench.mos.packet.levels import active_speech_level, integrated_loudness, parse_level, true_peak_dbtp
from wavebench_base.errors import InputError

FS = 16000


def test_p56_tone_burst_50_percent_activity_is_burst_rms():
    t = np.arange(12 * FS) / FS
    x = 0.1 * np.sin(2 * np.pi * 1000 * t) * ((t % 6) < 3)   # 3 s on, 3 s off
    level, activity = active_speech_level(x, FS)
    burst_rms_db = 20 * np.log10(0.1 / np.sqrt(2))
    # 0.5 dB: the spec's tolerance; the 0.2 s hangover counts some silence as active.
    assert abs(level - burst_rms_db) < 0.5
    # Activity is 50 % plus at most hangover + envelope decay (0.3 s) per 6 s cycle.
    assert 0.5 <= activity <= 0.5 + 2 * 0.3 / 12


def test_p56_continuous_tone_is_its_rms_and_silence_raises():
    t = np.arange(4 * FS) / FS
    level, _ = active_speech_level(0.05 * np.sin(2 * np.pi * 440 * t), FS)
    assert level == pytest.approx(20 * np.log10(0.05 / np.sqrt(2)), abs=0.1)  # envelope start-up
    with pytest.raises(InputError, match="silent"):
        active_speech_level(np.zeros(FS), FS)


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_bs1770_matches_pyloudnorm(rate):
    pyln = pytest.importorskip("pyloudnorm")
    rng = np.random.default_rng(rate)
    t = np.arange(int(3.3 * rate)) / rate
    x = 0.1 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    x += 0.02 * rng.standard_normal(len(t))
    x[: rate // 2] *= 0.001  # a quiet lead-in exercises the gates
    ours = integrated_loudness(x, rate)
    # 0.05 LU: block edges may round differently; the filters and gates are the same standard.
    assert ours == pytest.approx(pyln.Meter(rate).integrated_loudness(x), abs=0.05)


@pytest.mark.parametrize("rate", [16000, 48000])
def test_bs1770_short_clip_is_the_ungated_loudness_of_its_steady_tone(rate):
    pyln = pytest.importorskip("pyloudnorm")

    def tone(seconds):
        return 0.1 * np.sin(2 * np.pi * 1000 * np.arange(int(seconds * rate)) / rate)

    with pytest.warns(UserWarning, match="shorter than a 400 ms block"):
        short = integrated_loudness(tone(0.1), rate)
    # Every 400 ms block of a steady tone has the same power, so pyloudnorm's gated loudness
    # of the tone held for 3 s is the K-weighted power that the 100 ms fallback measures
    # (about -23.05 LUFS: a power of -23.01 dB, plus the K-weighting's 0.6 dB at 1 kHz, minus
    # BS.1770's 0.691). 0.01 LU covers the filters' start-up transient, which 100 ms cannot
    # average away (about 0.001 LU).
    assert short == pytest.approx(pyln.Meter(rate).integrated_loudness(tone(3.0)), abs=0.01)


def test_true_peak_sees_intersample_peaks():
    n = np.arange(64)
    x = np.sin(2 * np.pi * n / 4 + np.pi / 4)  # samples at +-0.707, true peak 1.0
    assert np.max(np.abs(x)) == pytest.approx(np.sqrt(0.5))
    assert true_peak_dbtp(x) == pytest.approx(0.0, abs=0.3)  # 4x oversampling, short FIR edges


def test_parse_level_errors():
    assert parse_level("p56:-26") == ("p56", -26.0)
    with pytest.raises(InputError, match="--level"):
        parse_level("rms:-20")


@pytest.mark.parametrize("cutoff", [3500.0, 7000.0])
def test_lowpass_anchor_frequency_response(cutoff):
    taps = lowpass_taps(cutoff, FS)
    width = 0.05 * cutoff
    w, h = signal.freqz(taps, worN=1 << 15, fs=FS)
    mag = 20 * np.log10(np.abs(h) + 1e-12)
    assert np.max(np.abs(mag[w <= cutoff - width / 2])) < 0.1   # passband ripple (Kaiser, 65 dB)
    assert np.max(mag[w >= cutoff + width / 2]) < -60            # spec: >= 60 dB stopband
    assert np.allclose(taps, taps[::-1])                          # symmetric: linear phase


def test_lowpass_anchor_is_zero_phase():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(FS)
    y = lowpass(x, FS, 3500.0)
    xc = signal.correlate(y, x, mode="full")
    lag = int(np.argmax(xc)) - (len(x) - 1)
    assert lag == 0
    # Below the cutoff the anchor equals the input (zero phase, unit gain): compare in-band.
    band = lowpass(x, FS, 2000.0)
    assert np.allclose(lowpass(band, FS, 3500.0)[500:-500], band[500:-500], atol=2e-3)


def test_anchor_errors_and_validity():
    with pytest.raises(InputError, match="unknown anchor"):
        parse_anchor("bp300")
    with pytest.raises(InputError, match="needs a rate above"):
        lowpass_taps(7900.0, FS)
    t = np.arange(FS) / FS
    narrow = np.sin(2 * np.pi * 300 * t)
    assert "~ reference" in anchor_validity("lp7000", [narrow], FS)
    noise = np.random.default_rng(0).standard_normal(FS)
    assert anchor_validity("lp3500", [noise], FS) is None
    x = np.ones(1000)
    snr = 10 * np.log10(1 / np.var(mnru(x, 10.0, seed=0) - x))
    assert snr == pytest.approx(10.0, abs=0.5)  # 1000 samples of noise: variance within ~10 %
