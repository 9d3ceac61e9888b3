"""DNSMOS: Microsoft's reference-free predicted MOS of speech, P.835 (SIG, BAK, OVRL) and P.808.

The models are the ONNX files the ``speechmos`` wheel ships (``speechmos/dnsmos_models``: the
DNS Challenge's ``DNSMOS/sig_bak_ovr.onnx`` and ``model_v8.onnx``); this module runs them on
onnxruntime with its own pipeline, which gives the numbers of ``speechmos.dnsmos.run(audio,
16000)`` (model type ``"dnsmos"``, not personalized) and of the DNS Challenge's
``DNSMOS/dnsmos_local.py`` without its ``-p`` flag:

1. audio at another rate is resampled to 16 kHz (:data:`DNSMOS_RATE`) with
   ``soxr.resample(..., quality="VHQ")``;
2. a clip shorter than one window (9.01 s, :data:`WINDOW` = 144160 samples) is repeated
   whole, doubling its length until it is at least that long, as the reference does;
3. windows of 144160 samples start every second (:data:`HOP`); there are
   ``int(n // 16000 - 9.01) + 1`` of them, so up to 1.99 s at the end of a clip is in none.
   The reference takes window k as ``audio[k * 16000 : int((k + 9.01) * 16000)]``, whose
   floating-point end falls one sample short for k = 7..23, 119..122, 16375..16768, ..., and
   drops such windows; so does this module (:func:`_window_starts`). A clip of 16 to 34 s
   is thus scored on its first 15.01 s (windows 0 to 6), and a longer one without its
   windows 7 to 23 (and 119 to 122, from 129 s);
4. per window, the P.835 model takes the 144160 samples (float32) and gives raw SIG, BAK and
   OVRL, each mapped by the non-personalized calibration polynomial of ``dnsmos_local.py``
   (:data:`P835_POLYNOMIALS`); the P.808 model takes the window less its last 160 samples
   as a 120-band log-mel spectrogram (:func:`_p808_features`);
5. each score is the mean over the windows.

The ONNX sessions are created once per process, on first use, with one intra-op and one
inter-op thread (a scoring run has one worker process per core), and nothing is downloaded.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from metrics.validation import MetricUnavailable, check_audio, check_sample_rate
from wavebench_base.errors import MissingDependencyError

#: The rate the DNSMOS models work at; audio at any other rate is resampled to it.
DNSMOS_RATE = 16000
#: ``INPUT_LENGTH`` of the reference, in seconds: the models' window.
_WINDOW_SECONDS = 9.01
#: Window and hop in samples (``int(9.01 * 16000)``; one second).
WINDOW = int(_WINDOW_SECONDS * DNSMOS_RATE)
HOP = DNSMOS_RATE
#: Samples the reference drops from the end of a window before the P.808 features
#: (``audio_seg[:-160]``), which leaves the 900 frames the P.808 model takes.
_P808_TRIM = 160
#: P.808 log-mel settings of the reference (``audio_melspec``): FFT and Hann window of 321
#: samples, hop 160 (10 ms), 120 Slaney mel bands up to 8 kHz, power 2, centred frames.
_MEL = {"n_fft": 321, "hop_length": 160, "n_mels": 120}
#: Calibration of the raw P.835 outputs to MOS: ``numpy.polyval`` coefficients (highest power
#: first) of the non-personalized polynomials in DNS-Challenge ``DNSMOS/dnsmos_local.py``
#: (``get_polyfit_val``), the same in ``speechmos.dnsmos``.
P835_POLYNOMIALS = {
    "dnsmos_sig": (-0.08397278, 1.22083953, 0.0052439),
    "dnsmos_bak": (-0.13166888, 1.60915514, -0.39604546),
    "dnsmos_ovrl": (-0.06766283, 1.11546468, 0.04602535),
}
#: The scores :func:`dnsmos_scores` returns, in order.
NAMES = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808")
_MODELS = {"p835": "sig_bak_ovr.onnx", "p808": "model_v8.onnx"}
_INSTALL = "pip install 'wavebench[dnsmos]'"


def _model_dir() -> Path:
    """``speechmos/dnsmos_models``, found without importing speechmos (which imports librosa,
    onnxruntime and requests at the top)."""
    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"DNSMOS needs the speechmos package, whose wheel holds the ONNX models, and it is "
            f"not installed: {_INSTALL}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "dnsmos_models"
    missing = [name for name in _MODELS.values() if not (folder / name).is_file()]
    if missing:
        raise MissingDependencyError(
            f"{folder}: no {', '.join(missing)}; this speechmos has not the DNSMOS models "
            f"wavebench uses (speechmos 0.0.1.1 has them): {_INSTALL}")
    return folder


@lru_cache(maxsize=1)
def _sessions() -> dict:
    """The two ONNX sessions by :data:`_MODELS` key, created on first use, once per process.

    One thread each: scoring runs a worker process per core, and more threads would only
    contend for the same cores.
    """
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError(
            f"DNSMOS needs the onnxruntime package, which is not installed: {_INSTALL}") from None
    folder = _model_dir()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return {key: onnxruntime.InferenceSession(str(folder / name), sess_options=options,
                                              providers=["CPUExecutionProvider"])
            for key, name in _MODELS.items()}


def _at_dnsmos_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``audio`` at 16 kHz: itself, or resampled by soxr at its highest quality (VHQ)."""
    if sample_rate == DNSMOS_RATE:
        return audio
    import soxr

    if audio.dtype not in (np.float32, np.float64):
        audio = audio.astype(np.float32)  # soxr takes float32 and float64 (not float16)
    return soxr.resample(audio, sample_rate, DNSMOS_RATE, quality="VHQ")


