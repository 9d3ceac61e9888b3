"""The WaveNet configuration (a frozen dataclass), its presets, and loading from TOML or dicts."""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from wavebench_base.errors import InputError

COND_KINDS = ("none", "mel", "speaker", "mel+speaker")
UPSAMPLE_KINDS = ("transposed", "repeat", "vocoder")
INPUT_KINDS = ("onehot", "scalar")
OUTPUT_KINDS = ("softmax", "mol")
MEL_NORMS = ("wavebench", "none")
MU_LAWS = ("wavebench", "pytorch-wavenet")

# Upper bounds far above every preset (the largest has 5 blocks of 10 layers and 1.2 million
# parameters), so that an edited checkpoint or TOML file is refused by arithmetic before
# anything is allocated: 10^6 blocks or 10^9 classes would ask for terabytes, and 64 layers
# for a dilation of 2^63.
LIMITS = {"blocks": 64, "layers": 16, "kernel_size": 16, "residual_channels": 4096,
          "dilation_channels": 4096, "skip_channels": 4096, "end_channels": 4096,
          "classes": 65536, "sample_rate": 384000, "n_mels": 512, "hop_length": 8192,
          "n_speakers": 65536, "speaker_dim": 1024, "mixtures": 256, "cin_pad": 64,
          "lpc_order": 128}
MAX_RECEPTIVE_FIELD = 2 ** 20  # samples: 65 s at 16 kHz
MAX_PARAMETERS = 100_000_000  # 400 MB of float32 weights


