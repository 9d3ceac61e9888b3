"""Pitch RMSE, periodicity RMSE and voiced/unvoiced F1 as CARGAN defines them, by torchcrepe.

CARGAN (Morrison et al., ICLR 2022; descriptinc/cargan) scores a vocoder by running CREPE on the
reference and on the generated audio and comparing the two frame tracks; BigVGAN's tables report
the same three numbers. Each signal goes through CARGAN's extraction
(``cargan/preprocess/pitch.py``, ``from_audio``), with its settings (``cargan/constants.py``):

1. resampling to 16 kHz (:data:`CREPE_RATE`), CREPE's rate, with ``resampy`` (``kaiser_best``),
   the resampler torchcrepe itself uses (CARGAN used torchaudio's windowed-sinc ``Resample``,
   which has no build for our torch; at 16 kHz input nothing is resampled);
2. reflect padding by ``(1024 - hop) // 2`` = 419 samples (:data:`PAD`) at each end, so that a
   1024-sample CREPE window is centred in each hop;
3. torchcrepe ``"full"`` model, every :data:`HOP` = 185 samples (11.5625 ms), unpadded
   (``pad=False``): CARGAN's hop of 256 samples at 22.05 kHz converted to 16 kHz as CARGAN does,
   ``int(256 * 16000 / 22050)``. CARGAN then stretches the tracks by linear interpolation to
   ``n // 256`` frames (0.4 % fewer), only to line them up with its mel frames; here the frames
   are left as CREPE computed them;
4. Viterbi decoding (torchcrepe's default decoder) between :data:`FMIN` = 50 and :data:`FMAX` =
   550 Hz, each block of :data:`DECODE_FRAMES` = 1024 frames on its own, as
   ``torchcrepe.predict(..., batch_size=1024)`` does in CARGAN; the network itself runs on
   :data:`INFER_FRAMES` frames at a time (about 2 MB of activations per frame; its outputs do not
   depend on the grouping);
5. periodicity (the network's probability at the decoded bin) set to 0 in frames whose
   A-weighted loudness is under :data:`SILENCE_DB` = -60 dB (``torchcrepe.threshold.Silence``);
6. no median or mean filter on either track (CARGAN applies none);
7. voiced frames by torchcrepe's hysteresis thresholding (``threshold.Hysteresis`` with its
   defaults, written out in :data:`HYSTERESIS`).

Then, from CARGAN's ``Pitch`` metric (``cargan/evaluate/objective/metrics.py``), per pair of
tracks:

- ``f0_rmse_cents``: RMS over the frames voiced in both signals of
  ``1200 * (log2 f_ref - log2 f_gen)``;
- ``periodicity_rmse``: RMS over all frames of ``periodicity_ref - periodicity_gen``;
- ``vuv_f1``: F1 of the generated voiced decisions against the reference's, ``2 P R / (P + R)``
  with ``P = TP / (TP + FP)`` and ``R = TP / (TP + FN)``.

CARGAN adds these sums over a whole test set before dividing (its ``file_results`` hold the same
formulas per file); here each utterance gets its own values, as every wavebench metric does.
The sums are taken in float64 (CARGAN's in float32: they differ by its rounding).

Where a formula divides zero by zero there is no value, and only that metric gets a status:

- with no frame voiced in both signals the pitch RMSE is 0 / 0 (``no_voiced_frames``);
- F1 is written ``2 TP / (2 TP + FP + FN)``, which equals CARGAN's ``2 P R / (P + R)`` wherever
  that is defined and is 0 where a reference has voiced frames and the generated audio matches
  none of them (CARGAN's gives NaN there: a vocoder that loses all voicing would drop out of
  a mean instead of counting as the worst); only with no voiced frame in either signal is it
  0 / 0 (``no_voiced_frames``);
- the periodicity RMSE always has a value.

torchcrepe dithers each decoded pitch by up to +-20 cents (one bin) with draws from NumPy's
global generator, so its pitch changes from run to run. Here the draws come from that generator
seeded with :data:`DITHER_SEED` for each signal, and its state is put back afterwards: the same
input gives the same values, a signal scored against itself gives exactly 0, and the dither
cancels from the pitch difference wherever the two signals decode to the same bin (CARGAN's
independent draws add about 11.5 cents RMS there). Seeding the global generator is not
thread-safe: score from separate processes (as wavebench's scoring workers are), not threads.

torch and torchcrepe are imported on first use (``pip install 'wavebench[pitch]'``); the model
is loaded once per process (torchcrepe keeps it in ``torchcrepe.infer.model``) and runs on the
CPU under ``torch.no_grad`` with torch's own thread settings. CREPE is slow: measured 5.2
CPU-seconds per second of audio for each signal (10.4 for a pair) on a 2-core AMD EPYC with
AVX-512, at any of :data:`INFER_FRAMES` 32, 128 or 1024; two threads halve the wall time.
"""
from __future__ import annotations

