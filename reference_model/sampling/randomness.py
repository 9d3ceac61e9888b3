"""The randomness protocol that every sampler follows: uniform numbers drawn up front, one per
stream and step, and an inverse-CDF draw of the next code in float64.

Every sampler computes the same logits for step ``t`` (up to float rounding) and turns them into
a code with :func:`sample_next` and the number ``uniforms[b, t]`` from :func:`draw_uniforms`; so
the same seed gives the same codes on every sampler, and equivalence with the slow ``naive``
sampler is testable exactly.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from reference_model.heads import sample_mixture
from wavebench_base.errors import InputError


def sample_next(logits, uniforms, *, temperature: float):
    """Draw one code per row by inverse CDF of softmax(logits / temperature), in float64.

    Parameters
    ----------
    logits : np.ndarray or torch.Tensor [shape=(batch, classes)]
        Unnormalized log-probabilities of the next code.
    uniforms : np.ndarray or torch.Tensor [shape=(batch,)]
        One number in [0, 1) per row, from :func:`draw_uniforms`.
    temperature : float
        ``0`` takes the argmax (the first maximum on ties); otherwise the logits are divided by it.

    Returns
    -------
    np.ndarray or torch.Tensor [shape=(batch,)], int64
        The smallest code ``c`` with ``u * total < cdf[c]``, where ``cdf`` is the running sum
        of ``exp(logits / T - max)`` and ``total`` its last entry; the same kind (and device)
        as ``logits``.

    Raises
    ------
    InputError
        For a negative or non-finite temperature.

    Examples
    --------
    >>> sample_next(np.array([[0.0, 0.0]]), np.array([0.75]), temperature=1.0)
    array([1])
    """
    check_temperature(temperature)
    if isinstance(logits, torch.Tensor):
        if temperature == 0:
            return logits.argmax(-1)
        x = logits.double() / temperature
        cdf = torch.cumsum(torch.exp(x - x.amax(-1, keepdim=True)), -1)
        target = uniforms.to(cdf) * cdf[:, -1]
        return (cdf <= target[:, None]).sum(-1).clamp_(max=logits.shape[-1] - 1)
    logits = np.asarray(logits)
    if temperature == 0:
        return np.argmax(logits, axis=-1).astype(np.int64)
    x = logits.astype(np.float64) / temperature
    cdf = np.cumsum(np.exp(x - x.max(-1, keepdims=True)), -1)
    target = np.asarray(uniforms, dtype=np.float64) * cdf[:, -1]
    return np.minimum((cdf <= target[:, None]).sum(-1), logits.shape[-1] - 1).astype(np.int64)


def draw_next(output, uniforms, *, temperature: float, config):
    """The next code of every row from the model's output, by its head (see
    :mod:`reference_model.heads`): :func:`sample_next` for ``softmax``, one uniform per row for
    the mixture too."""
    if config.output == "softmax":
        return sample_next(output, uniforms, temperature=temperature)
    check_temperature(temperature)
    return sample_mixture(output, uniforms, temperature=temperature, classes=config.classes,
                          log_scale_min=config.log_scale_min)


def check_temperature(temperature: float) -> None:
    """Raise InputError unless ``temperature`` is a finite number >= 0."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
            and temperature >= 0):
        raise InputError(f"temperature must be a finite number >= 0 (0 = argmax), got {temperature!r}")


def draw_uniforms(seed: int, batch: int, n_samples: int) -> np.ndarray:
    """The uniform numbers of every step, drawn up front: stream ``b`` uses its own generator.

    Stream ``b`` draws from ``np.random.default_rng([seed, b])``, so its numbers do not depend
    on the batch size: stream 2 of a batch of 8 equals stream 2 of a batch of 3.

    Returns
    -------
    np.ndarray [shape=(batch, n_samples)], float64 in [0, 1)
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}")
    out = np.empty((batch, n_samples))
    for b in range(batch):
        out[b] = np.random.default_rng([int(seed), b]).random(n_samples)
    return out

