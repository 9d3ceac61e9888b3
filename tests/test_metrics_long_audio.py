"""Long audio in bounded memory: the metrics computed in chunks equal the unchunked values.

Issue 17: a 1-hour pair took 9.6 GB in ``score``. The frame-based metrics now compute their
per-frame values ``CHUNK_FRAMES`` frames at a time, STOI resamples and analyses in pieces, and
``mcd_dtw`` refuses a grid beyond its bound. Every chunked value must equal the unchunked one
bit for bit, so each test here lowers the chunk size to a few frames (chunk boundaries
everywhere) and compares with a chunk larger than the signal.
"""
import tracemalloc

import numpy as np
import pytest
from pystoi import utils as pystoi_utils
from pystoi.stoi import DYN_RANGE, N_FRAME, NFFT, OBM

import metrics.dtw
import metrics.framing
from metrics import METRICS, mcd_dtw, score_pair
from metrics.framing import band_product, padded_span, power
from metrics.intelligibility import _band_envelopes, _kept_frames, _resample_to_10k
from metrics.mel import mel_filterbank
from metrics.pitch import NAMES as PITCH_NAMES
from metrics.registry import PAIR_INPUTS
from wavebench_base.errors import InputError

# CREPE (the pitch metrics) analyses a whole signal in its own fixed batches of frames, with no
# chunk size to vary; it costs 5 CPU-seconds per audio second and signal
PAIR_METRICS = [name for name, spec in METRICS.items()
                if spec.inputs == PAIR_INPUTS and name not in PITCH_NAMES]
UNCHUNKED = 1 << 40


