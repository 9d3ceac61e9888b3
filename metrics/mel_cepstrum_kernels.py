"""The compiled half of :mod:`metrics.mel_cepstrum`: SPTK's Newton loop, in one kernel.

Imported on the first ``mcep`` call, so that importing the metrics does not import numba.

:func:`newton_frames` carries blocks of frames through the loop in lockstep. Per iteration:
the two products with the cached operators, the exponential and SPTK's stopping rule for each
frame still running, :data:`GROUP` frames to a pass over the operators
(:func:`_gradients`), then the solve of their Toeplitz-plus-Hankel systems side by side
(:func:`solve_lanes`). No Python runs per iteration, nothing is gathered, and BLAS is not
called. Every frame goes through the same operations whatever frames share its group or
block (a short group repeats a frame; the solve's lanes never mix), so a frame's cepstrum does
not depend on which frames are analysed with it: chunked equals unchunked, bit for bit.

- The log spectrum is a sum of scaled operator rows (four rows a pass, to quarter the stores);
  r(k) is dot products, two operator rows a pass. Their sums may be reordered by LLVM to
  vectorize them (rounding only: about 1e-15 relative).
- ``exp`` (:func:`exp_into`) is a Cody-Waite reduction and a degree-13 Taylor polynomial,
  with ``2^n`` assembled from its bits (n converted to an integer by adding 2^52 + 2^51, as
  AVX2 converts no vector of doubles to int64: 1.06 to 0.81 microseconds for 513 values in an
  ad hoc timing on an AMD EPYC, Zen 3, AVX2), which LLVM vectorizes; numba's own ``np.exp`` is
  a scalar libm call per bin. Compiled alone it is within 2.3e-16 relative of NumPy's; inlined
  into the fast-math products (as here: the pass runs about 1.5 times faster), 9e-16.
  Arguments outside the normal range (never met in practice) take ``np.exp``.
- The solve is a Cholesky factorization (the matrix is the Hessian of SPTK's convex cost, so
  symmetric positive definite); a pivot that is not positive sends the frame to Gaussian
  elimination with partial pivoting, as LAPACK's ``gesv`` would solve it. Its multiply-adds
  run on vectors of 4 to 32 frames written in LLVM IR (:func:`_make_lanes_update`), each
  product rounded and subtracted in order: 0.8 to 1.1 microseconds a frame for 32 frames,
  against 2.2 to 2.9 for numba's loops before (ad hoc timing, AMD EPYC Zen 3, AVX2).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

#: Reductions may be reordered and multiply-adds fused; NaN and infinity keep their meaning.
_REDUCE = {"reassoc", "contract", "nsz"}

_LOG2E = 1.4426950408889634
_LN2_HI = 0.693147180369123816490  # 32 significant bits: n * _LN2_HI is exact for |n| < 2^21
_LN2_LO = 1.90821492927058770002e-10
_EXP_LOW, _EXP_HIGH = -708.0, 709.0  # 2^n stays a normal number for n in [-1022, 1023]
#: 2^52 + 2^51: an integer-valued n + _SHIFTER (|n| < 2^51) holds n in its low mantissa bits,
#: so n as an int64 is its bits minus _SHIFTER's (AVX2 has no vector double -> int64 conversion)
_SHIFTER = 6755399441055744.0
_SHIFTER_BITS = 0x4338000000000000


@intrinsic
def _from_bits(typingctx, bits):
    """The float64 whose IEEE-754 bits are the int64 ``bits``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _to_bits(typingctx, value):
    """The IEEE-754 bits of the float64 ``value``, as an int64."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (``llvm.fma``): a call that fast-math flags cannot reorder."""
    if not a == b == c == types.float64:
        return None

    def codegen(context, builder, signature, args):
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.DoubleType(), [ir.DoubleType()] * 3),
            "llvm.fma.f64")
        return builder.call(fma, args)
    return types.float64(types.float64, types.float64, types.float64), codegen


