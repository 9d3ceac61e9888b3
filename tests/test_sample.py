"""Samplers: the randomness protocol, and cached / fused / cuda-graph against the naive reference."""
import numpy as np
import pytest
import scipy.special
import torch

from reference_model.config import PRESETS, ModelConfig
from reference_model.model import WaveNet
from reference_model.sampling import (
    check_sampler_device,
    draw_uniforms,
    generate,
    prepare_inputs,
    sample_next,
)
from wavebench_base.errors import InputError

# Kernel 3 exercises more than one past tap; mel + speaker exercise both conditionings.
SMALL = ModelConfig(blocks=2, layers=5, kernel_size=3, residual_channels=8, dilation_channels=8,
                    skip_channels=16, end_channels=16, n_mels=6, hop_length=8,
                    cond="mel+speaker", n_speakers=3)
FAST = ("cached", "fused")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_case(seed=0):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = WaveNet(SMALL).eval()
    kwargs = dict(batch=3, prime=rng.integers(0, 256, (3, 70)), cond=rng.standard_normal((3, 6, 50)),
                  speaker=[0, 2, 1])
    return model, kwargs


# ----------------------------------------------------------------------------- randomness protocol

def test_sample_next_worked_by_hand():
    # two equal logits: cdf = [1, 2] of total 2; u = 0.25 -> target 0.5 < 1 -> code 0; 0.75 -> 1
    logits = np.array([[0.0, 0.0], [0.0, 0.0]])
    assert sample_next(logits, np.array([0.25, 0.75]), temperature=1.0).tolist() == [0, 1]
    # temperature 0 takes the first maximum
    assert sample_next(np.array([[1.0, 3.0, 3.0]]), np.array([0.9]), temperature=0).tolist() == [1]


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_sample_next_matches_scipy_softmax_and_searchsorted(temperature):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((200, 256)) * 3
    u = rng.random(200)
    got = sample_next(logits, u, temperature=temperature)
    probs = scipy.special.softmax(logits / temperature, axis=-1)
    ref = [np.searchsorted(np.cumsum(p), ui, side="right") for p, ui in zip(probs, u)]
    assert got.tolist() == ref  # ties at a boundary have probability ~1e-16 per draw


def test_sample_next_torch_equals_numpy_and_follows_the_distribution():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((4000, 8))
    u = rng.random(4000)
    a = sample_next(logits, u, temperature=1.0)
    b = sample_next(torch.from_numpy(logits).float(), torch.from_numpy(u), temperature=1.0)
    assert (a != b.numpy()).mean() < 0.01  # float32 input moves only draws next to a boundary
    one = np.zeros((20000, 4))
    one[:, 2] = np.log(3.0)  # probabilities 1/6, 1/6, 1/2, 1/6
    freq = np.bincount(sample_next(one, rng.random(20000), temperature=1.0), minlength=4) / 20000
    # binomial standard error at n = 20000 is <= 0.0036; 0.015 is about four of them
    np.testing.assert_allclose(freq, [1 / 6, 1 / 6, 1 / 2, 1 / 6], atol=0.015)


@pytest.mark.parametrize("temperature", [-1.0, float("nan"), float("inf")])
def test_bad_temperature_raises(temperature):
    with pytest.raises(InputError, match="temperature must be a finite number >= 0"):
        sample_next(np.zeros((1, 4)), np.zeros(1), temperature=temperature)


def test_uniforms_of_a_stream_do_not_depend_on_the_batch():
    np.testing.assert_array_equal(draw_uniforms(5, 3, 100)[2], draw_uniforms(5, 8, 100)[2])
    assert not np.array_equal(draw_uniforms(5, 2, 100)[0], draw_uniforms(6, 2, 100)[0])
    with pytest.raises(InputError, match="seed must be an integer >= 0"):
        draw_uniforms(-1, 1, 10)


# ----------------------------------------------------------------------------- equivalence