def speechlike(seconds, rate, seed=0):
    """Voiced bursts (a 150 Hz buzz with harmonics) between digital silences, float32.

    The silences make STOI drop frames, so its kept frames are not contiguous and chunks of
    band envelopes straddle the gaps.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    buzz = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8))
    gate = (np.sin(2 * np.pi * 1.3 * t) > -0.3).astype(float)  # about 60 % voiced
    return (0.2 * buzz * gate + 0.003 * gate * rng.standard_normal(t.size)).astype(np.float32)


def pair(seconds, rate):
    reference = speechlike(seconds, rate)
    noise = 0.02 * np.random.default_rng(1).standard_normal(reference.size).astype(np.float32)
    return reference, reference + noise


@pytest.fixture
def chunk_frames(monkeypatch):
    """Set ``metrics.framing.CHUNK_FRAMES`` for the rest of the test."""
    return lambda frames: monkeypatch.setattr(metrics.framing, "CHUNK_FRAMES", frames)


@pytest.mark.parametrize("rate", [16000, 22050, 10000])
def test_every_metric_chunked_equals_unchunked(rate, chunk_frames):
    # 10 kHz: STOI's own rate (nothing resampled); MCD has no settings for it
    reference, generated = pair(2.5, rate)
    chunk_frames(UNCHUNKED)
    whole = score_pair(PAIR_METRICS, reference=reference, generated=generated, sample_rate=rate)
    assert all(whole[name].ok for name in PAIR_METRICS if rate != 10000 or
               not name.startswith(("mcd", "c0")))
    for frames in (1, 7):
        chunk_frames(frames)
        chunked = score_pair(PAIR_METRICS, reference=reference, generated=generated,
                             sample_rate=rate)
        for name in PAIR_METRICS:
            assert chunked[name].status == whole[name].status, name
            assert np.float64(chunked[name].value).tobytes() == \
                np.float64(whole[name].value).tobytes(), (name, frames)


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_stoi_resampling_equals_pystoi_resampling_the_whole(rate):
    signal = speechlike(0.7, rate, seed=rate)[:int(0.7 * rate) - 3]  # an odd length, float32
    expected = pystoi_utils.resample_oct(signal.astype(np.float64), 10000, rate)
    got = _resample_to_10k(signal, rate)
    assert got.shape == expected.shape
    # the same sums, reordered to vectorize: rounding only (2e-15 of the peak measured)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-14 * np.max(np.abs(expected)))
    # every output sample reads only its own input samples: a prefix resamples to a prefix
    np.testing.assert_array_equal(_resample_to_10k(signal[:signal.size // 2], rate)[:100],
                                  got[:100])


def test_band_envelopes_equal_pystoi_front_end_across_silence_gaps(chunk_frames):
    signal = speechlike(1.5, 10000, seed=5).astype(np.float64)
    clean, _ = pystoi_utils.remove_silent_frames(signal, signal, DYN_RANGE, N_FRAME, N_FRAME // 2)
    spectrum = pystoi_utils.stft(clean, N_FRAME, NFFT, overlap=2).transpose()
    expected = np.sqrt(np.matmul(OBM, np.square(np.abs(spectrum))))
    kept = _kept_frames(signal)
    assert np.any(np.diff(kept) > 1)  # frames were dropped: the gaps are exercised
    for frames in (1, 2, 5, UNCHUNKED):
        chunk_frames(frames)
        # pystoi's band sums are one BLAS product; ours are one per frame: rounding only
        np.testing.assert_allclose(_band_envelopes(signal, kept), expected, rtol=1e-13, atol=0)


def test_padded_span_equals_slices_of_the_padded_signal():
    audio = np.arange(50, dtype=np.float32) ** 2
    padded = np.pad(audio.astype(np.float64), 20, mode="reflect")
    for start, stop in [(0, 90), (0, 7), (3, 30), (15, 60), (60, 90), (25, 45), (89, 90)]:
        span = padded_span(audio, start, stop, pad=20)
        assert span.dtype == np.float64 and np.array_equal(span, padded[start:stop])


def test_band_product_equals_the_dense_product_and_rows_do_not_depend_on_the_others():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 513))
    bank = np.zeros((6, 513))  # runs at both edges, one with a zero inside, one empty band
    for band, (lo, hi) in enumerate([(0, 3), (2, 40), (100, 101), (300, 513), (7, 7), (50, 90)]):
        bank[band, lo:hi] = rng.uniform(0.1, 1.0, hi - lo)
    bank[5, 70] = 0.0
    whole = band_product(a, bank)
    assert whole.shape == (300, 6) and not whole[:, 4].any()
    np.testing.assert_allclose(whole, a @ bank.T, rtol=1e-12, atol=1e-12)
    for rows in (slice(0, 1), slice(5, 12), slice(17, 300), [3, 250, 4, 99]):
        assert np.array_equal(band_product(a[rows], bank), whole[rows])
    # the filterbanks it serves: Slaney mel bands and pystoi's one-third-octave bands
    for filterbank in (mel_filterbank(16000), mel_filterbank(44100), OBM):
        spectra = np.abs(rng.standard_normal((40, filterbank.shape[1])))
        np.testing.assert_allclose(band_product(spectra, filterbank), spectra @ filterbank.T,
                                   rtol=1e-13)


def test_power_is_numpys_expression_byte_for_byte():
    rng = np.random.default_rng(5)
    # magnitudes over 40 decades, so that the offset and both squares round in every way
    spectrum = (rng.standard_normal((64, 513)) + 1j * rng.standard_normal((64, 513))) \
        * 10.0 ** rng.uniform(-20, 20, (64, 513))
    for offset in (0.0, 1e-9, 1e-6):
        expected = spectrum.real ** 2 + spectrum.imag ** 2 + offset
        assert np.array_equal(power(spectrum, offset), expected)


def test_mcd_dtw_refuses_a_grid_beyond_its_bound_before_any_analysis(monkeypatch):
    reference, generated = pair(2.0, 16000)  # 122 x 122 frames
    expected = mcd_dtw(reference=reference, generated=generated, sample_rate=16000)
    monkeypatch.setattr(metrics.dtw, "MAX_DTW_CELLS", 122 * 122 - 1)

    def refuse(*args, **kwargs):
        raise AssertionError("the cepstra were computed")
    monkeypatch.setattr(metrics.dtw, "mel_cepstra", refuse)
    with pytest.raises(InputError, match=r"^exact DTW of 122 x 122 frames needs 14884 cells "
                                         r"\(0.0 GiB\), more than mcd_dtw allocates \(14883 "
                                         r"cells, 0 GiB\); score shorter clips$") as raised:
        mcd_dtw(reference=reference, generated=generated, sample_rate=16000)
    assert raised.value.reason == "too_long"
    result = score_pair(["mcd_dtw", "mcd"], reference=reference, generated=generated,
                        sample_rate=16000)["mcd_dtw"]
    assert result.status == "too_long" and np.isnan(result.value)
    monkeypatch.undo()  # the cepstra back; a grid of exactly the bound is allowed
    monkeypatch.setattr(metrics.dtw, "MAX_DTW_CELLS", 122 * 122)
    assert mcd_dtw(reference=reference, generated=generated, sample_rate=16000) == expected


def test_the_dtw_bound_refuses_an_hour_and_allows_two_minutes():
    frames_per_minute = 60 * 16000 / 256
    assert 2 * frames_per_minute * 2 * frames_per_minute <= metrics.dtw.MAX_DTW_CELLS
    hour = 1 + (3600 * 16000 - 1024) // 256  # frames of one hour at 16 kHz
    with pytest.raises(InputError, match=r"224997 x 224997 frames needs 50623650009 cells "
                                         r"\(754.4 GiB\)"):
        metrics.dtw._check_grid_size(hour, hour)


def _peak_bytes(seconds):
    """tracemalloc's peak while scoring a ``seconds`` pair with every pair metric but DTW."""
    reference, generated = pair(seconds, 16000)
    names = [name for name in PAIR_METRICS if name != "mcd_dtw"]
    tracemalloc.start()
    try:
        score_pair(names, reference=reference, generated=generated, sample_rate=16000)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_grows_by_a_few_bytes_per_sample_not_by_the_analysis_size(chunk_frames):
    # 32 more seconds of audio: before chunking, scoring took about 170 bytes per sample of the
    # pair (frames, spectra and segments of both signals at once); now what grows with length
    # is the 10 kHz float64 signal STOI holds (5 bytes per 16 kHz sample, one signal at a time)
    # and per-frame results. The first call fills caches (filterbanks, mcep operators).
    chunk_frames(64)
    _peak_bytes(1.0)
    growth = (_peak_bytes(36.0) - _peak_bytes(4.0)) / (32 * 16000)
    assert growth < 8.0, f"{growth:.1f} bytes per sample"
