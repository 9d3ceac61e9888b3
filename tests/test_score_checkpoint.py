"""`wavebench score --checkpoint`: likelihood for every model, copy synthesis for mel models."""
import math

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from reference_model.checkpoint import save_checkpoint
from reference_model.config import ModelConfig
from reference_model.model import WaveNet
from reference_model.mulaw import mu_law_encode
from wavebench.score_checkpoint import score_checkpoint
from wavebench_base.errors import InputError

SMALL = ModelConfig(blocks=1, layers=4, residual_channels=8, dilation_channels=8,
                    skip_channels=16, end_channels=16, n_mels=8, hop_length=64)


def checkpoint(tmp_path, config):
    torch.manual_seed(0)
    model = WaveNet(config)
    return save_checkpoint(tmp_path / "model.pt", config=config, model_state=model.state_dict()), model


@pytest.fixture
def references(tmp_path):
    folder = tmp_path / "ref"
    folder.mkdir()
    t = np.arange(1600) / 16000  # enough for two MCD frames
    for i in range(2):
        sf.write(folder / f"u{i}.wav", (0.4 * np.sin(2 * np.pi * (200 + 100 * i) * t)), 16000)
    return folder


def test_unconditional_model_gets_nll_bits_equal_to_a_direct_forward(tmp_path, references):
    path, model = checkpoint(tmp_path, SMALL)
    result = score_checkpoint(path, reference_dir=references, out_dir=tmp_path / "out",
                              progress=False, log=lambda _: None)
    table = pd.read_csv(result.per_utterance).set_index("utterance")
    assert set(table["metric"]) == {"nll_bits"} and set(table["system"]) == {"model"}
    audio, _ = sf.read(references / "u1.wav", dtype="float32")
    codes = torch.from_numpy(mu_law_encode(audio))[None]
    with torch.no_grad():
        log_probs = torch.log_softmax(model(codes), dim=1).gather(1, codes[:, None])
    expected = -log_probs.double().mean().item() / math.log(2)
    assert table.loc["u1", "value"] == pytest.approx(expected, abs=1e-5)  # float32 sums


def test_unconditional_model_with_pair_metrics_only_is_refused(tmp_path, references):
    path, _ = checkpoint(tmp_path, SMALL)
    with pytest.raises(InputError, match="nothing to score for model"):
        score_checkpoint(path, reference_dir=references, out_dir=tmp_path / "out",
                         metrics=["mcd"], progress=False, log=lambda _: None)


def test_mel_model_copy_synthesis_is_scored_and_resumes(tmp_path, references):
    path, _ = checkpoint(tmp_path, SMALL.replace(cond="mel"))
    kwargs = dict(reference_dir=references, out_dir=tmp_path / "out", metrics=["nll_bits", "mcd"],
                  sampler="cached", progress=False, log=lambda _: None)
    result = score_checkpoint(path, **kwargs)
    table = pd.read_csv(result.per_utterance)
    assert set(table["metric"]) == {"nll_bits", "mcd"}
    wavs = sorted((tmp_path / "out" / "generated" / "model").glob("*.wav"))
    assert [w.name for w in wavs] == ["u0.wav", "u1.wav"]
    stamp = [w.stat().st_mtime_ns for w in wavs]
    again = score_checkpoint(path, **kwargs)
    assert [w.stat().st_mtime_ns for w in wavs] == stamp  # nothing regenerated
    pd.testing.assert_frame_equal(pd.read_csv(again.per_utterance), table)


def test_another_checkpoint_on_the_same_folder_is_refused_before_work(tmp_path, references):
    """The likelihoods in nll.jsonl belong to one checkpoint: another one may not reuse them."""
    path, _ = checkpoint(tmp_path, SMALL)
    out = tmp_path / "out"
    first = score_checkpoint(path, reference_dir=references, out_dir=out, progress=False,
                             log=lambda _: None)
    before = pd.read_csv(first.per_utterance)["value"].tolist()
    torch.manual_seed(1)
    other = WaveNet(SMALL)
    save_checkpoint(path, config=SMALL, model_state=other.state_dict())  # same name, new weights
    with pytest.raises(InputError, match=r"holds a score run of another checkpoint"):
        score_checkpoint(path, reference_dir=references, out_dir=out, progress=False,
                         log=lambda _: None)
    again = score_checkpoint(path, reference_dir=references, out_dir=out, progress=False,
                             log=lambda _: None, force=True)
    assert again.n_resumed == 0
    after = pd.read_csv(again.per_utterance)["value"].tolist()
    assert after != before  # recomputed with the new weights, not the old nll.jsonl