def shown(value) -> str:
    """``repr(value)`` for a message, short even for an integer of thousands of digits (whose
    ``str`` Python refuses beyond 4300 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 18:
        return f"an integer of about 10^{int(abs(value).bit_length() * 0.30103)}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def upsample_factors(hop: int, largest: int = 8) -> list[int]:
    """Split ``hop`` into factors no larger than ``largest`` where its primes allow (256 -> 8, 8, 4)."""
    primes, n, p = [], hop, 2
    while n > 1:
        while n % p == 0:
            primes.append(p)
            n //= p
        p += 1
    factors: list[int] = []
    for prime in sorted(primes, reverse=True):
        for i, f in enumerate(factors):
            if f * prime <= largest:
                factors[i] = f * prime
                break
        else:
            factors.append(prime)
    return sorted(factors, reverse=True) or [1]


@dataclass(frozen=True)
class ModelConfig:
    """Every hyper-parameter of the reference WaveNet.

    Each of the ``blocks`` stacks ``layers`` dilated causal convolutions with dilations
    1, 2, ..., 2^(layers-1). ``cond`` selects conditioning: ``"mel"`` (local, log-mel frames of
    ``n_mels`` bands every ``hop_length`` samples, upsampled by ``upsample``), ``"speaker"``
    (global, an embedding of ``n_speakers`` ids) or both (``"mel+speaker"``).

    The fields after ``speaker_dim`` describe other projects' WaveNets (see
    ``reference_model.convert``); their defaults are wavebench's own model:

    - ``input``: ``"onehot"`` feeds mu-law codes one-hot; ``"scalar"`` feeds the sample value,
      codes being a linear grid of ``classes`` levels over [-1, 1] (wavenet_vocoder's raw input).
    - ``output``: ``"softmax"`` over ``classes`` codes, or ``"mol"``, a discretized mixture of
      ``mixtures`` logistics (PixelCNN++ as wavenet_vocoder parameterizes it, log-scales
      clamped at ``log_scale_min``, bins ``2 / (classes - 1)`` wide).
    - ``residual_scale`` multiplies each layer's output ``x + res(z)``; ``skip_scale`` the sum
      of the skip connections (wavenet_vocoder: sqrt(0.5) and sqrt(1 / layers)).
    - ``upsample = "vocoder"``: wavenet_vocoder's ConvInUpsampleNetwork, a convolution over
      ``2 cin_pad + 1`` frames, then per factor of ``upsample_scales`` a nearest-neighbour
      stretch and a ``2 s + 1`` tap filter along time.
    - ``mel_norm``: ``"wavebench"`` shifts and scales log-mels before the network;
      ``"none"`` feeds the frames as given.
    - ``mu_law``: how audio becomes one-hot codes and back (:mod:`reference_model.codes`):
      ``"wavebench"`` (mu = classes - 1, rounding) or ``"pytorch-wavenet"`` (mu = classes,
      binned by ``np.digitize`` on ``classes`` edges over [-1, 1], as that project trains).

    ``lpc_order`` > 0 splits the work as LPCNet does (:mod:`reference_model.linear_prediction`):
    an all-pole predictor of that order, computed from each mel frame, predicts every sample
    from the ones before it, and the softmax is over the mu-law code of what it leaves, the
    excitation. It needs wavebench's own mel frames, one-hot input, a softmax and wavebench's
    mu-law.
    """

    blocks: int = 3
    layers: int = 10
    kernel_size: int = 2
    residual_channels: int = 32
    dilation_channels: int = 32
    skip_channels: int = 256
    end_channels: int = 256
    classes: int = 256
    sample_rate: int = 16000
    cond: str = "none"
    n_mels: int = 80
    hop_length: int = 256
    upsample: str = "transposed"
    n_speakers: int = 0
    speaker_dim: int = 16
    input: str = "onehot"
    output: str = "softmax"
    mixtures: int = 10
    log_scale_min: float = -16.0
    residual_scale: float = 1.0
    skip_scale: float = 1.0
    upsample_scales: tuple = ()
    cin_pad: int = 0
    mel_norm: str = "wavebench"
    mu_law: str = "wavebench"
    lpc_order: int = 0

    def __post_init__(self):
        if isinstance(self.upsample_scales, list):  # as a dict or TOML file gives it
            object.__setattr__(self, "upsample_scales", tuple(self.upsample_scales))
        positive = ("blocks", "layers", "residual_channels", "dilation_channels", "skip_channels",
                    "end_channels", "sample_rate", "n_mels", "hop_length", "speaker_dim")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"config: {name} must be a positive integer, got {shown(value)}")
        if not isinstance(self.kernel_size, int) or self.kernel_size < 2:
            raise InputError(f"config: kernel_size must be an integer >= 2, "
                             f"got {shown(self.kernel_size)}")
        if not isinstance(self.classes, int) or self.classes < 2:
            raise InputError(f"config: classes must be an integer >= 2, got {shown(self.classes)}")
        if self.cond not in COND_KINDS:
            raise InputError(f"config: cond must be one of {', '.join(COND_KINDS)}, "
                             f"got {shown(self.cond)}")
        if self.upsample not in UPSAMPLE_KINDS:
            raise InputError(f"config: upsample must be one of {', '.join(UPSAMPLE_KINDS)}, "
                             f"got {shown(self.upsample)}")
        for name, kinds in (("input", INPUT_KINDS), ("output", OUTPUT_KINDS),
                            ("mel_norm", MEL_NORMS), ("mu_law", MU_LAWS)):
            if getattr(self, name) not in kinds:
                raise InputError(f"config: {name} must be one of {', '.join(kinds)}, "
                                 f"got {shown(getattr(self, name))}")
        if (self.input == "scalar") != (self.output == "mol"):
            raise InputError(f"config: input {self.input!r} with output {self.output!r} is not "
                             f"supported: scalar input goes with the mixture head ('mol'), "
                             f"one-hot input with 'softmax'")
        self._check_head_and_upsampler()
        self._check_linear_prediction()
        if not isinstance(self.n_speakers, int) or isinstance(self.n_speakers, bool) \
                or self.n_speakers < 0:
            raise InputError(f"config: n_speakers must be an integer >= 0, "
                             f"got {shown(self.n_speakers)}")
        if self.uses_speaker and self.n_speakers < 1:
            raise InputError("config: cond includes 'speaker' but n_speakers is 0; set n_speakers")
        self._check_size()

    def _check_head_and_upsampler(self) -> None:
        for name in ("mixtures", "cin_pad"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (name == "mixtures"):
                raise InputError(f"config: {name} must be an integer >= {int(name == 'mixtures')}, "
                                 f"got {shown(value)}")
        for name in ("log_scale_min", "residual_scale", "skip_scale"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) \
                    or not math.isfinite(value) or (name != "log_scale_min" and value <= 0):
                kind = "a finite number" if name == "log_scale_min" else "a finite number > 0"
                raise InputError(f"config: {name} must be {kind}, got {shown(value)}")
        scales = self.upsample_scales
        if not isinstance(scales, tuple) or not all(
                isinstance(f, int) and not isinstance(f, bool) and 1 <= f <= 64 for f in scales) \
                or len(scales) > 8:
            raise InputError(f"config: upsample_scales must be a list of at most 8 integers "
                             f"from 1 to 64, got {shown(scales)}")
        if self.upsample == "vocoder" and math.prod(scales) != self.hop_length:
            raise InputError(f"config: upsample 'vocoder' needs upsample_scales whose product is "
                             f"hop_length {self.hop_length}, got {shown(list(scales))}")

    def _check_linear_prediction(self) -> None:
        order = self.lpc_order
        if not isinstance(order, int) or isinstance(order, bool) or order < 0:
            raise InputError(f"config: lpc_order must be an integer >= 0, got {shown(order)}")
        if order == 0:
            return
        needs = {"cond": ("mel", "mel+speaker"), "mel_norm": ("wavebench",),
                 "input": ("onehot",), "output": ("softmax",), "mu_law": ("wavebench",)}
        for name, allowed in needs.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"config: lpc_order > 0 computes its predictor from wavebench's "
                                 f"mel frames and models a mu-law excitation, so {name} must be "
                                 f"{' or '.join(map(repr, allowed))}, got {shown(getattr(self, name))}")

    @property
    def out_channels(self) -> int:
        """Channels of the output layer: ``classes`` logits, or 3 per logistic of a mixture."""
        return self.classes if self.output == "softmax" else 3 * self.mixtures

    @property
    def in_channels(self) -> int:
        """Channels of the start convolution's input: one-hot codes or one scalar."""
        return self.classes if self.input == "onehot" else 1

    def _check_size(self) -> None:
        """Refuse values beyond :data:`LIMITS`, then a receptive field or parameter count beyond
        :data:`MAX_RECEPTIVE_FIELD` or :data:`MAX_PARAMETERS`, all by arithmetic alone."""
        for name, limit in LIMITS.items():
            if getattr(self, name) > limit:
                raise InputError(f"config: {name} must be at most {limit}, "
                                 f"got {shown(getattr(self, name))}")
        if self.receptive_field > MAX_RECEPTIVE_FIELD:
            raise InputError(f"config: receptive field of {self.receptive_field} samples (from "
                             f"blocks, layers and kernel_size) exceeds the limit of "
                             f"{MAX_RECEPTIVE_FIELD}")
        count = parameter_count(self)
        if count > MAX_PARAMETERS:
            raise InputError(f"config: the model would have {count:,} parameters, more than "
                             f"the limit of {MAX_PARAMETERS:,}")

    @property
    def uses_mel(self) -> bool:
        return "mel" in self.cond

    @property
    def uses_speaker(self) -> bool:
        return "speaker" in self.cond

    @property
    def dilations(self) -> list[int]:
        """Dilation of every layer, block after block."""
        return [2 ** i for _ in range(self.blocks) for i in range(self.layers)]

    @property
    def receptive_field(self) -> int:
        """Number of past samples that the prediction of one sample can see."""
        return (self.kernel_size - 1) * sum(self.dilations) + 1

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["upsample_scales"] = list(self.upsample_scales)  # TOML and JSON have no tuples
        return out

    def replace(self, **changes) -> "ModelConfig":
        return config_from_dict({**self.to_dict(), **changes}, source="config")


def parameter_count(config: ModelConfig) -> int:
    """The number of parameters of ``WaveNet(config)``, by arithmetic: nothing is built.

    Equals ``count_parameters(WaveNet(config))`` (a bias in every convolution and projection).
    """
    c, d2 = config, 2 * config.dilation_channels
    layer = (c.residual_channels * d2 * c.kernel_size + d2            # dilated conv
             + (c.dilation_channels + 1) * (c.residual_channels + c.skip_channels))  # res, skip
    if c.uses_mel:
        layer += (c.n_mels + 1) * d2
    if c.uses_speaker:
        layer += (c.speaker_dim + 1) * d2
    total = ((c.in_channels + 1) * c.residual_channels                 # start
             + c.blocks * c.layers * layer
             + (c.skip_channels + 1) * c.end_channels + (c.end_channels + 1) * c.out_channels)
    if c.uses_mel and c.upsample == "transposed":
        total += sum(c.n_mels * c.n_mels * f + c.n_mels for f in upsample_factors(c.hop_length))
    if c.uses_mel and c.upsample == "vocoder":  # no biases in wavenet_vocoder's upsampler
        total += c.n_mels * c.n_mels * (2 * c.cin_pad + 1) + sum(2 * f + 1 for f in c.upsample_scales)
    if c.uses_speaker:
        total += c.n_speakers * c.speaker_dim
    return total


def step_macs(config: ModelConfig) -> int:
    """Multiply-adds per generated sample of one stream in the cached step.

    The dilated convolutions' taps (``L K R 2D``), the residual and skip convolutions
    (``L D (R + S)``), the two end convolutions (``S E + E out``) and, for a mel-conditioned
    model, the mel projections (``L 2D n_mels``). The one-hot start convolution is a lookup of
    one row (no multiply-adds); a scalar input's is ``R``.
    """
    c = config
    n_layers, d2 = c.blocks * c.layers, 2 * c.dilation_channels
    macs = (n_layers * c.kernel_size * c.residual_channels * d2
            + n_layers * c.dilation_channels * (c.residual_channels + c.skip_channels)
            + c.skip_channels * c.end_channels + c.end_channels * c.out_channels)
    if c.uses_mel:
        macs += n_layers * d2 * c.n_mels
    return macs + (c.residual_channels if c.input == "scalar" else 0)


def step_weight_floats(config: ModelConfig) -> int:
    """Weights the cached step reads per step (shared by the streams of a batch): every matrix
    of :func:`step_macs` except the mel projections, which the samplers apply to a whole chunk
    of frames at once, plus the start convolution's row (or its ``R`` weights and ``R`` biases
    for a scalar input)."""
    macs = step_macs(config)
    if config.uses_mel:
        macs -= config.blocks * config.layers * 2 * config.dilation_channels * config.n_mels
    return macs + config.residual_channels


@dataclass(frozen=True)
class Preset:
    """A model configuration with the generation defaults of its scenario."""

    model: ModelConfig
    temperature: float = 1.0
    seconds: float = 1.0
    description: str = ""
    train: dict = field(default_factory=dict)  # TrainConfig defaults for this preset


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        # Frames repeated, not a learned upsampler: the transposed stages start about 60 times
        # weaker than the frames they pass on, and in 300 demo steps the model learned to follow
        # its own past samples rather than the mel (the demo's copies: c0 RMSE 8.6 against 4.8
        # dB, MCD 9.05 against 8.22 with "repeat").
        # 256 mel bands: the demo's predictor (lpc_order) reads its spectrum from them, and the
        # finer the bands, the more of each clip's harmonics it predicts instead of leaving
        # them to the network. Measured with benchmarks/demo_quality.py (300 steps, 2-core AMD
        # EPYC, family 25 model 1, AVX2): 40 bands gave MCD 5.1 dB (an earlier session's
        # run), 80 bands 3.2 dB and nll 3.20 bits, 160 bands 3.03 bits and 256 bands MCD 3.09
        # dB and nll 2.97 bits. Below about 1 kHz 256 bands are as narrow as the 15.6 Hz bins
        # of the 1024-point FFT under them; the frames are projected before they are
        # repeated, so the bands cost parameters, not speed.
        ModelConfig(blocks=2, layers=8, residual_channels=24, dilation_channels=24,
                    skip_channels=64, end_channels=64, n_mels=256, upsample="repeat"),
        temperature=0.6, seconds=1.0,
        description="the embedded demo: trains to audible structure in minutes on 2 CPU cores",
        train={"steps": 400, "batch_size": 8, "crop": 1024, "lr": 1e-2, "warmup": 20,
               "eval_every": 50, "checkpoint_every": 200}),
    "reference": Preset(
        ModelConfig(), temperature=1.0, seconds=1.0,
        description="the benchmark configuration: 3 x 10 layers, receptive field 3070, "
                    "549,728 parameters"),
    "music": Preset(ModelConfig(blocks=4, layers=9), temperature=0.7, seconds=30.0,
                    description="music scenario: 4 x 9 layers, temperature 0.7, 30 s"),
    "speech": Preset(ModelConfig(blocks=5, layers=10), temperature=0.5, seconds=10.0,
                     description="speech scenario: 5 x 10 layers, temperature 0.5, 10 s"),
    "ambient": Preset(ModelConfig(blocks=3, layers=8), temperature=0.8, seconds=60.0,
                      description="ambient scenario: 3 x 8 layers, temperature 0.8, 60 s"),
}