@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_small_conditioned_primed_float64_codes_equal_naive(temperature):
    model, kwargs = small_case()
    ref = generate(model, 300, sampler="naive", dtype=torch.float64, temperature=temperature,
                   seed=3, keep_logits=True, **kwargs)
    for sampler in FAST:
        got = generate(model, 300, sampler=sampler, dtype=torch.float64, temperature=temperature,
                       seed=3, keep_logits=True, **kwargs)
        np.testing.assert_array_equal(got.codes, ref.codes, err_msg=sampler)
        # float64 with a different summation order: ~1e-15; 1e-10 leaves room for 300 steps
        np.testing.assert_allclose(got.logits, ref.logits, rtol=0, atol=1e-10, err_msg=sampler)
    if temperature:
        assert len(np.unique(ref.codes)) > 20  # really sampled, not stuck on one code


def test_small_float32_codes_equal_naive_and_logits_within_1e4():
    model, kwargs = small_case(1)
    ref = generate(model, 300, sampler="naive", dtype=torch.float32, seed=4, **kwargs)
    exact = teacher_forced_logits(model, ref.codes, kwargs)
    for sampler in FAST:
        got = generate(model, 300, sampler=sampler, dtype=torch.float32, seed=4,
                       keep_logits=True, **kwargs)
        np.testing.assert_array_equal(got.codes, ref.codes, err_msg=sampler)
        # float32 rounding over ~20 layers gives ~1e-6; the issue allows 1e-4
        np.testing.assert_allclose(got.logits, exact, rtol=0, atol=1e-4, err_msg=sampler)


def teacher_forced_logits(model, codes, kwargs):
    """float64 logits of the generated codes by the model's own forward pass: [batch, n, C]."""
    m = WaveNet(model.config).double().eval()
    m.load_state_dict(model.state_dict())
    full = torch.cat([torch.as_tensor(kwargs["prime"]), torch.from_numpy(codes)], 1)
    mel = torch.as_tensor(kwargs["cond"], dtype=torch.float64)
    with torch.inference_mode():
        cond_up = m.upsample_cond(mel)[:, :, :full.shape[1]]
        logits = m.forward_upsampled(full, cond_up, torch.as_tensor(kwargs["speaker"]))
    return logits[:, :, kwargs["prime"].shape[1]:].transpose(1, 2).numpy()


def test_cuda_graph_step_logic_equals_naive_without_capture():
    from reference_model.sampling.cuda_graph import run_cuda_graph

    model, kwargs = small_case(2)
    ref = generate(model, 300, sampler="naive", dtype=torch.float64, seed=5, **kwargs)
    inputs = prepare_inputs(model, 300, temperature=1.0, seed=5, device=torch.device("cpu"),
                            dtype=torch.float64, **kwargs)
    with torch.inference_mode():
        codes, _ = run_cuda_graph(model, inputs, dtype=torch.float64, device=torch.device("cpu"),
                                  capture=False, steps_per_graph=7)  # 300 is not a multiple of 7
    np.testing.assert_array_equal(codes, ref.codes)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cuda_graph_equals_naive_on_cuda(dtype):
    model, kwargs = small_case(3)
    ref = generate(model, 300, sampler="naive", dtype=dtype, seed=6, **kwargs)
    got = generate(model, 300, sampler="cuda-graph", device="cuda", dtype=dtype, seed=6, **kwargs)
    np.testing.assert_array_equal(got.codes, ref.codes)
    cached = generate(model, 300, sampler="cached", device="cuda", dtype=dtype, seed=6, **kwargs)
    np.testing.assert_array_equal(cached.codes, ref.codes)


@pytest.mark.gpu
def test_cuda_graph_reference_preset_equals_naive():
    torch.manual_seed(0)
    model = WaveNet(PRESETS["reference"].model).eval()
    prime = np.random.default_rng(0).integers(0, 256, (3, 20))
    ref = generate(model, 300, batch=3, prime=prime, sampler="naive", dtype=torch.float64, seed=7)
    got = generate(model, 300, batch=3, prime=prime, sampler="cuda-graph", device="cuda",
                   dtype=torch.float64, seed=7)
    np.testing.assert_array_equal(got.codes, ref.codes)


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_reference_preset_codes_equal_naive(temperature):
    torch.manual_seed(0)
    model = WaveNet(PRESETS["reference"].model).eval()
    prime = np.random.default_rng(0).integers(0, 256, (3, 20))
    ref = generate(model, 300, batch=3, prime=prime, sampler="naive", dtype=torch.float64,
                   temperature=temperature, seed=7)
    for sampler in FAST:
        got = generate(model, 300, batch=3, prime=prime, sampler=sampler, dtype=torch.float64,
                       temperature=temperature, seed=7)
        np.testing.assert_array_equal(got.codes, ref.codes, err_msg=sampler)
    f32 = generate(model, 300, batch=3, prime=prime, sampler="fused", temperature=temperature,
                   seed=7, keep_logits=True)
    np.testing.assert_array_equal(f32.codes, ref.codes)  # float32 logits, same draws


