"""The registry of metrics: a spec per metric, lookup by name, and NaN-with-a-reason evaluation.

Each metric is a plain function that returns a float or raises
:class:`~metrics.validation.MetricUnavailable`. :meth:`MetricSpec.evaluate` and :func:`score_pair`
turn that exception into ``MetricResult(nan, reason)``, so one odd utterance never stops a run;
:class:`~metrics.validation.InputError` (bad arrays, misaligned lengths) still propagates.
"""
from __future__ import annotations

import difflib
import importlib.util
from dataclasses import dataclass
from typing import Callable

from metrics.cepstral_distance import c0_rmse_db, mcd, mcd_speech, mel_cepstral_scores
from metrics.dnsmos import DNSMOS_RATE, dnsmos_bak, dnsmos_ovrl, dnsmos_p808, dnsmos_scores, dnsmos_sig
from metrics.dtw import mcd_dtw
from metrics.intelligibility import estoi, intelligibility_scores, stoi
from metrics.likelihood import nll_bits
from metrics.mel import mel_l1
from metrics.perceptual_quality import PESQ_RATE, pesq_nb, pesq_scores, pesq_wb
from metrics.pitch import CREPE_RATE, f0_rmse_cents, periodicity_rmse, pitch_scores, vuv_f1
from metrics.spectral import lsd, mrstft
from metrics.validation import MetricUnavailable, allocation_failed
from wavebench_base.errors import InputError, MissingDependencyError

PAIR_INPUTS = ("reference", "generated", "sample_rate")
#: Inputs of a metric that needs no reference (a predicted MOS, say).
GENERATED_INPUTS = ("generated", "sample_rate")
#: Status of a result that has a value.
OK = "ok"
#: Status of a metric that ran out of memory on a pair (one of the ``INPUT_REASONS``).
OUT_OF_MEMORY = "out_of_memory"


@dataclass(frozen=True)
class MetricResult:
    """A metric's value, or NaN with the reason in ``status`` (see :data:`metrics.validation.REASONS`)."""

    value: float
    status: str = OK
    detail: str = ""  # the error behind an input-error status, for the run's notes

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass(frozen=True)
class MetricSpec:
    """What a report needs to know about a metric, and the function that computes it.

    Attributes
    ----------
    name, unit : str
        Registry key and unit ("dB", "nats", "bits/sample", "" for dimensionless).
    higher_is_better : bool
    needs_reference : bool
        Whether the metric compares with a reference recording.
    function : callable
        Keyword-only function of ``inputs`` returning a float.
    description : str
        One line for reports and ``--help``.
    inputs : tuple of str
        Keyword arguments of ``function``.
    joint : callable, optional
        A function of the same inputs that returns this metric together with others (for
        example ``mcd`` and ``c0_rmse_db`` from one mel-cepstral analysis) as a dict by name;
        :func:`score_pair` calls it once for all of them. A value in that dict may be a
        :class:`~metrics.validation.MetricUnavailable` where that metric alone has no value
        (the pitch RMSE of a pair with no voiced frame in common, whose periodicity has one).
    aligned : bool
        Whether the metric compares the two signals sample for sample, so that their lengths
        may differ by at most one hop (:data:`~metrics.validation.HOP`); False for a metric that
        aligns them itself (``mcd_dtw``). A scorer can check lengths before resampling with it.
    requires : tuple of (tuple of str, str), optional
        ``(modules, extra)``: the optional packages the metric imports when it runs, and the
        ``wavebench[extra]`` that installs them (see :meth:`check_available`).
    rate : int, optional
        The sample rate the metric works at, if it has one of its own: audio at another rate is
        resampled to it inside the metric (a scorer notes that once per run).
    """

    name: str
    unit: str
    higher_is_better: bool
    needs_reference: bool
    function: Callable[..., float]
    description: str
    inputs: tuple[str, ...] = PAIR_INPUTS
    joint: Callable[..., dict] | None = None
    aligned: bool = True
    requires: tuple[tuple[str, ...], str] | None = None
    rate: int | None = None

    def check_available(self) -> None:
        """Raise :class:`MissingDependencyError` (one line with the install command) when the
        optional package this metric needs is not installed; a scorer calls it before any work."""
        if self.requires is None:
            return
        modules, extra = self.requires
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            raise MissingDependencyError(
                f"metric '{self.name}' needs {' and '.join(modules)}, and "
                f"{', '.join(missing)} is not installed: pip install 'wavebench[{extra}]'")

    def evaluate(self, **inputs) -> MetricResult:
        """Compute the metric; NaN with the reason where it has no value for this input.

        Raises
        ------
        InputError
            Input no metric can use; wrong or missing keyword arguments.
        """
        if set(inputs) != set(self.inputs):
            raise InputError(f"metric '{self.name}' takes {', '.join(self.inputs)}; "
                             f"got {', '.join(sorted(inputs)) or 'nothing'}")
        try:
            return MetricResult(float(self.function(**inputs)))
        except MetricUnavailable as unavailable:
            return MetricResult(float("nan"), unavailable.reason)


