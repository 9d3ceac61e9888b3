"""Known degradations move every pair metric the right way: identity < 20 dB SNR < 5 dB SNR."""
from pathlib import Path

import numpy as np
import pytest
import soundfile

from metrics import METRICS, score_pair

SPEECH = Path(__file__).resolve().parent / "data" / "speech16k"  # see tests/data/README.md
PAIR_METRICS = [name for name, spec in METRICS.items() if "generated" in spec.inputs]


def _add_noise(audio, snr_db, seed=0):
    noise = np.random.default_rng(seed).standard_normal(audio.size)
    return audio + noise * np.sqrt(np.mean(audio ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))


def _mu_law_round_trip(audio, mu=255.0):
    """8-bit mu-law quantization, written here from the G.711 formula (not the package's)."""
    x = np.clip(audio, -1, 1)
    codes = np.round((np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) + 1) / 2 * mu)
    y = 2 * codes / mu - 1
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu


@pytest.fixture(scope="module")
def scores():
    reference, rate = soundfile.read(SPEECH / "cannot-complete-as-dialed.flac")
    conditions = {"identity": reference, "snr20": _add_noise(reference, 20),
                  "snr5": _add_noise(reference, 5), "mulaw": _mu_law_round_trip(reference)}
    return {condition: score_pair(PAIR_METRICS, reference=reference, generated=generated,
                                  sample_rate=rate)
            for condition, generated in conditions.items()}


def _badness(result, name):
    assert result.ok, result.status
    return -result.value if METRICS[name].higher_is_better else result.value


@pytest.mark.parametrize("name", PAIR_METRICS)
def test_more_noise_is_worse(scores, name):
    identity, snr20, snr5 = (_badness(scores[c][name], name) for c in ("identity", "snr20", "snr5"))
    assert identity < snr20 < snr5


@pytest.mark.parametrize("name", PAIR_METRICS)
def test_mu_law_is_worse_than_identity(scores, name):
    assert _badness(scores["identity"][name], name) < _badness(scores["mulaw"][name], name)


def test_identity_is_perfect(scores):
    values = {name: result.value for name, result in scores["identity"].items()}
    perfect = {name: 1.0 if METRICS[name].higher_is_better else 0.0 for name in PAIR_METRICS}
    assert values == pytest.approx(perfect, abs=1e-9)  # STOI's correlations round to 1 - 1e-16
