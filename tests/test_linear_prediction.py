"""Linear prediction from the mel frames (lpc_order > 0): the predictor, the excitation targets,
the sample likelihood and the samplers that run it, against scipy and plain loops."""
import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import scipy.special
import torch
from test_sample import SMALL

from reference_model.batches import Cropper
from reference_model.checkpoint import load_checkpoint
from reference_model.config import PRESETS, ModelConfig
from reference_model.embedded import embedded_audioset
from reference_model.features import log_mel
from reference_model.likelihood import bits_per_sample, target_log_probs
from reference_model.linear_prediction import (
    Synthesis,
    code_edges,
    coefficients,
    excitation_codes,
    levinson,
    predictions,
    sample_log_probs,
)
from reference_model.model import WaveNet
from reference_model.mulaw import mu_law_decode, mu_law_encode
from reference_model.sampling import fastest_sampler, generate
from wavebench.cli import main
from wavebench_base.errors import InputError

SMALL_LPC = SMALL.replace(lpc_order=4)  # the sampler tests' model, with a predictor
TINY_LPC = ModelConfig(blocks=1, layers=4, residual_channels=8, dilation_channels=8,
                       skip_channels=16, end_channels=16, n_mels=40, cond="mel",
                       upsample="repeat", lpc_order=32)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_levinson_solves_the_normal_equations_as_scipy_does():
    rng = np.random.default_rng(0)
    x = scipy.signal.lfilter([1.0], [1.0, -1.6, 0.9], rng.standard_normal((3, 4000)))
    r = np.stack([np.correlate(v, v, "full")[len(v) - 1:len(v) + 16] for v in x])
    expected = np.stack([scipy.linalg.solve_toeplitz(row[:16], row[1:]) for row in r])
    np.testing.assert_allclose(levinson(r), expected, rtol=0, atol=1e-10)
    # an AR(2) process: the first two coefficients are its own, the rest about zero
    np.testing.assert_allclose(levinson(r)[:, :2], [[1.6, -0.9]] * 3, atol=0.05)


def test_predictions_equal_an_fir_filter_of_the_past_samples_frame_by_frame():
    rng = np.random.default_rng(1)
    values, coeffs, hop = rng.standard_normal(50), rng.standard_normal((7, 3)), 8
    got = predictions(values, coeffs, hop)
    expected = np.empty(50)
    for frame in range(7):  # frames past the end of the samples repeat the last one's
        fir = scipy.signal.lfilter(np.concatenate([[0.0], coeffs[min(frame, 6)]]), [1.0], values)
        expected[frame * hop:(frame + 1) * hop] = fir[frame * hop:(frame + 1) * hop]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_the_predictor_from_the_mel_frames_leaves_a_chord_a_quiet_excitation():
    """What the split is for: on the embedded chords, the predictor read from the mel frames
    alone takes out most of the power (15 dB at least; the measured figure is printed)."""
    chord = next(u for u in embedded_audioset(n_clips=5).train if u.name.startswith("chords"))
    codes = mu_law_encode(chord.audio, 256)
    values = mu_law_decode(codes, 256).astype(np.float64)
    mel = log_mel(chord.audio, TINY_LPC)
    excitation = values - predictions(values, coefficients(mel, TINY_LPC), 256)
    gain = 10 * np.log10(np.mean(values ** 2) / np.mean(excitation ** 2))
    print(f"prediction gain on {chord.name}: {gain:.1f} dB")
    assert gain > 15
    np.testing.assert_array_equal(excitation_codes(codes, mel, TINY_LPC),
                                  mu_law_encode(np.clip(excitation, -1, 1), 256))


def test_sample_probabilities_sum_to_one_and_equal_the_excitations_without_a_prediction():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((5, 256)) * 3
    log_p = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
    every_code = np.arange(256)
    for p in (0.0, 0.013, -0.4, 0.97):
        total = [np.exp(sample_log_probs(np.repeat(log_p[i:i + 1], 256, 0), np.full(256, p),
                                         every_code, 256)).sum() for i in range(5)]
        np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-12)
    codes = rng.integers(0, 256, 5)
    np.testing.assert_allclose(sample_log_probs(log_p, np.zeros(5), codes, 256),
                               log_p[np.arange(5), codes], rtol=0, atol=1e-12)


def test_a_shifted_excitation_bin_splits_its_probability_by_overlap_worked_by_hand():
    edges = code_edges(256)
    log_p = np.full((1, 256), -np.inf)
    log_p[0, 200] = 0.0  # all mass on excitation code 200, bin [edges[200], edges[201]]
    width = edges[201] - edges[200]
    # shift by a quarter of its width: the sample bin of code 200 keeps three quarters, as long
    # as the sample bins there are wider than the shift (they grow away from zero)
    shift = width / 4
    got = np.exp(sample_log_probs(log_p, np.array([shift]), np.array([200]), 256))[0]
    np.testing.assert_allclose(got, 0.75, rtol=0, atol=1e-12)
    rest = np.exp(sample_log_probs(log_p, np.array([shift]), np.array([201]), 256))[0]
    np.testing.assert_allclose(rest, 0.25, rtol=0, atol=1e-12)


