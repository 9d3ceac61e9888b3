"""What every sampler shares: the checked inputs of one generation and the cached step state.

:class:`Inputs` (from :func:`prepare_inputs`) is what a sampler receives. The cached step
(:func:`step_weights`, :class:`CachedState`, :func:`cached_logits_step`) computes one new column
of every layer from ring buffers of past layer inputs; the ``cached`` and ``cuda-graph``
samplers run it as it is, and ``fused`` compiles the same layout with numba.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from reference_model.codes import linear_values
from reference_model.linear_prediction import Synthesis, coefficients
from reference_model.model import WaveNet
from reference_model.sampling.randomness import check_temperature, draw_uniforms
from wavebench_base.errors import InputError

CHUNK = 1024  # steps between progress updates, callbacks and conditioning projections


# ----------------------------------------------------------------------------- inputs

@dataclass
class Inputs:
    """Checked inputs of one generation, on the sampler's device and dtype."""

    prime: torch.Tensor  # [batch, P] long
    cond_up: torch.Tensor | None  # [batch, n_mels, P + n] per-sample mel, or None
    speaker: torch.Tensor | None  # [batch] long, or None
    uniforms: np.ndarray  # [batch, n] float64
    n_samples: int
    temperature: float
    lpc: np.ndarray | None = None  # [batch, frames, lpc_order] float64, or None

    def synthesis(self, config) -> Synthesis | None:
        """A fresh :class:`~reference_model.linear_prediction.Synthesis` for a
        linear-prediction model (its history starts from the prime), else None."""
        if self.lpc is None:
            return None
        return Synthesis(self.lpc, self.prime.cpu().numpy(), config)

    @property
    def batch(self) -> int:
        return self.prime.shape[0]

    @property
    def prime_length(self) -> int:
        return self.prime.shape[1]


def _as_batch(x, batch: int, what: str, ndim: int) -> torch.Tensor:
    """Broadcast a single item (``ndim`` dims) or check a batch (``ndim + 1`` dims)."""
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if x.dim() == ndim:
        x = x.unsqueeze(0).expand(batch, *x.shape)
    if x.dim() != ndim + 1 or x.shape[0] not in (1, batch):
        raise InputError(f"{what} has shape {tuple(x.shape)}; expected {ndim} dims, or "
                         f"{ndim + 1} with a leading batch of 1 or {batch}")
    return x.expand(batch, *x.shape[1:]).contiguous()


def prepare_inputs(model: WaveNet, n_samples: int, *, batch: int, temperature: float, prime,
                   cond, speaker, seed: int, device, dtype) -> Inputs:
    """Check and convert the inputs of :func:`generate` (see there); raise InputError on bad ones."""
    c = model.config
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise InputError(f"n_samples must be a positive integer, got {n_samples!r}")
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise InputError(f"batch must be a positive integer, got {batch!r}")
    check_temperature(temperature)
    prime = torch.zeros(batch, 0, dtype=torch.long) if prime is None else _as_batch(
        prime, batch, "prime", 1).long()
    if prime.numel() and (prime.min() < 0 or prime.max() >= c.classes):
        raise InputError(f"prime codes must lie in [0, {c.classes}); got "
                         f"{int(prime.min())}..{int(prime.max())}")
    total = prime.shape[1] + n_samples
    cond_up = None
    if c.uses_mel:
        if cond is None:
            raise InputError("this model is mel-conditioned: pass mel frames (cond)")
        mel = _as_batch(cond, batch, "mel cond", 2).to(torch.float64)
        if mel.shape[1] != c.n_mels or mel.shape[2] * c.hop_length < total:
            raise InputError(f"mel cond has shape {tuple(mel.shape)}; {prime.shape[1]} prime + "
                             f"{n_samples} generated samples need [batch, {c.n_mels}, >= "
                             f"{math.ceil(total / c.hop_length)}] at hop {c.hop_length}")
        upsampler = copy.deepcopy(model).to(torch.float64)  # same weights, float64 and on CPU
        with torch.inference_mode():
            cond_up = upsampler.upsample_cond(mel)[:, :, :total].to(device, dtype)
    if c.uses_speaker:
        if speaker is None:
            raise InputError("this model is speaker-conditioned: pass speaker ids")
        speaker = _as_batch(speaker, batch, "speaker", 0).long()
        if speaker.min() < 0 or speaker.max() >= c.n_speakers:
            raise InputError(f"speaker ids must lie in [0, {c.n_speakers})")
        speaker = speaker.to(device)
    else:
        speaker = None
    lpc = coefficients(mel.numpy(), c) if c.lpc_order else None
    return Inputs(prime.to(device), cond_up, speaker, draw_uniforms(seed, batch, n_samples),
                  int(n_samples), float(temperature), lpc)