def _spec(name, unit, higher_is_better, function, description, **extra) -> MetricSpec:
    return MetricSpec(name, unit, higher_is_better, True, function, description, **extra)


def _reference_free(name, function, description) -> MetricSpec:
    """A DNSMOS score: no reference, 16 kHz, Microsoft's models from the speechmos wheel."""
    return MetricSpec(name, "", True, False, function, description + " (no reference; "
                      "resampled to 16 kHz)", inputs=GENERATED_INPUTS, joint=dnsmos_scores,
                      aligned=False, requires=(("speechmos", "onnxruntime"), "dnsmos"),
                      rate=DNSMOS_RATE)


METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in (
    _spec("mcd", "dB", False, mcd, "mel-cepstral distortion (Kubichek, c0 excluded, SPTK mcep, "
          "Hamming 1024 / hop 256, frame-aligned)", joint=mel_cepstral_scores),
    _spec("c0_rmse_db", "dB", False, c0_rmse_db, "RMS difference of mel-cepstral c0 (gain error)",
          joint=mel_cepstral_scores),
    _spec("mcd_speech", "dB", False, mcd_speech, "MCD over frames within 40 dB of the loudest "
          "reference frame", joint=mel_cepstral_scores),
    _spec("mcd_dtw", "dB", False, mcd_dtw, "MCD along the exact DTW alignment (for unaligned "
          "output; lower than frame-aligned MCD by construction)", aligned=False),
    _spec("mel_l1", "nats", False, mel_l1, "HiFi-GAN validation mel error: mean |ln mel_ref - "
          "ln mel_gen|, 80 Slaney bands, 1024 / 256"),
    _spec("mrstft", "", False, mrstft, "multi-resolution STFT distance (spectral convergence + "
          "log magnitude, Parallel WaveGAN resolutions)"),
    _spec("lsd", "dB", False, lsd, "log-spectral distance (RMS over bins of the dB difference, "
          "STFT 2048 / 512)"),
    _spec("stoi", "", True, stoi, "short-time objective intelligibility (pystoi 0.4.1)",
          joint=intelligibility_scores),
    _spec("estoi", "", True, estoi, "extended STOI (pystoi 0.4.1)", joint=intelligibility_scores),
    _spec("pesq_wb", "", True, pesq_wb, "wideband PESQ, ITU-T P.862.2 (python-pesq 0.0.4; "
          "resampled to 16 kHz, at most 20 s)", joint=pesq_scores, requires=(("pesq",), "pesq"),
          rate=PESQ_RATE),
    _spec("pesq_nb", "", True, pesq_nb, "narrowband PESQ, ITU-T P.862 with the P.862.1 mapping, "
          "scored at 16 kHz (python-pesq 0.0.4; at most 20 s)", joint=pesq_scores,
          requires=(("pesq",), "pesq"), rate=PESQ_RATE),
    *(_spec(name, unit, higher, function, description, joint=pitch_scores,
            requires=(("torchcrepe", "resampy"), "pitch"), rate=CREPE_RATE)
      for name, unit, higher, function, description in (
          ("f0_rmse_cents", "cents", False, f0_rmse_cents, "CARGAN pitch RMSE over frames voiced "
           "in both signals (torchcrepe full, hop 11.6 ms, 50-550 Hz, Viterbi)"),
          ("periodicity_rmse", "", False, periodicity_rmse, "CARGAN periodicity RMSE over all "
           "frames (torchcrepe, silence below -60 dB set to 0)"),
          ("vuv_f1", "", True, vuv_f1, "CARGAN voiced/unvoiced F1 (torchcrepe hysteresis "
           "0.19/0.31)"))),
    *(_reference_free(name, function, description) for name, function, description in (
        ("dnsmos_sig", dnsmos_sig, "DNSMOS P.835 speech quality (SIG), predicted MOS 1-5"),
        ("dnsmos_bak", dnsmos_bak, "DNSMOS P.835 background quality (BAK), predicted MOS 1-5"),
        ("dnsmos_ovrl", dnsmos_ovrl, "DNSMOS P.835 overall quality (OVRL), predicted MOS 1-5"),
        ("dnsmos_p808", dnsmos_p808, "DNSMOS P.808 overall quality, predicted MOS 1-5"))),
    MetricSpec("nll_bits", "bits/sample", False, False, nll_bits,
               "teacher-forced negative log-likelihood of the reference under the model",
               inputs=("log_probs", "targets")),
)}

