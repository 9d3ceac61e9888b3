"""Checkpoints of wavenet_vocoder (github.com/r9y9/wavenet_vocoder, version 0.2) as wavebench models.

``train.py`` saves ``{"state_dict": ..., "optimizer": ..., "global_step": ...}``, which loads
with ``weights_only=True``; the architecture lives in the hparams (``hparams.values()`` as
JSON, the ``--preset`` file), which are therefore required and checked against the weights.
Every convolution but the upsampler's first is weight-normalized (``weight_g``, ``weight_v``);
the weights are folded, or taken as they are after ``make_generation_fast_()``.

Supported: one-hot mu-law input with a softmax head (``input_type="mulaw-quantize"``), raw
scalar input with a mixture of logistics (``input_type="raw"``,
``output_distribution="Logistic"``), mel conditioning through ConvInUpsampleNetwork without
an activation, and speaker ids through ``embed_speakers``.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from reference_model.config import ModelConfig, shown
from reference_model.convert.common import (
    Converted,
    Weights,
    check_file,
    contradiction,
    int_param,
    layer_count,
    load_weights_only,
    looks_like,
    make_config,
    not_this_source,
    number_param,
    read_hparams,
    tensor_dict,
)
from wavebench_base.errors import InputError

SOURCE = "wavenet_vocoder"
REQUIRED = ("input_type", "quantize_channels", "out_channels", "layers", "stacks",
            "residual_channels", "gate_channels", "skip_out_channels", "kernel_size",
            "cin_channels", "gin_channels", "sample_rate", "output_distribution")
EXPECTED = "train.py's checkpoint dict (state_dict, optimizer, global_step) or its state_dict"
UPSAMPLER = "ConvInUpsampleNetwork"


class VocoderWeights(Weights):
    """The source's tensors, with weight normalization folded where the checkpoint has it."""

    def __init__(self, state: dict, path: Path):
        super().__init__(state, path)
        self.folded: list[str] = []
        self.plain: list[str] = []

    def shape(self, prefix: str) -> tuple | None:
        """The shape of the weight at ``prefix`` (plain or ``weight_v``), or None if absent."""
        for key in (f"{prefix}.weight", f"{prefix}.weight_v"):
            if key in self.state:
                return tuple(self.state[key].shape)
        return None

    def size(self, prefix: str, axis: int) -> int | None:
        """The size of one axis of the weight at ``prefix``, or None if it has no such axis."""
        shape = self.shape(prefix)
        return shape[axis] if shape is not None and -len(shape) <= axis < len(shape) else None

    def conv(self, prefix: str, shape: tuple) -> torch.Tensor:
        """The effective weight of the convolution at ``prefix``: ``g v / ||v||`` per output
        channel (norm over all other axes, in float64), or the plain ``weight``."""
        if f"{prefix}.weight" in self.state:
            self.plain.append(prefix)
            return self.expect(f"{prefix}.weight", shape)
        if f"{prefix}.weight_v" not in self.state:
            raise InputError(f"tensor {prefix}.weight (or its weight_g and weight_v) is missing",
                             self.path)
        v = self.expect(f"{prefix}.weight_v", shape).double()
        g = self.expect(f"{prefix}.weight_g", (shape[0],) + (1,) * (len(shape) - 1)).double()
        norm = v.flatten(1).norm(dim=1).view(g.shape)
        if not (norm > 0).all():
            raise InputError(f"tensor {prefix}.weight_v has an all-zero output channel, whose "
                             f"weight normalization is undefined", self.path)
        self.folded.append(prefix)
        return (g * v / norm).float()


def load_state(path: Path) -> dict:
    """The state_dict of a train.py checkpoint (or a bare one); InputError if it is another's."""
    obj = load_weights_only(path, SOURCE)
    inner = obj.get("state_dict") if isinstance(obj, dict) else None
    state = tensor_dict(inner if inner is not None else obj)
    if state is None or looks_like(state) != SOURCE:
        raise not_this_source(obj, SOURCE, path, EXPECTED)
    return state


