"""Mu-law companding (ITU-T G.711 style, continuous form) between float audio and integer codes."""
import numpy as np


def _is_tensor(x) -> bool:
    # checked by module name so that numpy-only callers (scoring workers) never import torch
    return type(x).__module__.split(".")[0] == "torch"


def mu_law_encode(audio, classes: int = 256):
    """Quantize float audio in [-1, 1] to integer codes in ``[0, classes)``.

    y = sign(x) ln(1 + mu |x|) / ln(1 + mu) with mu = classes - 1, then code = round((y + 1) / 2 mu).
    Works on numpy arrays (returns int64) and torch tensors (returns long). Values outside
    [-1, 1] are clipped first.

    Examples
    --------
    >>> mu_law_encode(np.array([-1.0, 0.0, 1.0]))
    array([  0, 128, 255])
    """
    mu = classes - 1
    if _is_tensor(audio):
        import torch
        x = audio.clamp(-1.0, 1.0)
        y = torch.sign(x) * torch.log1p(mu * x.abs()) / np.log1p(mu)
        return torch.round((y + 1) / 2 * mu).long()
    x = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return np.round((y + 1) / 2 * mu).astype(np.int64)


def mu_law_decode(codes, classes: int = 256):
    """Inverse of :func:`mu_law_encode`: integer codes to float audio in [-1, 1].

    x = sign(y) ((1 + mu)^|y| - 1) / mu with y = 2 code / mu - 1. Returns float32 for numpy
    input and a float tensor for torch input.
    """
    mu = classes - 1
    if _is_tensor(codes):
        import torch
        y = 2 * codes.double() / mu - 1
        return (torch.sign(y) * torch.expm1(y.abs() * np.log1p(mu)) / mu).float()
    y = 2 * np.asarray(codes, dtype=np.float64) / mu - 1
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu).astype(np.float32)