#: The metrics a scoring run computes unless told otherwise.
DEFAULT_METRICS = ("mcd", "c0_rmse_db", "mel_l1", "stoi", "estoi")  # c0 comes free with mcd


def get_metric(name: str) -> MetricSpec:
    """The spec of metric ``name``.

    Raises
    ------
    InputError
        "unknown metric 'stio'; did you mean 'stoi'? available: ..." for an unknown name.
    """
    try:
        return METRICS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), METRICS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ";"
        raise InputError(f"unknown metric '{name}'{hint} available: {', '.join(METRICS)}") from None


def score_pair(names=DEFAULT_METRICS, *, reference, generated,
               sample_rate: int) -> dict[str, MetricResult]:
    """Every metric in ``names`` on one (reference, generated) pair, sharing work where it can.

    A metric that needs no reference (``needs_reference`` False) is given ``generated`` and
    ``sample_rate`` only, so ``reference`` may be None when every metric asked for is one.

    Metrics with the same ``joint`` function (``mcd`` / ``c0_rmse_db`` / ``mcd_speech``;
    ``stoi`` / ``estoi``) are computed by one call of it. A metric with no value for this pair
    gets NaN and the reason as its status: a :data:`~metrics.validation.REASONS` reason, or, when
    the metric raised :class:`InputError` (lengths beyond its tolerance, a rate it has no
    settings for), the error's :data:`~metrics.validation.INPUT_REASONS` reason with the message
    in ``detail``; a metric that runs out of memory (see
    :func:`~metrics.validation.allocation_failed`) gets ``out_of_memory``. The other metrics of the
    pair are computed all the same.

    Parameters
    ----------
    names : iterable of str
        Metric names; default :data:`DEFAULT_METRICS`.
    reference, generated : np.ndarray [shape=(n,)], float
        Mono waveforms in [-1, 1] at ``sample_rate``; ``reference`` None for reference-free
        metrics only.
    sample_rate : int

    Returns
    -------
    dict[str, MetricResult]
        In the order of ``names``.

    Raises
    ------
    InputError
        Unknown names, a metric that does not take audio (``nll_bits``), or a metric that
        needs the reference when ``reference`` is None.
    """
    specs = [get_metric(name) for name in names]
    for spec in specs:
        if spec.inputs not in (PAIR_INPUTS, GENERATED_INPUTS):
            raise InputError(f"metric '{spec.name}' takes {', '.join(spec.inputs)}, not an audio "
                             "pair; evaluate it with get_metric(name).evaluate(...)")
        if reference is None and "reference" in spec.inputs:
            raise InputError(f"metric '{spec.name}' needs a reference recording")
    pair = {"reference": reference, "generated": generated, "sample_rate": sample_rate}
    results: dict[str, MetricResult] = {}
    for spec in specs:
        if spec.name in results:
            continue
        group = [spec] if spec.joint is None else \
            [other for other in METRICS.values() if other.joint is spec.joint]
        try:  # one metric's error (a rate it has no settings for, say) spares the others
            inputs = {name: pair[name] for name in spec.inputs}
            if spec.joint is None:
                shared = {spec.name: spec.evaluate(**inputs)}
            else:
                values = spec.joint(**inputs)
                shared = {name: MetricResult(float("nan"), value.reason)
                          if isinstance(value, MetricUnavailable) else MetricResult(float(value))
                          for name, value in values.items()}
        except MetricUnavailable as unavailable:
            shared = {other.name: MetricResult(float("nan"), unavailable.reason)
                      for other in group}
        except InputError as error:
            shared = {other.name: MetricResult(float("nan"), error.reason, str(error))
                      for other in group}
        except (MemoryError, RuntimeError) as error:
            if not allocation_failed(error):
                raise  # a bug: its traceback is what a report needs
            detail = " ".join(f"out of memory ({type(error).__name__}: {error})".split())
            shared = {other.name: MetricResult(float("nan"), OUT_OF_MEMORY, detail)
                      for other in group}
        results.update({s.name: shared[s.name] for s in specs if s.name in shared})
    return {spec.name: results[spec.name] for spec in specs}
