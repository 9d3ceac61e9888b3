"""The vectorized SPTK mcep against SPTK itself (through pysptk, test-only)."""
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from metrics.mel_cepstrum import _newton_step, _operators, mcep
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


def _newton_systems(order, alpha, n_frames=80, seed=2):
    """SPTK's r(k) at the first Newton step of speech-like frames, and the alpha powers."""
    frames = _noise_frames(n_frames, 1024, seed=seed)
    periodogram = np.abs(np.fft.rfft(frames)) ** 2 + 1e-6
    init, to_log_spectrum, to_gradient = _operators(1024, order, alpha)
    mc = np.log(periodogram) @ init.T
    r = (periodogram / np.exp(2.0 * mc @ to_log_spectrum)) @ to_gradient.T
    return r, (-alpha) ** np.arange(order + 1)


def _lapack_steps(r, alpha_powers):
    """An independent build of SPTK's Toeplitz-plus-Hankel systems, solved by LAPACK (as
    ``np.linalg.solve``, which the previous implementation used for every frame)."""
    order = alpha_powers.size - 1
    i, s = np.arange(order + 1), np.arange(2 * order + 1)
    steps = []
    for row in r:
        toeplitz = np.where(i % 2 == 0, row[: order + 1] + row[0], row[: order + 1])
        toeplitz[0] = 2.0 * row[0]
        hankel = np.where(s % 2 == 0, row - row[0], row)
        matrix = toeplitz[np.abs(i[:, None] - i[None, :])] + hankel[i[:, None] + i[None, :]]
        steps.append(np.linalg.solve(matrix, row[: order + 1] - alpha_powers))
    return np.array(steps)


@pytest.mark.parametrize("order, alpha", [(23, 0.42), (34, 0.45), (39, 0.55)])
def test_cholesky_newton_step_equals_lapack_solve_frame_by_frame(order, alpha):
    r, alpha_powers = _newton_systems(order, alpha)
    expected = _lapack_steps(r, alpha_powers)
    np.testing.assert_allclose(_newton_step(r, alpha_powers), expected, rtol=0,
                               atol=1e-12 * np.max(np.abs(expected)))


@pytest.mark.parametrize("order, alpha", [(23, 0.42), (39, 0.55)])
def test_newton_step_of_a_frame_does_not_depend_on_the_other_frames(order, alpha):
    # bit for bit, whatever block of the solver a frame falls in (chunked equals unchunked)
    r, alpha_powers = _newton_systems(order, alpha, n_frames=75)
    whole = _newton_step(r, alpha_powers)
    for start, stop in [(0, 1), (5, 6), (3, 40), (31, 75), (70, 75)]:
        assert _newton_step(r[start:stop], alpha_powers).tobytes() == whole[start:stop].tobytes()


def _sequential_steps(r, alpha_powers):
    """The Newton steps by the documented operations, one rounded product at a time in
    Python floats (no fused multiply-add, no reordering): Cholesky-Crout, then the two
    triangular solves."""
    n = alpha_powers.size
    i, s = np.arange(n), np.arange(2 * n - 1)
    steps = []
    for row in r:
        toeplitz = np.where(i % 2 == 0, row[:n] + row[0], row[:n])
        toeplitz[0] = 2.0 * row[0]
        hankel = np.where(s % 2 == 0, row - row[0], row)
        matrix = toeplitz[np.abs(i[:, None] - i[None, :])] + hankel[i[:, None] + i[None, :]]
        u = [[0.0] * n for _ in range(n)]
        for j in range(n):
            for k in range(j, n):
                value = float(matrix[j, k])
                for m in range(j):
                    value = value - u[m][j] * u[m][k]
                u[j][k] = float(np.sqrt(value)) if k == j else value / u[j][j]
        y = []
        for k in range(n):
            value = float(row[k] - alpha_powers[k])
            for m in range(k):
                value = value - y[m] * u[m][k]
            y.append(value / u[k][k])
        x = [0.0] * n
        for k in range(n - 1, -1, -1):
            value = y[k]
            for m in range(k + 1, n):
                value = value - u[k][m] * x[m]
            x[k] = value / u[k][k]
        steps.append(x)
    return np.array(steps)


