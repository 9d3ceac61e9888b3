"""``generate``, the public entry of sampling: check the inputs, run the named sampler, decode.

The samplers are looked up by name in :data:`~reference_model.sampling.registry.REGISTRY`
(``reference_model.sampling`` imports them all); this module imports none of them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from reference_model.codes import decode
from reference_model.devices import resolve_device
from reference_model.model import WaveNet
from reference_model.sampling.registry import REGISTRY, SamplerSpec
from reference_model.sampling.state import prepare_inputs
from wavebench_base.errors import InputError


@dataclass
class Generation:
    """What a sampler returns.

    Attributes
    ----------
    codes : np.ndarray [shape=(batch, n_samples)], int64
        Generated codes (the prime is not included): mu-law, or linear for a mixture head
        (:mod:`reference_model.codes`).
    audio : np.ndarray [shape=(batch, n_samples)], float32
        ``codes`` decoded, in [-1, 1].
    sampler : str
    seconds : float
        Wall time of the sampling loop (after setup and priming).
    prime_length : int
        Number of priming samples before the generated ones.
    logits : np.ndarray [shape=(batch, n_samples, classes)] or None
        The logits of every step, when asked for (tests).
    """

    codes: np.ndarray
    audio: np.ndarray
    sampler: str
    seconds: float
    prime_length: int = 0
    logits: np.ndarray | None = field(default=None, repr=False)


def find_sampler(sampler: str) -> SamplerSpec:
    """The registered sampler of that name; InputError listing the available ones otherwise."""
    try:
        return REGISTRY[sampler]
    except (KeyError, TypeError):
        raise InputError(f"unknown sampler {sampler!r}; available: {', '.join(REGISTRY)}") from None


def fastest_sampler(config, device: torch.device) -> str:
    """The sampler that ``auto`` means: ``cuda-graph`` on CUDA and ``fused`` on the CPU, or
    ``cached`` for a linear-prediction model, which those two do not run."""
    if config.lpc_order:
        return "cached"
    return "cuda-graph" if device.type == "cuda" else "fused"


def check_sampler_model(sampler: str, config) -> None:
    """Raise InputError for a sampler that cannot run a model with this config."""
    spec = REGISTRY.get(sampler) if isinstance(sampler, str) else None
    if spec is not None and config.lpc_order and not spec.linear_prediction:
        able = ", ".join(name for name, s in REGISTRY.items() if s.linear_prediction)
        raise InputError(f"sampler {sampler!r} does not run linear-prediction models "
                         f"(lpc_order {config.lpc_order}) yet; use {able}")


def check_sampler_device(sampler: str, device: torch.device) -> None:
    """Raise InputError for a sampler that cannot run on ``device``."""
    spec = REGISTRY.get(sampler) if isinstance(sampler, str) else None
    if spec is not None and device.type not in spec.devices:
        raise InputError(spec.wrong_device.format(device=device))


def generate(model: WaveNet, n_samples: int, *, batch: int = 1, temperature: float = 1.0,
             prime=None, cond=None, speaker=None, seed: int = 0, device="cpu",
             sampler: str = "cached", dtype=torch.float32, progress: bool = False,
             callback=None, keep_logits: bool = False) -> Generation:
    """Generate ``batch`` streams of ``n_samples`` mu-law codes autoregressively.

    Parameters
    ----------
    model : WaveNet
        Left unchanged (samplers work on a copy in ``dtype`` on ``device``).
    n_samples : int
        Samples to generate per stream, after the prime.
    batch : int
        Independent streams generated together.
    temperature : float
        Softmax temperature; 0 takes the most likely code.
    prime : array-like of int [shape=(P,) or (batch, P)], optional
        Mu-law codes that the streams continue (a real clip, encoded).
    cond : array-like [shape=(n_mels, F) or (batch, n_mels, F)], optional
        Log-mel frames covering the prime and the generated samples (``F * hop >= P + n``),
        required by mel-conditioned models.
    speaker : int or array-like of int [shape=(batch,)], optional
        Speaker ids, required by speaker-conditioned models.
    seed : int
        Seed of the uniform numbers (see
        :func:`~reference_model.sampling.randomness.draw_uniforms`).
    device : str or torch.device
    sampler : {"naive", "cached", "fused", "cuda-graph"}
        A name in :data:`~reference_model.sampling.registry.REGISTRY`.
    dtype : torch.float32 or torch.float64
    progress : bool
        Show a progress bar (tqdm) on stderr.
    callback : callable(codes [batch, m] np.ndarray, start int), optional
        Called with every finished chunk of generated codes (for streaming writes).
    keep_logits : bool
        Also return every step's logits (memory: batch * n * classes).

    Returns
    -------
    Generation
        Codes [batch, n_samples], decoded audio, timing.

    Raises
    ------
    InputError
        Unknown sampler, a sampler on the wrong device or for a linear-prediction model that it
        does not run, CUDA asked for but absent, bad shapes
        or values of prime, cond, speaker, temperature or seed.

    Examples
    --------
    >>> from reference_model.config import PRESETS
    >>> model = WaveNet(PRESETS["tiny"].model).eval()
    >>> generate(model, 100, batch=2, sampler="cached").codes.shape
    (2, 100)
    """
    runner = find_sampler(sampler).run
    device = resolve_device(device)
    check_sampler_device(sampler, device)
    check_sampler_model(sampler, model.config)
    if dtype not in (torch.float32, torch.float64):
        raise InputError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    inputs = prepare_inputs(model, n_samples, batch=batch, temperature=temperature, prime=prime,
                            cond=cond, speaker=speaker, seed=seed, device=device, dtype=dtype)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=n_samples * batch, unit="sample", unit_scale=True, desc=sampler,
                   leave=False)
        callback_bar = _BatchBar(bar, batch)
    with torch.inference_mode():
        start = time.perf_counter()
        codes, logits = runner(model, inputs, dtype=dtype, device=device,
                               progress=callback_bar if bar else None, callback=callback,
                               keep_logits=keep_logits)
        seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    audio = decode(codes, model.config)
    return Generation(codes, audio, sampler, seconds, inputs.prime_length, logits)


class _BatchBar:
    """Counts steps as samples of all streams in the bar."""

    def __init__(self, bar, batch: int):
        self.bar, self.batch = bar, batch

    def update(self, steps: int) -> None:
        self.bar.update(steps * self.batch)
