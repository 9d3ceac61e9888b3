"""Mel-cepstral distortion (MCD, Kubichek 1993) on SPTK mel-cepstra, and its gain term c0.

Settings (the design's, fixed so that numbers compare across papers and runs): Hamming window of
1024 samples, hop 256, frames taken from the start without padding, input scaled to the 16-bit
range, SPTK ``mcep`` with ``etype=1, eps=1e-6`` and the order / alpha of :data:`MCEP_SETTINGS`.
MCD excludes c0, so a gain change hardly moves it; :func:`c0_rmse_db` reports the gain error.
Frame alignment: lengths that differ by up to one hop are trimmed to the shorter before framing,
so both sides have the same frames; a larger difference is an error (use ``mcd_dtw`` for output
that is not time-aligned).
"""
from __future__ import annotations

import numpy as np

from metrics.framing import framewise
from metrics.mel_cepstrum import mcep
from metrics.validation import HOP, check_pair
from wavebench_base.errors import InputError

#: Mel-cepstrum (order, alpha) per sampling rate.
MCEP_SETTINGS = {16000: (23, 0.42), 22050: (34, 0.45), 24000: (34, 0.46), 44100: (39, 0.53),
                 48000: (39, 0.55)}
FRAME_LENGTH = 1024
#: Kubichek's constant: 10 sqrt(2) / ln 10 turns a natural-log cepstral distance into dB.
KUBICHEK = 10.0 * np.sqrt(2.0) / np.log(10.0)
#: Float audio in [-1, 1] is scaled to the int16 range before analysis, as SPTK tools see it.
INT16_SCALE = 32768.0
#: ``mcd_speech`` keeps frames whose reference energy is within this many dB of the loudest.
SPEECH_RANGE_DB = 40.0


def mcep_settings(sample_rate: int) -> tuple[int, float]:
    """Mel-cepstrum (order, alpha) for ``sample_rate``, or raise :class:`InputError`."""
    try:
        return MCEP_SETTINGS[sample_rate]
    except KeyError:
        rates = ", ".join(str(rate) for rate in MCEP_SETTINGS)
        raise InputError(f"no mel-cepstrum settings for {sample_rate} Hz; MCD supports {rates} Hz: "
                         "resample first", reason="unsupported_rate") from None