def sample_codes(synthesis: Synthesis | None, t: int, drawn: torch.Tensor) -> torch.Tensor:
    """The codes of sample ``t``: those drawn, or for a linear-prediction model the samples
    that its predictor makes of the drawn excitation codes."""
    if synthesis is None:
        return drawn
    return torch.from_numpy(synthesis.next_codes(t, drawn.cpu().numpy())).to(drawn.device)


# ----------------------------------------------------------------------------- shared step pieces

def prime_history(model: WaveNet, inputs: Inputs) -> list:
    """Each layer's past inputs after the prime, by one teacher-forced pass over its tail.

    Returns
    -------
    list of torch.Tensor [shape=(batch, residual_channels, span_k)]
        For layer ``k`` with dilation ``d_k``, ``span_k = (kernel_size - 1) * d_k`` past
        inputs: entry ``j`` is the layer input at position ``P - span_k + j`` (zero before the
        start, as the causal convolution's padding).
    """
    c = model.config
    spans = [(c.kernel_size - 1) * d for d in c.dilations]
    b, p = inputs.prime.shape
    dtype = next(model.parameters()).dtype
    if p == 0:
        return [torch.zeros(b, c.residual_channels, s, dtype=dtype, device=inputs.prime.device)
                for s in spans]
    # Positions before P - receptive_field cannot reach any needed input: drop them.
    start = max(0, p - c.receptive_field - 1)
    shifted = F.pad(inputs.prime[:, :-1], (1, 0), value=model.start_code)[:, start:]
    cond = None if inputs.cond_up is None else inputs.cond_up[:, :, start:p]
    g = None if inputs.speaker is None else model.speaker_embedding(inputs.speaker)
    x = model.embed_codes(shifted)
    history = []
    for layer, span in zip(model.layers, spans):
        history.append(F.pad(x, (max(0, span - x.shape[-1]), 0))[:, :, -span:])
        x, _ = layer(x, cond, g)
    return history


def step_weights(model: WaveNet, dtype, device) -> dict:
    """The model's weights laid out for one cached step (taps, residual, skip as matrices).

    Keys (L layers, R residual, D dilation, S skip, E end channels, C classes, K kernel):
    ``emb [C, R]`` (start conv incl. bias), ``w_new [L, R, 2D]`` (current tap),
    ``w_old [L, (K-1) R, 2D]`` (past taps, ``d``, ``2d``, ... back), ``b_conv [L, 2D]``,
    ``w_res [L, D, R]``, ``b_res [L, R]``, ``w_skip [L D, S]`` (all layers' skip convs as one
    matrix, times ``skip_scale``), ``b_skip [S]`` (their summed biases, times it),
    ``w1 [S, E]``, ``b1``, ``w2 [E, C]``, ``b2``,
    and when mel-conditioned ``w_cond [n_mels, L 2D]``, ``b_cond [L 2D]``. All matrices are
    ``[in, out]`` so a row vector times it is the layer.
    """
    c = model.config
    k = c.kernel_size
    f64 = {name: p.detach().to("cpu", torch.float64) for name, p in model.state_dict().items()}
    layers = range(len(c.dilations))

    def stack(fmt):
        return torch.stack([fmt(i) for i in layers])

    if c.input == "scalar":  # one row per code: value * w + b (the start conv on one scalar)
        values = linear_values(torch.arange(c.classes), c.classes)
        emb = values[:, None] * f64["start.weight"][:, 0, 0] + f64["start.bias"]
    else:
        emb = f64["start.weight"][:, :, 0].t() + f64["start.bias"]
    s = c.skip_scale  # folded into the skip convolutions: s (sum of W z + b) = sum of (s W) z + s b
    out = {
        "emb": emb,
        "w_new": stack(lambda i: f64[f"layers.{i}.conv.weight"][:, :, k - 1].t()),
        "w_old": stack(lambda i: torch.cat([f64[f"layers.{i}.conv.weight"][:, :, k - 1 - m].t()
                                            for m in range(1, k)])),
        "b_conv": stack(lambda i: f64[f"layers.{i}.conv.bias"]),
        "w_res": stack(lambda i: f64[f"layers.{i}.res.weight"][:, :, 0].t()),
        "b_res": stack(lambda i: f64[f"layers.{i}.res.bias"]),
        "w_skip": torch.cat([f64[f"layers.{i}.skip.weight"][:, :, 0].t() for i in layers]) * s,
        "b_skip": stack(lambda i: f64[f"layers.{i}.skip.bias"]).sum(0) * s,
        "w1": f64["end1.weight"][:, :, 0].t(), "b1": f64["end1.bias"],
        "w2": f64["end2.weight"][:, :, 0].t(), "b2": f64["end2.bias"],
    }
    if c.uses_mel:
        out["w_cond"] = torch.cat([f64[f"layers.{i}.cond_proj.weight"][:, :, 0] for i in layers]).t()
        out["b_cond"] = torch.cat([f64[f"layers.{i}.cond_proj.bias"] for i in layers])
    return {name: t.to(device, dtype).contiguous() for name, t in out.items()}


