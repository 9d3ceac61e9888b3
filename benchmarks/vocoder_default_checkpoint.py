"""A wavenet_vocoder checkpoint of its default size, with random weights, in its own format.

Usage:
    python benchmarks/vocoder_default_checkpoint.py -o /tmp/wv/checkpoint.pth

Writes ``checkpoint.pth`` (``train.py``'s dict: ``state_dict`` with weight-normed
``weight_g``/``weight_v`` pairs, ``optimizer``, ``global_step``) and ``hparams.json`` beside it,
for ``wavebench convert --from wavenet-vocoder`` and the sampler benchmark (issue 14): 24 layers
in 4 stacks, residual 128, gate 256, skip 128, kernel 3, 80 mel channels upsampled 4 x 4 x 4 x 4
(hop 256), a mixture of 10 logistics (30 outputs), scalar input, 22,050 Hz. The weights are
random (N(0, 1/fan_in), g = 1 per channel), enough to time the samplers, not to make sound.
No wavenet_vocoder code is used: the key names and shapes are those its ``WaveNet`` saves.
"""
import argparse
import json
import math
from pathlib import Path

import torch

HPARAMS = {
    "name": "wavenet_vocoder", "input_type": "raw", "quantize_channels": 65536,
    "sample_rate": 22050, "num_mels": 80, "hop_size": 256, "fmin": 125, "fmax": 7600,
    "fft_size": 1024, "win_length": 1024, "output_distribution": "Logistic",
    "log_scale_min": -16.0, "out_channels": 30, "layers": 24, "stacks": 4,
    "residual_channels": 128, "gate_channels": 256, "skip_out_channels": 128, "dropout": 0.0,
    "kernel_size": 3, "cin_channels": 80, "cin_pad": 2, "upsample_conditional_features": True,
    "upsample_net": "ConvInUpsampleNetwork", "upsample_params": {"upsample_scales": [4, 4, 4, 4]},
    "gin_channels": -1, "n_speakers": 7,
}


def weight_normed(state: dict, name: str, shape: tuple, bias: bool = True) -> None:
    """``name.weight_g`` (ones, [out, 1, ...]), ``name.weight_v`` ~ N(0, 1 / fan_in), a bias."""
    fan_in = math.prod(shape[1:])
    state[f"{name}.weight_v"] = torch.randn(shape) / math.sqrt(fan_in)
    state[f"{name}.weight_g"] = torch.ones((shape[0],) + (1,) * (len(shape) - 1))
    if bias:
        state[f"{name}.bias"] = 0.1 * torch.randn(shape[0])


def default_state(h: dict) -> dict:
    torch.manual_seed(0)
    r, g, s, k = h["residual_channels"], h["gate_channels"], h["skip_out_channels"], h["kernel_size"]
    c = h["cin_channels"]
    state: dict = {}
    weight_normed(state, "first_conv", (r, 1, 1))
    for i in range(h["layers"]):
        weight_normed(state, f"conv_layers.{i}.conv", (g, r, k))
        weight_normed(state, f"conv_layers.{i}.conv1x1c", (g, c, 1), bias=False)
        weight_normed(state, f"conv_layers.{i}.conv1x1_out", (r, g // 2, 1))
        weight_normed(state, f"conv_layers.{i}.conv1x1_skip", (s, g // 2, 1))
    weight_normed(state, "last_conv_layers.1", (s, s, 1))
    weight_normed(state, "last_conv_layers.3", (h["out_channels"], s, 1))
    pad = h["cin_pad"]
    state["upsample_net.conv_in.weight"] = torch.randn(c, c, 2 * pad + 1) / math.sqrt(c * (2 * pad + 1))
    for j, scale in enumerate(h["upsample_params"]["upsample_scales"]):
        shape = (1, 1, 1, 2 * scale + 1)
        state[f"upsample_net.upsample.up_layers.{2 * j + 1}.weight_v"] = torch.full(shape, 1.0)
        state[f"upsample_net.upsample.up_layers.{2 * j + 1}.weight_g"] = torch.ones(1, 1, 1, 1)
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", required=True, help="the checkpoint.pth to write")
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": default_state(HPARAMS), "optimizer": None, "global_step": 0,
                "global_epoch": 0, "global_test_step": 0}, out)
    (out.parent / "hparams.json").write_text(json.dumps(HPARAMS, indent=2) + "\n")
    print(f"wrote {out} and {out.parent / 'hparams.json'}")


if __name__ == "__main__":
    main()
