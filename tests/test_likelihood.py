"""Chunked teacher-forced likelihood equals one forward pass over the whole recording."""
import numpy as np
import pytest
import torch

from reference_model.config import ModelConfig
from reference_model.features import log_mel
from reference_model.likelihood import bits_per_sample, target_log_probs
from reference_model.model import WaveNet
from reference_model.mulaw import mu_law_encode

SMALL = ModelConfig(blocks=2, layers=5, residual_channels=8, dilation_channels=8,
                    skip_channels=16, end_channels=16, n_mels=8, hop_length=32)


@pytest.mark.parametrize("cond", ["none", "mel"])
def test_chunks_equal_one_pass(cond):
    torch.manual_seed(0)
    config = SMALL.replace(cond=cond)
    model = WaveNet(config).double().eval()
    audio = np.sin(np.arange(3000) / 9).astype(np.float32) * 0.5
    chunked, codes = target_log_probs(model, audio, chunk=100)  # many chunks, several per RF
    n = len(codes)
    whole_codes = torch.from_numpy(mu_law_encode(audio[:n]))[None]
    mel = torch.from_numpy(log_mel(audio[:n], config)).double()[None] if cond == "mel" else None
    with torch.no_grad():
        logits = model(whole_codes, mel)[0]
    whole = torch.log_softmax(logits, dim=0).gather(0, whole_codes)[0].numpy()
    assert np.allclose(chunked, whole, atol=1e-10)  # float64 model: only summation order differs


def test_uniform_model_gives_8_bits():
    model = WaveNet(SMALL).eval()
    with torch.no_grad():
        model.end2.weight.zero_()
        model.end2.bias.zero_()  # equal logits: p = 1/256 for every code
    log_probs, _ = target_log_probs(model, np.random.default_rng(0).uniform(-1, 1, 500))
    assert bits_per_sample(log_probs) == pytest.approx(8.0, abs=1e-9)