def speaker_bias(model: WaveNet, speaker, dtype, device):
    """Per-stream, per-layer speaker term [L, batch, 2D] of the gated convolution, or None."""
    if speaker is None:
        return None
    m = copy.deepcopy(model).to("cpu", torch.float64)
    with torch.inference_mode():
        g = m.speaker_embedding(speaker.cpu())
        out = torch.stack([layer.speaker_proj(g) for layer in m.layers])
    return out.to(device, dtype)


def cond_terms(weights: dict, cond_up, t0: int, t1: int):
    """Mel terms of every layer for steps ``t0 <= t < t1``: [t1 - t0, L, batch, 2D], or None."""
    if cond_up is None:
        return None
    batch, n_layers = cond_up.shape[0], weights["b_conv"].shape[0]
    x = cond_up[:, :, t0:t1].transpose(1, 2) @ weights["w_cond"] + weights["b_cond"]
    return x.reshape(batch, t1 - t0, n_layers, -1).permute(1, 2, 0, 3)


def working_copy(model: WaveNet, device, dtype) -> WaveNet:
    """A copy of ``model`` in ``dtype`` on ``device``, in eval mode (the caller's is untouched)."""
    return copy.deepcopy(model).to(device, dtype).eval()


def after_step(done: int, n: int, codes, p: int, progress, callback) -> None:
    """Progress and callbacks every CHUNK steps and at the end."""
    if done % CHUNK and done != n:
        return
    start = (done - 1) // CHUNK * CHUNK
    if progress is not None:
        progress.update(done - start)
    if callback is not None:
        callback(codes[:, p + start:p + done].cpu().numpy(), start)


# ----------------------------------------------------------------------------- the cached step

class CachedState:
    """Ring buffers of every layer's past inputs, in one flat tensor [sum of spans, batch, R].

    Layer ``k`` owns rows ``offset_k .. offset_k + span_k``; its input at position ``q`` lives
    in row ``offset_k + q % span_k``. One gather reads every layer's past taps at the start of a
    step and one scatter stores the new inputs at the end (before the buffers are reused).
    """

    def __init__(self, config, history: list, device):
        k = config.kernel_size
        self.dil = torch.tensor(config.dilations, device=device)
        self.span = self.dil * (k - 1)
        self.offset = torch.cumsum(self.span, 0) - self.span
        taps = torch.arange(1, k, device=device)  # how many dilations back
        self.lag = taps[None, :] * self.dil[:, None]  # [L, K - 1]: samples back, per tap
        # [span, batch, R] per layer; entry j is the input at position P - span + j
        self.buffer = torch.cat([h.permute(2, 0, 1) for h in history]).contiguous()

    def place_prime(self, prime_length: int) -> None:
        """Rotate each layer's rows so that position q sits at row offset + q % span."""
        for off, span in zip(self.offset.tolist(), self.span.tolist()):
            rows = self.buffer[off:off + span]
            # entry j holds position P - span + j, which belongs in row (P - span + j) % span
            self.buffer[off:off + span] = torch.roll(rows, shifts=prime_length % span, dims=0)

    def read_index(self, t) -> torch.Tensor:
        """Rows of the past taps of step ``t``, layer-major: [L * (K - 1)]."""
        past = t - self.lag
        return (self.offset[:, None] + torch.remainder(past, self.span[:, None])).reshape(-1)

    def write_index(self, t) -> torch.Tensor:
        return self.offset + torch.remainder(t, self.span)


def cached_logits_step(w: dict, state: CachedState, x, t: int, bias,
                       res_scale: float = 1.0) -> torch.Tensor:
    """One cached step: layer inputs from ``x`` [batch, R] to logits [batch, C] (the model's
    output: mixture parameters for a mixture head); ``res_scale`` is the config's
    ``residual_scale``."""
    n_layers, batch = w["w_new"].shape[0], x.shape[0]
    old = state.buffer.index_select(0, state.read_index(t))  # [L (K-1), batch, R]
    old = old.reshape(n_layers, -1, batch, x.shape[1]).permute(0, 2, 1, 3).reshape(n_layers, batch, -1)
    pre = torch.baddbmm(bias, old, w["w_old"])  # the past taps of every layer in one product
    d = w["w_res"].shape[1]
    xs, zs = [], []
    for k in range(n_layers):
        xs.append(x)
        h = torch.addmm(pre[k], x, w["w_new"][k])
        z = torch.tanh(h[:, :d]) * torch.sigmoid(h[:, d:])
        zs.append(z)
        x = torch.addmm(w["b_res"][k], z, w["w_res"][k]).add_(x)
        if res_scale != 1:
            x = x.mul_(res_scale)
    state.buffer.index_copy_(0, state.write_index(t), torch.stack(xs))
    skip = torch.addmm(w["b_skip"], torch.cat(zs, 1), w["w_skip"])  # all skip convs at once
    return torch.addmm(w["b2"], torch.relu(torch.addmm(w["b1"], torch.relu(skip), w["w1"])), w["w2"])

