"""Converted models used as wavebench models: scored, timed (with the source's own sampler when
that project is importable) and reported, through the same commands as our own."""
import math
import os
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from reference_model.checkpoint import load_checkpoint
from reference_model.codes import pytorch_wavenet_encode
from reference_model.convert import convert_checkpoint
from reference_model.mulaw import mu_law_encode
from wavebench.cli import main
from wavebench.speed import run_speed

PEERS = os.path.join(os.path.dirname(__file__), "data", "peers")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def pytorch_wavenet_model(tmp_path):
    path, _ = convert_checkpoint("pytorch-wavenet",
                                 os.path.join(PEERS, "pytorch-wavenet", "bias_true", "model_pickle.pt"),
                                 tmp_path / "pw.pt")
    return path


def test_score_and_report_a_converted_pytorch_wavenet(tmp_path, pytorch_wavenet_model, capsys):
    refs = tmp_path / "refs"
    refs.mkdir()
    t = np.arange(4000) / 16000
    sf.write(refs / "tone.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 16000, subtype="PCM_16")
    out = tmp_path / "scores"
    assert main(["score", "--checkpoint", str(pytorch_wavenet_model), "--reference", str(refs),
                 "-o", str(out), "--no-progress"]) == 0
    table = pd.read_csv(out / "per_utterance.csv")
    assert table["metric"].tolist() == ["nll_bits"] and table["status"].tolist() == ["ok"]
    # the value is the converted model's own teacher-forced likelihood of the file's codes,
    # coded as pytorch-wavenet codes audio (mu = 256, np.digitize), not as wavebench does
    model, _ = load_checkpoint(pytorch_wavenet_model)
    assert model.config.mu_law == "pytorch-wavenet"
    audio, _ = sf.read(refs / "tone.wav", dtype="float32")
    codes = torch.from_numpy(pytorch_wavenet_encode(audio, 256))[None]
    assert (codes.numpy() != mu_law_encode(audio)).mean() > 0.1
    with torch.no_grad():
        picked = torch.log_softmax(model(codes).double(), 1).gather(1, codes[:, None])
    assert table["value"][0] == pytest.approx(-picked.mean().item() / math.log(2), abs=1e-6)
    assert main(["report", str(out), "-o", str(tmp_path / "report")]) == 0
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert summary["metric"].tolist() == ["nll_bits"]
    assert summary["mean"][0] == pytest.approx(table["value"][0])


def test_generate_from_a_converted_mixture_model_with_npy_frames(tmp_path):
    voc = os.path.join(PEERS, "wavenet_vocoder", "mol_scalar_speaker")
    path, _ = convert_checkpoint("wavenet-vocoder", os.path.join(voc, "checkpoint.pth"),
                                 tmp_path / "voc.pt", hparams=os.path.join(voc, "hparams.json"))
    np.save(tmp_path / "frames.npy", np.load(os.path.join(voc, "mel.npy"))[:, 2:-2])
    assert main(["generate", "--checkpoint", str(path), "--mel-from", str(tmp_path / "frames.npy"),
                 "--speaker", "1", "-o", str(tmp_path / "wav"), "--no-progress"]) == 0
    written = sorted((tmp_path / "wav").glob("*.wav"))
    audio, rate = sf.read(written[0])
    assert rate == 22050 and len(audio) == 58 * 4  # every frame, hop 4


def test_speed_says_why_the_sources_sampler_is_not_timed(tmp_path, pytorch_wavenet_model):
    table = run_speed(tmp_path, checkpoint=pytorch_wavenet_model, devices=("cpu",),
                      samplers=("fused",), batches=(1,), threads=(1,), samples=100, repeats=1,
                      log=lambda line: None)
    source = table[table["sampler"] == "source:pytorch-wavenet"]
    assert source["status"].tolist() == ["skipped"]
    assert "not a package" in source["note"].iloc[0]


FAKE_VOCODER = '''
import time, torch
class WaveNet(torch.nn.Module):
    """A stand-in with wavenet_vocoder's interface: records its arguments, emits zeros."""
    calls = []
    def __init__(self, out_channels=256, layers=20, stacks=2, residual_channels=512,
                 gate_channels=512, skip_out_channels=512, kernel_size=3, dropout=0.05,
                 cin_channels=-1, gin_channels=-1, n_speakers=None,
                 upsample_conditional_features=False, upsample_scales=None, scalar_input=False):
        super().__init__()
        WaveNet.built = dict(out_channels=out_channels, layers=layers, stacks=stacks,
                             gate_channels=gate_channels, kernel_size=kernel_size,
                             cin_channels=cin_channels, upsample_scales=upsample_scales,
                             scalar_input=scalar_input, gin_channels=gin_channels)
    def make_generation_fast_(self):
        WaveNet.fast = True
    def incremental_forward(self, initial_input=None, c=None, g=None, T=100, **kwargs):
        WaveNet.calls.append((T, None if c is None else tuple(c.shape), kwargs))
        time.sleep(0.001)
        return torch.zeros(1, 1, T)
'''


def test_speed_times_wavenet_vocoders_own_sampler_when_importable(tmp_path, monkeypatch):
    fake = tmp_path / "fake" / "wavenet_vocoder"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(FAKE_VOCODER)
    monkeypatch.syspath_prepend(str(tmp_path / "fake"))
    monkeypatch.delitem(sys.modules, "wavenet_vocoder", raising=False)
    voc = os.path.join(PEERS, "wavenet_vocoder", "mol_scalar_speaker")
    path, _ = convert_checkpoint("wavenet-vocoder", os.path.join(voc, "checkpoint.pth"),
                                 tmp_path / "voc.pt", hparams=os.path.join(voc, "hparams.json"))
    table = run_speed(tmp_path / "speed", checkpoint=path, devices=("cpu",), samplers=("fused",),
                      batches=(1,), threads=(1,), samples=64, naive_samples=40, repeats=2,
                      log=lambda line: None)
    import wavenet_vocoder
    built = wavenet_vocoder.WaveNet.built
    assert built == {"out_channels": 30, "layers": 6, "stacks": 2, "gate_channels": 32,
                     "kernel_size": 3, "cin_channels": 8, "upsample_scales": [2, 2],
                     "scalar_input": True, "gin_channels": 4}
    assert wavenet_vocoder.WaveNet.fast
    # warm-up, then two timed runs of 40 samples rounded down to whole hops of 4
    assert [call[:2] for call in wavenet_vocoder.WaveNet.calls] == [(40, (1, 8, 10))] * 3
    row = table[table["sampler"] == "source:wavenet_vocoder"].iloc[0]
    assert row["status"] == "ok" and row["samples"] == 40
    assert row["samples_per_s"] == pytest.approx(40 / row["seconds_median"])