@njit(cache=True, nogil=True, fastmath=_REDUCE, inline="always")
def _dot(a, b):
    total = 0.0
    for k in range(a.shape[0]):
        total += a[k] * b[k]
    return total


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def exp_into(x, out):
    """``out[:] = exp(x)``, to about 1 ulp, whatever fast-math flags its caller has.

    Inlined, so it runs with its caller's flags (:func:`_gradients`: reassociation). The
    two-part reduction by ln 2 is two ``llvm.fma`` calls, which the flags cannot reorder: as
    plain arithmetic, reassociation folded the two parts into one, and the error grew to
    about 100 ulp at |x| near 700. (Compiled on its own instead, or with an arithmetic fence,
    it kept its order but made the mel-cepstra 1.4 times slower.)
    """
    n = x.shape[0]
    in_range = True
    for k in range(n):
        in_range &= (x[k] >= _EXP_LOW) & (x[k] <= _EXP_HIGH)
    if not in_range:
        for k in range(n):
            out[k] = np.exp(x[k])
        return
    for k in range(n):
        whole = np.floor(x[k] * _LOG2E + 0.5)
        r = _fma(-whole, _LN2_LO, _fma(-whole, _LN2_HI, x[k]))
        p = 1.0 / 6227020800.0  # Horner from r^13 / 13! down (error under 1e-17 for |r| < 0.35)
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        # 2^n from its bits: the biased exponent n + 1023, above the 52 bits of the mantissa
        n_int = _to_bits(whole + _SHIFTER) - _SHIFTER_BITS
        out[k] = (p * r + 1.0) * _from_bits((n_int + 1023) << 52)


#: Frames a block of :func:`newton_frames` carries through the loop together (the length of
#: the solve's innermost loops).
BLOCK = 32


def _make_lanes_update(lanes: int):
    """An intrinsic ``update(out, out_at, init, init_at, x, x_at, x_step, y, y_at, y_step, count,
    den, den_at)`` on flat float64 arrays, for ``lanes`` lanes at once: ``out[out_at:][:lanes] =
    (init[init_at:][:lanes] - sum over m < count of x[x_at + m x_step:][:lanes] *
    y[y_at + m y_step:][:lanes]) / den[den_at:][:lanes]``, the products subtracted one at a
    time in order of m, each rounded (no fused multiply-add).

    Written in LLVM IR on vectors of ``lanes`` doubles, which LLVM splits into the target's
    registers: numba's own loops over so few lanes ran at scalar speed (its SLP vectorizer is
    off, and the loop vectorizer's alias checks cost more than the short loops they guard).
    Each product and each difference passes an ``llvm.arithmetic.fence``, which stops LLVM from
    fusing or reordering them even where numba compiles this with fast-math flags: it does so
    for a function first compiled as the callee of a fast-math one (:func:`newton_frames`),
    and the lanes' results would then depend on the lane count.
    """
    @intrinsic
    def update(typingctx, out, out_at, init, init_at, x, x_at, x_step, y, y_at, y_step, count,
               den, den_at):
        arrays = (out, init, x, y, den)
        if not all(isinstance(a, types.Array) and a.dtype == types.float64 for a in arrays):
            return None
        index = types.intp
        signature = types.none(out, index, init, index, x, index, index, y, index, index,
                               index, den, index)

        def codegen(context, builder, signature, args):
            vector = ir.VectorType(ir.DoubleType(), lanes)

            def at(position, offset):
                array = context.make_array(signature.args[position])(context, builder,
                                                                      args[position])
                return builder.bitcast(builder.gep(array.data, [offset]), vector.as_pointer())

            out_at, init_at, x_at, x_step, y_at, y_step, count, den_at = (
                args[i] for i in (1, 3, 5, 6, 8, 9, 10, 12))
            fence = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vector, [vector]),
                f"llvm.arithmetic.fence.v{lanes}f64")
            total = cgutils.alloca_once(builder, vector)  # promoted to registers by LLVM
            builder.store(builder.load(at(2, init_at), align=8), total)
            with cgutils.for_range(builder, count) as loop:
                m = loop.index
                xv = builder.load(at(4, builder.add(x_at, builder.mul(m, x_step))), align=8)
                yv = builder.load(at(7, builder.add(y_at, builder.mul(m, y_step))), align=8)
                product = builder.call(fence, [builder.fmul(xv, yv)])
                builder.store(builder.call(fence, [builder.fsub(builder.load(total), product)]),
                              total)
            result = builder.fdiv(builder.load(total), builder.load(at(11, den_at), align=8))
            builder.store(result, at(0, out_at), align=8)
            return context.get_dummy_value()
        return signature, codegen
    return update


