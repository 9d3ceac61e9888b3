"""SPTK mel-cepstral analysis (``mcep``), compiled, frame by frame.

SPTK's ``mcep`` (Tokuda et al., 1994) fits the mel-cepstrum of each windowed frame by Newton-Raphson
iterations, one frame at a time in C. Every step of it is linear in its input except one
element-wise exponential and one small linear solve, so here the linear steps become matrices
that are built once per (frame length, order, alpha) (:func:`_operators`), and the whole loop
of each frame runs in a kernel compiled by numba on first use
(:func:`~metrics.mel_cepstrum_kernels.newton_frames`): two matrix-vector products, the
exponential, SPTK's stopping rule and a Cholesky solve per iteration, with nothing shared
between frames, so a frame's cepstrum does not depend on which other frames are analysed with
it. The result matches SPTK (as wrapped by pysptk) to about 1e-14, including its iteration
count: each frame stops by SPTK's own rule.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from metrics.framing import power
from wavebench_base.errors import InputError


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
    to_log_spectrum : np.ndarray [shape=(order + 1, n_fft // 2 + 1)]
        Mel-cepstrum -> real part of the FFT of its ``freqt`` with -alpha (the model's log
        amplitude spectrum) on the half spectrum, transposed: row i is what c[i] adds.
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
    to_log_spectrum = (cos @ _run_freqt(np.eye(order + 1), half, -alpha)).T
    to_gradient = _run_frqtr(inverse, 2 * order, alpha)
    # C order: the kernel reads each row whole
    operators = tuple(np.ascontiguousarray(m) for m in (init, to_log_spectrum, to_gradient))
    for m in operators:
        m.setflags(write=False)
    return operators


def _newton_step(r: np.ndarray, alpha_powers: np.ndarray) -> np.ndarray:
    """The Newton update of each frame: its Toeplitz-plus-Hankel system solved by
    :func:`~metrics.mel_cepstrum_kernels.solve_frame` (Cholesky, or elimination with partial
    pivoting where a pivot is not positive), frame by frame.

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
    from metrics import mel_cepstrum_kernels

    out = np.empty((r.shape[0], alpha_powers.size))
    mel_cepstrum_kernels.solve_frames(np.ascontiguousarray(r, dtype=np.float64),
                                      np.ascontiguousarray(alpha_powers, dtype=np.float64), out)
    return out


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
    determinant under 1e-6; this one (Cholesky, else elimination with partial pivoting) has no
    such refusal. With the periodogram
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
    from metrics import mel_cepstrum_kernels

    periodogram = power(np.fft.rfft(frames), eps)  # re^2 + im^2 + eps, as SPTK
    out = np.empty((frames.shape[0], order + 1))
    mel_cepstrum_kernels.newton_frames(
        periodogram, np.log(periodogram), *_operators(frames.shape[1], int(order), float(alpha)),
        _halved_c0_row(frames.shape[1]), (-alpha) ** np.arange(order + 1), int(min_iter),
        int(max_iter), float(threshold), out)
    return out


@lru_cache(maxsize=16)
def _halved_c0_row(n_fft: int) -> np.ndarray:
    """Row vector giving c[0] / 2 of the cepstrum from the half log-periodogram."""
    weights = np.full(n_fft // 2 + 1, 2.0)
    weights[0] = weights[-1] = 1.0
    row = weights / n_fft / 2.0
    row.setflags(write=False)
    return row