def lpc_case(seed=0):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = WaveNet(SMALL_LPC).eval()
    kwargs = dict(batch=3, prime=rng.integers(100, 156, (3, 30)),
                  cond=rng.standard_normal((3, 6, 40)) - 3, speaker=[0, 2, 1])
    return model, kwargs


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_cached_codes_equal_naive_and_follow_the_predictor(temperature):
    model, kwargs = lpc_case()
    ref = generate(model, 250, sampler="naive", dtype=torch.float64, temperature=temperature,
                   seed=5, keep_logits=True, **kwargs)
    got = generate(model, 250, sampler="cached", dtype=torch.float64, temperature=temperature,
                   seed=5, keep_logits=True, **kwargs)
    np.testing.assert_array_equal(got.codes, ref.codes)
    assert len(np.unique(ref.codes)) > 20  # really sampled, not stuck on one code
    # the samples, rebuilt by a plain loop from the excitation codes each step drew
    coeffs = coefficients(np.asarray(kwargs["cond"]), SMALL_LPC)
    excitation = excitation_drawn(ref.logits, temperature, seed=5)
    for b in range(3):
        history = list(mu_law_decode(kwargs["prime"][b], 256).astype(np.float64))
        for t in range(250):
            p = sum(coeffs[b, (30 + t) // 8, k] * history[-1 - k] for k in range(4))
            e = float(mu_law_decode(excitation[b, t], 256))
            code = int(mu_law_encode(np.clip(p + e, -1, 1), 256))
            assert code == ref.codes[b, t], (b, t)
            history.append(float(mu_law_decode(code, 256)))


def excitation_drawn(logits, temperature, seed):
    """The excitation codes a sampler drew from these logits (its draw, repeated)."""
    from reference_model.sampling import draw_uniforms, sample_next
    uniforms = draw_uniforms(seed, logits.shape[0], logits.shape[1])
    return np.stack([sample_next(logits[:, t], uniforms[:, t], temperature=temperature)
                     for t in range(logits.shape[1])], 1)


def test_synthesis_history_starts_from_the_prime_newest_first():
    coeffs = np.zeros((1, 2, 3))
    coeffs[0, :, 1] = 1.0  # p_t = s_(t-2)
    synthesis = Synthesis(coeffs, np.array([[128, 200, 60]]), SMALL_LPC)
    # excitation code 128 decodes to 0: the sample is the one two steps back, code 200
    assert synthesis.next_codes(3, np.array([128]))[0] == 200
    assert synthesis.next_codes(4, np.array([128]))[0] == 60


def test_auto_picks_cached_and_the_compiled_samplers_refuse_with_one_clear_line():
    model, kwargs = lpc_case()
    assert fastest_sampler(model.config, torch.device("cpu")) == "cached"
    assert fastest_sampler(model.config.replace(lpc_order=0), torch.device("cpu")) == "fused"
    with pytest.raises(InputError, match="'fused' does not run linear-prediction models "
                                         r"\(lpc_order 4\) yet; use naive, cached"):
        generate(model, 10, sampler="fused", **kwargs)


@pytest.mark.parametrize("change, message", [
    ({"cond": "none"}, "cond must be 'mel' or 'mel\\+speaker'"),
    ({"input": "scalar", "output": "mol"}, "input must be 'onehot'"),
    ({"mu_law": "pytorch-wavenet"}, "mu_law must be 'wavebench'"),
    ({"lpc_order": -1}, "lpc_order must be an integer >= 0"),
    ({"lpc_order": 129}, "lpc_order must be at most 128"),
])
def test_configs_that_cannot_predict_are_refused(change, message):
    with pytest.raises(InputError, match=message):
        SMALL_LPC.replace(**change)


def test_training_targets_are_the_excitation_codes_also_for_a_level_changed_crop():
    data = embedded_audioset(n_clips=6)
    crops = Cropper(data.train, TINY_LPC, 1024)
    codes, mel, _, targets = crops.batch(np.random.default_rng(0), 4)
    for i, utterance in enumerate(data.train):
        whole = excitation_codes(crops.codes[i], crops.mels[i], TINY_LPC)
        np.testing.assert_array_equal(crops.targets[i], whole)
    # a crop whose level was changed: its targets, computed from the frames before it, equal
    # those of the whole clip at that level
    gain, start = 0.5, 1024
    quieter = mu_law_encode(crops.audio[1] * gain, 256)
    whole = excitation_codes(quieter, crops.mels[1] + np.float32(np.log(gain)), TINY_LPC)
    np.testing.assert_array_equal(crops._gained_targets(1, start, gain),
                                  whole[start:start + 1024])
    assert not torch.equal(codes, targets)


def test_likelihood_of_a_predicting_model_is_finite_and_does_not_depend_on_chunks():
    torch.manual_seed(0)
    model = WaveNet(TINY_LPC).eval()
    audio = embedded_audioset(n_clips=5).train[1].audio[:4096]
    log_probs, codes = target_log_probs(model, audio, chunk=1024)
    assert np.all(np.isfinite(log_probs)) and len(log_probs) == 4096
    whole, _ = target_log_probs(model, audio, chunk=8192)
    # chunking changes nothing beyond float32 rounding (the model runs in float32)
    np.testing.assert_allclose(log_probs, whole, rtol=0, atol=1e-6)
    assert 0 < bits_per_sample(log_probs) < 16


def test_train_command_trains_a_predicting_model_and_names_its_unit(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--cond", "mel", "--lpc-order", "16", "--steps", "4",
                 "--eval-every", "2", "-o", str(out), "--no-progress"]) == 0
    printed, log = capsys.readouterr()
    assert "bits/excitation code (lower is better)" in printed
    assert "step      4 | validation" in log and "bits/excitation code" in log
    model, _ = load_checkpoint(out / "best.pt")
    assert model.config.lpc_order == 16 and model.config.n_mels == PRESETS["tiny"].model.n_mels
