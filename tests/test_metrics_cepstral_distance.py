"""MCD, c0 RMSE, mcd_speech and mcd_dtw against SPTK (through pysptk) and worked values."""
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from metrics import MetricUnavailable, c0_rmse_db, cdist, mcd, mcd_dtw, mcd_speech
from metrics.cepstral_distance import mel_cepstral_scores
from metrics.dtw import dtw_path
from wavebench_base.errors import InputError

SPEECH = Path(__file__).resolve().parent / "data" / "speech16k"  # see tests/data/README.md


def _speech(name="cannot-complete-as-dialed.flac"):
    return soundfile.read(SPEECH / name)


def _pysptk():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pysptk 1.0.1 imports the deprecated pkg_resources
        return pytest.importorskip("pysptk")


def _noisy(audio, snr_db, seed=0):
    noise = np.random.default_rng(seed).standard_normal(audio.size)
    return audio + noise * np.sqrt(np.mean(audio ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))


def test_cdist_matches_pysptk():
    pysptk = _pysptk()
    rng = np.random.default_rng(0)
    c1, c2 = rng.standard_normal((2, 50, 24))
    # pysptk's cdist is SPTK's definition in float64: agreement to rounding
    assert cdist(c1, c2) == pytest.approx(pysptk.cdist(c1, c2), rel=1e-12)
    np.testing.assert_allclose(cdist(c1, c2, per_frame=True), pysptk.cdist(c1, c2, frame=True),
                               rtol=1e-12)


def test_cdist_worked_by_hand():
    c1 = np.array([[5.0, 0.0, 0.0]])
    c2 = np.array([[-7.0, 3.0, 4.0]])  # c0 differs but is excluded; distance sqrt(2 * 25)
    assert cdist(c1, c2) == pytest.approx(10 / np.log(10) * np.sqrt(50), rel=1e-12)


def test_cdist_shape_mismatch_is_an_error():
    with pytest.raises(InputError, match=r"cdist needs two cepstra of one shape"):
        cdist(np.zeros((3, 24)), np.zeros((4, 24)))


def test_mcd_reproduces_the_sptk_pipeline():
    pysptk = _pysptk()
    reference, rate = _speech()
    generated = _noisy(reference, 10.0)

    def cepstra(audio):
        frames = (np.lib.stride_tricks.sliding_window_view(audio * 32768, 1024)[::256]
                  * np.hamming(1024))
        return np.array([pysptk.mcep(f, 23, 0.42, etype=1, eps=1e-6) for f in frames])

    expected = pysptk.cdist(cepstra(reference), cepstra(generated))
    # the design's tolerance, 1e-4 dB; the cepstra agree to ~1e-12
    assert mcd(reference=reference, generated=generated, sample_rate=rate) == pytest.approx(
        expected, abs=1e-4)


def test_identity_gives_zero():
    reference, rate = _speech()
    scores = mel_cepstral_scores(reference=reference, generated=reference, sample_rate=rate)
    assert scores == {"mcd": 0.0, "c0_rmse_db": 0.0, "mcd_speech": 0.0}
    assert mcd_dtw(reference=reference, generated=reference, sample_rate=rate) == 0.0


def test_gain_moves_c0_only():
    reference, rate = _speech()
    noisy = _noisy(reference, 15.0)
    quieter = noisy * 0.5  # -6.02 dB
    before = mel_cepstral_scores(reference=reference, generated=noisy, sample_rate=rate)
    after = mel_cepstral_scores(reference=reference, generated=quieter, sample_rate=rate)
    # c0 excluded: only the 1e-6 periodogram floor can see a gain (design: under 0.05 dB)
    assert abs(after["mcd"] - before["mcd"]) < 0.05
    alone = c0_rmse_db(reference=reference, generated=reference * 0.5, sample_rate=rate)
    # c0 is ln of the gain: 20 log10(2) = 6.0206 dB; the floor moves it by far less than 1e-3 dB
    assert alone == pytest.approx(20 * np.log10(2), abs=1e-3)


def test_mcd_speech_ignores_pauses():
    reference, rate = _speech()
    speech_only = reference.copy()
    energy = np.convolve(reference ** 2, np.ones(1024), "same")
    pauses = energy < energy.max() * 1e-6  # 60 dB below the peak: pauses, not speech
    assert pauses.any()
    generated = speech_only + pauses * 0.05 * np.random.default_rng(0).standard_normal(pauses.size)
    full = mcd(reference=reference, generated=generated, sample_rate=rate)
    speech = mcd_speech(reference=reference, generated=generated, sample_rate=rate)
    assert speech < full  # loud noise only in the pauses hurts plain MCD more


def test_unsupported_rate_is_an_error():
    audio = 0.1 * np.random.default_rng(0).standard_normal(8000)
    with pytest.raises(InputError, match=r"no mel-cepstrum settings for 8000 Hz; MCD supports "
                                         r"16000, 22050, 24000, 44100, 48000 Hz"):
        mcd(reference=audio, generated=audio, sample_rate=8000)


def test_shorter_than_one_frame_is_too_short():
    audio = 0.1 * np.random.default_rng(0).standard_normal(1000)
    with pytest.raises(MetricUnavailable, match="too_short"):
        mcd(reference=audio, generated=audio, sample_rate=16000)
    with pytest.raises(MetricUnavailable, match="too_short"):
        mcd_dtw(reference=audio, generated=audio, sample_rate=16000)


def _slow_dtw(cost):
    n, m = cost.shape
    acc = np.full((n, m), np.inf)
    for i in range(n):
        for j in range(m):
            before = [acc[i - 1, j - 1] if i and j else np.inf, acc[i - 1, j] if i else np.inf,
                      acc[i, j - 1] if j else np.inf]
            acc[i, j] = cost[i, j] + (0.0 if i == j == 0 else min(before))
    return acc[-1, -1]


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (13, 21), (30, 17)])
def test_dtw_matches_a_slow_loop(shape):
    cost = np.random.default_rng(sum(shape)).uniform(0, 1, shape)
    total, path = dtw_path(cost)
    assert total == pytest.approx(_slow_dtw(cost), rel=1e-12)  # same sums, other order
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (shape[0] - 1, shape[1] - 1)
    steps = np.diff(path, axis=0)
    assert set(map(tuple, steps)) <= {(1, 1), (1, 0), (0, 1)}
    assert cost[path[:, 0], path[:, 1]].sum() == pytest.approx(total, rel=1e-12)


def test_mcd_dtw_undoes_a_delay_that_frame_aligned_mcd_cannot():
    reference, rate = _speech()
    delayed = np.concatenate([np.zeros(4000), reference])[: reference.size + 4000]
    aligned = mcd_dtw(reference=reference, generated=delayed, sample_rate=rate)
    with pytest.raises(InputError, match="lengths differ by 4000 samples"):
        mcd(reference=reference, generated=delayed, sample_rate=rate)
    plain = mcd(reference=reference, generated=delayed[: reference.size], sample_rate=rate)
    assert aligned < 0.25 * plain  # 4000 = 15.6 hops: DTW finds the shift up to a partial hop