def test_reference_preset_fused_float32_equals_cached_float64():
    # Fast stand-in for the slow naive test: cached float64 is itself checked against naive above.
    torch.manual_seed(0)
    model = WaveNet(PRESETS["reference"].model).eval()
    prime = np.random.default_rng(0).integers(0, 256, (3, 20))
    ref = generate(model, 300, batch=3, prime=prime, sampler="cached", dtype=torch.float64, seed=8,
                   keep_logits=True)
    got = generate(model, 300, batch=3, prime=prime, sampler="fused", seed=8, keep_logits=True)
    np.testing.assert_array_equal(got.codes, ref.codes)
    np.testing.assert_allclose(got.logits, ref.logits, rtol=0, atol=1e-4)  # float32 over 30 layers


# ----------------------------------------------------------------------------- properties and errors

@pytest.mark.parametrize("sampler", ["cached", "fused"])
def test_stream_zero_of_a_batch_equals_a_batch_of_one(sampler):
    model, kwargs = small_case(4)
    three = generate(model, 100, sampler=sampler, seed=9, **kwargs)
    one = generate(model, 100, sampler=sampler, seed=9, batch=1, prime=kwargs["prime"][:1],
                   cond=kwargs["cond"][:1], speaker=kwargs["speaker"][:1])
    np.testing.assert_array_equal(three.codes[:1], one.codes)


def test_callback_chunks_rebuild_the_codes_and_audio_is_decoded():
    torch.manual_seed(0)
    model = WaveNet(PRESETS["tiny"].model).eval()
    chunks = []
    gen = generate(model, 2500, batch=2, sampler="fused", seed=1,
                   callback=lambda codes, start: chunks.append((start, codes)))
    assert [s for s, _ in chunks] == [0, 1024, 2048]
    np.testing.assert_array_equal(np.concatenate([c for _, c in chunks], 1), gen.codes)
    assert gen.audio.dtype == np.float32 and np.abs(gen.audio).max() <= 1


def test_bad_inputs_raise_clear_errors():
    model, kwargs = small_case()
    with pytest.raises(InputError, match="unknown sampler 'fast'"):
        generate(model, 10, sampler="fast", **kwargs)
    with pytest.raises(InputError, match="mel cond has shape"):
        generate(model, 400, **kwargs)  # 70 + 400 samples need 59 frames of 8, 50 given
    with pytest.raises(InputError, match="pass speaker ids"):
        generate(model, 10, **{**kwargs, "speaker": None})
    with pytest.raises(InputError, match="prime codes must lie in"):
        generate(model, 10, **{**kwargs, "prime": np.full((3, 5), 300)})
    with pytest.raises(InputError, match="n_samples must be a positive integer"):
        generate(model, 0, **kwargs)
    with pytest.raises(InputError, match="'fused' runs on the CPU"):
        check_sampler_device("fused", torch.device("cuda"))
    with pytest.raises(InputError, match="'cuda-graph' needs --device cuda"):
        generate(model, 10, sampler="cuda-graph", **kwargs)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            generate(model, 10, device="cuda", **kwargs)


# ----------------------------------------------------------------------------- mixture heads

# wavenet_vocoder's kind of model: scalar input, a mixture of logistics, kernel 3, its residual
# and skip scalings, its upsampler and a speaker embedding.
MIXTURE = ModelConfig(blocks=2, layers=4, kernel_size=3, residual_channels=8, dilation_channels=8,
                      skip_channels=16, end_channels=16, n_mels=6, hop_length=4,
                      cond="mel+speaker", n_speakers=3, input="scalar", output="mol",
                      classes=65536, mixtures=4, residual_scale=0.5 ** 0.5, skip_scale=0.125 ** 0.5,
                      upsample="vocoder", upsample_scales=(2, 2), cin_pad=2, mel_norm="none")


