"""The vectorized SPTK mcep against SPTK itself (through pysptk, test-only)."""
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from metrics.mel_cepstrum import mcep
from wavebench_base.errors import InputError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pysptk 1.0.1 imports the deprecated pkg_resources
    pysptk = pytest.importorskip("pysptk")

SPEECH = Path(__file__).resolve().parent / "data" / "speech16k"  # see tests/data/README.md


def _pysptk_mcep(frames, order, alpha):
    return np.array([pysptk.mcep(frame, order, alpha, etype=1, eps=1e-6) for frame in frames])


def _noise_frames(n_frames, n_fft, seed=0):
    """Coloured noise at int16 scale, with a silent and a near-silent frame for the floor."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((n_frames, n_fft + 8))
    coloured = np.stack([np.convolve(row, [1.0, -0.9, 0.3, 0.2], "valid")[:n_fft] for row in white])
    frames = 3000.0 * coloured * rng.uniform(0.01, 1.0, (n_frames, 1))
    frames[0] = 0.0
    frames[1] *= 1e-4
    return frames * np.hamming(n_fft)


@pytest.mark.parametrize("order, alpha", [(23, 0.42), (34, 0.46), (39, 0.55)])
def test_matches_pysptk_on_noise_frames(order, alpha):
    frames = _noise_frames(24, 1024)
    # SPTK's own results are double precision; 1e-6 is the target, agreement is ~1e-12
    np.testing.assert_allclose(mcep(frames, order=order, alpha=alpha),
                               _pysptk_mcep(frames, order, alpha), rtol=0, atol=1e-6)


def test_matches_pysptk_on_real_speech_frames():
    audio, _ = soundfile.read(SPEECH / "cannot-complete-as-dialed.flac")
    frames = (np.lib.stride_tricks.sliding_window_view(audio * 32768, 1024)[::256]
              * np.hamming(1024))
    # every frame, with its own iteration count: a different stopping decision would show as
    # an error of about 1e-3, far above this tolerance
    np.testing.assert_allclose(mcep(frames, order=23, alpha=0.42),
                               _pysptk_mcep(frames, 23, 0.42), rtol=0, atol=1e-6)


def test_other_frame_length_and_iteration_settings():
    frames = _noise_frames(6, 512, seed=1)
    expected = np.array([pysptk.mcep(f, 12, 0.35, miniter=3, maxiter=5, threshold=1e-4, etype=1,
                                     eps=1e-3) for f in frames])
    got = mcep(frames, order=12, alpha=0.35, eps=1e-3, min_iter=3, max_iter=5, threshold=1e-4)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)  # same 1e-6 target


@pytest.mark.parametrize("shape", [(1024,), (3, 1023), (3, 2)])
def test_bad_frame_shapes_are_errors(shape):
    with pytest.raises(InputError, match=r"mcep needs frames of shape \(n_frames, even n_fft\)"):
        mcep(np.zeros(shape), order=23, alpha=0.42)


@pytest.mark.parametrize("settings", [dict(order=0, alpha=0.42), dict(order=23, alpha=1.0),
                                      dict(order=23, alpha=0.42, min_iter=5, max_iter=2)])
def test_bad_settings_are_errors(settings):
    with pytest.raises(InputError, match="mcep settings out of range"):
        mcep(np.zeros((2, 1024)), **settings)
