"""The compiled half of :mod:`metrics.framing`: the product with a filterbank, band by band, and
the power of a complex spectrum.

Imported on the first :func:`~metrics.framing.band_product` call, so that importing the metrics
does not import numba.
"""
from __future__ import annotations

from numba import njit

#: Sums may be reordered (to vectorize them) and multiply-adds fused; NaN and infinity keep
#: their meaning. Every row goes through the same compiled loop, so its rounding does not
#: depend on the other rows.
_REDUCE = {"reassoc", "contract", "nsz"}


@njit(cache=True, nogil=True, fastmath=_REDUCE, error_model="numpy")
def band_sums(a, b, lo, hi, out):
    """``out[i, j] = sum(a[i, lo[j]:hi[j]] * b[j, lo[j]:hi[j]])`` for every row ``i`` of ``a``
    and band ``j`` of ``b``."""
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            total = 0.0
            for k in range(max(lo[j], 0), hi[j]):
                total += a[i, k] * b[j, k]
            out[i, j] = total


@njit(cache=True, nogil=True, error_model="numpy")
def power_into(spectrum, offset, out):
    """``out = re^2 + im^2 + offset`` of the complex ``spectrum`` (2-D), in that order, each
    operation rounded (no fast-math: the bytes are NumPy's for the same expression)."""
    for i in range(spectrum.shape[0]):
        for k in range(spectrum.shape[1]):
            z = spectrum[i, k]
            out[i, k] = z.real * z.real + z.imag * z.imag + offset
