"""Training examples: random crops of receptive field + output length, with their conditioning."""
from __future__ import annotations

import math

import numpy as np
import torch

from reference_model.config import ModelConfig
from reference_model.features import log_mel
from reference_model.linear_prediction import excitation_codes
from reference_model.mulaw import mu_law_encode


def example_length(config: ModelConfig, crop: int) -> int:
    """Samples per example: the receptive field plus ``crop``, rounded up to whole mel hops."""
    length = config.receptive_field + crop
    if config.uses_mel:
        length = math.ceil(length / config.hop_length) * config.hop_length
    return length


class Cropper:
    """Draws batches of crops from a list of utterances, deterministically for a given rng.

    Utterances shorter than one example are padded with silence on the left. Mel frames are
    computed once per utterance; crops start on a hop boundary so frames line up with samples.
    The targets are the codes themselves, or for a linear-prediction model (``lpc_order`` > 0)
    the codes of the excitation (:func:`~reference_model.linear_prediction.excitation_codes`),
    also computed once per utterance.
    """

    def __init__(self, utterances, config: ModelConfig, length: int, augment: bool = False):
        if not utterances:
            raise ValueError("no utterances to draw examples from")
        self.config, self.length, self.augment = config, length, augment
        self.audio, self.codes, self.mels, self.speakers, self.targets = [], [], [], [], []
        for utt in utterances:
            audio = np.asarray(utt.audio, dtype=np.float32)
            if len(audio) < length:
                audio = np.concatenate([np.zeros(length - len(audio), np.float32), audio])
            self.audio.append(audio)
            self.codes.append(mu_law_encode(audio, config.classes).astype(np.int64))
            self.mels.append(log_mel(audio, config) if config.uses_mel else None)
            self.targets.append(excitation_codes(self.codes[-1], self.mels[-1], config)
                                if config.lpc_order else self.codes[-1])
            self.speakers.append(int(getattr(utt, "speaker", 0)))
        sizes = np.array([len(a) - length + 1 for a in self.audio], dtype=np.float64)
        self.weights = sizes / sizes.sum()  # every valid crop start equally likely

    def batch(self, rng: np.random.Generator, size: int, rows: range | None = None):
        """Return ``(codes [B, L] long, mel [B, n_mels, L / hop] or None, speaker [B] long,
        targets [B, L] long)``.

        ``rows`` keeps only those examples of the batch of ``size`` (one process's part of a
        distributed batch); the random draws are the same whichever rows are kept.
        """
        hop = self.config.hop_length if self.config.uses_mel else 1
        rows = range(size) if rows is None else rows
        codes, mels, speakers, targets = [], [], [], []
        for row, index in enumerate(rng.choice(len(self.audio), size=size, p=self.weights)):
            n_starts = (len(self.audio[index]) - self.length) // hop + 1
            start = int(rng.integers(n_starts)) * hop
            gain = 10 ** (rng.uniform(-6, 0) / 20) if self.augment else 1.0
            if row not in rows:
                continue
            stop = start + self.length
            if gain != 1.0:
                codes.append(mu_law_encode(self.audio[index][start:stop] * gain, self.config.classes))
            else:
                codes.append(self.codes[index][start:stop])
            if self.config.uses_mel:
                frames = self.mels[index][:, start // hop: stop // hop]
                mels.append(frames + np.float32(np.log(gain)))
            speakers.append(self.speakers[index])
            targets.append(self.targets[index][start:stop] if gain == 1.0 or
                           not self.config.lpc_order else self._gained_targets(index, start, gain))
        mel = torch.from_numpy(np.stack(mels)) if mels else None
        return (torch.from_numpy(np.stack(codes)).long(), mel, torch.tensor(speakers).long(),
                torch.from_numpy(np.stack(targets)).long())

    def _gained_targets(self, index: int, start: int, gain: float) -> np.ndarray:
        """Excitation codes of a crop whose level was changed, computed over the crop and the
        whole frames before it that the predictor reads."""
        hop, stop = self.config.hop_length, start + self.length
        first = max(0, start - math.ceil(self.config.lpc_order / hop) * hop)
        audio = self.audio[index][first:stop] * gain
        mel = self.mels[index][:, first // hop: stop // hop] + np.float32(np.log(gain))
        codes = mu_law_encode(audio, self.config.classes)
        return excitation_codes(codes, mel, self.config)[start - first:]