def convert(path, hparams=None) -> Converted:
    """Convert a wavenet_vocoder checkpoint.

    Parameters
    ----------
    path : str or Path
        ``checkpoint_step*.pth`` as ``train.py`` writes it (EMA copies too), or its state_dict,
        weight-normalized or after ``make_generation_fast_()``.
    hparams : str or Path
        The hparams as JSON (``hparams.values()``, as ``train.py --preset`` reads them).
        Required: the architecture is not in the checkpoint.

    Returns
    -------
    Converted

    Raises
    ------
    InputError
        One line naming the file: missing hparams, unreadable or foreign checkpoint, hparams
        that the weights contradict, or a variant wavebench does not implement (scalar mu-law
        input, a Normal output, an upsampler other than ConvInUpsampleNetwork without
        activation, global features other than speaker ids).
    """
    path = Path(path)
    check_file(path, "checkpoint")
    state = load_state(path)
    if hparams is None:
        raise InputError("a wavenet_vocoder checkpoint does not record its architecture: pass "
                         "--hparams with its hparams as JSON (train.py's --preset file, or "
                         "hparams.values() dumped to JSON)", path)
    hp_path = Path(hparams)
    hp = read_hparams(hp_path)
    missing = [k for k in REQUIRED if k not in hp]
    if missing:
        raise InputError(f"missing key(s) {', '.join(missing)}; wavenet_vocoder hparams need "
                         f"{', '.join(REQUIRED)}", hp_path)
    return build(VocoderWeights(state, path), hp, hp_path)


def build(w: VocoderWeights, hp: dict, hp_path: Path) -> Converted:
    """Check the hparams against the weights and map the tensors onto wavebench's WaveNet."""
    path = w.path
    notes: list[str] = []
    sizes = {name: int_param(hp, name, hp_path, minimum=1) for name in (
        "quantize_channels", "out_channels", "layers", "stacks", "residual_channels",
        "gate_channels", "skip_out_channels", "kernel_size", "sample_rate")}
    cin = int_param(hp, "cin_channels", hp_path)
    gin = int_param(hp, "gin_channels", hp_path)
    head = head_fields(hp, hp_path, sizes)
    classes = sizes["quantize_channels"]
    in_channels = classes if head["input"] == "onehot" else 1

    found = {"layers": layer_count(w.state, "conv_layers", path),
             "residual_channels": w.size("first_conv", 0),
             "gate_channels": w.size("conv_layers.0.conv", 0),
             "kernel_size": w.size("conv_layers.0.conv", -1),
             "skip_out_channels": w.size("conv_layers.0.conv1x1_skip", 0),
             "out_channels": w.size("last_conv_layers.3", 0)}
    for name, value in found.items():
        if value is not None and hp[name] != value:
            raise contradiction(hp_path, name, hp[name], value)
    for name, declared, proj in (("cin_channels", cin, "conv1x1c"),
                                 ("gin_channels", gin, "conv1x1g")):
        width = w.size(f"conv_layers.0.{proj}", 1)
        if max(declared, 0) != (width or 0):
            raise contradiction(hp_path, name, declared,
                                f"{width} (conv_layers.0.{proj})" if width else
                                f"none (no conv_layers.0.{proj})")
    first_in = w.size("first_conv", 1)
    if first_in is not None and first_in != in_channels:
        raise contradiction(hp_path, "input_type", f"{hp['input_type']} ({in_channels} input "
                            f"channels)", f"{first_in} input channels")
    layers, stacks, gate = sizes["layers"], sizes["stacks"], sizes["gate_channels"]
    if layers % stacks:
        raise InputError(f"layers ({layers}) is not a multiple of stacks ({stacks})", hp_path)
    if gate % 2:
        raise InputError(f"gate_channels ({gate}) is odd; it is split in halves", hp_path)

    mel = cin > 0
    cond_fields = upsampler_fields(w, hp, hp_path, cin) if mel else {}
    speaker_fields = {}
    if gin > 0:
        if "embed_speakers.weight" not in w:
            raise InputError(f"gin_channels is {gin} but the checkpoint has no "
                             f"embed_speakers.weight: it takes global feature vectors rather "
                             f"than speaker ids (train.py builds it without "
                             f"use_speaker_embedding), which wavebench does not support", path)
        n_speakers = w.size("embed_speakers", 0)
        if "n_speakers" in hp and hp["n_speakers"] != n_speakers:
            raise contradiction(hp_path, "n_speakers", hp["n_speakers"], n_speakers)
        speaker_fields = {"n_speakers": n_speakers, "speaker_dim": gin}
    dropout = number_param(hp, "dropout", hp_path) if "dropout" in hp else 0.0
    if dropout > 0:
        notes.append(f"dropout {dropout:g} of the source ignored (it acts in training only)")

    cond = "mel+speaker" if mel and gin > 0 else "mel" if mel else "speaker" if gin > 0 else "none"
    config = make_config(
        path, blocks=stacks, layers=layers // stacks, kernel_size=sizes["kernel_size"],
        residual_channels=sizes["residual_channels"], dilation_channels=gate // 2,
        skip_channels=sizes["skip_out_channels"], end_channels=sizes["skip_out_channels"],
        classes=classes, sample_rate=sizes["sample_rate"], cond=cond,
        residual_scale=math.sqrt(0.5), skip_scale=math.sqrt(1.0 / layers), mel_norm="none",
        **head, **cond_fields, **speaker_fields)
    state = map_state(w, config)
    return Converted(config, state, describe(w, config, hp, notes))