#: Lane counts :func:`solve_lanes` computes (the fewest that hold the frames still running).
LANE_COUNTS = (4, 8, 16, BLOCK)
_update4, _update8, _update16, _update_block = (_make_lanes_update(n) for n in LANE_COUNTS)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _lanes_update(lanes, out, out_at, init, init_at, x, x_at, x_step, y, y_at, y_step, count,
                  den, den_at):
    """The update of :func:`_make_lanes_update` on ``lanes`` (one of LANE_COUNTS) lanes."""
    if lanes == 4:
        _update4(out, out_at, init, init_at, x, x_at, x_step, y, y_at, y_step, count, den,
                 den_at)
    elif lanes == 8:
        _update8(out, out_at, init, init_at, x, x_at, x_step, y, y_at, y_step, count, den,
                 den_at)
    elif lanes == 16:
        _update16(out, out_at, init, init_at, x, x_at, x_step, y, y_at, y_step, count, den,
                  den_at)
    else:
        _update_block(out, out_at, init, init_at, x, x_at, x_step, y, y_at, y_step, count, den,
                      den_at)


@njit(cache=True, nogil=True, error_model="numpy")
def solve_lanes(r_t, width, alpha_powers, a, t, h, x, failed):
    """Solve SPTK's normal equations of the frames in lanes ``0 .. width - 1`` into ``x``.

    Per lane f: x[:, f] = A^-1 b with A[i, j] = t[|i - j|] + h[i + j] and b = r[:m + 1] - alpha^i,
    where (from ``r_t``, r(k) by coefficient and lane) t[0] = 2 r0, t[d] = r_d + r0 for even
    d >= 2 and r_d for odd d, and h[s] = r_s - r0 for even s and r_s for odd s. A = U^T U by
    Cholesky (A is the Hessian of SPTK's convex cost: symmetric positive definite), U in the
    upper triangle of ``a``, row by row (Cholesky-Crout: each entry is its A entry minus the
    products with the rows above, in order, then divided by its pivot). Lanes are the
    innermost index of every array (:data:`BLOCK` of them); the fewest of LANE_COUNTS that hold
    ``width`` are computed, those from ``width`` on as copies of the last used one. Every lane
    goes through the same element-wise operations (:func:`_lanes_update`; no sums across
    lanes, no fused multiply-adds), so its result does not depend on the other lanes or on
    how many are computed. A lane whose factorization meets a pivot that is not positive
    (``failed``, a bool per lane) is solved again alone by :func:`_eliminate` (Gaussian
    elimination with partial pivoting).
    """
    n = alpha_powers.shape[0]
    lanes = 4 if width <= 4 else 8 if width <= 8 else 16 if width <= 16 else BLOCK
    for k in range(r_t.shape[0]):
        for f in range(width, lanes):
            r_t[k, f] = r_t[k, width - 1]
    for f in range(lanes):
        failed[f] = False
        t[0, f] = 2.0 * r_t[0, f]
    for d in range(1, n):
        for f in range(lanes):
            t[d, f] = r_t[d, f] + r_t[0, f] if d % 2 == 0 else r_t[d, f]
    for s in range(2 * n - 1):
        for f in range(lanes):
            h[s, f] = r_t[s, f] - r_t[0, f] if s % 2 == 0 else r_t[s, f]
    for i in range(n):
        for j in range(i, n):
            for f in range(lanes):
                a[i, j, f] = t[j - i, f] + h[i + j, f]
    flat_a, flat_x, ones = a.reshape(a.size), x.reshape(x.size), np.ones(BLOCK)
    row = n * BLOCK  # from a[m, j] to a[m + 1, j]
    for j in range(n):
        jj = (j * n + j) * BLOCK
        _lanes_update(lanes, flat_a, jj, flat_a, jj, flat_a, j * BLOCK, row, flat_a, j * BLOCK,
                      row, j, ones, 0)
        for f in range(lanes):
            pivot = a[j, j, f]
            if not pivot > 0.0:
                failed[f] = True
                pivot = 1.0
            a[j, j, f] = np.sqrt(pivot)
        for k in range(j + 1, n):
            jk = (j * n + k) * BLOCK
            _lanes_update(lanes, flat_a, jk, flat_a, jk, flat_a, j * BLOCK, row, flat_a,
                          k * BLOCK, row, j, flat_a, jj)
    for i in range(n):  # U^T y = b
        for f in range(lanes):
            x[i, f] = r_t[i, f] - alpha_powers[i]
        _lanes_update(lanes, flat_x, i * BLOCK, flat_x, i * BLOCK, flat_x, 0, BLOCK, flat_a,
                      i * BLOCK, row, i, flat_a, (i * n + i) * BLOCK)
    for i in range(n - 1, -1, -1):  # U x = y
        _lanes_update(lanes, flat_x, i * BLOCK, flat_x, i * BLOCK, flat_a,
                      (i * n + i + 1) * BLOCK, BLOCK, flat_x, (i + 1) * BLOCK, BLOCK, n - 1 - i,
                      flat_a, (i * n + i) * BLOCK)
    for f in range(width):
        if failed[f]:
            _eliminate(r_t[:, f].copy(), alpha_powers, x[:, f])


