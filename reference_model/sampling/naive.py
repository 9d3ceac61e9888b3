"""The ``naive`` sampler, the reference the others are checked against: for every sample, the
whole network runs over its receptive field."""
from __future__ import annotations

import torch

from reference_model.model import WaveNet
from reference_model.sampling.randomness import draw_next
from reference_model.sampling.registry import SamplerSpec, register
from reference_model.sampling.state import Inputs, after_step, sample_codes, working_copy


def run_naive(model: WaveNet, inputs: Inputs, *, dtype, device, progress=None, callback=None,
              keep_logits=False):
    """The reference: for every sample, run the whole network over its receptive field."""
    model = working_copy(model, device, dtype)
    rf, p, n = model.config.receptive_field, inputs.prime_length, inputs.n_samples
    codes = torch.zeros(inputs.batch, p + n, dtype=torch.long, device=device)
    codes[:, :p] = inputs.prime
    uniforms = torch.from_numpy(inputs.uniforms).to(device)
    logits_out = [] if keep_logits else None
    synthesis = inputs.synthesis(model.config)
    for t in range(p, p + n):
        # A window of rf + 1 codes: the first one (replaced by the start code in the model's
        # shift) lies outside the receptive field of the last output.
        s = max(0, t - rf)
        cond = None if inputs.cond_up is None else inputs.cond_up[:, :, s:t + 1]
        logits = model.forward_upsampled(codes[:, s:t + 1], cond, inputs.speaker)[:, :, -1]
        drawn = draw_next(logits, uniforms[:, t - p], temperature=inputs.temperature,
                          config=model.config)
        codes[:, t] = sample_codes(synthesis, t, drawn)
        if logits_out is not None:
            logits_out.append(logits.cpu())
        after_step(t - p + 1, n, codes, p, progress, callback)
    stacked = None if logits_out is None else torch.stack(logits_out, 1).numpy()
    return codes[:, p:].cpu().numpy(), stacked


register(SamplerSpec(
    name="naive", run=run_naive, devices=("cpu", "cuda"), wrong_device="",
    linear_prediction=True))