def mel_cepstra(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Mel-cepstra of every frame of ``audio`` with the MCD settings.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)], float
        Mono waveform in [-1, 1], at least :data:`FRAME_LENGTH` samples.
    sample_rate : int
        One of the rates in :data:`MCEP_SETTINGS`.

    Returns
    -------
    cepstra : np.ndarray [shape=(1 + (n - 1024) // 256, order + 1)]
        c0 first (natural-log units).
    energy_db : np.ndarray [shape=(n_frames,)]
        Energy of each windowed frame in dB (for :func:`mcd_speech`).

    Computed :data:`~metrics.framing.CHUNK_FRAMES` frames at a time; only these per-frame
    results are kept, so memory stays bounded on long audio.
    """
    order, alpha = mcep_settings(sample_rate)
    # INT16_SCALE is a power of two: scaling the window instead of each frame is exact
    window = INT16_SCALE * np.hamming(FRAME_LENGTH)

    def analyse(framed: np.ndarray):
        windowed = framed * window
        with np.errstate(divide="ignore"):
            energy_db = 10.0 * np.log10(np.sum(windowed ** 2, axis=1))
        return mcep(windowed, order=order, alpha=alpha, eps=1e-6), energy_db

    return framewise(analyse, audio, length=FRAME_LENGTH, hop=HOP)


def cdist(c1: np.ndarray, c2: np.ndarray, *, per_frame: bool = False):
    """SPTK ``cdist`` in dB: K sqrt(sum_{m>=1} (c1_m - c2_m)^2) per frame, K = 10 sqrt(2) / ln 10.

    Parameters
    ----------
    c1, c2 : np.ndarray [shape=(n_frames, order + 1)]
        Cepstra, c0 first (c0 is excluded).
    per_frame : bool
        Return the distance of each frame instead of their mean.

    Returns
    -------
    float or np.ndarray [shape=(n_frames,)]
        Lower is better; 0 for identical cepstra.
    """
    if c1.shape != c2.shape or c1.ndim != 2:
        raise InputError(f"cdist needs two cepstra of one shape (frames, order + 1), "
                         f"got {c1.shape} and {c2.shape}")
    distance = KUBICHEK * np.sqrt(np.sum((c1[:, 1:] - c2[:, 1:]) ** 2, axis=1))
    return distance if per_frame else float(np.mean(distance))


def _pair_cepstra(reference, generated, sample_rate):
    reference, generated, sample_rate = check_pair(reference, generated, sample_rate,
                                                   min_length=FRAME_LENGTH)
    mcep_settings(sample_rate)  # fail on the rate before any work
    ref_cepstra, ref_energy_db = mel_cepstra(reference, sample_rate)
    gen_cepstra, _ = mel_cepstra(generated, sample_rate)
    return ref_cepstra, gen_cepstra, ref_energy_db


def mel_cepstral_scores(*, reference: np.ndarray, generated: np.ndarray,
                        sample_rate: int) -> dict[str, float]:
    """``mcd``, ``c0_rmse_db`` and ``mcd_speech`` from one mel-cepstral analysis of the pair.

    Parameters
    ----------
    reference, generated : np.ndarray [shape=(n,)], float
        Mono waveforms in [-1, 1]; lengths may differ by at most one hop (256), and both are
        trimmed to the shorter.
    sample_rate : int
        One of the rates in :data:`MCEP_SETTINGS`.

    Returns
    -------
    dict[str, float]
        All in dB, lower is better.

    Raises
    ------
    InputError
        Bad arrays, lengths that differ by more than one hop, an unsupported rate.
    MetricUnavailable
        ``too_short`` (under one 1024-sample frame), ``silent_reference``, ``nonfinite_*``.
    """
    ref, gen, ref_energy_db = _pair_cepstra(reference, generated, sample_rate)
    speech = ref_energy_db >= np.max(ref_energy_db) - SPEECH_RANGE_DB
    return {"mcd": cdist(ref, gen), "c0_rmse_db": _c0_rmse_db(ref, gen),
            "mcd_speech": cdist(ref[speech], gen[speech])}


def _c0_rmse_db(ref: np.ndarray, gen: np.ndarray) -> float:
    return float(20.0 / np.log(10.0) * np.sqrt(np.mean((ref[:, 0] - gen[:, 0]) ** 2)))


def mcd(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int) -> float:
    """Mel-cepstral distortion in dB (c0 excluded), mean over frames; lower is better.

    Parameters
    ----------
    reference, generated : np.ndarray [shape=(n,)], float
        Mono waveforms in [-1, 1] at ``sample_rate``, time-aligned; lengths may differ by at most
        one hop (256) and are trimmed to the shorter.
    sample_rate : int
        16000, 22050, 24000, 44100 or 48000 Hz.

    Returns
    -------
    float
        MCD in dB, 0 for identical audio.

    Raises
    ------
    InputError
        Bad arrays, lengths that differ by more than one hop, an unsupported rate.
    MetricUnavailable
        ``too_short`` (under 1024 samples), ``silent_reference``, ``nonfinite_*``.

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal(16000) * 0.1
    >>> mcd(reference=x, generated=x, sample_rate=16000)
    0.0
    """
    ref, gen, _ = _pair_cepstra(reference, generated, sample_rate)
    return cdist(ref, gen)


def c0_rmse_db(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int) -> float:
    """RMS difference of the mel-cepstral c0 (log gain), in dB: (20 / ln 10) RMS(c0_ref - c0_gen).

    A constant gain g on ``generated`` gives |20 log10 g|; lower is better. Parameters, raises:
    as :func:`mcd`.

    Returns
    -------
    float
        dB, 0 for identical audio.
    """
    ref, gen, _ = _pair_cepstra(reference, generated, sample_rate)
    return _c0_rmse_db(ref, gen)


def mcd_speech(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int) -> float:
    """MCD over the frames whose reference energy is within 40 dB of the loudest frame.

    Leaves out the pauses, where MCD mostly measures the noise floor. Lower is better.
    Parameters, raises: as :func:`mcd`.

    Returns
    -------
    float
        dB, 0 for identical audio.
    """
    return mel_cepstral_scores(reference=reference, generated=generated,
                               sample_rate=sample_rate)["mcd_speech"]
