"""Checkpoints of pytorch-wavenet (github.com/vincentherrmann/pytorch-wavenet) as wavebench models.

pytorch-wavenet saves either a bare ``state_dict`` or, in its trainer's snapshots, the whole
pickled ``WaveNetModel``. The state_dict has no record of how its layers form blocks (the
dilations), so it needs the constructor arguments (``--hparams``, a JSON object such as
``{"layers": 10, "blocks": 4}``); the pickle has them as attributes, and is read with
:mod:`reference_model.convert.safe_pickle`, which runs none of its code.

The network maps onto wavebench's WaveNet without change of function: separate filter and gate
convolutions are stacked into one, absent biases (``bias=False``, the default) become zeros,
and the residual and skip paths are unscaled in both.
"""
from __future__ import annotations

from pathlib import Path

import torch

from reference_model.checkpoint import unreadable_reason
from reference_model.config import ModelConfig, shown
from reference_model.convert import safe_pickle
from reference_model.convert.common import (
    Converted,
    Weights,
    check_file,
    contradiction,
    int_param,
    is_weights_only_refusal,
    layer_count,
    make_config,
    not_this_source,
    read_hparams,
    tensor_dict,
)
from wavebench_base.errors import InputError

SOURCE = "pytorch-wavenet"
#: ``WaveNetModel.__init__``'s arguments, and ``sample_rate``, which the model does not record.
HPARAMS = ("layers", "blocks", "dilation_channels", "residual_channels", "skip_channels",
           "end_channels", "classes", "output_length", "kernel_size", "bias", "dtype",
           "sample_rate")
#: Attributes of a pickled ``WaveNetModel`` that the weights can contradict.
ATTRIBUTES = ("layers", "blocks", "dilation_channels", "residual_channels", "skip_channels",
              "classes", "kernel_size")
DEFAULT_SAMPLE_RATE = 16000  # WavenetDataset's default sampling_rate
EXPECTED = "a WaveNetModel state_dict (start_conv.weight, filter_convs.0.weight, ...) or pickle"


