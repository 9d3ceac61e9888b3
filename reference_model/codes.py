"""Codes, the integers every sampler draws, and the sample values they stand for.

A one-hot softmax model's codes are mu-law (:mod:`reference_model.mulaw`, or pytorch-wavenet's
variant for a model converted from it: :func:`pytorch_wavenet_encode`). A scalar-input
mixture model's codes are a linear grid: code ``c`` of ``classes`` is ``2 c / (classes - 1) - 1``,
the bin centres of wavenet_vocoder's discretized mixture of logistics (65536 classes: 16 bits).
Works on numpy arrays and torch tensors alike.
"""
from __future__ import annotations

import numpy as np

from reference_model.mulaw import _is_tensor, mu_law_decode, mu_law_encode


def linear_values(codes, classes: int):
    """Sample values of linear codes, in float64: ``2 c / (classes - 1) - 1``."""
    if _is_tensor(codes):
        return codes.double() * (2.0 / (classes - 1)) - 1.0
    return np.asarray(codes, dtype=np.float64) * (2.0 / (classes - 1)) - 1.0


def linear_codes(values, classes: int):
    """The nearest linear code of sample values (clipped to [-1, 1]; halves round up)."""
    if _is_tensor(values):
        scaled = (values.double().clamp(-1.0, 1.0) + 1.0) * ((classes - 1) / 2.0)
        return (scaled + 0.5).floor().long().clamp_(0, classes - 1)
    scaled = (np.clip(np.asarray(values, dtype=np.float64), -1.0, 1.0) + 1.0) * ((classes - 1) / 2.0)
    return np.clip(np.floor(scaled + 0.5), 0, classes - 1).astype(np.int64)


def pytorch_wavenet_encode(audio, classes: int) -> np.ndarray:
    """pytorch-wavenet's quantization: mu-law with mu = ``classes``, then ``np.digitize`` on
    ``classes`` evenly spaced edges from -1 to 1, minus one (so codes are floors, not rounds)."""
    x = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log(1 + classes * np.abs(x)) / np.log(classes + 1)
    codes = np.digitize(y, np.linspace(-1, 1, classes)) - 1
    return np.clip(codes, 0, classes - 1).astype(np.int64)


def pytorch_wavenet_decode(codes, classes: int) -> np.ndarray:
    """pytorch-wavenet's inverse, as its ``generate`` decodes: ``y = 2 code / classes - 1``,
    then mu-law expansion with mu = ``classes``."""
    y = np.asarray(codes, dtype=np.float64) / classes * 2.0 - 1.0
    return (np.sign(y) * (np.exp(np.abs(y) * np.log(classes + 1)) - 1) / classes).astype(np.float32)


def encode(audio, config):
    """Float audio in [-1, 1] to the model's codes (mu-law, or linear for a mixture head)."""
    if config.output == "mol":
        return linear_codes(audio, config.classes)
    if config.mu_law == "pytorch-wavenet":
        if _is_tensor(audio):
            import torch
            return torch.from_numpy(pytorch_wavenet_encode(audio.cpu().numpy(), config.classes))
        return pytorch_wavenet_encode(audio, config.classes)
    return mu_law_encode(audio, config.classes)


def decode(codes, config):
    """The model's codes to float32 audio in [-1, 1]."""
    if config.output == "mol":
        values = linear_values(codes, config.classes)
        return values.float() if _is_tensor(values) else values.astype(np.float32)
    if config.mu_law == "pytorch-wavenet":
        if _is_tensor(codes):
            import torch
            return torch.from_numpy(pytorch_wavenet_decode(codes.cpu().numpy(), config.classes))
        return pytorch_wavenet_decode(codes, config.classes)
    return mu_law_decode(codes, config.classes)
