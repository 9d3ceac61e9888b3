"""Autoregressive sampling: :func:`generate` and the samplers it runs, registered by name.

========================  ==================================================================
module                    what it holds
========================  ==================================================================
``generation``            :func:`generate` (the public entry), :class:`Generation`, device check
``registry``              :data:`REGISTRY`, name -> :class:`SamplerSpec`, filled by the samplers
``randomness``            the randomness protocol: :func:`draw_uniforms`, :func:`draw_next`
``state``                 :class:`Inputs` and :func:`prepare_inputs`; the cached step state
``naive``                 the reference: the whole network over the receptive field per step
``cached``                fast-wavenet ring buffers in eager torch (any device)
``fused``                 the cached step compiled with numba (CPU)
``cuda_graph``            the cached step captured as CUDA graphs (CUDA)
========================  ==================================================================

Every sampler draws its codes from the same uniform numbers by the same inverse CDF (of the
softmax, or of a mixture of logistics: :mod:`reference_model.heads`), so the
same seed gives the same codes on every sampler. A sampler module imports ``registry``,
``randomness`` and ``state``, never ``generation``; this package imports every sampler module,
so :data:`REGISTRY` is complete once ``reference_model.sampling`` is imported. A new sampler is
one new module that calls :func:`~reference_model.sampling.registry.register`, and one import
line below.
"""
from reference_model.devices import resolve_device  # re-exported: callers predate devices.py
from reference_model.sampling.generation import (
    Generation,
    check_sampler_device,
    fastest_sampler,
    generate,
)
from reference_model.sampling.randomness import (
    check_temperature,
    draw_next,
    draw_uniforms,
    sample_next,
)
from reference_model.sampling.registry import REGISTRY, SamplerSpec, register
from reference_model.sampling.state import Inputs, prepare_inputs

# The samplers register themselves on import, in this order: the order of SAMPLERS.
# isort: off
from reference_model.sampling import naive  # noqa: F401
from reference_model.sampling import cached  # noqa: F401
from reference_model.sampling import fused  # noqa: F401
from reference_model.sampling import cuda_graph  # noqa: F401
# isort: on

#: The samplers' names, as ``--sampler`` takes them.
SAMPLERS = tuple(REGISTRY)

__all__ = ["REGISTRY", "SAMPLERS", "Generation", "Inputs", "SamplerSpec", "check_sampler_device",
           "check_temperature", "draw_next", "draw_uniforms", "fastest_sampler", "generate",
           "prepare_inputs", "register", "resolve_device", "sample_next"]
