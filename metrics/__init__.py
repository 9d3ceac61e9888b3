"""Objective metrics for generated audio: pure functions on numpy arrays, and their registry.

Every pair metric takes keyword-only ``reference=``, ``generated=`` and ``sample_rate=`` and
returns a float, or raises :class:`MetricUnavailable` (a NaN with a reason, see
:data:`REASONS`); :func:`score_pair` and :meth:`MetricSpec.evaluate` return
:class:`MetricResult` values with that reason as the status. Bad input raises :class:`InputError`.
"""
from metrics.cepstral_distance import c0_rmse_db, cdist, mcd, mcd_speech, mel_cepstral_scores
from metrics.dtw import mcd_dtw
from metrics.intelligibility import estoi, intelligibility_scores, stoi
from metrics.likelihood import bits_from_nats, nll_bits
from metrics.mel import mel_l1
from metrics.mel_cepstrum import mcep
from metrics.registry import DEFAULT_METRICS, METRICS, MetricResult, MetricSpec, get_metric, score_pair
from metrics.spectral import lsd, mrstft
from metrics.throughput import DEFINITIONS, audio_seconds, rtf, samples_per_s, x_realtime
from metrics.validation import INPUT_REASONS, REASONS, MetricUnavailable, check_pair
from wavebench_base.errors import InputError

__all__ = [
    "DEFAULT_METRICS", "DEFINITIONS", "INPUT_REASONS", "METRICS", "REASONS", "InputError",
    "MetricResult", "MetricSpec", "MetricUnavailable", "audio_seconds", "bits_from_nats",
    "c0_rmse_db", "cdist",
    "check_pair", "estoi", "get_metric", "intelligibility_scores", "lsd", "mcd", "mcd_dtw",
    "mcd_speech", "mcep", "mel_cepstral_scores", "mel_l1", "mrstft", "nll_bits", "rtf",
    "samples_per_s", "score_pair", "stoi", "x_realtime",
]
