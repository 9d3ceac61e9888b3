"""mel_l1 against a slow re-computation with librosa's mel filters and scipy's FFT."""
import numpy as np
import pytest
import scipy.fft

from metrics import MetricUnavailable, mel_l1
from metrics.mel import mel_filterbank
from wavebench_base.errors import InputError

librosa = pytest.importorskip("librosa")


@pytest.mark.parametrize("rate", [16000, 22050, 24000, 44100])
def test_filterbank_matches_librosa_slaney(rate):
    expected = librosa.filters.mel(sr=rate, n_fft=1024, n_mels=80, fmin=0.0, fmax=rate / 2,
                                   htk=False, norm="slaney", dtype=np.float64)
    # same formula, other code: agreement to float64 rounding of the band edges
    np.testing.assert_allclose(mel_filterbank(rate), expected, rtol=1e-9, atol=1e-12)


def _slow_log_mel(audio, rate):
    """HiFi-GAN's mel, one frame at a time, written from its description."""
    n_fft, hop = 1024, 256
    pad = (n_fft - hop) // 2
    # reflect padding without repeating the edge sample (torch's 'reflect'), built by hand
    padded = np.concatenate([audio[pad:0:-1], audio, audio[-2:-pad - 2:-1]])
    window = np.array([0.5 - 0.5 * np.cos(2 * np.pi * i / n_fft) for i in range(n_fft)])
    basis = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=80, fmin=0.0, fmax=rate / 2,
                                dtype=np.float64)
    rows = []
    for start in range(0, padded.size - n_fft + 1, hop):
        spectrum = scipy.fft.rfft(padded[start:start + n_fft] * window)
        magnitude = np.sqrt(spectrum.real ** 2 + spectrum.imag ** 2 + 1e-9)
        rows.append(np.log(np.maximum(basis @ magnitude, 1e-5)))
    return np.array(rows)


@pytest.mark.parametrize("rate, n", [(16000, 8000), (22050, 11111)])
def test_mel_l1_matches_a_slow_recomputation(rate, n):
    rng = np.random.default_rng(n)
    t = np.arange(n) / rate
    reference = 0.3 * np.sin(2 * np.pi * 220 * t) * np.hanning(n) + 0.01 * rng.standard_normal(n)
    generated = reference + 0.02 * rng.standard_normal(n)
    slow_ref, slow_gen = _slow_log_mel(reference, rate), _slow_log_mel(generated, rate)
    assert slow_ref.shape == (n // 256, 80)
    expected = np.mean(np.abs(slow_ref - slow_gen))
    # both in float64; summation order differs only
    assert mel_l1(reference=reference, generated=generated, sample_rate=rate) == pytest.approx(
        expected, rel=1e-9)


def test_identity_is_zero_and_length_rules_apply():
    audio = 0.1 * np.random.default_rng(0).standard_normal(4000)
    assert mel_l1(reference=audio, generated=audio, sample_rate=16000) == 0.0
    # within one hop the longer one is trimmed, so an appended tail costs nothing
    longer = np.concatenate([audio, np.ones(200)])
    assert mel_l1(reference=audio, generated=longer, sample_rate=16000) == 0.0
    with pytest.raises(InputError, match="lengths differ by 300 samples"):
        mel_l1(reference=audio, generated=np.concatenate([audio, np.ones(300)]), sample_rate=16000)
    with pytest.raises(MetricUnavailable, match="too_short"):
        mel_l1(reference=audio[:1000], generated=audio[:1000], sample_rate=16000)