def get_preset(name: str) -> Preset:
    """Look up a preset by name; an unknown name is an InputError listing the valid ones."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return PRESETS[name]


def check_keys(data: dict, cls, source: str) -> None:
    """Raise InputError naming ``source`` if ``data`` has keys that ``cls`` does not define."""
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}",
                         source)


def config_from_dict(data: dict, source: str = "config") -> ModelConfig:
    """Build a ModelConfig from a plain dict, refusing unknown keys."""
    check_keys(data, ModelConfig, source)
    return ModelConfig(**data)


def load_toml(path) -> dict:
    """Read a TOML file into a dict, with one-line errors for missing or malformed files."""
    path = Path(path)
    if not path.is_file():
        raise InputError("config file not found", path)
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML: {exc}", path) from None


#: Fields that make a model one preset's architecture (conditioning may differ).
ARCHITECTURE = ("blocks", "layers", "kernel_size", "residual_channels", "dilation_channels",
                "skip_channels", "end_channels", "classes", "sample_rate")


def architecture(config: ModelConfig) -> dict:
    """The :data:`ARCHITECTURE` fields of ``config``."""
    return {k: getattr(config, k) for k in ARCHITECTURE}


def model_config_from_sources(preset: str | None = "tiny", toml: dict | None = None,
                              source: str = "config", **overrides) -> ModelConfig:
    """Start from a preset, apply the ``[model]`` table of a TOML dict, then keyword overrides."""
    base = get_preset(preset or "tiny").model.to_dict()
    table = dict((toml or {}).get("model", {}))
    check_keys(table, ModelConfig, f"{source} [model]")
    base.update(table)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(base, source)
