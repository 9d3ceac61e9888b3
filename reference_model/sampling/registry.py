"""The samplers by name: a plain dict that each sampler module fills when it is imported.

``reference_model.sampling`` imports every sampler module, so the registry is complete as soon
as the package is imported. A sampler module imports this one and the shared modules
(:mod:`~reference_model.sampling.randomness`, :mod:`~reference_model.sampling.state`), never
:mod:`~reference_model.sampling.generation`, which looks samplers up here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SamplerSpec:
    """One sampler: its name, the function that runs it, and where it runs.

    Attributes
    ----------
    name : str
        Registry key, as ``generate(sampler=...)`` and ``--sampler`` take it.
    run : callable
        ``run(model, inputs, *, dtype, device, progress=None, callback=None, keep_logits=False)``
        returning ``(codes [batch, n] int64, logits [batch, n, classes] or None)``; ``inputs``
        is a :class:`~reference_model.sampling.state.Inputs`.
    devices : tuple of str
        Device types it runs on (``"cpu"``, ``"cuda"``).
    wrong_device : str
        The error message for any other device, formatted with ``device``.
    linear_prediction : bool
        Whether it runs models with ``lpc_order`` > 0 (their samples come from
        :class:`~reference_model.sampling.state.Inputs`' ``synthesis``).
    """

    name: str
    run: Callable
    devices: tuple[str, ...]
    wrong_device: str
    linear_prediction: bool = False


#: Every sampler by name, in the order the package imports them.
REGISTRY: dict[str, SamplerSpec] = {}


def register(spec: SamplerSpec) -> SamplerSpec:
    """Add ``spec`` to :data:`REGISTRY` under its name (replacing an earlier one of that name)."""
    REGISTRY[spec.name] = spec
    return spec