@intrinsic
def _rounded(typingctx, value):
    """``value`` (float64) behind an ``llvm.arithmetic.fence``: a product so wrapped is rounded
    before it is added, even where numba passes fast-math flags on (see
    :func:`_make_lanes_update`)."""
    if value != types.float64:
        return None

    def codegen(context, builder, signature, args):
        fence = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.DoubleType(), [ir.DoubleType()]),
            "llvm.arithmetic.fence.f64")
        return builder.call(fence, [args[0]])
    return types.float64(types.float64), codegen


@njit(cache=True, nogil=True, error_model="numpy")
def _eliminate(r, alpha_powers, out):
    """The system of :func:`solve_lanes` for one frame's r(k), solved by Gaussian elimination
    with partial pivoting, into ``out``."""
    n = alpha_powers.shape[0]
    a, x = np.empty((n, n)), np.empty(n)
    r0 = r[0]
    for i in range(n):
        for j in range(n):
            d, s = abs(i - j), i + j
            t = 2.0 * r0 if d == 0 else (r[d] + r0 if d % 2 == 0 else r[d])
            a[i, j] = t + (r[s] - r0 if s % 2 == 0 else r[s])
        x[i] = r[i] - alpha_powers[i]
    for j in range(n):
        pivot = j
        for i in range(j + 1, n):
            if abs(a[i, j]) > abs(a[pivot, j]):
                pivot = i
        if pivot != j:
            for k in range(n):
                a[j, k], a[pivot, k] = a[pivot, k], a[j, k]
            x[j], x[pivot] = x[pivot], x[j]
        for i in range(j + 1, n):
            factor = a[i, j] / a[j, j]
            for k in range(j, n):
                a[i, k] -= _rounded(factor * a[j, k])
            x[i] -= _rounded(factor * x[j])
    for i in range(n - 1, -1, -1):
        for k in range(i + 1, n):
            x[i] -= _rounded(a[i, k] * x[k])
        x[i] /= a[i, i]
    for i in range(n):
        out[i] = x[i]


@njit(cache=True, nogil=True, error_model="numpy")
def solve_frames(r, alpha_powers, out):
    """:func:`solve_lanes` for the rows of ``r`` (frames, r(k)), :data:`BLOCK` at a time, into
    the rows of ``out``."""
    n = alpha_powers.shape[0]
    a, t, h = np.empty((n, n, BLOCK)), np.empty((n, BLOCK)), np.empty((2 * n - 1, BLOCK))
    r_t, x, failed = np.empty((2 * n - 1, BLOCK)), np.empty((n, BLOCK)), np.empty(BLOCK, np.bool_)
    for low in range(0, r.shape[0], BLOCK):
        width = min(BLOCK, r.shape[0] - low)
        for f in range(width):
            for k in range(2 * n - 1):
                r_t[k, f] = r[low + f, k]
        solve_lanes(r_t, width, alpha_powers, a, t, h, x, failed)
        for f in range(width):
            for i in range(n):
                out[low + f, i] = x[i, f]


#: Frames whose products share one pass over the operators (:func:`_gradients`).
GROUP = 4