import math

import numpy as np

from metrics.validation import MetricUnavailable, check_pair, check_sample_rate
from wavebench_base.errors import MissingDependencyError

#: CREPE's sample rate (``torchcrepe.SAMPLE_RATE``); audio at any other rate is resampled to it.
CREPE_RATE = 16000
#: CREPE's analysis window at :data:`CREPE_RATE` (``torchcrepe.WINDOW_SIZE``; CARGAN's NUM_FFT).
WINDOW = 1024
#: Hop at :data:`CREPE_RATE`: CARGAN's ``int(HOPSIZE * 16000 / SAMPLE_RATE)`` with HOPSIZE 256
#: and SAMPLE_RATE 22050, that is 11.5625 ms (CARGAN's frames are 256 / 22050 = 11.61 ms).
HOP = int(256 * CREPE_RATE / 22050)
#: Reflect padding at each end, CARGAN's ``(NUM_FFT - hopsize) // 2``.
PAD = (WINDOW - HOP) // 2
#: Pitch range searched by the decoder, in Hz (CARGAN's FMIN and FMAX).
FMIN, FMAX = 50.0, 550.0
#: torchcrepe model capacity (CARGAN's ``model='full'``).
MODEL = "full"
#: Frames the Viterbi decoder takes at a time: CARGAN's ``batch_size=1024``, by which
#: ``torchcrepe.predict`` also splits its decoding (a path restarts every 11.8 s).
DECODE_FRAMES = 1024
#: Frames per forward pass of the network: bounds its activations to about 250 MB.
INFER_FRAMES = 128
#: A-weighted loudness below which a frame's periodicity is set to 0, in dB
#: (``torchcrepe.threshold.Silence()``'s default, as CARGAN calls it).
SILENCE_DB = -60.0
#: ``torchcrepe.threshold.Hysteresis()``'s defaults, as CARGAN calls it: periodicity below
#: ``lower_bound`` is unvoiced; a voiced run must reach ``upper_bound`` somewhere; pitches
#: more than ``stds`` standard deviations from the track's mean (in log2 Hz) need more
#: periodicity, rising by ``width`` per squared standard deviation.
HYSTERESIS = {"lower_bound": 0.19, "upper_bound": 0.31, "width": 0.2, "stds": 1.7}
#: Seed of torchcrepe's pitch dither (NumPy's global generator, restored afterwards).
DITHER_SEED = 0
#: Shortest clip: one CREPE window at :data:`CREPE_RATE`, in seconds (0.064 s).
MIN_SECONDS = WINDOW / CREPE_RATE
#: The names :func:`pitch_scores` returns.
NAMES = ("f0_rmse_cents", "periodicity_rmse", "vuv_f1")


def _packages():
    """``(torch, torchcrepe, resampy)``, imported on first use.

    Raises
    ------
    MissingDependencyError
        torchcrepe is not installed (the message has the install command).
    """
    try:
        import resampy
        import torch
        import torchcrepe
    except ImportError as error:
        raise MissingDependencyError(
            f"the pitch metrics need torchcrepe ({error}): pip install 'wavebench[pitch]'"
        ) from None
    return torch, torchcrepe, resampy


