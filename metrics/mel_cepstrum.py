"""SPTK mel-cepstral analysis (``mcep``), vectorized over all frames at once.

SPTK's ``mcep`` (Tokuda et al., 1994) fits the mel-cepstrum of each windowed frame by Newton-Raphson
iterations, one frame at a time in C. Every step of it is linear in its input except one
element-wise exponential and one small linear solve, so here the linear steps become matrices that
are built once per (frame length, order, alpha) and applied to all frames at once (with
:func:`~metrics.framing.rowwise_product`, so that a frame's cepstrum does not depend on which
other frames share the product), and the solves are batched: a Cholesky kernel compiled by numba
on first use, frames side by side (:func:`_newton_step`). The result matches SPTK (as wrapped
by pysptk) to about 1e-12, including its iteration count: each frame stops by SPTK's own rule.
"""
from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache

import numpy as np

from metrics.framing import rowwise_product
from wavebench_base.errors import InputError


@lru_cache(maxsize=1)
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional (it comes with librosa's scikit-learn): only speed is lost
        return None
    return ThreadpoolController()


def _one_blas_thread():
    """Context that runs BLAS on one thread: these products are small (frames x 24 x 513), and
    OpenBLAS threads made them up to 10 times slower on busy cores."""
    controller = _blas_controller()
    return nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")


def _run_freqt(c1: np.ndarray, m2: int, alpha: float) -> np.ndarray:
    """SPTK ``freqt`` (cepstrum frequency warping) applied to the columns of ``c1``.

    Parameters
    ----------
    c1 : np.ndarray [shape=(m1 + 1, k)]
        Input cepstra, one per column.
    m2 : int
        Order of the output.
    alpha : float
        All-pass constant.

    Returns
    -------
    np.ndarray [shape=(m2 + 1, k)]
    """
    g = np.zeros((m2 + 1, c1.shape[1]))
    beta = 1.0 - alpha * alpha
    for row in c1[::-1]:  # SPTK feeds the highest order first
        d = g.copy()
        g[0] = row + alpha * d[0]
        if m2 >= 1:
            g[1] = beta * d[0] + alpha * d[1]
        for j in range(2, m2 + 1):
            g[j] = d[j - 1] + alpha * (d[j] - g[j - 1])
    return g


def _run_frqtr(c1: np.ndarray, m2: int, alpha: float) -> np.ndarray:
    """SPTK ``frqtr`` (warping of the gradient coefficients) applied to the columns of ``c1``.

    Parameters
    ----------
    c1 : np.ndarray [shape=(m1 + 1, k)]
    m2 : int
    alpha : float

    Returns
    -------
    np.ndarray [shape=(m2 + 1, k)]
    """
    g = np.zeros((m2 + 1, c1.shape[1]))
    for row in c1[::-1]:
        d = g.copy()
        g[0] = row
        for j in range(1, m2 + 1):
            g[j] = d[j - 1] + alpha * (d[j] - g[j - 1])
    return g


@lru_cache(maxsize=16)
def _operators(n_fft: int, order: int, alpha: float):
    """The linear maps of one Newton step, as matrices (cached: building one takes ~0.1 s).

    Returns
    -------
    init : np.ndarray [shape=(order + 1, n_fft // 2 + 1)]
        Half log-periodogram -> initial mel-cepstrum (inverse FFT, halving of c[0] and c[n/2],
        ``freqt`` with +alpha).
    to_log_spectrum : np.ndarray [shape=(n_fft // 2 + 1, order + 1)]
        Mel-cepstrum -> real part of the FFT of its ``freqt`` with -alpha (the model's log
        amplitude spectrum) on the half spectrum.
    to_gradient : np.ndarray [shape=(2 * order + 1, n_fft // 2 + 1)]
        Half spectrum ratio -> inverse FFT -> ``frqtr`` with +alpha (SPTK's r(k)).
    """
    half = n_fft // 2
    k = np.arange(half + 1)
    cos = np.cos(2.0 * np.pi * np.outer(k, k) / n_fft)  # symmetric: FFT and inverse share it
    # inverse real FFT of a symmetric spectrum given by its half: bins 1..n/2-1 count twice
    weights = np.full(half + 1, 2.0)
    weights[0] = weights[half] = 1.0
    inverse = cos * weights / n_fft
    halving = np.ones(half + 1)
    halving[0] = halving[half] = 0.5
    init = _run_freqt(np.diag(halving) @ inverse, order, alpha)
    to_log_spectrum = cos @ _run_freqt(np.eye(order + 1), half, -alpha)
    to_gradient = _run_frqtr(inverse, 2 * order, alpha)
    # each kept as the transpose of a C-ordered array, which is what rowwise_product hands BLAS
    return tuple(np.ascontiguousarray(m.T).T for m in (init, to_log_spectrum, to_gradient))


def _newton_step(r: np.ndarray, alpha_powers: np.ndarray) -> np.ndarray:
    """Solve SPTK's Toeplitz-plus-Hankel normal equations for the update of each frame.

    The matrix of a frame is the Hessian of SPTK's convex cost: symmetric positive definite.
    The systems are built and solved by Cholesky factorization in a compiled kernel
    (:func:`_solve_steps`) that runs the same operations on every frame, frames innermost, so
    a frame's update does not depend on the other frames. A frame whose factorization meets a
    pivot that is not positive (never seen) is solved by LU with partial pivoting instead, as
    ``np.linalg.solve`` did for every frame before.

    Parameters
    ----------
    r : np.ndarray [shape=(frames, 2 * order + 1)]
        SPTK's r(k) for each frame.
    alpha_powers : np.ndarray [shape=(order + 1,)]
        1, -alpha, alpha^2, ...

    Returns
    -------
    np.ndarray [shape=(frames, order + 1)]
    """
    n = alpha_powers.size
    r_t = np.ascontiguousarray(r.T, dtype=np.float64)
    out = np.empty((n, r.shape[0]))
    failed = np.zeros(r.shape[0], dtype=np.bool_)
    _compiled_solver()(r_t, np.ascontiguousarray(alpha_powers, dtype=np.float64), out, failed)
    out = out.T.copy()
    for f in np.flatnonzero(failed):
        i = np.arange(n)
        toeplitz = r[f, :n].copy()
        toeplitz[2::2] += r[f, 0]
        toeplitz[0] *= 2.0
        hankel = r[f].copy()
        hankel[0::2] -= r[f, 0]
        matrix = toeplitz[np.abs(i[:, None] - i[None, :])] + hankel[i[:, None] + i[None, :]]
        out[f] = np.linalg.solve(matrix, r[f, :n] - alpha_powers)
    return out


#: Frames :func:`_solve_steps` factorizes side by side (the length of its innermost loops).
_SOLVE_BLOCK = 32


def _solve_steps(r_t, alpha_powers, out, failed):  # pragma: no cover - compiled by numba
    """Per frame f: out[:, f] = A^-1 b, A[i, j] = t[|i - j|] + h[i + j], b = r[:m + 1] - alpha^i.

    ``r_t`` is r transposed (coefficient, frame). ``t`` and ``h`` are the Toeplitz and Hankel
    sequences SPTK's ``mcep`` forms: t[0] = 2 r0, t[d] = r_d + r0 for even d >= 2, r_d for odd
    d; h[s] = r_s - r0 for even s, r_s for odd s. A = U^T U by Cholesky, U in the upper
    triangle. Frames are the innermost index of every array and every loop, in blocks of
    :data:`_SOLVE_BLOCK`: each frame goes through the same element-wise operations in the same
    order (no sums across frames, no fused multiply-adds), so its result does not depend on its
    block. ``failed[f]`` is set where a pivot is not positive (out[:, f] is then garbage).
    """
    n = alpha_powers.size
    frames = r_t.shape[1]
    width = _SOLVE_BLOCK
    t = np.empty((n, width))
    h = np.empty((2 * n - 1, width))
    a = np.empty((n, n, width))
    x = np.empty((n, width))
    for low in range(0, frames, width):
        w = min(width, frames - low)
        for f in range(w):
            t[0, f] = 2.0 * r_t[0, low + f]
        for d in range(1, n):
            for f in range(w):
                t[d, f] = r_t[d, low + f] + r_t[0, low + f] if d % 2 == 0 else r_t[d, low + f]
        for s in range(2 * n - 1):
            for f in range(w):
                h[s, f] = r_t[s, low + f] - r_t[0, low + f] if s % 2 == 0 else r_t[s, low + f]
        for i in range(n):
            for j in range(i, n):
                for f in range(w):
                    a[i, j, f] = t[j - i, f] + h[i + j, f]
        for j in range(n):
            for f in range(w):
                pivot = a[j, j, f]
                if not pivot > 0.0:
                    failed[low + f] = True
                    pivot = 1.0
                a[j, j, f] = np.sqrt(pivot)
            for k in range(j + 1, n):
                for f in range(w):
                    a[j, k, f] /= a[j, j, f]
            for i in range(j + 1, n):
                for k in range(i, n):
                    for f in range(w):
                        a[i, k, f] -= a[j, i, f] * a[j, k, f]
        for i in range(n):
            for f in range(w):
                x[i, f] = r_t[i, low + f] - alpha_powers[i]
        for i in range(n):  # U^T y = b, a row of U at a time
            for f in range(w):
                x[i, f] /= a[i, i, f]
            for k in range(i + 1, n):
                for f in range(w):
                    x[k, f] -= x[i, f] * a[i, k, f]
        for i in range(n - 1, -1, -1):  # U x = y
            for k in range(i + 1, n):
                for f in range(w):
                    x[i, f] -= a[i, k, f] * x[k, f]
            for f in range(w):
                x[i, f] /= a[i, i, f]
        for i in range(n):
            for f in range(w):
                out[i, low + f] = x[i, f]


@lru_cache(maxsize=1)
def _compiled_solver():
    """:func:`_solve_steps` compiled by numba on first use (cached on disk), so that importing
    the metrics does not import numba."""
    import numba

    return numba.njit(cache=True, nogil=True, error_model="numpy")(_solve_steps)


def mcep(frames: np.ndarray, *, order: int, alpha: float, eps: float = 1e-6, min_iter: int = 2,
         max_iter: int = 30, threshold: float = 1e-3) -> np.ndarray:
    """Mel-cepstra of windowed frames, as SPTK ``mcep`` with ``etype=1`` (``-e eps``), itype 0.

    Parameters
    ----------
    frames : np.ndarray [shape=(n_frames, n_fft)]
        Windowed frames; ``n_fft`` (the FFT length) is the frame length and must be even.
    order : int
        Order M of the mel-cepstrum (M + 1 coefficients).
    alpha : float
        All-pass constant, |alpha| < 1.
    eps : float
        Added to the periodogram before the logarithm (SPTK ``-e``); keeps silent frames finite.
    min_iter, max_iter : int
        Minimum and maximum number of Newton-Raphson iterations (SPTK ``-i``, ``-j``).
    threshold : float
        End condition on the relative change of r(0) between iterations (SPTK ``-d``).

    Returns
    -------
    np.ndarray [shape=(n_frames, order + 1)]
        The mel-cepstrum of each frame, c0 first.

    Raises
    ------
    InputError
        If ``frames`` is not 2-D with an even frame length, or a setting is out of range.

    Notes
    -----
    SPTK's Toeplitz-plus-Hankel solver (``theq``) refuses a system whose 2 x 2 pivots have a
    determinant under 1e-6; this one uses LAPACK and has no such refusal. With the periodogram
    floored by ``eps`` the systems are well conditioned, and on every frame tested the two agree.

    Examples
    --------
    >>> frames = np.hamming(1024) * np.random.default_rng(0).standard_normal((3, 1024))
    >>> mcep(frames, order=23, alpha=0.42).shape
    (3, 24)
    """
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or frames.shape[1] < 4 or frames.shape[1] % 2:
        raise InputError(f"mcep needs frames of shape (n_frames, even n_fft), got {frames.shape}")
    if not (order >= 1 and abs(alpha) < 1 and eps >= 0 and 1 <= min_iter <= max_iter):
        raise InputError(f"mcep settings out of range: order={order}, alpha={alpha}, eps={eps}, "
                         f"min_iter={min_iter}, max_iter={max_iter}")
    init, to_log_spectrum, to_gradient = _operators(frames.shape[1], int(order), float(alpha))
    with _one_blas_thread():
        return _newton(frames, init, to_log_spectrum, to_gradient, (-alpha) ** np.arange(order + 1),
                       eps, min_iter, max_iter, threshold)


def _newton(frames, init, to_log_spectrum, to_gradient, alpha_powers, eps, min_iter, max_iter,
            threshold):
    """SPTK's initial estimate and Newton-Raphson loop for all frames (see :func:`mcep`)."""
    periodogram = np.abs(np.fft.rfft(frames)) ** 2 + eps
    log_periodogram = np.log(periodogram)
    mc = rowwise_product(log_periodogram, init)
    # SPTK's first reference value is c[0] of the halved cepstrum (kept for identical stopping)
    previous = rowwise_product(log_periodogram, _halved_c0_row(frames.shape[1])[None, :])[:, 0]
    active = np.arange(frames.shape[0])
    for iteration in range(1, max_iter + 1):
        if active.size == 0:
            break
        model = np.exp(2.0 * rowwise_product(mc[active], to_log_spectrum))
        r = rowwise_product(periodogram[active] / model, to_gradient)
        if iteration >= min_iter:
            with np.errstate(divide="ignore", invalid="ignore"):
                done = np.abs((r[:, 0] - previous[active]) / r[:, 0]) < threshold
            previous[active] = r[:, 0]
            active, r = active[~done], r[~done]
        mc[active] += _newton_step(r, alpha_powers)
    return mc


@lru_cache(maxsize=16)
def _halved_c0_row(n_fft: int) -> np.ndarray:
    """Row vector giving c[0] / 2 of the cepstrum from the half log-periodogram."""
    weights = np.full(n_fft // 2 + 1, 2.0)
    weights[0] = weights[-1] = 1.0
    return weights / n_fft / 2.0