@njit(cache=True, nogil=True, fastmath=_REDUCE, error_model="numpy")
def _gradients(periodogram, mc, lanes, to_log_spectrum, to_gradient, w0, w1, w2, w3, r):
    """SPTK's r(k) of the :data:`GROUP` frames ``lanes`` (rows of ``periodogram`` and ``mc``,
    repeats allowed) into the rows of ``r``: each periodogram over its model's power spectrum
    exp(2 mc @ to_log_spectrum), through ``to_gradient``.

    The frames go through one pass over each operator row (which comes from L2, not L1),
    every frame in its own accumulators, by the same operations whatever its place in the
    group: a frame's r(k) does not depend on the frames beside it. ``w0`` .. ``w3`` are work
    arrays of one spectrum.
    """
    f0, f1, f2, f3 = lanes[0], lanes[1], lanes[2], lanes[3]
    n_bins = w0.shape[0]
    for k in range(n_bins):
        w0[k] = 0.0
        w1[k] = 0.0
        w2[k] = 0.0
        w3[k] = 0.0
    n = mc.shape[1]
    i = 0
    while i + 4 <= n:  # -2 mc @ to_log_spectrum, four rows a pass (a quarter of the stores)
        # doubling is exact: it may go first
        a0, b0, c0, d0 = -2.0 * mc[f0, i], -2.0 * mc[f0, i + 1], -2.0 * mc[f0, i + 2], \
            -2.0 * mc[f0, i + 3]
        a1, b1, c1, d1 = -2.0 * mc[f1, i], -2.0 * mc[f1, i + 1], -2.0 * mc[f1, i + 2], \
            -2.0 * mc[f1, i + 3]
        a2, b2, c2, d2 = -2.0 * mc[f2, i], -2.0 * mc[f2, i + 1], -2.0 * mc[f2, i + 2], \
            -2.0 * mc[f2, i + 3]
        a3, b3, c3, d3 = -2.0 * mc[f3, i], -2.0 * mc[f3, i + 1], -2.0 * mc[f3, i + 2], \
            -2.0 * mc[f3, i + 3]
        row0, row1, row2, row3 = (to_log_spectrum[i], to_log_spectrum[i + 1],
                                  to_log_spectrum[i + 2], to_log_spectrum[i + 3])
        for k in range(n_bins):
            # each row value read once: LLVM cannot prove that the stores below miss the rows,
            # and re-read them after each store
            x0, x1, x2, x3 = row0[k], row1[k], row2[k], row3[k]
            w0[k] += a0 * x0 + b0 * x1 + c0 * x2 + d0 * x3
            w1[k] += a1 * x0 + b1 * x1 + c1 * x2 + d1 * x3
            w2[k] += a2 * x0 + b2 * x1 + c2 * x2 + d2 * x3
            w3[k] += a3 * x0 + b3 * x1 + c3 * x2 + d3 * x3
        i += 4
    while i < n:  # the last rows, one a pass
        a0, a1, a2, a3 = -2.0 * mc[f0, i], -2.0 * mc[f1, i], -2.0 * mc[f2, i], -2.0 * mc[f3, i]
        row = to_log_spectrum[i]
        for k in range(n_bins):
            x0 = row[k]
            w0[k] += a0 * x0
            w1[k] += a1 * x0
            w2[k] += a2 * x0
            w3[k] += a3 * x0
        i += 1
    exp_into(w0, w0)  # the model's inverse power, exp(-2 log amplitude)
    exp_into(w1, w1)
    exp_into(w2, w2)
    exp_into(w3, w3)
    for k in range(n_bins):
        w0[k] *= periodogram[f0, k]
        w1[k] *= periodogram[f1, k]
        w2[k] *= periodogram[f2, k]
        w3[k] *= periodogram[f3, k]
    n_r = r.shape[1]
    for j in range(0, n_r - 1, 2):  # two rows of to_gradient a pass
        row, nxt = to_gradient[j], to_gradient[j + 1]
        s0, s1, s2, s3, t0, t1, t2, t3 = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
        for k in range(n_bins):
            s0 += row[k] * w0[k]
            s1 += row[k] * w1[k]
            s2 += row[k] * w2[k]
            s3 += row[k] * w3[k]
            t0 += nxt[k] * w0[k]
            t1 += nxt[k] * w1[k]
            t2 += nxt[k] * w2[k]
            t3 += nxt[k] * w3[k]
        r[0, j], r[1, j], r[2, j], r[3, j] = s0, s1, s2, s3
        r[0, j + 1], r[1, j + 1], r[2, j + 1], r[3, j + 1] = t0, t1, t2, t3
    if n_r % 2:
        row = to_gradient[n_r - 1]
        s0, s1, s2, s3 = 0.0, 0.0, 0.0, 0.0
        for k in range(n_bins):
            s0 += row[k] * w0[k]
            s1 += row[k] * w1[k]
            s2 += row[k] * w2[k]
            s3 += row[k] * w3[k]
        r[0, n_r - 1], r[1, n_r - 1], r[2, n_r - 1], r[3, n_r - 1] = s0, s1, s2, s3


