"""Teacher-forced log-likelihood of a whole recording under a WaveNet, in memory-bounded chunks."""
from __future__ import annotations

import math

import numpy as np
import torch

from reference_model.codes import decode, encode
from reference_model.features import log_mel
from reference_model.heads import log_probs
from reference_model.linear_prediction import coefficients, predictions, sample_log_probs
from reference_model.model import WaveNet


@torch.inference_mode()
def target_log_probs(model: WaveNet, audio: np.ndarray, *, speaker: int | None = None,
                     chunk: int = 16384, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Per-sample log-probabilities (nats) that the model gives the recording's own codes.

    A mixture head (``output = "mol"``) scores the samples' own values, fed as they are
    (scalar input), each by the mass of its bin of width ``2 / (classes - 1)``, as
    wavenet_vocoder's loss does (:func:`reference_model.heads.log_probs`). A linear-prediction
    model (``lpc_order`` > 0) scores each sample's code by the mass its excitation distribution,
    shifted by the prediction, puts in that code's bin
    (:func:`reference_model.linear_prediction.sample_log_probs`).

    Each chunk is computed with one receptive field of real history before it, so the result
    equals one forward pass over the whole recording (at a fraction of the memory).

    Parameters
    ----------
    model : WaveNet
    audio : np.ndarray [shape=(n,)]
        Mono float audio at the model's rate; mel-conditioned models use the first
        ``n // hop_length * hop_length`` samples.
    speaker : int, optional
        Speaker id for speaker-conditioned models.

    Returns
    -------
    (log_probs, codes) : np.ndarray [shape=(m,)] float64, np.ndarray [shape=(m,)] int64
        ln p(code_t | code_<t) and the codes (:func:`reference_model.codes.encode`).
    """
    config = model.config
    hop = config.hop_length if config.uses_mel else 1
    n = len(audio) // hop * hop
    codes = torch.from_numpy(encode(np.asarray(audio[:n]), config)).to(device)
    dtype = next(model.parameters()).dtype
    # what the network reads and what it is scored on: codes, or a mixture's sample values
    inputs = codes if config.output == "softmax" else torch.from_numpy(
        np.clip(np.asarray(audio[:n], dtype=np.float64), -1.0, 1.0)).to(device, dtype)
    targets = codes if config.output == "softmax" else inputs.double()
    mel = (torch.from_numpy(log_mel(np.asarray(audio[:n]), config)).to(device, dtype)
           if config.uses_mel else None)
    spk = torch.tensor([speaker or 0], device=device) if config.uses_speaker else None
    if config.lpc_order:  # the predictions read the quantized samples, as sampling does
        values = decode(codes.cpu().numpy(), config).astype(np.float64)
        predicted = predictions(values, coefficients(mel.double().cpu().numpy(), config),
                                config.hop_length)
    context = math.ceil(config.receptive_field / hop) * hop
    chunk = max(math.ceil(chunk / hop) * hop, hop)
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        first = max(start - context, 0)
        window = inputs[first:stop][None]
        frames = mel[:, first // hop: stop // hop][None] if mel is not None else None
        output = model(window, frames, spk)[:, :, start - first:]
        if config.lpc_order:
            excitation = torch.log_softmax(output[0].double(), dim=0).T.cpu().numpy()
            out[start:stop] = sample_log_probs(excitation, predicted[start:stop],
                                               codes[start:stop].cpu().numpy(), config.classes)
        else:
            out[start:stop] = log_probs(output, targets[None, start:stop], config)[0].cpu().numpy()
    return out, codes.cpu().numpy()


def bits_per_sample(log_probs: np.ndarray) -> float:
    """Mean negative log-likelihood in bits per sample (lower is better; 8 = uniform over 256
    mu-law codes, 16 = uniform over a mixture head's 65536 bins)."""
    return float(-np.mean(log_probs) / math.log(2))