def _min_length(sample_rate: int) -> int:
    """Fewest samples at ``sample_rate`` that last one CREPE window; resampy turns them into
    ``ceil(n * 16000 / sample_rate)`` >= 1024 samples."""
    return -(-WINDOW * sample_rate // CREPE_RATE)


def _tracks(audio: np.ndarray, sample_rate: int):
    """Pitch, periodicity and voiced frames of one checked signal, by CARGAN's extraction.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)], float
        Finite mono audio of at least :data:`MIN_SECONDS`.
    sample_rate : int

    Returns
    -------
    pitch : np.ndarray [shape=(frames,)], float32
        Decoded pitch in Hz (dithered, see the module's notes), in every frame.
    periodicity : np.ndarray [shape=(frames,)], float32
        In [0, 1]; 0 in frames under :data:`SILENCE_DB`.
    voiced : np.ndarray [shape=(frames,)], bool
        Hysteresis decisions. ``frames = 1 + (m + 2 * PAD - WINDOW) // HOP`` for ``m`` samples
        at 16 kHz.
    """
    torch, torchcrepe, resampy = _packages()
    audio = np.asarray(audio, dtype=np.float32)
    if sample_rate != CREPE_RATE:
        audio = resampy.resample(audio, sample_rate, CREPE_RATE)  # what torchcrepe would call
    padded = torch.nn.functional.pad(torch.from_numpy(np.ascontiguousarray(audio))[None, None],
                                     (PAD, PAD), mode="reflect")[0]
    with torch.no_grad():
        probabilities = torch.cat([
            torchcrepe.infer(frames, MODEL, "cpu")
            for frames in torchcrepe.preprocess(padded, CREPE_RATE, HOP, INFER_FRAMES, "cpu",
                                                pad=False)])
        pitch, periodicity = _decoded(probabilities, torch, torchcrepe)
        periodicity = torchcrepe.threshold.Silence(SILENCE_DB)(periodicity, padded, CREPE_RATE,
                                                               HOP, pad=False)
        voiced = _voiced(pitch, periodicity, torch, torchcrepe)
    return pitch.numpy()[0], periodicity.numpy()[0], voiced


def _decoded(probabilities, torch, torchcrepe):
    """``torchcrepe.postprocess`` of each block of :data:`DECODE_FRAMES` frames, with the dither
    drawn from NumPy's global generator seeded by :data:`DITHER_SEED` (state restored after).

    Returns
    -------
    pitch, periodicity : torch.Tensor [shape=(1, frames)], float32
    """
    state = np.random.get_state()
    np.random.seed(DITHER_SEED)
    try:
        blocks = [torchcrepe.postprocess(
            block.reshape(1, -1, torchcrepe.PITCH_BINS).transpose(1, 2), FMIN, FMAX,
            torchcrepe.decode.viterbi, return_periodicity=True)
            for block in probabilities.split(DECODE_FRAMES)]
    finally:
        np.random.set_state(state)
    return tuple(torch.cat(parts, 1) for parts in zip(*blocks))


def _voiced(pitch, periodicity, torch, torchcrepe) -> np.ndarray:
    """Hysteresis voiced decisions, as a bool array [shape=(frames,)]."""
    if not bool((periodicity >= HYSTERESIS["lower_bound"]).any()):
        # no candidate frame: the hysteresis would return all NaN, after NumPy warnings about
        # the mean and deviation of nothing
        return np.zeros(periodicity.shape[-1], dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):  # one candidate: a deviation of 0
        thresholded = torchcrepe.threshold.Hysteresis(**HYSTERESIS)(pitch, periodicity)
    return ~torch.isnan(thresholded).numpy()[0]


def pitch_scores(*, reference: np.ndarray, generated: np.ndarray,
                 sample_rate: int) -> dict[str, float | MetricUnavailable]:
    """CARGAN's pitch RMSE (cents), periodicity RMSE and voiced/unvoiced F1 of one pair.

    One CREPE analysis per signal (see the module's notes for the settings); the values of one
    utterance, where CARGAN adds the sums over a test set before dividing.

    Parameters
    ----------
    reference, generated : np.ndarray [shape=(n,)], float
        Mono waveforms in [-1, 1] at ``sample_rate``, time-aligned; lengths may differ by at most
        one hop (256 samples) and are trimmed to the shorter.
    sample_rate : int
        Any rate; the pair is resampled to 16 kHz.

    Returns
    -------
    dict[str, float or MetricUnavailable]
        ``f0_rmse_cents`` (lower is better, 0 for identical audio), ``periodicity_rmse`` (lower
        is better, 0 for identical audio, at most 1) and ``vuv_f1`` (higher is better, 1 for
        identical audio); a ``MetricUnavailable("no_voiced_frames")`` in place of the pitch
        RMSE when no frame is voiced in both signals, and of F1 when none is voiced in either.

    Raises
    ------
    InputError
        Bad arrays, lengths that differ by more than one hop.
    MissingDependencyError
        torchcrepe is not installed.
    MetricUnavailable
        ``too_short`` (under one CREPE window, 0.064 s), ``silent_reference``, ``nonfinite_*``
        for all three (the single-metric functions also raise the ``no_voiced_frames`` above).

    Examples
    --------
    >>> t = np.arange(16000) / 16000
    >>> tone = 0.5 * np.sin(2 * np.pi * 220 * t)
    >>> pitch_scores(reference=tone, generated=tone, sample_rate=16000)  # doctest: +SKIP
    {'f0_rmse_cents': 0.0, 'periodicity_rmse': 0.0, 'vuv_f1': 1.0}
    """
    sample_rate = check_sample_rate(sample_rate)
    reference, generated, sample_rate = check_pair(reference, generated, sample_rate,
                                                   min_length=_min_length(sample_rate))
    _packages()  # a missing package before any work
    ref_pitch, ref_periodicity, ref_voiced = _tracks(reference, sample_rate)
    gen_pitch, gen_periodicity, gen_voiced = _tracks(generated, sample_rate)
    both = ref_voiced & gen_voiced
    true_positives = int(np.count_nonzero(both))
    false_positives = int(np.count_nonzero(gen_voiced & ~ref_voiced))
    false_negatives = int(np.count_nonzero(ref_voiced & ~gen_voiced))
    counts = (f"{np.count_nonzero(ref_voiced)} of {ref_voiced.size} reference frames voiced, "
              f"{np.count_nonzero(gen_voiced)} generated")
    difference = ref_periodicity.astype(np.float64) - gen_periodicity.astype(np.float64)
    scores: dict[str, float | MetricUnavailable] = {
        "f0_rmse_cents": MetricUnavailable("no_voiced_frames", counts + ", none in both"),
        "periodicity_rmse": math.sqrt(np.mean(difference ** 2)),
        "vuv_f1": MetricUnavailable("no_voiced_frames", counts)}
    if true_positives:
        cents = 1200.0 * (np.log2(ref_pitch[both].astype(np.float64))
                          - np.log2(gen_pitch[both].astype(np.float64)))
        scores["f0_rmse_cents"] = math.sqrt(np.mean(cents ** 2))
    if true_positives + false_positives + false_negatives:
        scores["vuv_f1"] = 2.0 * true_positives / (
            2.0 * true_positives + false_positives + false_negatives)
    return scores


def _value(name: str, **pair) -> float:
    value = pitch_scores(**pair)[name]
    if isinstance(value, MetricUnavailable):
        raise value
    return value


def f0_rmse_cents(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int) -> float:
    """Pitch RMSE in cents over the frames voiced in both signals; lower is better.

    ``pitch_scores(...)["f0_rmse_cents"]``; see :func:`pitch_scores` for parameters and raises.
    """
    return _value("f0_rmse_cents", reference=reference, generated=generated,
                  sample_rate=sample_rate)


def periodicity_rmse(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int) -> float:
    """RMS periodicity difference over all frames (in [0, 1]); lower is better.

    ``pitch_scores(...)["periodicity_rmse"]``; see :func:`pitch_scores` for parameters and
    raises.
    """
    return _value("periodicity_rmse", reference=reference, generated=generated,
                  sample_rate=sample_rate)


def vuv_f1(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int) -> float:
    """F1 of the generated voiced/unvoiced decisions against the reference's; higher is better.

    ``pitch_scores(...)["vuv_f1"]``; see :func:`pitch_scores` for parameters and raises.
    """
    return _value("vuv_f1", reference=reference, generated=generated,
                  sample_rate=sample_rate)
