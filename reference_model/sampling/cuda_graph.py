"""The ``cuda-graph`` GPU sampler: the cached step, sampling included, captured as one CUDA graph.

Everything a step touches lives in static device tensors (the step index ``t`` too), so a graph
of ``steps_per_graph`` consecutive steps can be captured once and replayed with no Python and no
host synchronization between steps: the per-kernel launch cost of the eager ``cached`` sampler
disappears. The step is the same code as ``cached`` (:func:`cached_logits_step`) followed by
:func:`sample_next` on the device, so its codes match ``naive``'s. Without capture
(``capture=False``) the same static-tensor step runs eagerly on any device, which lets the
logic be tested on a machine without CUDA.
"""
from __future__ import annotations

import torch

from reference_model.sampling.randomness import draw_next
from reference_model.sampling.registry import SamplerSpec, register
from reference_model.sampling.state import (
    CachedState,
    Inputs,
    cached_logits_step,
    prime_history,
    speaker_bias,
    step_weights,
    working_copy,
)
from wavebench_base.errors import InputError

STEPS_PER_GRAPH = 16  # steps unrolled in one captured graph (fewer replays, one host sync per chunk)


class StaticStep:
    """The state of all streams in static tensors, and one step that updates it in place."""

    def __init__(self, model, inputs: Inputs, dtype, device, pad_to: int):
        model = working_copy(model, device, dtype)
        self.w = step_weights(model, dtype, device)
        self.state = CachedState(model.config, prime_history(model, inputs), device)
        p, n, batch = inputs.prime_length, inputs.n_samples, inputs.batch
        self.state.place_prime(p)
        n_pad = -(-n // pad_to) * pad_to  # replays run whole graphs; extra steps are dropped
        self.p, self.temperature, self.config = p, inputs.temperature, model.config
        self.t = torch.tensor(p, device=device)
        self.prev = (inputs.prime[:, -1].clone() if p else
                     torch.full((batch,), model.start_code, device=device))
        self.codes = torch.zeros(batch, n_pad, dtype=torch.long, device=device)
        self.uniforms = torch.zeros(batch, n_pad, dtype=torch.float64, device=device)
        self.uniforms[:, :n] = torch.from_numpy(inputs.uniforms).to(device)
        base = self.w["b_conv"][:, None, :].expand(-1, batch, -1)
        spk = speaker_bias(model, inputs.speaker, dtype, device)
        self.bias = (base + spk if spk is not None else base).contiguous()
        self.cond_up = None
        if inputs.cond_up is not None:
            self.cond_up = torch.zeros(batch, inputs.cond_up.shape[1], p + n_pad,
                                       dtype=dtype, device=device)
            self.cond_up[:, :, :p + n] = inputs.cond_up

    def step(self) -> None:
        """Advance every stream by one sample (no host synchronization)."""
        bias = self.bias
        if self.cond_up is not None:
            column = self.cond_up.index_select(2, self.t.view(1))[:, :, 0]  # [batch, n_mels]
            cond = column @ self.w["w_cond"] + self.w["b_cond"]
            bias = bias + cond.view(cond.shape[0], bias.shape[0], -1).transpose(0, 1)
        logits = cached_logits_step(self.w, self.state, self.w["emb"][self.prev], self.t, bias,
                                    self.config.residual_scale)
        column = (self.t - self.p).view(1)
        u = self.uniforms.index_select(1, column)[:, 0]
        code = draw_next(logits, u, temperature=self.temperature, config=self.config)
        self.codes.index_copy_(1, column, code[:, None])
        self.prev.copy_(code)
        self.t += 1

    def snapshot(self) -> list:
        return [x.clone() for x in (self.state.buffer, self.prev, self.t, self.codes)]

    def restore(self, saved: list) -> None:
        for x, s in zip((self.state.buffer, self.prev, self.t, self.codes), saved):
            x.copy_(s)


def _capture(step: StaticStep, steps: int) -> torch.cuda.CUDAGraph:
    """Warm up on a side stream (as CUDA graph capture requires), rewind, capture ``steps`` steps."""
    saved = step.snapshot()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step.step()
    torch.cuda.current_stream().wait_stream(side)
    step.restore(saved)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(steps):
            step.step()
    return graph


def run_cuda_graph(model, inputs: Inputs, *, dtype, device, progress=None, callback=None,
                   keep_logits=False, capture: bool = True,
                   steps_per_graph: int = STEPS_PER_GRAPH):
    """Generate with the captured step; ``capture=False`` runs the same step eagerly (tests)."""
    if keep_logits:
        raise InputError("sampler 'cuda-graph' does not keep logits; use cached for that")
    n = inputs.n_samples
    state = StaticStep(model, inputs, dtype, device, steps_per_graph)
    graph = _capture(state, steps_per_graph) if capture else None
    done, chunk = 0, max(steps_per_graph, 1024 // steps_per_graph * steps_per_graph)
    while done < n:
        todo = min(chunk, -(-(n - done) // steps_per_graph) * steps_per_graph)
        for _ in range(todo // steps_per_graph):
            if graph is not None:
                graph.replay()
            else:
                for _ in range(steps_per_graph):
                    state.step()
        end = min(n, done + todo)
        if progress is not None:
            progress.update(end - done)
        if callback is not None:
            callback(state.codes[:, done:end].cpu().numpy(), done)
        done = end
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return state.codes[:, :n].cpu().numpy(), None


register(SamplerSpec(
    name="cuda-graph", run=run_cuda_graph, devices=("cuda",),
    wrong_device="sampler 'cuda-graph' needs --device cuda; on the CPU use fused"))
