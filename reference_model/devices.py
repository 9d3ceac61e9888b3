"""Device names to torch devices.

Kept apart from :mod:`reference_model.sampling` (which compiles its fused sampler with numba on
import) so that the trainer and the commands can pick a device without loading the samplers.
"""
from __future__ import annotations

import torch

from wavebench_base.errors import InputError


def resolve_device(name) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a torch device; InputError if CUDA is absent.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("tpu")
    Traceback (most recent call last):
    ...
    wavebench_base.errors.InputError: unknown device 'tpu'; use cpu or cuda
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {name!r}; use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} asked for, but CUDA is not available on this machine "
                         f"(torch {torch.__version__}); use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"unknown device {name!r}; use cpu or cuda")
    return device