def mixture_case(seed=0):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = WaveNet(MIXTURE).eval()
    prime = (32768 + 9000 * np.sin(np.arange(70) / 5) + rng.integers(-300, 300, (3, 70)))
    kwargs = dict(batch=3, prime=prime.astype(np.int64), cond=rng.standard_normal((3, 6, 100)),
                  speaker=[0, 2, 1])
    return model, kwargs


@pytest.mark.parametrize("temperature", [1.0, 0.6, 0.0])
def test_mixture_float64_codes_equal_naive(temperature):
    model, kwargs = mixture_case()
    ref = generate(model, 300, sampler="naive", dtype=torch.float64, temperature=temperature,
                   seed=8, keep_logits=True, **kwargs)
    for sampler in FAST:
        got = generate(model, 300, sampler=sampler, dtype=torch.float64, temperature=temperature,
                       seed=8, keep_logits=True, **kwargs)
        np.testing.assert_array_equal(got.codes, ref.codes, err_msg=sampler)
        np.testing.assert_allclose(got.logits, ref.logits, rtol=0, atol=1e-10, err_msg=sampler)
    if temperature:
        assert len(np.unique(ref.codes)) > 100  # a continuum of values, not a few codes
    np.testing.assert_array_equal(ref.audio, (ref.codes * (2 / 65535) - 1).astype(np.float32))


def test_mixture_float32_and_two_threads_codes_equal_naive():
    import numba
    model, kwargs = mixture_case(1)
    ref = generate(model, 300, sampler="naive", dtype=torch.float32, seed=9, **kwargs)
    for sampler in FAST:
        got = generate(model, 300, sampler=sampler, dtype=torch.float32, seed=9, **kwargs)
        np.testing.assert_array_equal(got.codes, ref.codes, err_msg=sampler)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        got = generate(model, 300, sampler="fused", dtype=torch.float32, seed=9, **kwargs)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(got.codes, ref.codes)


def test_mixture_cuda_graph_step_logic_equals_naive_without_capture():
    from reference_model.sampling.cuda_graph import run_cuda_graph

    model, kwargs = mixture_case(2)
    ref = generate(model, 200, sampler="naive", dtype=torch.float64, seed=5, **kwargs)
    inputs = prepare_inputs(model, 200, temperature=1.0, seed=5, device=torch.device("cpu"),
                            dtype=torch.float64, **kwargs)
    with torch.inference_mode():
        codes, _ = run_cuda_graph(model, inputs, dtype=torch.float64, device=torch.device("cpu"),
                                  capture=False, steps_per_graph=7)
    np.testing.assert_array_equal(codes, ref.codes)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_mixture_cuda_graph_equals_naive_on_cuda(dtype):
    model, kwargs = mixture_case(3)
    ref = generate(model, 300, sampler="naive", dtype=dtype, seed=6, **kwargs)
    got = generate(model, 300, sampler="cuda-graph", device="cuda", dtype=dtype, seed=6, **kwargs)
    np.testing.assert_array_equal(got.codes, ref.codes)


def test_mixture_teacher_forced_likelihood_scores_the_values_themselves():
    """nll of a recording: a chunked pass equals one whole pass, and equals heads.log_probs
    of the model's own output at the recording's values (not at its nearest codes)."""
    from reference_model.heads import log_probs
    from reference_model.likelihood import target_log_probs

    config = MIXTURE.replace(cond="none")
    torch.manual_seed(4)
    model = WaveNet(config).double().eval()
    audio = 0.4 * np.sin(np.arange(2000) / 7) + 0.01 * np.random.default_rng(0).standard_normal(2000)
    chunked, _ = target_log_probs(model, audio, chunk=300)
    with torch.inference_mode():
        values = torch.from_numpy(audio)[None]
        whole = log_probs(model(values), values, config)[0].numpy()
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-10)