def head_fields(hp: dict, hp_path: Path, sizes: dict) -> dict:
    """The input and output fields of the config, from ``input_type`` and
    ``output_distribution``; unsupported combinations are refused."""
    input_type, dist = hp["input_type"], hp["output_distribution"]
    out, q = sizes["out_channels"], sizes["quantize_channels"]
    if input_type == "mulaw":
        raise InputError("input_type 'mulaw' (scalar mu-law input) is not supported: "
                         "wavebench's scalar input is linear ('raw')", hp_path)
    if input_type == "mulaw-quantize":
        if out != q:
            raise InputError(f"out_channels ({out}) must equal quantize_channels ({q}) for "
                             f"input_type 'mulaw-quantize' (a softmax over the codes)", hp_path)
        return {"input": "onehot", "output": "softmax"}
    if input_type != "raw":
        raise InputError(f"unknown input_type {shown(input_type)}; wavenet_vocoder's are "
                         f"'mulaw-quantize', 'mulaw' and 'raw'", hp_path)
    if dist == "Normal":
        raise InputError("output_distribution 'Normal' is not supported yet; wavebench "
                         "converts 'Logistic' (a mixture of logistics)", hp_path)
    if dist != "Logistic":
        raise InputError(f"unknown output_distribution {shown(dist)}; expected 'Logistic'",
                         hp_path)
    if out % 3:
        raise InputError(f"out_channels ({out}) is not a multiple of 3, as a mixture of "
                         f"logistics needs (logits, means, log-scales)", hp_path)
    return {"input": "scalar", "output": "mol", "mixtures": out // 3,
            "log_scale_min": number_param(hp, "log_scale_min", hp_path)}


