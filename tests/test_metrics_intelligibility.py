"""STOI and ESTOI: the golden pair, pystoi called directly, asymmetry and the too-short rule."""
from pathlib import Path

import numpy as np
import pytest
from pystoi import stoi as pystoi_stoi

from metrics import InputError, MetricUnavailable, estoi, intelligibility_scores, stoi

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "vectors"
SPEECH = VECTORS.parent / "speech16k"
soundfile = pytest.importorskip("soundfile")


def _golden_pair():
    paths = VECTORS / "speech.wav", VECTORS / "speech_bab_0dB.wav"
    if not all(path.exists() for path in paths):
        pytest.skip(f"{VECTORS} not available")
    (clean, rate), (noisy, _) = (soundfile.read(path) for path in paths)
    return clean, noisy, rate


def test_golden_pair():
    clean, noisy, rate = _golden_pair()
    # values from the vectors README (pystoi 0.4.1; MATLAB and Octave agree); 1e-6 as specified
    assert stoi(reference=clean, generated=noisy, sample_rate=rate) == pytest.approx(
        0.6739177895, abs=1e-6)
    assert estoi(reference=clean, generated=noisy, sample_rate=rate) == pytest.approx(
        0.3904499910, abs=1e-6)
    both = intelligibility_scores(reference=clean, generated=noisy, sample_rate=rate)
    assert both == pytest.approx({"stoi": 0.6739177895, "estoi": 0.3904499910}, abs=1e-6)


def test_identity_gives_one():
    clean, _, rate = _golden_pair()
    both = intelligibility_scores(reference=clean, generated=clean, sample_rate=rate)
    assert both == pytest.approx({"stoi": 1.0, "estoi": 1.0}, abs=1e-9)  # rounding only


def test_asymmetry_is_pinned_and_a_swap_cannot_happen_by_position():
    clean, noisy, rate = _golden_pair()
    forward = stoi(reference=clean, generated=noisy, sample_rate=rate)
    backward = stoi(reference=noisy, generated=clean, sample_rate=rate)
    # silence removal and clipping follow the reference, so the swap changes the value
    assert abs(forward - backward) > 0.01
    assert backward == pytest.approx(pystoi_stoi(noisy, clean, rate), abs=1e-12)
    with pytest.raises(TypeError):
        stoi(clean, noisy, rate)  # keyword-only by design


@pytest.mark.parametrize("name, rate", [("vm-login.flac", None), ("dir-first.flac", 22050),
                                        ("demo-echodone.flac", 8000)])
def test_shared_resampling_equals_pystoi_called_directly(name, rate):
    path = SPEECH / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    clean, native = soundfile.read(path)
    if rate is not None:  # another rate: pystoi must resample it itself
        clean = np.interp(np.arange(int(clean.size * rate / native)) * native / rate,
                          np.arange(clean.size), clean)
    rate = rate or native
    noisy = clean + 0.05 * np.random.default_rng(0).standard_normal(clean.size)
    both = intelligibility_scores(reference=clean, generated=noisy, sample_rate=rate)
    # the same pystoi code on the same numbers: equal up to float rounding
    assert both["stoi"] == pytest.approx(pystoi_stoi(clean, noisy, rate), abs=1e-12)
    assert both["estoi"] == pytest.approx(pystoi_stoi(clean, noisy, rate, extended=True), abs=1e-12)


def test_too_short_is_nan_with_reason_never_pystois_sentinel():
    clean, noisy, rate = _golden_pair()
    with pytest.warns(RuntimeWarning, match="Not enough STFT frames"):
        assert pystoi_stoi(clean[:6400], noisy[:6400], rate) == 1e-5  # what we must not return
    with pytest.raises(MetricUnavailable, match="too_short"):
        stoi(reference=clean[:6400], generated=noisy[:6400], sample_rate=rate)
    with pytest.raises(MetricUnavailable, match="too_short"):
        intelligibility_scores(reference=clean[:6400], generated=noisy[:6400], sample_rate=rate)
    # too short for 30 frames even before silence removal: decided without calling pystoi
    with pytest.raises(MetricUnavailable, match="too_short: 6000 samples, fewer than 6349"):
        estoi(reference=clean[:6000], generated=noisy[:6000], sample_rate=rate)


def test_speech_padded_with_silence_keeps_its_value():
    clean, noisy, rate = _golden_pair()
    silence = np.zeros(rate)
    padded = stoi(reference=np.concatenate([clean, silence]),
                  generated=np.concatenate([noisy, silence]), sample_rate=rate)
    # silent frames are dropped from both; what is left differs only at the frame boundary
    assert padded == pytest.approx(0.6739177895, abs=0.01)


def test_length_rules():
    clean, noisy, rate = _golden_pair()
    trimmed = stoi(reference=clean, generated=np.concatenate([noisy, np.zeros(256)]),
                   sample_rate=rate)
    assert trimmed == pytest.approx(0.6739177895, abs=1e-6)  # trimmed back to the same pair
    with pytest.raises(InputError, match="lengths differ by 257 samples"):
        stoi(reference=clean, generated=np.concatenate([noisy, np.zeros(257)]), sample_rate=rate)


def test_bad_sample_rate_is_an_error_before_any_work():
    audio = 0.1 * np.random.default_rng(0).standard_normal(16000)
    with pytest.raises(InputError, match="sample_rate must be a whole number of Hz, got '16k'"):
        stoi(reference=audio, generated=audio, sample_rate="16k")
