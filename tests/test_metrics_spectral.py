"""mrstft and lsd against torch.stft and librosa.stft."""
import numpy as np
import pytest

from metrics import MetricUnavailable, lsd, mrstft

torch = pytest.importorskip("torch")
librosa = pytest.importorskip("librosa")


def _pair(n=9000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    reference = 0.3 * np.sin(2 * np.pi * 300 * t) * np.hanning(n) + 0.01 * rng.standard_normal(n)
    return reference, reference + 0.03 * rng.standard_normal(n)


def _torch_mrstft(reference, generated):
    """Parallel WaveGAN's loss, with torch.stft (float64)."""
    total = 0.0
    for n_fft, hop, win in ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240)):
        def magnitude(x):
            spec = torch.stft(torch.from_numpy(x), n_fft, hop, win,
                              torch.hann_window(win, dtype=torch.float64), center=True,
                              pad_mode="reflect", return_complex=True)
            return torch.sqrt(torch.clamp(spec.real ** 2 + spec.imag ** 2, min=1e-7))
        ref, gen = magnitude(reference), magnitude(generated)
        total += float(torch.linalg.norm(ref - gen) / torch.linalg.norm(ref)
                       + torch.mean(torch.abs(torch.log(ref) - torch.log(gen))))
    return total / 3


def test_mrstft_matches_torch():
    reference, generated = _pair()
    # both float64; only FFT implementations and summation order differ
    assert mrstft(reference=reference, generated=generated, sample_rate=16000) == pytest.approx(
        _torch_mrstft(reference, generated), rel=1e-9)


def test_lsd_matches_librosa():
    reference, generated = _pair(seed=1)
    spec = [np.abs(librosa.stft(x, n_fft=2048, hop_length=512, center=True, pad_mode="reflect",
                                dtype=np.complex128)) ** 2 for x in (reference, generated)]
    ref_db, gen_db = (10 * np.log10(np.maximum(s, 1e-10)) for s in spec)
    expected = np.mean(np.sqrt(np.mean((ref_db - gen_db) ** 2, axis=0)))  # librosa: bins first
    assert lsd(reference=reference, generated=generated, sample_rate=16000) == pytest.approx(
        expected, rel=1e-9)  # float64 both; FFT rounding only


def test_identity_is_zero_and_short_input_has_no_value():
    reference, _ = _pair()
    assert mrstft(reference=reference, generated=reference, sample_rate=16000) == 0.0
    assert lsd(reference=reference, generated=reference, sample_rate=16000) == 0.0
    for metric in (mrstft, lsd):
        with pytest.raises(MetricUnavailable, match="too_short: 1024 samples, fewer than 1025"):
            metric(reference=reference[:1024], generated=reference[:1024], sample_rate=16000)