def upsampler_fields(w: VocoderWeights, hp: dict, hp_path: Path, cin: int) -> dict:
    """The mel fields of the config, refusing an upsampler wavebench does not implement."""
    if hp.get("upsample_conditional_features") is not True:
        raise InputError(f"upsample_conditional_features is "
                         f"{shown(hp.get('upsample_conditional_features'))} with cin_channels "
                         f"{cin}: features already at the sample rate are not supported", hp_path)
    params = hp.get("upsample_params")
    if not isinstance(params, dict):
        raise InputError(f"upsample_params must be an object, got {shown(params)}", hp_path)
    scales = params.get("upsample_scales")
    if not isinstance(scales, list) or not scales or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in scales):
        raise InputError(f"upsample_params.upsample_scales must be a list of positive "
                         f"integers, got {shown(scales)}", hp_path)
    for name, default, supported in (("upsample_activation", "none", "none"),
                                     ("freq_axis_kernel_size", 1, 1), ("mode", "nearest",
                                                                       "nearest")):
        value = params.get(name, default)
        if value != supported:
            raise InputError(f"upsample_params.{name} {shown(value)} is not supported "
                             f"(only {supported!r})", hp_path)
    net = hp.get("upsample_net", UPSAMPLER)
    if net != UPSAMPLER:
        raise InputError(f"upsample_net {shown(net)} is not supported (only {UPSAMPLER}; "
                         f"train.py of wavenet_vocoder 0.2 builds that whatever upsample_net "
                         f"says, so set it if the checkpoint came from there)", hp_path)
    cin_pad = int_param(hp, "cin_pad", hp_path, minimum=0)
    if "cin_pad" in params and params["cin_pad"] != cin_pad:
        raise InputError(f"upsample_params.cin_pad ({shown(params['cin_pad'])}) differs from "
                         f"cin_pad ({cin_pad})", hp_path)
    hop = math.prod(scales)
    if hp.get("hop_size") is not None and hp["hop_size"] != hop:
        raise InputError(f"hop_size is {shown(hp['hop_size'])} but upsample_scales "
                         f"{scales} multiply to {hop}", hp_path)
    found = w.size("upsample_net.conv_in", 2)
    if found is not None and found != 2 * cin_pad + 1:
        raise contradiction(hp_path, "cin_pad", cin_pad, f"a conv_in of {found} frames, "
                            f"cin_pad {(found - 1) / 2:g}")
    prefix = "upsample_net.upsample.up_layers"
    heads = {k[len(prefix) + 1:].split(".")[0] for k in w.state if k.startswith(prefix + ".")}
    indices = sorted(int(h) for h in heads if h.isdigit())  # others are reported as unknown
    if indices != [2 * j + 1 for j in range(len(scales))]:
        raise InputError(f"the upsampler's weighted layers are up_layers {indices}, not "
                         f"{[2 * j + 1 for j in range(len(scales))]} as {len(scales)} "
                         f"stretch-and-filter stages without activation give", w.path)
    return {"n_mels": cin, "hop_length": hop, "upsample": "vocoder",
            "upsample_scales": tuple(scales), "cin_pad": cin_pad}


def map_state(w: VocoderWeights, c: ModelConfig) -> dict:
    """wavebench's state_dict from the source's tensors (zeros for its absent biases)."""
    R, D, S, K = c.residual_channels, c.dilation_channels, c.skip_channels, c.kernel_size
    G = 2 * D
    state = {"start.weight": w.conv("first_conv", (R, c.in_channels, 1)),
             "start.bias": w.expect("first_conv.bias", (R,))}
    for i in range(c.blocks * c.layers):
        p = f"conv_layers.{i}"
        state[f"layers.{i}.conv.weight"] = w.conv(f"{p}.conv", (G, R, K))
        state[f"layers.{i}.conv.bias"] = w.expect(f"{p}.conv.bias", (G,))
        if c.uses_mel:  # the conditioning projections have no bias in the source
            state[f"layers.{i}.cond_proj.weight"] = w.conv(f"{p}.conv1x1c", (G, c.n_mels, 1))
            state[f"layers.{i}.cond_proj.bias"] = torch.zeros(G)
        if c.uses_speaker:
            state[f"layers.{i}.speaker_proj.weight"] = w.conv(
                f"{p}.conv1x1g", (G, c.speaker_dim, 1))[:, :, 0]
            state[f"layers.{i}.speaker_proj.bias"] = torch.zeros(G)
        state[f"layers.{i}.res.weight"] = w.conv(f"{p}.conv1x1_out", (R, D, 1))
        state[f"layers.{i}.res.bias"] = w.expect(f"{p}.conv1x1_out.bias", (R,))
        state[f"layers.{i}.skip.weight"] = w.conv(f"{p}.conv1x1_skip", (S, D, 1))
        state[f"layers.{i}.skip.bias"] = w.expect(f"{p}.conv1x1_skip.bias", (S,))
    state["end1.weight"] = w.conv("last_conv_layers.1", (c.end_channels, S, 1))
    state["end1.bias"] = w.expect("last_conv_layers.1.bias", (c.end_channels,))
    state["end2.weight"] = w.conv("last_conv_layers.3", (c.out_channels, c.end_channels, 1))
    state["end2.bias"] = w.expect("last_conv_layers.3.bias", (c.out_channels,))
    if c.uses_mel:
        state["upsample.conv_in.weight"] = w.conv(
            "upsample_net.conv_in", (c.n_mels, c.n_mels, 2 * c.cin_pad + 1))
        for j, s in enumerate(c.upsample_scales):
            state[f"upsample.stages.{j}.weight"] = w.conv(
                f"upsample_net.upsample.up_layers.{2 * j + 1}", (1, 1, 1, 2 * s + 1))
    if c.uses_speaker:
        state["speaker_embedding.weight"] = w.expect("embed_speakers.weight",
                                                     (c.n_speakers, c.speaker_dim))
    w.check_all_used("wavenet_vocoder's WaveNet as configured by these hparams")
    return state


