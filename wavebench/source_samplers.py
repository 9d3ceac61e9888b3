"""The source project's own sampler, timed beside wavebench's for a converted model.

A model converted from wavenet_vocoder can be timed with that project's ``incremental_forward``
when the package is importable here (``pip install wavenet_vocoder``; its code is imported, never
copied). The source's model is built at the converted model's size with random weights, since
speed does not depend on their values, and made generation-fast as its synthesis script does.
pytorch-wavenet is not a package and its ``generate_fast`` needs patches to run on current torch,
so it gets a skipped row saying so.
"""
from __future__ import annotations

import importlib.util
import inspect
import time

import torch

ROW_NAME = {"wavenet_vocoder": "source:wavenet_vocoder", "pytorch-wavenet": "source:pytorch-wavenet"}


def source_problem(source: str) -> str | None:
    """None when the source's sampler can be timed here, else why not."""
    if source == "wavenet_vocoder":
        if importlib.util.find_spec("wavenet_vocoder") is None:
            return ("wavenet_vocoder is not importable here (pip install --no-deps "
                    "wavenet_vocoder to time its own sampler)")
        return None
    if source == "pytorch-wavenet":
        return ("pytorch-wavenet is not a package, and its generate_fast needs patches to run "
                "on current torch; its sampler is not timed")
    return f"no timing of {source}'s own sampler"


def wavenet_vocoder_model(config):
    """wavenet_vocoder's WaveNet at ``config``'s size, random weights, generation-fast, eval."""
    from wavenet_vocoder import WaveNet
    kwargs = dict(out_channels=config.out_channels, layers=config.blocks * config.layers,
                  stacks=config.blocks, residual_channels=config.residual_channels,
                  gate_channels=2 * config.dilation_channels,
                  skip_out_channels=config.skip_channels, kernel_size=config.kernel_size,
                  dropout=0.0, cin_channels=config.n_mels if config.uses_mel else -1,
                  gin_channels=config.speaker_dim if config.uses_speaker else -1,
                  n_speakers=config.n_speakers if config.uses_speaker else None,
                  upsample_conditional_features=config.uses_mel,
                  upsample_scales=list(config.upsample_scales) or None,
                  scalar_input=config.input == "scalar")
    accepted = inspect.signature(WaveNet.__init__).parameters  # releases differ in arguments
    model = WaveNet(**{k: v for k, v in kwargs.items() if k in accepted}).eval()
    model.make_generation_fast_()
    return model


def wavenet_vocoder_timer(config):
    """``run(n)`` -> seconds of one ``incremental_forward`` at batch 1, and the samples it
    makes of ``n`` (a whole number of hops for a mel-conditioned model, as the source needs)."""
    model = wavenet_vocoder_model(config)
    hop = config.hop_length if config.uses_mel else 1

    def run(n: int) -> tuple[float, int]:
        n = max(hop, n // hop * hop)
        mel = torch.randn(1, config.n_mels, n // hop) if config.uses_mel else None
        speaker = torch.zeros(1, 1, dtype=torch.long) if config.uses_speaker else None
        first = torch.zeros(1, 1, 1) if config.input == "scalar" else None
        with torch.no_grad():
            start = time.perf_counter()
            model.incremental_forward(initial_input=first, c=mel, g=speaker, T=n,
                                      softmax=False, quantize=True,
                                      log_scale_min=config.log_scale_min)
            return time.perf_counter() - start, n
    return run
