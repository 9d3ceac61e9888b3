"""STOI and ESTOI: the golden pair, pystoi called directly, asymmetry and the too-short rule."""
import importlib
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import soundfile
from pystoi import stoi as pystoi_stoi
from pystoi import utils as pystoi_utils

from metrics import MetricUnavailable, estoi, intelligibility, intelligibility_scores, stoi
from metrics.intelligibility import _back_ends, estoi_noise
from wavebench_base.errors import InputError

DATA = Path(__file__).resolve().parent / "data"  # tests/data/README.md: sources and licences
VECTORS = DATA / "vectors"
SPEECH = DATA / "speech16k"


def _golden_pair():
    paths = VECTORS / "speech.wav", VECTORS / "speech_bab_0dB.wav"
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


def test_settings_band_matrix_and_resampling_filters_are_pystois():
    # our copies of pystoi's settings and designs (pystoi itself imports scipy.signal: slow)
    reference = importlib.import_module("pystoi.stoi")  # the module (pystoi.stoi is a function)

    assert (intelligibility.STOI_RATE, intelligibility._FRAME, intelligibility._NFFT,
            intelligibility._SEGMENT, intelligibility._BANDS) == (
        reference.FS, reference.N_FRAME, reference.NFFT, reference.N, reference.NUMBAND)
    assert intelligibility._LOWEST_CENTRE_HZ == reference.MINFREQ
    assert intelligibility._DYNAMIC_RANGE_DB == reference.DYN_RANGE
    assert intelligibility._CLIP == 1 + 10 ** (-reference.BETA / 20)
    assert intelligibility._EPS == pystoi_utils.EPS
    assert np.array_equal(intelligibility._BAND_MATRIX, reference.OBM)
    for rate in (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 96000):
        h = pystoi_utils._resample_window_oct(reference.FS, rate)
        divisor = math.gcd(reference.FS, rate)
        ours = intelligibility._resample_filter(reference.FS // divisor, rate // divisor)
        assert np.array_equal(ours, h / np.sum(h)), rate


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


def _mu_law(audio, mu=255.0):
    """8-bit mu-law round trip (encode, quantize to 256 levels, decode)."""
    compressed = np.sign(audio) * np.log1p(mu * np.abs(np.clip(audio, -1, 1))) / np.log1p(mu)
    decoded = 2.0 * np.round((compressed + 1.0) / 2.0 * mu) / mu - 1.0
    return np.sign(decoded) * np.expm1(np.abs(decoded) * np.log1p(mu)) / mu


def _speech_at(name, rate):
    clean, native = soundfile.read(SPEECH / name)
    if rate != native:  # another rate by linear interpolation: pystoi must resample it itself
        clean = np.interp(np.arange(int(clean.size * rate / native)) * native / rate,
                          np.arange(clean.size), clean)
    return clean


def _pystoi_both(clean, degraded, rate, monkeypatch):
    """pystoi called directly, its ESTOI noise replaced by ours in its own order.

    pystoi draws four arrays from ``np.random.standard_normal`` (clean rows, clean columns,
    processed rows, processed columns); handing it :func:`estoi_noise`'s arrays in that order
    makes its ESTOI a reference for ours with the same noise, computed by its code.
    """
    draws = []

    def standard_normal(shape):
        if not draws:
            draws.extend(estoi_noise(shape[0]))
        assert draws[0].shape == shape
        return draws.pop(0)
    with monkeypatch.context() as patch:
        patch.setattr(np.random, "standard_normal", standard_normal)
        return {"stoi": pystoi_stoi(clean, degraded, rate),
                "estoi": pystoi_stoi(clean, degraded, rate, extended=True)}


@pytest.mark.parametrize("name, rate, degradation", [
    ("vm-login.flac", 16000, "noise"), ("agent-loginok.flac", 16000, "mu-law"),
    ("dir-first.flac", 22050, "noise"), ("conf-getpin.flac", 22050, "mu-law"),
    ("demo-echodone.flac", 8000, "noise"), ("call-forwarding.flac", 8000, "mu-law")])
def test_shared_front_end_equals_pystoi_called_directly(name, rate, degradation, monkeypatch):
    clean = _speech_at(name, rate)
    if degradation == "noise":
        degraded = clean + 0.05 * np.random.default_rng(0).standard_normal(clean.size)
    else:
        degraded = _mu_law(clean)
    expected = _pystoi_both(clean, degraded, rate, monkeypatch)
    np.random.seed(7)
    before = np.random.get_state()
    both = intelligibility_scores(reference=clean, generated=degraded, sample_rate=rate)
    # same pystoi steps on the same numbers and the same noise; the band sums and the final
    # sum round differently (per row, per segment): 1e-12 relative as specified
    assert both == pytest.approx(expected, rel=1e-12, abs=0)
    # the global generator is left alone (pystoi's ESTOI would have drawn from it)
    _assert_same_state(np.random.get_state(), before)
    single = {"stoi": stoi(reference=clean, generated=degraded, sample_rate=rate),
              "estoi": estoi(reference=clean, generated=degraded, sample_rate=rate)}
    assert single == both  # one front end for both, or one each: the same bytes


def _assert_same_state(state, expected):
    assert state[0] == expected[0] and np.array_equal(state[1], expected[1])
    assert state[2:] == expected[2:]


def test_estoi_is_reproducible_and_leaves_the_global_generator_alone():
    clean, noisy, rate = _golden_pair()
    np.random.seed(123)
    np.random.standard_normal(3)  # mid-stream, with a cached Gaussian in the legacy state
    before = np.random.get_state()
    first = estoi(reference=clean, generated=noisy, sample_rate=rate)
    _assert_same_state(np.random.get_state(), before)
    np.random.seed(999)  # another global state changes nothing
    second = estoi(reference=clean, generated=noisy, sample_rate=rate)
    assert np.float64(first).tobytes() == np.float64(second).tobytes()


def test_silent_output_gives_the_noise_driven_estoi_of_pystoi_given_our_noise(monkeypatch):
    clean = _speech_at("vm-login.flac", 16000)
    silent = np.zeros_like(clean)
    # with silent output ESTOI normalizes pure regularizing noise: pystoi's value is random
    np.random.seed(1)
    first = pystoi_stoi(clean, silent, 16000, extended=True)
    np.random.seed(2)
    assert abs(first - pystoi_stoi(clean, silent, 16000, extended=True)) > 1e-6
    # ours is the value pystoi gives with the same noise draws, whatever the global seed
    expected = _pystoi_both(clean, silent, 16000, monkeypatch)
    for seed in (1, 2):
        np.random.seed(seed)
        both = intelligibility_scores(reference=clean, generated=silent, sample_rate=16000)
        assert both == pytest.approx(expected, rel=1e-12, abs=0)


def test_estoi_of_envelopes_with_silent_bands_equals_pystoi_given_our_noise(monkeypatch):
    # a band that is exactly zero over a segment is normalized from its row noise alone: clean
    # bands 0-6 and processed bands 8-14 silent, so the clean rows' draw and the processed
    # rows' draw both decide the value (a draw used in the wrong place changes it by ~1e-2)
    rng = np.random.default_rng(11)
    clean, processed = rng.uniform(0.1, 1.0, (2, 15, 80))
    clean[:7] = 0.0
    processed[8:] = 0.0
    draws = list(estoi_noise(80 - 30 + 1))
    monkeypatch.setattr(np.random, "standard_normal", lambda shape: draws.pop(0))
    # pystoi's ESTOI back end on the same envelopes, as its stoi() runs it
    x, y = (np.array([bands[:, m - 30:m] for m in range(30, 81)]) for bands in (clean, processed))
    x_n, y_n = pystoi_utils.row_col_normalize(x), pystoi_utils.row_col_normalize(y)
    expected = np.sum(x_n * y_n / 30) / x_n.shape[0]
    assert not draws  # pystoi drew all four arrays, in our order
    got = _back_ends(clean, processed, short=False)["estoi"]
    assert got == pytest.approx(expected, rel=1e-12, abs=0)


def _splitmix64(state):
    """SplitMix64's output for ``state`` (the generator's state after its increment), in Python
    integers."""
    mask = 2 ** 64 - 1
    z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_noise_is_splitmix64_split_into_four_uniforms():
    from metrics.intelligibility_kernels import noise_value

    gamma = 0x9E3779B97F4A7C15
    # the published first output of SplitMix64 seeded with 0 checks the reference itself
    assert _splitmix64(gamma) == 0xE220A8397B1DCDAF
    for key in (0, 1, 2, 1799, 1800, 123456789, 2 ** 40 + 7):
        z = _splitmix64(((key + 1) * gamma) % 2 ** 64)
        total = sum((z >> shift) & 0xFFFF for shift in (0, 16, 32, 48))
        assert noise_value(key) == (total - 131070) * np.sqrt(3.0) / 65536, key


def test_regularizing_noise_has_the_moments_of_a_standard_normal_draw():
    noise = estoi_noise(2000)  # 4 x 2000 x 15 x 30 = 3.6 million numbers
    values = noise.reshape(-1)
    n = values.size
    # the sum of four uniforms on (0, 1), centred and scaled: mean 0, variance 1, bounded by
    # 2 sqrt(3), excess kurtosis -6 / (5 x 4) = -0.3 (Irwin-Hall); each within 5 standard errors
    assert abs(np.mean(values)) < 5 / np.sqrt(n)
    assert abs(np.var(values) - 1) < 5 * np.sqrt((3 - 0.3 - 1) / n)
    assert np.max(np.abs(values)) <= 2 * np.sqrt(3)
    assert scipy.stats.kurtosis(values) == pytest.approx(-0.3, abs=0.02)
    # neighbours, and the same place in the four draws, are uncorrelated
    assert abs(np.corrcoef(values[:-1], values[1:])[0, 1]) < 5 / np.sqrt(n)
    rows = noise.reshape(4, -1)
    assert np.max(np.abs(np.corrcoef(rows) - np.eye(4))) < 5 / np.sqrt(rows.shape[1])
    # each number is a function of its place: fewer segments give the same leading ones
    assert np.array_equal(estoi_noise(7), noise[:, :7])


def test_thirty_frame_boundary_matches_pystoi(monkeypatch):
    # white noise at 10 kHz: no frame is silent; n samples give ceil((n - 256) / 128) frames
    # for silence removal and one fewer STFT frame, so 4097 is the fewest with 30
    rng = np.random.default_rng(3)
    clean = 0.1 * rng.standard_normal(4097)
    noisy = clean + 0.1 * rng.standard_normal(4097)
    with pytest.warns(RuntimeWarning, match="Not enough STFT frames"):
        assert pystoi_stoi(clean[:4096], noisy[:4096], 10000) == 1e-5
    with pytest.raises(MetricUnavailable, match="too_short: under 30 STOI frames"):
        intelligibility_scores(reference=clean[:4096], generated=noisy[:4096], sample_rate=10000)
    expected = _pystoi_both(clean, noisy, 10000, monkeypatch)
    both = intelligibility_scores(reference=clean, generated=noisy, sample_rate=10000)
    assert both == pytest.approx(expected, rel=1e-12, abs=0)  # as in the speech cases


def test_inputs_are_not_modified():
    clean, noisy, rate = _golden_pair()
    copies = clean.copy(), noisy.copy()
    intelligibility_scores(reference=clean, generated=noisy, sample_rate=rate)
    assert np.array_equal(clean, copies[0]) and np.array_equal(noisy, copies[1])


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
