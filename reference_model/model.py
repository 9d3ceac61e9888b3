"""The reference WaveNet: dilated causal convolutions, gated residual blocks, skip connections."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reference_model.codes import linear_values
from reference_model.config import ModelConfig, upsample_factors
from wavebench_base.errors import InputError

# Log-mel frames (natural log, floor ln 1e-5 = -11.5) are brought near zero mean and unit
# scale before the network sees them: raw values of about -5 +- 3 summed by each 1x1
# projection would saturate the gates at initialization.
MEL_SHIFT, MEL_SCALE = 4.0, 4.0


class ResidualLayer(nn.Module):
    """One gated residual layer: z = tanh(W_f * x + V_f c) . sigmoid(W_g * x + V_g c).

    ``conv`` holds the filter and gate convolutions stacked along the output channels (filter
    first), so one matrix product computes both.
    """

    def __init__(self, config: ModelConfig, dilation: int):
        super().__init__()
        self.dilation = dilation
        self.residual_scale = config.residual_scale
        self.padding = (config.kernel_size - 1) * dilation
        d = config.dilation_channels
        self.conv = nn.Conv1d(config.residual_channels, 2 * d, config.kernel_size, dilation=dilation)
        self.cond_proj = nn.Conv1d(config.n_mels, 2 * d, 1) if config.uses_mel else None
        self.speaker_proj = nn.Linear(config.speaker_dim, 2 * d) if config.uses_speaker else None
        self.res = nn.Conv1d(d, config.residual_channels, 1)
        self.skip = nn.Conv1d(d, config.skip_channels, 1)

    def forward(self, x, cond=None, speaker=None, hop: int = 1, last: int | None = None):
        """``cond`` holds one vector per sample, or with ``hop`` > 1 one per ``hop`` samples,
        projected before it is repeated: the same sum, since a 1x1 convolution commutes with
        repetition, for 1/hop of the work. ``last`` keeps the skip output of the last steps."""
        h = self.conv(F.pad(x, (self.padding, 0)))
        if self.cond_proj is not None:
            projected = self.cond_proj(cond)
            h = h + (projected if hop == 1 else projected.repeat_interleave(hop, dim=-1))
        if self.speaker_proj is not None:
            h = h + self.speaker_proj(speaker).unsqueeze(-1)
        filt, gate = h.chunk(2, dim=1)
        z = torch.tanh(filt) * torch.sigmoid(gate)
        x = x + self.res(z)
        skip = self.skip(z if last is None else z[..., -last:])
        return (x if self.residual_scale == 1 else x * self.residual_scale), skip


class VocoderUpsampler(nn.Module):
    """wavenet_vocoder's ConvInUpsampleNetwork (its default, with no activation).

    ``conv_in`` sees ``2 cin_pad + 1`` frames and consumes ``cin_pad`` frames of context at each
    end; each factor ``s`` then repeats every column ``s`` times and filters along time with
    ``2 s + 1`` taps shared by all mel bands. Neither has a bias.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.conv_in = nn.Conv1d(config.n_mels, config.n_mels, 2 * config.cin_pad + 1, bias=False)
        self.stages = nn.ModuleList(nn.Conv2d(1, 1, (1, 2 * s + 1), padding=(0, s), bias=False)
                                    for s in config.upsample_scales)
        self.scales = config.upsample_scales

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Frames with context [B, n_mels, F + 2 cin_pad] -> [B, n_mels, F * hop]."""
        x = self.conv_in(mel).unsqueeze(1)
        for scale, stage in zip(self.scales, self.stages):
            x = stage(x.repeat_interleave(scale, dim=-1))
        return x.squeeze(1)


class WaveNet(nn.Module):
    """WaveNet over mu-law codes with optional mel (local) and speaker (global) conditioning.

    ``forward(codes)`` returns teacher-forced logits aligned with ``codes``: ``logits[..., t]`` is
    the distribution of ``codes[..., t]`` given ``codes[..., :t]`` (the input is shifted right by
    one step internally, with the mu-law zero code first) and the conditioning of sample ``t``.
    The model holds no sampling loop; see ``reference_model.sampling``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.start = nn.Conv1d(c.in_channels, c.residual_channels, 1)  # one-hot or scalar input
        self.layers = nn.ModuleList(ResidualLayer(c, d) for d in c.dilations)
        self.end1 = nn.Conv1d(c.skip_channels, c.end_channels, 1)
        self.end2 = nn.Conv1d(c.end_channels, c.out_channels, 1)
        self.upsample = None
        if c.uses_mel and c.upsample == "transposed":
            self.upsample = nn.ModuleList(
                nn.ConvTranspose1d(c.n_mels, c.n_mels, f, stride=f)
                for f in upsample_factors(c.hop_length))
        elif c.uses_mel and c.upsample == "vocoder":
            self.upsample = VocoderUpsampler(c)
        self.speaker_embedding = (nn.Embedding(c.n_speakers, c.speaker_dim)
                                  if c.uses_speaker else None)

    @property
    def start_code(self) -> int:
        """The code fed as the input before the first sample: mu-law zero."""
        return self.config.classes // 2

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """The start convolution on the input: [B, T] -> [B, R, T].

        One-hot input is a lookup of the codes. Scalar input takes sample values: a float
        tensor as it is, or codes mapped by :func:`~reference_model.codes.linear_values`.
        """
        if self.config.input == "scalar":
            values = codes if codes.is_floating_point() else linear_values(codes, self.config.classes)
            return self.start(values.to(self.start.weight.dtype).unsqueeze(1))
        weight = self.start.weight[:, :, 0].t()  # [classes, R]
        return (F.embedding(codes, weight) + self.start.bias).transpose(1, 2)

    def normalize_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel frames as the network sees them (see ``MEL_SHIFT``)."""
        return (mel + MEL_SHIFT) / MEL_SCALE if self.config.mel_norm == "wavebench" else mel

    def upsample_cond(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel frames [B, n_mels, F] to per-sample features [B, n_mels, F * hop_length].

        The ``vocoder`` upsampler gets ``cin_pad`` edge copies of the first and last frames as
        its context, and its output moves one sample later: wavenet_vocoder conditions the
        prediction of sample ``t + 1`` on the features of sample ``t``, where this model's
        ``t``-th output sees the features of sample ``t`` (see :meth:`forward`).
        """
        mel = self.normalize_mel(mel)
        if isinstance(self.upsample, VocoderUpsampler):
            pad = self.config.cin_pad
            padded = F.pad(mel, (pad, pad), mode="replicate") if pad else mel
            return vocoder_alignment(self.upsample(padded))
        if self.upsample is None:
            return mel.repeat_interleave(self.config.hop_length, dim=-1)
        for i, stage in enumerate(self.upsample):
            mel = stage(mel)
            if i < len(self.upsample) - 1:
                mel = F.leaky_relu(mel, 0.4)
        return mel

    def output(self, skip_sum: torch.Tensor) -> torch.Tensor:
        """skip sum (times ``skip_scale``) -> ReLU -> 1x1 -> ReLU -> 1x1 -> logits."""
        if self.config.skip_scale != 1:
            skip_sum = skip_sum * self.config.skip_scale
        return self.end2(F.relu(self.end1(F.relu(skip_sum))))

    def check_inputs(self, codes, cond, speaker):
        c = self.config
        if codes.dim() != 2:
            raise InputError(f"codes must be [batch, time], got shape {tuple(codes.shape)}")
        if codes.is_floating_point() and c.input != "scalar":
            raise InputError("float input needs a scalar-input model; this one takes codes")
        if c.uses_mel:
            if cond is None:
                raise InputError("this model is mel-conditioned: pass mel frames as cond")
            if cond.shape[-1] * c.hop_length != codes.shape[-1] or cond.shape[1] != c.n_mels:
                raise InputError(f"cond has shape {tuple(cond.shape)}; expected "
                                 f"[batch, {c.n_mels}, {codes.shape[-1] / c.hop_length:g}] "
                                 f"for {codes.shape[-1]} samples at hop {c.hop_length}")
        if c.uses_speaker and speaker is None:
            raise InputError("this model is speaker-conditioned: pass speaker ids")

    def forward(self, codes: torch.Tensor, cond: torch.Tensor | None = None,
                speaker: torch.Tensor | None = None, *, last: int | None = None) -> torch.Tensor:
        """Teacher-forced logits.

        Parameters
        ----------
        codes : LongTensor [batch, time]
            Codes in ``[0, classes)``: mu-law, or for scalar input a linear grid (see
            :func:`~reference_model.codes.linear_values`), which also takes float sample values in [-1, 1].
        cond : Tensor [batch, n_mels, time / hop_length], optional
            Log-mel frames, required for mel-conditioned models.
        speaker : LongTensor [batch], optional
            Speaker ids, required for speaker-conditioned models.
        last : int, optional
            Return only the last ``last`` time steps (training's loss crop): the skip
            connections and the output layers then run on those steps alone.

        Returns
        -------
        Tensor [batch, out_channels, time or last]
            Unnormalized log-probabilities of each code given the codes before it, or for a
            mixture head its parameters (``reference_model.heads``).
        """
        self.check_inputs(codes, cond, speaker)
        if last is not None and not 1 <= last <= codes.shape[-1]:
            raise InputError(f"last must be in 1..{codes.shape[-1]} (the time steps given), "
                             f"got {last}")
        if self.config.uses_mel and self.upsample is None:  # "repeat": the layers repeat frames
            return self.forward_upsampled(codes, self.normalize_mel(cond), speaker, last=last,
                                          hop=self.config.hop_length)
        cond_up = self.upsample_cond(cond) if self.config.uses_mel else None
        return self.forward_upsampled(codes, cond_up, speaker, last=last)

    def forward_upsampled(self, codes, cond_up=None, speaker=None, *, last: int | None = None,
                          hop: int = 1) -> torch.Tensor:
        """As :meth:`forward`, with conditioning already upsampled to one vector per sample
        (or, with ``hop`` > 1, normalized frames that each layer repeats after projecting)."""
        if cond_up is not None and cond_up.shape[-1] * hop != codes.shape[-1]:
            raise InputError(f"conditioning covers {cond_up.shape[-1] * hop} samples, "
                             f"the codes {codes.shape[-1]}")
        first = 0.0 if codes.is_floating_point() else self.start_code
        shifted = F.pad(codes[:, :-1], (1, 0), value=first)
        x = self.embed_codes(shifted)
        g = self.speaker_embedding(speaker) if self.speaker_embedding is not None else None
        skip_sum = 0
        for layer in self.layers:
            x, skip = layer(x, cond_up, g, hop, last)
            skip_sum = skip_sum + skip
        return self.output(skip_sum)


def vocoder_alignment(cond_up: torch.Tensor) -> torch.Tensor:
    """wavenet_vocoder's per-sample features moved one sample later (the first repeated)."""
    return torch.cat([cond_up[..., :1], cond_up[..., :-1]], dim=-1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def state_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in ``WaveNet(config).state_dict()``, without allocating any.

    The model is built on PyTorch's ``meta`` device, where tensors have shapes but no storage,
    so a checkpoint's weights can be compared with its config before the real model exists.
    """
    with torch.device("meta"):
        model = WaveNet(config)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}