def load(path: Path):
    """The file's object and whether it is a whole pickled model.

    A state_dict loads with ``weights_only=True``. A file that this refuses for the names its
    pickle references (a pickled model) is read again by the restricted unpickler, which
    allows only the classes of a pytorch-wavenet model.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True), False
    except Exception as exc:  # torch raises many types for truncated or foreign files
        if not is_weights_only_refusal(exc):
            raise InputError(f"not a readable {SOURCE} checkpoint "
                             f"({unreadable_reason(exc, path)})", path) from None
    try:
        return safe_pickle.load_restricted(path), True
    except safe_pickle.RefusedGlobal as exc:
        raise InputError(f"refused: the pickle references {exc.qualname}, which is not part of "
                         f"a {SOURCE} model (nothing in the file was run)", path) from None
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"not a readable {SOURCE} checkpoint "
                         f"({unreadable_reason(exc, path)})", path) from None


def convert(path, hparams=None) -> Converted:
    """Convert a pytorch-wavenet checkpoint.

    Parameters
    ----------
    path : str or Path
        ``torch.save(model.state_dict())`` or ``torch.save(model)`` of a ``WaveNetModel``.
    hparams : str or Path, optional
        JSON object of ``WaveNetModel`` arguments (``layers`` and ``blocks`` at least, for a
        bare state_dict of more than one layer), and optionally ``sample_rate``. Every value
        is checked against the weights.

    Returns
    -------
    Converted

    Raises
    ------
    InputError
        One line naming the file: unreadable, not pytorch-wavenet's, a pickle that references
        anything but a pytorch-wavenet model's classes, hparams that the weights contradict,
        or a bare state_dict without ``layers`` and ``blocks``.
    """
    path = Path(path)
    check_file(path, "checkpoint")
    obj, pickled = load(path)
    if pickled:
        if not isinstance(obj, safe_pickle.Record) or obj.qualname != "wavenet_model.WaveNetModel":
            raise not_this_source(obj, SOURCE, path, EXPECTED)
        attributes = obj.state if isinstance(obj.state, dict) else {}
        state = safe_pickle.module_state_dict(obj, path)
    else:
        attributes = {}
        state = tensor_dict(obj)
        if state is None or "start_conv.weight" not in state:
            raise not_this_source(obj, SOURCE, path, EXPECTED)
    hparams_path = Path(hparams) if hparams is not None else None
    declared = read_declared(hparams_path) if hparams_path else {}
    return build(Weights(state, path), attributes, declared, hparams_path)


def read_declared(path: Path) -> dict:
    """The ``--hparams`` JSON, refusing keys that are not WaveNetModel arguments."""
    data = read_hparams(path)
    unknown = sorted(set(data) - set(HPARAMS))
    if unknown:
        listed = ", ".join(map(shown, unknown[:5])) + (f" ... ({len(unknown)} in all)"
                                                       if len(unknown) > 5 else "")
        hint = ("; these look like wavenet_vocoder's hparams" if "gate_channels" in data
                else "")
        raise InputError(f"unknown key(s) {listed}{hint}; pytorch-wavenet hparams are "
                         f"WaveNetModel's arguments: {', '.join(HPARAMS)}", path)
    return data


def build(w: Weights, attributes: dict, declared: dict, hparams_path: Path | None) -> Converted:
    """Map the source's tensors onto wavebench's WaveNet, checking every shape."""
    path = w.path
    n = layer_count(w.state, "filter_convs", path)
    if n == 0:
        raise InputError("tensor filter_convs.0.weight is missing", path)
    for prefix in ("gate_convs", "residual_convs", "skip_convs"):
        if layer_count(w.state, prefix, path) != n:
            raise InputError(f"{n} filter_convs but {layer_count(w.state, prefix, path)} "
                             f"{prefix}", path)
    start = w.get("start_conv.weight", 3)
    R, classes, _ = start.shape
    D, _, K = w.get("filter_convs.0.weight", 3).shape
    S = w.get("skip_convs.0.weight", 3).shape[0]
    E = w.get("end_conv_1.weight", 3).shape[0]
    bias = "start_conv.bias" in w
    found = {"residual_channels": R, "dilation_channels": D, "skip_channels": S,
             "end_channels": E, "classes": classes, "kernel_size": K, "bias": bias}
    for name in ATTRIBUTES:
        if name in attributes and name in found and attributes[name] != found[name]:
            raise contradiction(path, f"the pickled model's attribute {name}", attributes[name],
                                found[name], "the file contradicts itself")
    for name, value in declared.items():
        if name in found and value != found[name]:
            raise contradiction(hparams_path, name, value, found[name])
    layers, blocks = layers_and_blocks(n, attributes, declared, found, path, hparams_path)
    notes = []
    sample_rate = declared.get("sample_rate")
    if sample_rate is None:
        sample_rate = DEFAULT_SAMPLE_RATE
        notes.append(f"sample rate not recorded by pytorch-wavenet: {sample_rate} Hz assumed "
                     f"(WavenetDataset's default); set sample_rate in --hparams if it differs")
    else:
        int_param(declared, "sample_rate", hparams_path, minimum=1)
    config = make_config(path, blocks=blocks, layers=layers, kernel_size=K, residual_channels=R,
                         dilation_channels=D, skip_channels=S, end_channels=E, classes=classes,
                         sample_rate=sample_rate, cond="none", input="onehot", output="softmax",
                         mu_law="pytorch-wavenet")
    check_dilations(attributes, config, path)
    state = map_state(w, config, bias)
    rf = config.receptive_field
    if attributes:
        how = ("read from the whole pickled WaveNetModel without running its code: layers, "
               "blocks and dilations from its attributes")
    elif "layers" in declared or "blocks" in declared:
        how = f"read from a bare state_dict: layers and blocks from {hparams_path.name}"
    else:
        how = "read from a bare state_dict of one layer"
    transformations = [
        how,
        "filter and gate convolutions stacked into one (filter first): layers.N.conv = "
        "[filter_convs.N; gate_convs.N]",
        *(["biases absent in the source (bias=False: start, filter, gate, residual and skip "
           "convolutions) set to zero"] if not bias else []),
        f"output column t of the source (the prediction of sample t + 1) is this model's "
        f"position t + 1 (this model shifts its input by one sample); the source emits only "
        f"positions with a full receptive field of {rf}, so its row j is this model's position "
        f"j + {rf}",
        "no residual or skip scaling, as in the source (residual_scale = skip_scale = 1)",
        f"audio is coded as pytorch-wavenet codes it (mu_law = pytorch-wavenet): mu-law with "
        f"mu = classes ({classes}), binned by np.digitize, decoded with code / classes; "
        f"wavebench's own models use mu = classes - 1 and rounding",
        *notes,
        *w.dtype_notes(),
    ]
    return Converted(config, state, transformations)


def layers_and_blocks(n: int, attributes: dict, declared: dict, found: dict, path: Path,
                      hparams_path: Path | None) -> tuple[int, int]:
    """``layers`` and ``blocks`` from the pickle's attributes or the hparams, agreeing with the
    ``n`` layers of the weights."""
    chosen = {}
    for name in ("layers", "blocks"):
        if name in attributes:
            chosen[name] = int_param(attributes, name, path, minimum=1)
        if name in declared:
            value = int_param(declared, name, hparams_path, minimum=1)
            if name in chosen and value != chosen[name]:
                raise InputError(f"{name} is {value} but the pickled model records "
                                 f"{chosen[name]}; these hparams do not belong to this "
                                 f"checkpoint", hparams_path)
            chosen[name] = value
    if len(chosen) == 1:  # the other follows where it divides the number of layers
        (known, value), = chosen.items()
        if n % value == 0:
            chosen["blocks" if known == "layers" else "layers"] = n // value
    if not chosen and n == 1:
        chosen = {"layers": 1, "blocks": 1}
    if len(chosen) < 2:
        derived = ", ".join(f"{k}={v}" for k, v in found.items())
        missing = " and ".join(k for k in ("layers", "blocks") if k not in chosen)
        raise InputError(f"the checkpoint does not record how its {n} layers form blocks; "
                         f"derived {derived}; missing {missing}: pass --hparams with "
                         f"WaveNetModel's arguments as JSON, "
                         f'{{"layers": L, "blocks": B}} with L x B = {n}', path)
    if chosen["layers"] * chosen["blocks"] != n:
        where = hparams_path if "layers" in declared or "blocks" in declared else path
        raise contradiction(where, "layers x blocks",
                            f"{chosen['layers']} x {chosen['blocks']}", f"{n} layers")
    return chosen["layers"], chosen["blocks"]


def check_dilations(attributes: dict, config: ModelConfig, path: Path) -> None:
    """The pickled ``dilations`` (``(dilation, init_dilation)`` per layer) and
    ``receptive_field`` must be those of ``config``."""
    if "dilations" in attributes:
        pairs = attributes["dilations"]
        ok = isinstance(pairs, (list, tuple)) and all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs)
        got = [p[0] for p in pairs] if ok else pairs
        if got != config.dilations:
            raise InputError(f"the pickled model's dilations {shown(got)} are not "
                             f"{shown(config.dilations)}, the 2**i per block that wavebench "
                             f"builds", path)
    rf = attributes.get("receptive_field")
    if rf is not None and rf != config.receptive_field:
        raise InputError(f"the pickled model's receptive_field is {shown(rf)}, but its layers "
                         f"give {config.receptive_field}", path)


def map_state(w: Weights, c: ModelConfig, bias: bool) -> dict:
    """wavebench's state_dict from pytorch-wavenet's tensors (zeros for absent biases)."""
    R, D, S, E, K = (c.residual_channels, c.dilation_channels, c.skip_channels, c.end_channels,
                     c.kernel_size)

    def bias_of(prefix: str, size: int) -> torch.Tensor:
        return w.expect(f"{prefix}.bias", (size,)) if bias else torch.zeros(size)

    state = {"start.weight": w.expect("start_conv.weight", (R, c.classes, 1)),
             "start.bias": bias_of("start_conv", R)}
    for i in range(c.blocks * c.layers):
        state[f"layers.{i}.conv.weight"] = torch.cat(
            [w.expect(f"filter_convs.{i}.weight", (D, R, K)),
             w.expect(f"gate_convs.{i}.weight", (D, R, K))])
        state[f"layers.{i}.conv.bias"] = torch.cat(
            [bias_of(f"filter_convs.{i}", D), bias_of(f"gate_convs.{i}", D)])
        state[f"layers.{i}.res.weight"] = w.expect(f"residual_convs.{i}.weight", (R, D, 1))
        state[f"layers.{i}.res.bias"] = bias_of(f"residual_convs.{i}", R)
        state[f"layers.{i}.skip.weight"] = w.expect(f"skip_convs.{i}.weight", (S, D, 1))
        state[f"layers.{i}.skip.bias"] = bias_of(f"skip_convs.{i}", S)
    state["end1.weight"] = w.expect("end_conv_1.weight", (E, S, 1))
    state["end1.bias"] = w.expect("end_conv_1.bias", (E,))  # always built with a bias
    state["end2.weight"] = w.expect("end_conv_2.weight", (c.classes, E, 1))
    state["end2.bias"] = w.expect("end_conv_2.bias", (c.classes,))
    w.check_all_used("pytorch-wavenet's WaveNetModel")
    return state
