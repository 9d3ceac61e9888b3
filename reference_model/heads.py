"""The output heads: what the network's last layer means, how likely a target is under it, and
how the next sample is drawn from it.

- ``softmax``: ``classes`` logits over codes.
- ``mol``: a discretized mixture of logistics (PixelCNN++), in wavenet_vocoder's layout: rows
  ``[0, M)`` are the mixture logits, ``[M, 2M)`` the means and ``[2M, 3M)`` the log-scales,
  clamped from below at ``log_scale_min``. Samples live on ``classes`` bins of width
  ``2 / (classes - 1)`` centred from -1 to 1; a target's probability is its bin's mass, with
  the two end bins reaching to minus and plus infinity.

Both draws follow the randomness protocol of
:mod:`reference_model.sampling.randomness`: one uniform number per stream and step, so every
sampler that computes the same outputs draws the same codes.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from reference_model.codes import linear_codes, linear_values

# wavenet_vocoder's loss: a bin whose mass falls below CDF_FLOOR is scored by the density at
# its centre times its width (the difference of two sigmoids loses all its digits there), and
# targets beyond EDGE take the open-ended first or last bin.
CDF_FLOOR = 1e-5
EDGE = 0.999
U_MARGIN = 1e-5  # wavenet_vocoder draws its uniforms from [1e-5, 1 - 1e-5]


def log_probs(output: torch.Tensor, targets: torch.Tensor, config) -> torch.Tensor:
    """ln p(target) under each column of the head's output, in float64.

    Parameters
    ----------
    output : Tensor [batch, out_channels, time]
        The model's output (logits, or mixture parameters).
    targets : Tensor [batch, time]
        Codes (long); for a mixture also float sample values in [-1, 1], scored as they are.
    config : ModelConfig

    Returns
    -------
    Tensor [batch, time], float64
        For ``softmax``, ln softmax at the target code. For ``mol``, exactly the negative of
        wavenet_vocoder's ``discretized_mix_logistic_loss`` per sample (its branches
        included), with bin width ``2 / (classes - 1)``.
    """
    if config.output == "softmax":
        return torch.log_softmax(output.double(), dim=1).gather(1, targets[:, None])[:, 0]
    values = targets.double() if targets.is_floating_point() else linear_values(targets, config.classes)
    return mixture_log_probs(output.double(), values, config.classes, config.log_scale_min)


def mixture_log_probs(params: torch.Tensor, values: torch.Tensor, classes: int,
                      log_scale_min: float) -> torch.Tensor:
    """ln P(bin of ``values``) under the mixtures ``params`` [B, 3M, T] (see :func:`log_probs`)."""
    m = params.shape[1] // 3
    logit, mean = params[:, :m], params[:, m:2 * m]
    log_scale = params[:, 2 * m:].clamp(min=log_scale_min)
    y = values[:, None, :]
    centred = y - mean
    inv_scale = torch.exp(-log_scale)
    half_bin = 1.0 / (classes - 1)
    plus_in = inv_scale * (centred + half_bin)
    min_in = inv_scale * (centred - half_bin)
    log_cdf_plus = plus_in - F.softplus(plus_in)  # ln sigmoid(plus_in): the first bin
    log_one_minus_cdf_min = -F.softplus(min_in)  # ln (1 - sigmoid(min_in)): the last bin
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_scale * centred
    log_pdf_mid = mid_in - log_scale - 2.0 * F.softplus(mid_in)
    inner = torch.where(cdf_delta > CDF_FLOOR, torch.log(cdf_delta.clamp(min=1e-12)),
                        log_pdf_mid - math.log((classes - 1) / 2))
    per_component = torch.where(y < -EDGE, log_cdf_plus,
                                torch.where(y > EDGE, log_one_minus_cdf_min, inner))
    return torch.logsumexp(per_component + torch.log_softmax(logit, dim=1), dim=1)


def sample_mixture(params, uniforms, *, temperature: float, classes: int, log_scale_min: float):
    """Draw one code per row from mixtures ``params`` [batch, 3M] with one uniform per row.

    The uniform ``u`` picks the component by inverse CDF of softmax(logits / T); where it fell
    inside that component's share is itself uniform, ``v = (u W - cdf_before) / w_k``, and
    picks the value by the logistic's inverse CDF, ``mean + T scale ln(v / (1 - v))``, with
    ``v`` kept in [1e-5, 1 - 1e-5] as wavenet_vocoder keeps its uniforms. The value is clipped
    to [-1, 1] and rounded to its bin. ``T = 1`` samples the source's distribution; ``T = 0``
    takes the most likely component's mean. torch (float64 math) or numpy.
    """
    if isinstance(params, torch.Tensor):
        return _sample_mixture_torch(params, uniforms, temperature, classes, log_scale_min)
    return _sample_mixture_torch(torch.from_numpy(np.asarray(params)),
                                 torch.from_numpy(np.asarray(uniforms, dtype=np.float64)),
                                 temperature, classes, log_scale_min).numpy()


def _sample_mixture_torch(params, uniforms, temperature, classes, log_scale_min):
    m = params.shape[-1] // 3
    p = params.double()
    logit, mean = p[:, :m], p[:, m:2 * m]
    log_scale = p[:, 2 * m:].clamp(min=log_scale_min)
    if temperature == 0:
        k = logit.argmax(-1, keepdim=True)
        return linear_codes(mean.gather(1, k)[:, 0], classes)
    x = logit / temperature
    weights = torch.exp(x - x.amax(-1, keepdim=True))
    cdf = torch.cumsum(weights, -1)
    target = uniforms.to(cdf) * cdf[:, -1]
    k = (cdf <= target[:, None]).sum(-1).clamp_(max=m - 1)[:, None]
    below = (cdf - weights).gather(1, k)[:, 0]
    v = ((target - below) / weights.gather(1, k)[:, 0]).clamp(U_MARGIN, 1.0 - U_MARGIN)
    value = mean.gather(1, k)[:, 0] + torch.exp(log_scale.gather(1, k)[:, 0]) * temperature * (
        torch.log(v) - torch.log1p(-v))
    return linear_codes(value, classes)
