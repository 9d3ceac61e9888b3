"""Pitch metrics: CARGAN's extraction and formulas recomputed here on torchcrepe's own outputs,
a tone a semitone apart, identity, known degradations and the statuses.

CREPE's "full" model costs about 5 CPU-seconds per audio second and signal here, so the clips
are short (0.5-1 s) and the degradation sweep and the 22.05 kHz check are marked slow.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile
from degradations import add_noise, low_pass, mu_law_round_trip

from metrics import MetricUnavailable
from metrics.pitch import (
    DITHER_SEED,
    NAMES,
    _min_length,
    f0_rmse_cents,
    periodicity_rmse,
    pitch_scores,
    vuv_f1,
)
from wavebench_base.errors import InputError, MissingDependencyError

torch = pytest.importorskip("torch")
torchcrepe = pytest.importorskip("torchcrepe")
resampy = pytest.importorskip("resampy")

SPEECH = Path(__file__).resolve().parent / "data" / "speech16k"  # tests/data/README.md
RATE = 16000


def _speech(name, start=0.0, seconds=1.0):
    audio, rate = soundfile.read(SPEECH / name)
    assert rate == RATE
    return audio[int(start * rate):int((start + seconds) * rate)]


def _low_pass(audio, cutoff=1000.0):
    return low_pass(audio, RATE, cutoff)


def _tone(frequency, seconds=0.5, rate=RATE):
    return 0.5 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)


def _cargan_extract(audio, rate):
    """cargan/preprocess/pitch.py ``from_audio`` with its constants written in: 16 kHz, hop
    int(256 * 16000 / 22050), reflect padding (1024 - hop) // 2, torchcrepe.predict ("full",
    50-550 Hz, Viterbi, batch 1024, unpadded), then Silence() on the periodicity. Resampled
    by resampy as torchcrepe.predict would (CARGAN used torchaudio). The dither is seeded as
    wavebench seeds it."""
    audio = audio.astype(np.float32)
    if rate != 16000:
        audio = resampy.resample(audio, rate, 16000)
    audio = torch.from_numpy(audio)[None]
    hopsize = int(256 * (16000 / 22050))
    padding = int((1024 - hopsize) // 2)
    audio = torch.nn.functional.pad(audio[None], (padding, padding), mode="reflect").squeeze(0)
    state = np.random.get_state()
    np.random.seed(DITHER_SEED)
    pitch, periodicity = torchcrepe.predict(
        audio, sample_rate=16000, hop_length=hopsize, fmin=50, fmax=550, model="full",
        return_periodicity=True, batch_size=1024, device="cpu", pad=False)
    np.random.set_state(state)
    periodicity = torchcrepe.threshold.Silence()(periodicity, audio, 16000, hop_length=hopsize,
                                                 pad=False)
    return pitch, periodicity


def _cargan_pitch_metric(true_pitch, true_periodicity, pred_pitch, pred_periodicity):
    """cargan/evaluate/objective/metrics.py ``Pitch.update`` then ``__call__`` on one file,
    in float64 (CARGAN: float32)."""
    threshold = torchcrepe.threshold.Hysteresis()
    true_voiced = ~torch.isnan(threshold(true_pitch, true_periodicity))
    pred_voiced = ~torch.isnan(threshold(pred_pitch, pred_periodicity))
    true_pitch, true_periodicity, pred_pitch, pred_periodicity = (
        t.double() for t in (true_pitch, true_periodicity, pred_pitch, pred_periodicity))
    count = true_pitch.shape[1]
    periodicity_total = (true_periodicity - pred_periodicity).pow(2).sum()
    voiced = true_voiced & pred_voiced
    difference_cents = 1200 * (torch.log2(true_pitch[voiced]) - torch.log2(pred_pitch[voiced]))
    pitch_total = difference_cents.pow(2).sum()
    true_positives = (true_voiced & pred_voiced).sum().double()
    false_positives = (~true_voiced & pred_voiced).sum().double()
    false_negatives = (true_voiced & ~pred_voiced).sum().double()
    precision = true_positives / (true_positives + false_positives)
    recall = true_positives / (true_positives + false_negatives)
    return {"f0_rmse_cents": torch.sqrt(pitch_total / voiced.sum()).item(),
            "periodicity_rmse": torch.sqrt(periodicity_total / count).item(),
            "vuv_f1": (2 * precision * recall / (precision + recall)).item()}


def _assert_same_state(state, expected):
    assert state[0] == expected[0] and np.array_equal(state[1], expected[1])
    assert state[2:] == expected[2:]


def _check_equals_cargan(reference, generated, rate):
    expected = _cargan_pitch_metric(*_cargan_extract(reference, rate),
                                    *_cargan_extract(generated, rate))
    np.random.seed(5)
    np.random.standard_normal(3)  # mid-stream, with a cached Gaussian in the legacy state
    before, threads = np.random.get_state(), torch.get_num_threads()
    scores = pitch_scores(reference=reference, generated=generated, sample_rate=rate)
    # the global generator (which torchcrepe's dither draws from) is put back; torch's
    # threads are left alone
    _assert_same_state(np.random.get_state(), before)
    assert torch.get_num_threads() == threads
    assert list(scores) == list(NAMES)
    assert all(type(value) is float for value in scores.values())
    # same torchcrepe steps on the same samples; the network runs on other batch groupings
    # (its outputs do not depend on them), the sums are both float64: 1e-6 as specified
    assert scores == pytest.approx(expected, abs=1e-6, rel=0)
    return scores


def test_equals_cargan_formulas_on_torchcrepe_outputs():
    reference = _speech("cannot-complete-as-dialed.flac", 0.0, 0.8)  # voiced from frame 1
    scores = _check_equals_cargan(reference, add_noise(reference, 10), RATE)
    # measured: 6.55 cents, 0.125, 0.957; the values must be real ones, not a degenerate pass
    assert 1 < scores["f0_rmse_cents"] < 100
    assert 0.05 < scores["periodicity_rmse"] < 0.5
    assert 0.5 < scores["vuv_f1"] < 1


@pytest.mark.slow
def test_equals_cargan_at_22050_hz():
    # another rate goes through resampy (torchcrepe's resampler), in both computations
    reference = scipy.signal.resample_poly(_speech("vm-login.flac", 0.2, 1.0), 441, 320)
    _check_equals_cargan(reference, mu_law_round_trip(reference), 22050)


def test_tone_against_itself_and_a_semitone_up():
    tone = _tone(220.0)
    # the same input gives the same decoded pitch and dither: exactly 0
    assert pitch_scores(reference=tone, generated=tone, sample_rate=RATE) == {
        "f0_rmse_cents": 0.0, "periodicity_rmse": 0.0, "vuv_f1": 1.0}
    up = pitch_scores(reference=tone, generated=_tone(220.0 * 2 ** (1 / 12)), sample_rate=RATE)
    # measured 99.99997: every voiced frame decodes exactly 5 bins of 20 cents apart, the
    # common dither cancels, and the rest is float32 rounding of the pitch in Hz
    assert up["f0_rmse_cents"] == pytest.approx(100.0, abs=0.01)
    assert up["vuv_f1"] == 1.0  # both tones are voiced in the same frames


def test_identity_on_speech():
    speech = _speech("agent-loginok.flac", 0.0, 0.75)
    assert pitch_scores(reference=speech, generated=speech, sample_rate=RATE) == {
        "f0_rmse_cents": 0.0, "periodicity_rmse": 0.0, "vuv_f1": 1.0}


#: Measured (f0 cents, periodicity RMSE, F1) for noise at 10 dB SNR, 8-bit mu-law, 1 kHz low-pass:
#: vm-login 0.2-1.2 s: (7.2, 0.052, 1.0), (2.2, 0.0006, 1.0), (3.1, 0.0057, 1.0);
#: agent-loginok 0-1 s: (9.6, 0.113, 0.95), (0.0, 0.0012, 1.0), (4.5, 0.055, 0.984).
@pytest.mark.slow
@pytest.mark.parametrize("name, start", [("vm-login.flac", 0.2), ("agent-loginok.flac", 0.0)])
def test_degradations_move_every_metric_the_wrong_way(name, start):
    reference = _speech(name, start, 1.0)
    scores = {name: pitch_scores(reference=reference, generated=degraded, sample_rate=RATE)
              for name, degraded in (("noise", add_noise(reference, 10)),
                                     ("mulaw", mu_law_round_trip(reference)),
                                     ("lowpass", _low_pass(reference)))}
    # identity gives 0, 0 and 1 exactly (test_identity_on_speech); every degradation is worse
    # or equal on every metric, and strictly worse where the margin is wide
    for degradation, values in scores.items():
        assert values["periodicity_rmse"] > 1e-4, degradation
        assert values["f0_rmse_cents"] >= 0.0
        # F1 does not move for mu-law on either clip, nor for anything on vm-login: CREPE's
        # voicing of these clips survives all three
        assert values["vuv_f1"] <= 1.0
    # pitch moves by more than a cent under noise and the low-pass; under mu-law by 2 cents
    # on vm-login and not at all on agent-loginok, whose voiced frames all decode to the same
    # bins (the common dither cancels)
    assert scores["noise"]["f0_rmse_cents"] > 1.0 and scores["lowpass"]["f0_rmse_cents"] > 1.0
    # noise at 10 dB disturbs periodicity 40 to 100 times more than mu-law's quantization
    assert scores["noise"]["periodicity_rmse"] > 10 * scores["mulaw"]["periodicity_rmse"]


def test_single_functions_equal_the_joint_one(monkeypatch):
    # one pass per signal in pitch_scores; the single functions read its dict
    calls = []
    values = {"f0_rmse_cents": 12.5, "periodicity_rmse": 0.25, "vuv_f1": 0.75}

    def fake(**inputs):
        calls.append(inputs)
        return dict(values)
    monkeypatch.setattr(sys.modules["metrics.pitch"], "pitch_scores", fake)
    pair = {"reference": np.zeros(3), "generated": np.ones(3), "sample_rate": 8000}
    for function in (f0_rmse_cents, periodicity_rmse, vuv_f1):
        assert function(**pair) == values[function.__name__]
    assert calls == [pair] * 3


def test_reference_without_voiced_frames():
    noise = 0.1 * np.random.default_rng(0).standard_normal(RATE // 2)
    # white noise has no voiced frame (measured: periodicity at most 0.05, the voiced bound
    # is 0.19); a tone against it is voiced in every frame, but in none the reference is
    scores = pitch_scores(reference=noise, generated=_tone(220.0), sample_rate=RATE)
    assert isinstance(scores["f0_rmse_cents"], MetricUnavailable)
    assert scores["f0_rmse_cents"].reason == "no_voiced_frames"
    assert "0 of 43 reference frames voiced, 41 generated" in str(scores["f0_rmse_cents"])
    assert scores["vuv_f1"] == 0.0  # 41 false positives, no true one
    assert 0.5 < scores["periodicity_rmse"] < 1  # the tone's periodicity is near 1, the noise's 0
    with pytest.raises(MetricUnavailable, match="none in both") as caught:
        f0_rmse_cents(reference=noise, generated=_tone(220.0), sample_rate=RATE)
    assert caught.value.reason == "no_voiced_frames"


def test_generated_voiced_in_none_of_the_reference_frames():
    # a vocoder that loses every voiced frame scores F1 0, the worst, where CARGAN's formula
    # gives 0 / 0 (NaN would drop it from a mean)
    tone = _tone(220.0)
    noise = 0.1 * np.random.default_rng(0).standard_normal(tone.size)
    with pytest.raises(MetricUnavailable, match="none in both") as caught:
        f0_rmse_cents(reference=tone, generated=noise, sample_rate=RATE)
    assert caught.value.reason == "no_voiced_frames"
    assert vuv_f1(reference=tone, generated=noise, sample_rate=RATE) == 0.0
    assert periodicity_rmse(reference=tone, generated=noise, sample_rate=RATE) > 0.5


def test_no_voiced_frame_in_either_signal():
    rng = np.random.default_rng(1)
    noise, other = (0.1 * rng.standard_normal(RATE // 2) for _ in range(2))
    scores = pitch_scores(reference=noise, generated=other, sample_rate=RATE)
    assert [scores[name].reason for name in ("f0_rmse_cents", "vuv_f1")] == [
        "no_voiced_frames"] * 2
    assert 0 <= scores["periodicity_rmse"] < 0.1
    # through the registry: the two get the status, the periodicity keeps its value
    from metrics import score_pair
    results = score_pair(NAMES, reference=noise, generated=other, sample_rate=RATE)
    assert [results[name].status for name in NAMES] == [
        "no_voiced_frames", "ok", "no_voiced_frames"]
    assert results["periodicity_rmse"].value == scores["periodicity_rmse"]


def test_statuses_before_any_analysis():
    tone = _tone(220.0)
    with pytest.raises(MetricUnavailable) as caught:
        pitch_scores(reference=np.zeros(tone.size), generated=tone, sample_rate=RATE)
    assert caught.value.reason == "silent_reference"
    short = tone[:int(0.03 * RATE)]
    with pytest.raises(MetricUnavailable, match="fewer than 1024") as caught:
        pitch_scores(reference=short, generated=short, sample_rate=RATE)
    assert caught.value.reason == "too_short"
    # one CREPE window at 16 kHz: 1412 samples at 22.05 kHz, 3072 at 48 kHz
    assert (_min_length(16000), _min_length(22050), _min_length(48000)) == (1024, 1412, 3072)
    just_short = _tone(220.0, rate=22050)[:1411]
    with pytest.raises(MetricUnavailable, match="too_short"):
        vuv_f1(reference=just_short, generated=just_short, sample_rate=22050)
    broken = tone.copy()
    broken[100] = np.nan
    with pytest.raises(MetricUnavailable) as caught:
        periodicity_rmse(reference=tone, generated=broken, sample_rate=RATE)
    assert caught.value.reason == "nonfinite_generated"


def test_bad_input_raises():
    tone = _tone(220.0)
    with pytest.raises(InputError, match="dtype int16"):
        pitch_scores(reference=(tone * 32767).astype(np.int16), generated=tone,
                     sample_rate=RATE)
    with pytest.raises(InputError, match="differ by 1000 samples"):
        pitch_scores(reference=tone, generated=tone[:-1000], sample_rate=RATE)
    with pytest.raises(InputError, match="whole number"):
        pitch_scores(reference=tone, generated=tone, sample_rate=16000.5)
    with pytest.raises(TypeError):
        pitch_scores(tone, tone, RATE)  # keyword-only: a swap cannot happen by position


def test_missing_torchcrepe_is_one_line_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchcrepe", None)  # import torchcrepe raises ImportError
    tone = _tone(220.0)
    with pytest.raises(MissingDependencyError, match=r"pip install 'wavebench\[pitch\]'"):
        pitch_scores(reference=tone, generated=tone, sample_rate=RATE)


def test_importing_the_module_imports_neither_torchcrepe_nor_resampy():
    code = ("import sys, metrics, metrics.pitch; "
            "print(sorted({'torchcrepe', 'resampy'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"
