"""The ``cached`` sampler (fast-wavenet): ring buffers of past layer inputs, one new column per
step, in eager torch on any device."""
from __future__ import annotations

import torch

from reference_model.model import WaveNet
from reference_model.sampling.randomness import draw_next
from reference_model.sampling.registry import SamplerSpec, register
from reference_model.sampling.state import (
    CHUNK,
    CachedState,
    Inputs,
    after_step,
    cached_logits_step,
    cond_terms,
    prime_history,
    sample_codes,
    speaker_bias,
    step_weights,
    working_copy,
)


def run_cached(model: WaveNet, inputs: Inputs, *, dtype, device, progress=None, callback=None,
               keep_logits=False):
    """The fast-wavenet algorithm: ring buffers of past layer inputs, one new column per step."""
    model = working_copy(model, device, dtype)
    w = step_weights(model, dtype, device)
    state = CachedState(model.config, prime_history(model, inputs), device)
    p, n = inputs.prime_length, inputs.n_samples
    state.place_prime(p)
    base = w["b_conv"][:, None, :].expand(-1, inputs.batch, -1)
    spk = speaker_bias(model, inputs.speaker, dtype, device)
    base = base + spk if spk is not None else base.contiguous()
    uniforms = torch.from_numpy(inputs.uniforms).to(device)
    codes = torch.empty(inputs.batch, p + n, dtype=torch.long, device=device)
    codes[:, :p] = inputs.prime
    prev = inputs.prime[:, -1] if p else torch.full((inputs.batch,), model.start_code, device=device)
    logits_out = [] if keep_logits else None
    synthesis = inputs.synthesis(model.config)
    for t0 in range(p, p + n, CHUNK):
        t1 = min(t0 + CHUNK, p + n)
        cond = cond_terms(w, inputs.cond_up, t0, t1)
        for t in range(t0, t1):
            bias = base if cond is None else base + cond[t - t0]
            logits = cached_logits_step(w, state, w["emb"][prev], t, bias,
                                        model.config.residual_scale)
            drawn = draw_next(logits, uniforms[:, t - p], temperature=inputs.temperature,
                              config=model.config)
            prev = sample_codes(synthesis, t, drawn)
            codes[:, t] = prev
            if logits_out is not None:
                logits_out.append(logits.cpu())
        after_step(t1 - p, n, codes, p, progress, callback)
    stacked = None if logits_out is None else torch.stack(logits_out, 1).numpy()
    return codes[:, p:].cpu().numpy(), stacked


register(SamplerSpec(
    name="cached", run=run_cached, devices=("cpu", "cuda"), wrong_device="",
    linear_prediction=True))