def test_newton_step_rounds_as_documented_whatever_compiled_first():
    # numba compiles a function first called from a fast-math one (mcep's Newton loop) with
    # fast-math flags; the solve must still round each product and difference in order, so
    # that every lane count (4, 8, 16, 32 frames at once) gives the same bits
    mcep(_noise_frames(3, 1024), order=23, alpha=0.42)
    r, alpha_powers = _newton_systems(23, 0.42, n_frames=45)
    expected = _sequential_steps(r, alpha_powers)
    for rows in (slice(0, 45), slice(0, 1), slice(40, 45), slice(3, 14), slice(20, 36)):
        np.testing.assert_array_equal(_newton_step(r[rows], alpha_powers), expected[rows])


def test_a_system_that_is_not_positive_definite_falls_back_to_lu():
    r, alpha_powers = _newton_systems(23, 0.42, n_frames=3)
    r[1] = -r[1]  # its matrix is then negative definite: Cholesky fails on its first pivot
    got = _newton_step(r, alpha_powers)
    np.testing.assert_allclose(got, _lapack_steps(r, alpha_powers), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got[[0, 2]], _newton_step(r[[0, 2]], alpha_powers))


@pytest.mark.parametrize("order, alpha", [(23, 0.42), (34, 0.46)])
def test_mcep_matches_pysptk_to_1e_9_on_speech(order, alpha):
    # the stated tolerance of the compiled path against SPTK itself: 1e-9 absolute on
    # cepstra of order 1 in magnitude (agreement is about 1e-14)
    audio, _ = soundfile.read(SPEECH / "vm-login.flac")
    frames = (np.lib.stride_tricks.sliding_window_view(audio * 32768, 1024)[::256]
              * np.hamming(1024))
    np.testing.assert_allclose(mcep(frames, order=order, alpha=alpha),
                               _pysptk_mcep(frames, order, alpha), rtol=0, atol=1e-9)


def test_compiled_exp_matches_numpy_and_keeps_its_special_values():
    from numba import njit

    from metrics.mel_cepstrum_kernels import _REDUCE, exp_into

    @njit(fastmath=_REDUCE)  # inlined into a caller with _gradients' flags, as it runs there
    def in_context(x, out):
        exp_into(x, out)

    x = np.random.default_rng(3).uniform(-700.0, 700.0, 4099)
    out = np.empty_like(x)
    in_context(x, out)
    np.testing.assert_allclose(out, np.exp(x), rtol=5e-16, atol=0)
    exp_into(x, out)  # compiled alone, without flags
    np.testing.assert_allclose(out, np.exp(x), rtol=5e-16, atol=0)
    special = np.array([np.nan, 800.0, -800.0, 0.0, 1.0])  # outside the fast range: np.exp
    exp_into(special, out[:5])
    np.testing.assert_array_equal(out[:3], [np.nan, np.inf, 0.0])
    np.testing.assert_allclose(out[3:5], [1.0, np.e], rtol=5e-16, atol=0)


def test_a_frame_does_not_depend_on_its_group_or_block():
    # bit for bit, whatever frames share its group of four, its place in the group, or its
    # block of 32 (and so whatever iteration its neighbours stop at)
    audio, _ = soundfile.read(SPEECH / "vm-login.flac")
    frames = (np.lib.stride_tricks.sliding_window_view(audio * 32768, 1024)[::256]
              * np.hamming(1024))[:70]
    whole = mcep(frames, order=23, alpha=0.42)
    for start, stop in [(1, 70), (2, 9), (3, 4), (30, 35), (31, 64), (5, 6)]:
        assert mcep(frames[start:stop], order=23, alpha=0.42).tobytes() == \
            whole[start:stop].tobytes()