def describe(w: VocoderWeights, c: ModelConfig, hp: dict, notes: list[str]) -> list[str]:
    """The transformations done, in plain English."""
    n = c.blocks * c.layers
    out = []
    if w.folded:
        out.append(f"weight normalization folded in {len(w.folded)} convolutions: weight = "
                   f"g * v / ||v|| per output channel (norm over all other axes, in float64)")
    plain = [p for p in w.plain if p != "upsample_net.conv_in"]  # never weight-normed
    if plain and w.folded:
        out.append(f"{len(plain)} convolutions already without weight normalization copied as "
                   f"they are")
    elif plain:
        out.append("weights without weight normalization (make_generation_fast_ applied) "
                   "copied as they are")
    out += [
        f"{hp['layers']} layers in {hp['stacks']} stacks (dilation 2**(i mod {c.layers})) are "
        f"{c.blocks} blocks of {c.layers} layers",
        f"the gated convolution copied as it is: the first half of its {2 * c.dilation_channels} "
        f"output channels (tanh) are this model's filter rows, the second half (sigmoid) the "
        f"gate rows",
        f"the source's scalings kept: residual_scale = sqrt(0.5), skip_scale = sqrt(1/{n})",
        f"output column t of the source (the prediction of sample t + 1) is this model's "
        f"position t + 1 (this model shifts its input by one sample); the source's columns "
        f"t < {c.receptive_field - 1} see its per-layer zero padding and have no exact "
        f"counterpart",
    ]
    if c.uses_mel:
        out += [
            "conv1x1c (mel projection, no bias in the source) given zero biases",
            f"ConvInUpsampleNetwork copied: conv_in over {2 * c.cin_pad + 1} frames, then a "
            f"stretch and a filter per scale {list(c.upsample_scales)}; its output moves one "
            f"sample later in this model, to keep the source's pairing of column t with the "
            f"features of sample t",
            f"mel frames are fed as given (mel_norm = none): compute them as the source's "
            f"preprocessing did; where the source reads {c.cin_pad} context frames beyond each "
            f"end, this model repeats the edge frames",
        ]
    if c.uses_speaker:
        out.append(f"speaker embedding copied ({c.n_speakers} x {c.speaker_dim}); conv1x1g on "
                   f"it becomes a linear layer with zero bias (none in the source)")
    if c.input == "scalar":
        out.append(f"scalar input: sample values in [-1, 1] fed as they are; codes are a linear "
                   f"grid of classes = quantize_channels = {c.classes} levels, so the "
                   f"mixture's bins are 2 / (classes - 1) wide, as in the source's loss")
        out.append(f"mixture of {c.mixtures} logistics, log_scale_min {c.log_scale_min:g} from "
                   f"the hparams")
    else:
        out.append("caveat: wavenet_vocoder's preprocessing quantizes with nnmnkwii's "
                   "mulaw_quantize, which truncates rather than rounds (and, depending on the "
                   "version, with mu = quantize_channels or quantize_channels - 1); wavebench "
                   "uses mu = classes - 1 and rounding, so audio encoded by wavebench can differ "
                   "by one code from what the model was trained on")
    return out + notes + w.dtype_notes()