@njit(cache=True, nogil=True, fastmath=_REDUCE, error_model="numpy")
def newton_frames(periodogram, log_periodogram, init, to_log_spectrum, to_gradient, c0_row,
                  alpha_powers, min_iter, max_iter, threshold, out):
    """SPTK's initial estimate and Newton-Raphson loop for every frame, into ``out``.

    Frames go :data:`BLOCK` at a time, in lockstep: each iteration computes r(k) of every
    frame of the block still running (:data:`GROUP` frames at a time, :func:`_gradients`; a
    last group short of frames repeats its last one), applies SPTK's stopping rule to each, and
    solves the systems of those that go on side by side (:func:`solve_lanes`).

    Parameters
    ----------
    periodogram, log_periodogram : np.ndarray [shape=(frames, H)]
        ``|rfft|^2 + eps`` and its logarithm; H = n_fft / 2 + 1.
    init : np.ndarray [shape=(m + 1, H)]
    to_log_spectrum : np.ndarray [shape=(m + 1, H)]
        Row i: what ``mc[i]`` adds to the model's log amplitude at each bin.
    to_gradient : np.ndarray [shape=(2 m + 1, H)]
    c0_row : np.ndarray [shape=(H,)]
        SPTK's first reference value (c[0] of the halved cepstrum) from the log periodogram.
    alpha_powers : np.ndarray [shape=(m + 1,)]
    min_iter, max_iter : int
    threshold : float
    out : np.ndarray [shape=(frames, m + 1)]
    """
    n_bins, n, n_r = periodogram.shape[1], init.shape[0], to_gradient.shape[0]
    w0, w1, w2, w3 = np.empty(n_bins), np.empty(n_bins), np.empty(n_bins), np.empty(n_bins)
    r, group = np.empty((GROUP, n_r)), np.empty(GROUP, np.int64)
    a, t, h = np.empty((n, n, BLOCK)), np.empty((n, BLOCK)), np.empty((n_r, BLOCK))
    r_t, x, failed = np.empty((n_r, BLOCK)), np.empty((n, BLOCK)), np.empty(BLOCK, np.bool_)
    running, previous = np.empty(BLOCK, np.int64), np.empty(BLOCK)
    for low in range(0, periodogram.shape[0], BLOCK):
        width = min(BLOCK, periodogram.shape[0] - low)
        for f in range(width):
            log_power, mc = log_periodogram[low + f], out[low + f]
            for i in range(n):
                mc[i] = _dot(init[i], log_power)
            previous[f] = _dot(c0_row, log_power)
            running[f] = f
        for iteration in range(1, max_iter + 1):
            going = 0
            for first in range(0, width, GROUP):
                for g in range(GROUP):
                    group[g] = low + running[min(first + g, width - 1)]
                _gradients(periodogram, out, group, to_log_spectrum, to_gradient, w0, w1, w2, w3,
                           r)
                for g in range(min(GROUP, width - first)):
                    f = running[first + g]
                    if iteration >= min_iter:
                        if abs((r[g, 0] - previous[f]) / r[g, 0]) < threshold:
                            continue
                        previous[f] = r[g, 0]
                    running[going] = f
                    for k in range(n_r):
                        r_t[k, going] = r[g, k]
                    going += 1
            width = going
            if width == 0:
                break
            solve_lanes(r_t, width, alpha_powers, a, t, h, x, failed)
            for lane in range(width):
                mc = out[low + running[lane]]
                for i in range(n):
                    mc[i] += x[i, lane]
