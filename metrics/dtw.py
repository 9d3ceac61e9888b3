"""MCD after exact dynamic time warping (``mcd_dtw``), for output that is not time-aligned."""
from __future__ import annotations

import numpy as np

from metrics.cepstral_distance import FRAME_LENGTH, KUBICHEK, mel_cepstra
from metrics.framing import frame_count
from metrics.validation import HOP, check_pair
from wavebench_base.errors import InputError

#: Most cells of the DTW grid (reference frames x generated frames) ``mcd_dtw`` allocates: its
#: cost and accumulated-cost matrices take 16 bytes a cell, 1 GiB at this bound, which is about
#: 2 minutes of 16 kHz audio against 2 minutes. Longer pairs are refused, not attempted: exact
#: DTW needs the whole grid.
MAX_DTW_CELLS = 2 ** 26


def dtw_path(cost: np.ndarray) -> tuple[float, np.ndarray]:
    """Exact DTW with steps (1, 1), (1, 0), (0, 1), each adding the cost of the cell it enters.

    The accumulated cost is computed one anti-diagonal at a time, so every diagonal is one
    vectorized step (cells on one anti-diagonal do not depend on each other).

    Parameters
    ----------
    cost : np.ndarray [shape=(n, m)]
        Non-negative local cost of matching frame i of the first sequence with frame j of the second.

    Returns
    -------
    total : float
        Accumulated cost of the best path from (0, 0) to (n - 1, m - 1).
    path : np.ndarray [shape=(length, 2)], int
        The (i, j) pairs of the best path, in order; ties prefer the diagonal step.
    """
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)  # row/column 0: outside the grid
    acc[0, 0] = 0.0
    for diagonal in range(n + m - 1):
        i = np.arange(max(0, diagonal - m + 1), min(diagonal, n - 1) + 1)
        j = diagonal - i
        best = np.minimum(np.minimum(acc[i, j], acc[i, j + 1]), acc[i + 1, j])
        acc[i + 1, j + 1] = cost[i, j] + best
    return float(acc[n, m]), _backtrack(acc)


def _backtrack(acc: np.ndarray) -> np.ndarray:
    i, j = acc.shape[0] - 1, acc.shape[1] - 1
    path = [(i - 1, j - 1)]
    while (i, j) != (1, 1):
        steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))  # diagonal first on ties
        i, j = min(steps, key=lambda cell: acc[cell])
        path.append((i - 1, j - 1))
    return np.array(path[::-1])


def mcd_dtw(*, reference: np.ndarray, generated: np.ndarray, sample_rate: int) -> float:
    """MCD in dB along the exact DTW alignment of the two mel-cepstrum sequences; lower is better.

    The local cost is the frame MCD (Kubichek, c0 excluded); the value is the mean local cost
    over the pairs on the best path. Never print it as plain "MCD": the warping lowers it.

    Parameters
    ----------
    reference, generated : np.ndarray [shape=(n,)], float
        Mono waveforms in [-1, 1] at ``sample_rate``; any lengths of at least 1024 samples.
    sample_rate : int
        16000, 22050, 24000, 44100 or 48000 Hz.

    Returns
    -------
    float
        dB, 0 for identical audio.

    Raises
    ------
    InputError
        Bad arrays, an unsupported rate, or ``too_long``: a grid of more than
        :data:`MAX_DTW_CELLS` cells (refused before anything is allocated).
    MetricUnavailable
        ``too_short``, ``silent_reference``, ``nonfinite_*``.
    """
    reference, generated, sample_rate = check_pair(reference, generated, sample_rate,
                                                   max_length_difference=None,
                                                   min_length=FRAME_LENGTH)
    _check_grid_size(*(frame_count(x.size, FRAME_LENGTH, HOP) for x in (reference, generated)))
    ref = mel_cepstra(reference, sample_rate)[0][:, 1:]
    gen = mel_cepstra(generated, sample_rate)[0][:, 1:]
    import scipy.spatial.distance  # here: 0.19 s of start-up (Xeon 6/167, AVX-512)

    cost = KUBICHEK * scipy.spatial.distance.cdist(ref, gen)  # Euclidean, every pair of frames
    _, path = dtw_path(cost)
    return float(np.mean(cost[path[:, 0], path[:, 1]]))


def _check_grid_size(n_reference: int, n_generated: int) -> None:
    """Refuse a DTW grid beyond :data:`MAX_DTW_CELLS` with :class:`InputError` ``too_long``."""
    cells = n_reference * n_generated
    if cells > MAX_DTW_CELLS:
        raise InputError(f"exact DTW of {n_reference} x {n_generated} frames needs {cells} cells "
                         f"({16 * cells / 2 ** 30:.1f} GiB), more than mcd_dtw allocates "
                         f"({MAX_DTW_CELLS} cells, {16 * MAX_DTW_CELLS / 2 ** 30:.0f} GiB); "
                         "score shorter clips", reason="too_long")