def _repeated(audio: np.ndarray) -> np.ndarray:
    """``audio`` doubled (whole copies end to end) until it is at least one window long.

    The reference's ``while len(audio) < len_samples: audio = np.append(audio, audio)``,
    which gives ``audio`` tiled a power of two times.
    """
    copies = 1
    while audio.size * copies < WINDOW:
        copies *= 2
    return audio if copies == 1 else np.tile(audio, copies)


def _window_starts(n: int) -> list[int]:
    """Start samples of the windows the reference scores in ``n`` >= :data:`WINDOW` samples.

    The reference counts ``int(floor(n / 16000) - 9.01) + 1`` windows and slices window k up
    to ``int((k + 9.01) * 16000)``, computed in floating point: for some k (7 to 23 among the
    first thousand) that product rounds to one sample short of the window, and the reference
    skips the window as too short. The same expressions here give the same windows.
    """
    count = int(n // HOP - _WINDOW_SECONDS) + 1
    starts = []
    for k in range(count):
        start, stop = k * HOP, min(int((k + _WINDOW_SECONDS) * HOP), n)
        if stop - start >= WINDOW:
            starts.append(start)
    return starts


def _p808_features(window: np.ndarray) -> np.ndarray:
    """The P.808 model's input for one window: a (1, 900, 120) float32 log-mel spectrogram.

    The reference's ``audio_melspec``: ``librosa.feature.melspectrogram`` of the window less
    its last 160 samples, in dB relative to its own maximum (floor 1e-10, 80 dB range), then
    ``(dB + 40) / 40``. The settings are spelled out, ``pad_mode="constant"`` among them (the
    default of librosa >= 0.10, which the reference gets on this environment; librosa < 0.10
    padded by reflection), so the features do not change with librosa's defaults. Computed
    in float64 whatever the audio's dtype.
    """
    import librosa

    power = librosa.feature.melspectrogram(
        y=np.asarray(window[:-_P808_TRIM], dtype=np.float64), sr=DNSMOS_RATE, window="hann",
        center=True, pad_mode="constant", power=2.0, **_MEL)
    decibels = librosa.power_to_db(power, ref=np.max, amin=1e-10, top_db=80.0)
    return ((decibels + 40) / 40).T[np.newaxis].astype(np.float32)


def dnsmos_scores(*, generated: np.ndarray, sample_rate: int) -> dict[str, float]:
    """DNSMOS P.835 SIG, BAK, OVRL and P.808 MOS of ``generated``; no reference is needed.

    Higher is better for all four: predicted mean opinion scores on the 1 to 5 scale of
    ITU-T P.835 (speech signal, background noise, overall quality) and P.808 (overall), from
    one pass over the clip. Equal to ``speechmos.dnsmos.run(audio, 16000)`` (``sig_mos``,
    ``bak_mos``, ``ovrl_mos``, ``p808_mos``) to about 1e-7 (the P.808 outputs are float32,
    averaged here in float64); see the module's notes for the windows.

    Parameters
    ----------
    generated : np.ndarray [shape=(n,)], float
        Mono waveform in [-1, 1] (not checked: values outside are scored as they are); any
        length of at least one sample. A clip under 9.01 s is repeated to fill the models'
        window, as the reference does.
    sample_rate : int
        Any rate; audio not at 16 kHz is resampled to 16 kHz with
        ``soxr.resample(..., quality="VHQ")`` first. Resampling takes out the band above
        about 7.6 kHz (any resampler's anti-alias filter does), which the P.808 features
        reach: 16 kHz speech taken to 22.05 or 48 kHz and scored scores about 0.09 lower on
        P.808 (P.835: within 0.004) than at 16 kHz.

    Returns
    -------
    dict[str, float]
        ``{"dnsmos_sig": ..., "dnsmos_bak": ..., "dnsmos_ovrl": ..., "dnsmos_p808": ...}``.
        Digital silence has values too (about 2.5, 3.5, 1.8 and 2.1), as in the reference.

    Raises
    ------
    InputError
        Audio that is not mono float, a sample rate that is not a positive integer.
    MissingDependencyError
        speechmos (the models) or onnxruntime is not installed.
    MetricUnavailable
        ``nonfinite_generated``; ``too_short`` for no samples at all (after resampling), where
        the reference's doubling would never end.

    Examples
    --------
    >>> x = 0.1 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)
    >>> scores = dnsmos_scores(generated=x, sample_rate=16000)  # doctest: +SKIP
    >>> sorted(scores)  # doctest: +SKIP
    ['dnsmos_bak', 'dnsmos_ovrl', 'dnsmos_p808', 'dnsmos_sig']
    """
    sample_rate = check_sample_rate(sample_rate)
    audio = _at_dnsmos_rate(check_audio(generated, "generated"), sample_rate)
    if audio.size == 0:
        raise MetricUnavailable("too_short", f"no samples at {DNSMOS_RATE} Hz")
    sessions = _sessions()
    audio = _repeated(audio)
    raw_p835, p808 = [], []
    for start in _window_starts(audio.size):
        window = audio[start:start + WINDOW]
        (values,) = sessions["p835"].run(
            None, {"input_1": np.asarray(window, dtype=np.float32)[np.newaxis]})[0]
        raw_p835.append(values)
        (value,) = sessions["p808"].run(None, {"input_1": _p808_features(window)})[0][0]
        p808.append(value)
    raw = np.asarray(raw_p835, dtype=np.float64)  # (windows, 3): raw SIG, BAK, OVRL
    scores = {name: float(np.mean(np.polyval(P835_POLYNOMIALS[name], raw[:, column])))
              for column, name in enumerate(NAMES[:3])}
    scores["dnsmos_p808"] = float(np.mean(np.asarray(p808, dtype=np.float64)))
    return scores


def dnsmos_sig(*, generated: np.ndarray, sample_rate: int) -> float:
    """DNSMOS P.835 speech-signal quality (SIG), 1 to 5, higher is better.

    One of :func:`dnsmos_scores`, which computes all four in one pass; parameters, resampling
    and raises as there.
    """
    return dnsmos_scores(generated=generated, sample_rate=sample_rate)["dnsmos_sig"]


def dnsmos_bak(*, generated: np.ndarray, sample_rate: int) -> float:
    """DNSMOS P.835 background-noise quality (BAK), 1 to 5, higher is better (less noise).

    One of :func:`dnsmos_scores`; parameters, resampling and raises as there.
    """
    return dnsmos_scores(generated=generated, sample_rate=sample_rate)["dnsmos_bak"]


def dnsmos_ovrl(*, generated: np.ndarray, sample_rate: int) -> float:
    """DNSMOS P.835 overall quality (OVRL), 1 to 5, higher is better.

    One of :func:`dnsmos_scores`; parameters, resampling and raises as there.
    """
    return dnsmos_scores(generated=generated, sample_rate=sample_rate)["dnsmos_ovrl"]


def dnsmos_p808(*, generated: np.ndarray, sample_rate: int) -> float:
    """DNSMOS P.808 overall quality, 1 to 5, higher is better.

    One of :func:`dnsmos_scores`; parameters, resampling and raises as there.
    """
    return dnsmos_scores(generated=generated, sample_rate=sample_rate)["dnsmos_p808"]
