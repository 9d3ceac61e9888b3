"""The ``fused`` CPU sampler: the cached step compiled with numba into register-blocked kernels.

Per step, a block of streams advances through every layer in lockstep. For each layer: the
past taps (from a ring buffer) and the current input times one ``[K R, 2D]`` matrix, the gate
``tanh(f) * sigmoid(g)``, then one product with ``[W_res | W_skip]`` that adds the residual
to the layer input and the skip term to a running skip sum held beside it. After the last
layer: two end products and the inverse-CDF draw of
:func:`~reference_model.sampling.randomness.sample_next`. Blocks of streams run on numba's
threads.

Why it is fast (see ``benchmarks/bench_samplers.py`` for the figures):

- Every product runs through :func:`_gemm`, whose accumulators (MB streams by NB outputs) live
  in a stack array that LLVM keeps in vector registers; one weight row loaded from cache
  serves MB streams. Heap arrays cannot be promoted so (numba marks no pointer ``noalias``).
  MB (and MV, the one-stream product's panels per pass) are chosen for the ISA numba targets
  (:mod:`~reference_model.sampling.isa`): 4 with AVX-512's 32 registers, 1 with AVX2's 16.
- float32 products of several streams run explicit tiles instead (:func:`_make_tile`, LLVM IR
  through a numba intrinsic): 6 streams x 16 outputs with AVX2 (12 ymm accumulators), 6 x 64
  with AVX-512 (24 zmm), each weight row loaded once for 6 streams. Same multiply-adds in the
  same order, so same bits.
- LLVM is told to prefer 512-bit vectors where the CPU has them (its default on AVX-512 server
  parts is 256 bits), which doubles the multiply-adds per instruction.
- float32 uses a rational ``tanh`` that LLVM vectorizes (numba has no vector libm here:
  ``np.tanh`` is a scalar call); float64 keeps the exact ``np.tanh``. The draw uses a
  vectorizable float64 ``exp``.
- A lone stream (batch 1, or the remainder of a block) skips the weight rows of the end
  products whose input is zero after the ReLU (about half), so its per-step weight traffic
  (about 1.9 MB in float32 for the reference preset) fits the L2 cache better.
- Weights and the arrays the threads share start on a 64-byte boundary (:func:`aligned`), so
  no vector load of a weight row straddles two cache lines. numpy's large arrays start 16
  bytes into a page: with that offset the batched products ran about 1.5 times slower on an
  AMD EPYC (Zen 3, AVX2), and which weights had it changed from one allocation to the next.
- The kernels borrow their arrays (:func:`_borrowed`), so calls and views inside them count
  no references: numba's counts are atomic adds, a few hundred cycles for each small product
  of a lone stream, and a cache line that both threads of a split stream kept taking from each
  other. In two alternating runs of ``wavebench speed`` [Intel Xeon, family 6 model 167,
  AVX-512], batch 1 went from 20,100-20,800 to 24,900-25,900 samples/s on one thread and from
  32,200-32,900 to 48,700-51,500 on two; batch 64 did not change.
- numba checks every array index for Python's negative indexing unless LLVM can prove it
  non-negative; such a check inside a loop turns vector loads into gathers. Offsets derived
  from arguments or loaded values are therefore wrapped in ``max(..., 0)`` (a no-op).

The gate uses sigmoid(g) = (1 + tanh(g / 2)) / 2 with the gate weights pre-scaled by 1/2
(exact in binary floating point), so one ``tanh`` serves both halves.

A lone stream (batch 1) on several threads splits each step instead (:func:`_split_steps`):
thread 0 runs every layer's taps product and gate (64 outputs in the reference preset: one
panel, nothing to split) and hands the gate output to the others through a counter; every
thread then adds its own panels of ``[W_res | W_skip]`` (thread 0's hold the residual columns)
and computes its panels of the two end products, so each core streams only its share of the
bulk of the weights. Three barriers a step gather the skip sums, the first end layer and the
outputs, and every thread then draws the same code from the same numbers. No value depends on
the split but the summation order of the products (rounding only).

The kernel's entry points take two named bundles (NamedTuples, which numba passes as structs):
:class:`Weights` (the model, fixed for a generation) and :class:`Run` (the streams' ring
buffers, last codes, outputs and sampling settings). The helpers below them take the arrays
they use (see :func:`_block_steps`).
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from reference_model.sampling.atomics import barrier, counters, publish, wait_for
from reference_model.sampling.isa import (
    PANEL,
    register_block,
    target_features,
)
from reference_model.sampling.registry import SamplerSpec, register
from reference_model.sampling.state import (
    CHUNK,
    CachedState,
    Inputs,
    cond_terms,
    prime_history,
    speaker_bias,
    step_weights,
    working_copy,
)

# Contraction and reassociation let LLVM vectorize; no nnan/ninf, so NaN and overflow behave
# as in the reference. The draw (_sample_row, _exp_nonpositive) is compiled without them.
FAST = {"contract", "reassoc", "nsz", "arcp"}
# A function with no fast-math flags of its own that numba first compiles as the callee of a
# FAST one gets FAST (numba 0.68 hands the caller's flags down). Signs of zeros are all this
# set allows, and a set that is not empty keeps the caller's out.
EXACT = {"nsz"}
#: The register blocking for the ISA numba compiles for (fixed at import, as numba's cache key).
REGISTER_BLOCK = register_block(target_features())
MB = REGISTER_BLOCK.gemm_rows  # streams per register block of _gemm
MV = REGISTER_BLOCK.gemv_panels  # NB-wide panels per pass of _gemv (one stream)
NB = PANEL  # outputs per register block: 4 AVX-512 registers or 8 AVX2 registers per stream
HALF = NB // 2  # outputs of a half panel (the last of a one-stream product, see HALF_PANELS)
HALF_PANELS = REGISTER_BLOCK.half_panels  # [W_res | W_skip] of one stream: R + S up to a HALF
PARTIALS = 4  # partial sums of _gemv_panel (rows dealt round-robin)
SCRATCH = max(MB, MV, PARTIALS) * NB  # accumulators of one product, on the stack
KC = REGISTER_BLOCK.panel_rows  # weight rows of a panel per pass (kept in L1 for all blocks)
TR = REGISTER_BLOCK.tile_rows  # streams per explicit float32 tile (_tiled; 0: none)
TN = REGISTER_BLOCK.tile_columns  # outputs per explicit tile
TL = REGISTER_BLOCK.lanes  # float32 values per vector register of a tile
ALIGN = 64  # bytes: where weight arrays start (aligned)
BLOCK = 64  # most streams one thread advances in lockstep (weights are read once per block-step)

# tanh(x) ~ x P(x^2) / Q(x^2) on |x| <= TANH_CLAMP (beyond it float32 tanh rounds to +-1).
# Fitted here (iteratively reweighted least squares on relative error, float64): max relative
# error 2.3e-8 in float64 arithmetic, 3.7e-7 (about 6 ulp) evaluated in float32.
TANH_CLAMP = np.float32(9.1)
TANH_P = tuple(np.float32(v) for v in (0.9999999772320779, 0.13374479366646128,
                                       0.003487815858760539, 2.0481259699221884e-05,
                                       1.3177611582006606e-08))
TANH_Q = tuple(np.float32(v) for v in (1.0, 0.4670779315491277, 0.02584740727184931,
                                       0.0003272927789794043, 7.704085169755306e-07))
F32_HALF, F32_ONE = np.float32(0.5), np.float32(1.0)

# exp(x) = 2^n exp(r), r = x - n ln 2 with ln 2 split so that n * LN2_HI is exact (Cody-Waite).
LOG2E = 1.4426950408889634
LN2_HI = 0.693147180369123816490  # 32 significant bits
LN2_LO = 1.90821492927058770002e-10
EXP_COEF = tuple(1.0 / math.factorial(k) for k in range(14))  # Taylor to r^13: error < 1e-17
SEARCH_STEP = 8  # weights summed per step of the inverse-CDF search
EXP_MIN = -708.0  # below it 2^n is subnormal; such terms are flushed to 0 (they are < 1e-307)


# ----------------------------------------------------------------------------- kernel arguments

class Weights(NamedTuple):
    """The model as the kernel reads it (:func:`fused_weights`), in the working dtype.

    Widths marked ``'`` are padded with zero columns to multiples of NB.
    """

    emb: np.ndarray  # [C, R] the start convolution (bias included), one row per code
    w_taps: np.ndarray  # [L, K R, 2D'] past taps oldest first, then the current input
    w_rs: np.ndarray  # [L, D, R + S'] [W_res | W_skip] of each layer
    b_res: np.ndarray  # [L, R]
    b_skip: np.ndarray  # [S] the skip convolutions' biases, summed
    w1: np.ndarray  # [S, E']
    b1: np.ndarray  # [E']
    w2: np.ndarray  # [E', C']
    b2: np.ndarray  # [C']


class Run(NamedTuple):
    """One generation's streams and settings; the kernel updates the arrays marked so in place."""

    hist: np.ndarray  # [sum of spans, batch, R] ring buffers (updated), as CachedState.buffer
    offsets: np.ndarray  # [L] int64, first ring row of each layer
    spans: np.ndarray  # [L] int64, ring rows of each layer
    dil: np.ndarray  # [L] int64, dilations
    n_taps: int  # kernel size
    bias: np.ndarray  # [batch, L, 2D'] convolution bias (+ speaker term), gate columns halved
    prev: np.ndarray  # [batch] int64, each stream's last code (updated)
    codes: np.ndarray  # [batch, n] int64, the generated codes (written)
    uniforms: np.ndarray  # [batch, n] float64, from draw_uniforms
    logits_out: np.ndarray  # [batch, n, C] logits (written when keep), else [batch, 1, C]
    keep: bool
    p: int  # prime length: position p is generated step 0
    temperature: float
    n_classes: int  # width of the output: classes, or 3 per logistic of a mixture
    has_cond: bool  # mel terms given per chunk
    approx: bool  # the rational tanh (float32)
    half: np.floating  # 0.5 in the working dtype
    res_scale: np.floating  # the config's residual_scale in the working dtype (1: skipped)
    mixture: bool  # the output is a mixture of logistics (reference_model.heads)
    classes: int  # codes of a mixture's value grid
    log_scale_min: float


class Buffers(NamedTuple):
    """One thread's work arrays for ``nb`` streams (:func:`_buffers`); a thread of a split
    lone stream sizes ``state``, ``e`` and ``lg`` to its share of the columns."""

    state: np.ndarray  # [nb, >= R + S'] [x | skip sums | zero pad]
    taps: np.ndarray  # [nb, K R] the layer's past taps and current input
    h: np.ndarray  # [nb, 2D'] the taps product
    z: np.ndarray  # [nb, D] the gate output
    sk: np.ndarray  # [nb, S] ReLU(skip sums)
    e: np.ndarray  # [nb, E'] the first end layer
    lg: np.ndarray  # [nb, C'] the outputs
    idx: np.ndarray  # int64, the input rows a lone row's product uses
    work: np.ndarray  # float64 [n_classes], the draw's
    rows: np.ndarray  # int64 [L, K], the step's ring-buffer rows


# ----------------------------------------------------------------------------- LLVM helpers

@intrinsic
def _wide_vectors(typingctx):
    """Let LLVM vectorize the calling function with 512-bit registers where the CPU has them."""
    def codegen(context, builder, signature, args):
        # llvmlite accepts only a fixed list of attribute names; a string attribute goes in as is.
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def _keep_outlined(typingctx):
    """Keep the calling function out of its callers: the prange wrapper re-optimizes inlined
    code without the attributes above (and vectorizes it worse)."""
    def codegen(context, builder, signature, args):
        builder.function.attributes.add("noinline")
        return context.get_dummy_value()
    return types.none(), codegen


def _without_meminfo(context, builder, ty, value):
    """``value`` (of numba type ``ty``) with every array in it, nested tuples included, made a
    view that owns no reference (a null meminfo)."""
    if isinstance(ty, types.Array):
        array = context.make_array(ty)(context, builder, value=value)
        array.meminfo = cgutils.get_null_value(array.meminfo.type)
        return array._getvalue()
    if isinstance(ty, types.BaseTuple):
        for i, member in enumerate(ty):
            inner = _without_meminfo(context, builder, member, builder.extract_value(value, i))
            value = builder.insert_value(value, inner, i)
    return value


@intrinsic
def _borrowed(typingctx, value):
    """``value`` (an array, or a tuple of arrays and scalars) as views that take no part in
    numba's reference counting, for a function that holds its arguments for the whole call.

    numba counts references to an array's memory with atomic adds: each njit call, view or
    slice of an array adds and subtracts one (a locked instruction on x86, and a cache line
    that bounces between cores where threads share the array). Its pruning cannot drop them
    around a call, which may raise. One ``_gemm`` of a lone stream, 32 x 64, took 197 ns so and
    67 ns borrowed (an ad hoc timing, Intel Xeon family 6 model 167, AVX-512). numba skips a
    null meminfo. A borrowed view is valid while its owner is alive, which is why only
    arguments are borrowed: the caller owns them until the call returns."""
    def codegen(context, builder, signature, args):
        return _without_meminfo(context, builder, signature.args[0], args[0])
    return value(value), codegen


@intrinsic
def _scratch(typingctx, dtype):
    """Pointer to SCRATCH elements on the stack, which LLVM may keep in registers."""
    def codegen(context, builder, signature, args):
        ty = context.get_data_type(dtype.dtype)
        return cgutils.alloca_once(builder, ty, size=context.get_constant(types.intp, SCRATCH))
    return types.CPointer(dtype.dtype)(dtype), codegen


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask the CPU to bring the cache line of element ``index`` (flat, C order) of a
    C-contiguous ``array`` into L1 (LLVM's ``prefetch``: a hint, never a fault)."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        address = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        hint = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32]),
            "llvm.prefetch.p0")
        # read, keep in every cache level, data (not instructions)
        builder.call(hint, [address, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.none(array, types.intp), codegen


@intrinsic
def _double_from_bits(typingctx, bits):
    """The float64 whose IEEE-754 bit pattern is the int64 ``bits``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


def _make_tile(rows: int):
    """An intrinsic ``tile(x, w, y, b0, n0, half)``: ``y[b0:b0 + rows, n0:n0 + TN] += x[b0:b0
    + rows] @ w[:, n0:n0 + TN]`` for float32 C-contiguous rows, or TN / 2 columns where
    ``half``, as one loop over the rows of ``w`` written in LLVM IR: ``rows`` x TN / TL
    accumulators of TL floats stay in vector registers (2 ymm a stream with AVX2, 4 zmm with
    AVX-512, half as many in a half tile), each weight row's floats are loaded once for all the
    streams, and each stream's input is broadcast once per row (see
    :mod:`~reference_model.sampling.isa`). Every output is one chain of fused multiply-adds in
    the order of the rows of ``w``, as in :func:`_gemm`, so the two give the same bits,
    whatever the tile."""
    lanes = TL
    vectors = max(TN // lanes, 1)  # (a build without tiles never calls them)

    @intrinsic
    def tile(typingctx, x, w, y, b0, n0, half):
        def codegen(context, builder, signature, args):
            i64, f32 = ir.IntType(64), ir.FloatType()
            vec = ir.VectorType(f32, lanes)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec, vec, vec]), f"llvm.fma.v{lanes}f32")
            x_arr, w_arr, y_arr = (context.make_array(ty)(context, builder, value)
                                   for ty, value in zip(signature.args[:3], args[:3]))
            first, col = args[3], args[4]
            x_step, y_step, w_step = (cgutils.unpack_tuple(builder, a.strides, 2)[0]
                                      for a in (x_arr, y_arr, w_arr))  # bytes
            n_in = cgutils.unpack_tuple(builder, w_arr.shape, 2)[0]
            const = lambda v: ir.Constant(i64, v)  # noqa: E731
            four = const(4)

            def at(arr, byte_offset, ty):
                base = builder.bitcast(arr.data, ir.IntType(8).as_pointer())
                return builder.bitcast(builder.gep(base, [byte_offset]), ty.as_pointer())

            def emit(vectors):  # the tile's loop, from the current block to a block after it
                x0 = builder.mul(first, x_step)
                y0 = builder.add(builder.mul(first, y_step), builder.mul(col, four))
                w0 = builder.mul(col, four)
                cells = [at(y_arr, builder.add(y0, builder.add(builder.mul(const(r), y_step),
                                                               const(4 * lanes * v))), vec)
                         for r in range(rows) for v in range(vectors)]
                start = [builder.load(cell, align=4) for cell in cells]
                entry = builder.block
                loop = builder.append_basic_block("tile_k")
                done = builder.append_basic_block("tile_end")
                builder.cbranch(builder.icmp_signed(">", n_in, const(0)), loop, done)
                builder.position_at_end(loop)
                k = builder.phi(i64)
                acc = [builder.phi(vec) for _ in cells]
                w_row = builder.add(w0, builder.mul(k, w_step))
                weights = [builder.load(at(w_arr, builder.add(w_row, const(4 * lanes * v)),
                                           vec), align=4) for v in range(vectors)]
                undef, zeros = ir.Constant(vec, ir.Undefined), ir.Constant(
                    ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
                new = []
                for r in range(rows):
                    offset = builder.add(builder.add(x0, builder.mul(const(r), x_step)),
                                         builder.mul(k, four))
                    scalar = builder.load(at(x_arr, offset, f32), align=4)
                    spread = builder.shuffle_vector(
                        builder.insert_element(undef, scalar, ir.Constant(ir.IntType(32), 0)),
                        undef, zeros)
                    new += [builder.call(fma, [spread, weights[v], acc[r * vectors + v]])
                            for v in range(vectors)]
                k_next = builder.add(k, const(1))
                k.add_incoming(const(0), entry)
                k.add_incoming(k_next, loop)
                for phi, before, after in zip(acc, start, new):
                    phi.add_incoming(before, entry)
                    phi.add_incoming(after, loop)
                builder.cbranch(builder.icmp_signed("<", k_next, n_in), loop, done)
                builder.position_at_end(done)
                final = []
                for before, after in zip(start, new):
                    final.append(builder.phi(vec))
                    final[-1].add_incoming(before, entry)
                    final[-1].add_incoming(after, loop)
                for cell, value in zip(cells, final):
                    builder.store(value, cell, align=4)

            if vectors < 2:  # no half tiles
                emit(vectors)
                return context.get_dummy_value()
            is_half = builder.icmp_unsigned("!=", args[5], ir.Constant(args[5].type, 0))
            whole_block = builder.append_basic_block("tile_whole")
            half_block = builder.append_basic_block("tile_half")
            join = builder.append_basic_block("tile_join")
            builder.cbranch(is_half, half_block, whole_block)
            for block, count in ((whole_block, vectors), (half_block, vectors // 2)):
                builder.position_at_end(block)
                emit(count)
                builder.branch(join)
            builder.position_at_end(join)
            return context.get_dummy_value()
        return types.none(x, w, y, types.intp, types.intp, types.boolean), codegen
    return tile


_tile1, _tile2, _tile3, _tile4, _tile5, _tile6 = (_make_tile(rows) for rows in range(1, 7))


# ----------------------------------------------------------------------------- products

def _tiled(x, w, y, rows, n_cols):
    """``y[:rows, :n_cols] += x[:rows] @ w[:, :n_cols]`` by explicit tiles where this build
    has them (TR) and the arrays are float32: returns True; else does nothing and returns
    False (a stub: numba compiles :func:`_tiled_overload`'s choice)."""
    raise NotImplementedError("compiled only")


@overload(_tiled, jit_options={"fastmath": FAST, "error_model": "numpy"})
def _tiled_overload(x, w, y, rows, n_cols):
    if TR != 6 or not x.dtype == w.dtype == y.dtype == types.float32:  # tiles of 1 to 6 rows
        return lambda x, w, y, rows, n_cols: False

    def tiled(x, w, y, rows, n_cols):
        full, rest = rows - rows % 6, rows % 6
        for n0 in range(0, n_cols, TN):  # a panel of w (n_in x TN floats) stays in cache
            # a half tile where n_cols ends on one (AVX-512's [W_res | W_skip]: R + S = 288)
            half = n_cols - n0 < TN
            for b0 in range(0, full, 6):
                _tile6(x, w, y, b0, n0, half)
            if rest == 1:
                _tile1(x, w, y, full, n0, half)
            elif rest == 2:
                _tile2(x, w, y, full, n0, half)
            elif rest == 3:
                _tile3(x, w, y, full, n0, half)
            elif rest == 4:
                _tile4(x, w, y, full, n0, half)
            elif rest == 5:
                _tile5(x, w, y, full, n0, half)
        return True
    return tiled


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def _gemm(x, w, y, rows, sparse, idx):
    """``y[:rows] += x[:rows] @ w``: :func:`_gemm_cols` over all of ``w``'s columns."""
    _gemm_cols(x, w, y, rows, sparse, idx, w.shape[1])


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def _gemm_cols(x, w, y, rows, sparse, idx, n_cols):
    """``y[:rows] += x[:rows] @ w``: MB rows at a time, then single rows by :func:`_gemv`
    (a lone row always goes there, so batch 1 skips zero inputs whatever MB is), which stop
    at column ``n_cols`` (the rest of ``w`` is zero padding). Several float32 rows go to the
    explicit tiles instead where the build has them (:func:`_tiled`), which stop there too.

    Parameters
    ----------
    x : np.ndarray [shape=(>= rows, n_in)]
    w : np.ndarray [shape=(n_in, n_out)]
        ``n_out`` a multiple of NB (:func:`fused_weights` pads with zero columns), or of HALF
        where ``rows`` is 1.
    y : np.ndarray [shape=(>= rows, n_out)]
        Updated in place.
    rows : int
    sparse : bool
        The single rows skip the weight rows where ``x`` is zero (after a ReLU, about half);
        exact for finite weights, as each skipped term is 0 * w = 0.
    idx : np.ndarray [shape=(>= n_in,)], int64
        Work space for the rows used.
    n_cols : int
        Columns the single rows and the tiles compute: ``n_out``, or less where the last are
        zeros (a multiple of NB, or of HALF: whole tiles, then a half tile where TN is NB).
    """
    _wide_vectors()
    if rows > 1 and _tiled(x, w, y, rows, n_cols):
        return
    full = rows - rows % MB if rows > 1 else 0
    acc = numba.carray(_scratch(y.dtype), (MB, NB))
    n_in, n_out = w.shape
    for p in range(n_out // NB):
        n0 = p * NB  # provably >= 0, so indexing needs no wraparound (which defeats vectorizing)
        for q in range((n_in + KC - 1) // KC):  # KC rows of the panel stay in L1 for all blocks
            for b0 in range(0, full, MB):
                for bb in range(MB):
                    for j in range(NB):
                        acc[bb, j] = y[b0 + bb, n0 + j]
                for k in range(q * KC, min(q * KC + KC, n_in)):
                    wk = w[k]
                    for bb in range(MB):
                        xv = x[b0 + bb, k]
                        for j in range(NB):
                            acc[bb, j] += xv * wk[n0 + j]
                for bb in range(MB):
                    for j in range(NB):
                        y[b0 + bb, n0 + j] = acc[bb, j]
    for b in range(full, rows):
        n_used = _nonzero(x[b], idx) if sparse else _all(n_in, idx)
        _gemv(x[b], w, y[b], idx[:n_used], n_cols)


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def _nonzero(x, idx):
    """Positions of the non-zero entries of ``x`` in ``idx``, branch-free; returns their number."""
    n = 0
    for k in range(x.shape[0]):
        idx[n] = k
        n += x[k] != 0
    return n


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def _all(n, idx):
    """``idx[:n] = 0, 1, ..., n - 1``; returns ``n``."""
    for k in range(n):
        idx[k] = k
    return n


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def _gemv(x, w, y, rows_used, n_cols):
    """``y[:n_cols] += x[rows_used] @ w[rows_used, :n_cols]`` for one stream (see :func:`_gemm`).

    Columns go MV NB at a time (MV * NB independent accumulators), then NB at a time with
    the rows dealt round-robin to PARTIALS partial sums, so the multiply-adds do not wait on each
    other's latency, then a last half panel (HALF columns) where ``n_cols`` ends on one.
    """
    _wide_vectors()
    acc = numba.carray(_scratch(y.dtype), (MV, NB))
    n_used = rows_used.shape[0]
    for p in range(n_cols // (MV * NB)):
        n0 = p * MV * NB
        for bb in range(MV):
            for j in range(NB):
                acc[bb, j] = y[n0 + bb * NB + j]
        for i in range(n_used):
            k = max(rows_used[i], 0)  # proves k >= 0 (see the module docstring)
            xv, wk = x[k], w[k]
            for bb in range(MV):
                for j in range(NB):
                    acc[bb, j] += xv * wk[n0 + bb * NB + j]
        for bb in range(MV):
            for j in range(NB):
                y[n0 + bb * NB + j] = acc[bb, j]
    done = max(n_cols // (MV * NB) * MV * NB, 0)
    for p in range((n_cols - done) // NB):
        _gemv_panel(x, w, y, rows_used, done + p * NB)
    if n_cols % NB:
        _gemv_half(x, w, y, rows_used, n_cols - HALF)


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def _gemv_panel(x, w, y, rows_used, n0):
    """``y[n0:n0 + NB] += x[rows_used] @ w[rows_used, n0:n0 + NB]`` with PARTIALS = 4 partial sums."""
    _wide_vectors()
    acc = numba.carray(_scratch(y.dtype), (PARTIALS, NB))
    n0 = max(n0, 0)
    n_used = rows_used.shape[0]
    for bb in range(PARTIALS):
        for j in range(NB):
            acc[bb, j] = 0
    for i0 in range(0, n_used - n_used % PARTIALS, PARTIALS):
        k0, k1 = max(rows_used[i0], 0), max(rows_used[i0 + 1], 0)
        k2, k3 = max(rows_used[i0 + 2], 0), max(rows_used[i0 + 3], 0)
        x0, x1, x2, x3 = x[k0], x[k1], x[k2], x[k3]
        w0, w1, w2, w3 = w[k0], w[k1], w[k2], w[k3]
        for j in range(NB):
            acc[0, j] += x0 * w0[n0 + j]
            acc[1, j] += x1 * w1[n0 + j]
            acc[2, j] += x2 * w2[n0 + j]
            acc[3, j] += x3 * w3[n0 + j]
    for i in range(n_used - n_used % PARTIALS, n_used):
        k = max(rows_used[i], 0)
        xv, wk = x[k], w[k]
        for j in range(NB):
            acc[0, j] += xv * wk[n0 + j]
    for j in range(NB):
        y[n0 + j] += (acc[0, j] + acc[1, j]) + (acc[2, j] + acc[3, j])


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def _gemv_half(x, w, y, rows_used, n0):
    """:func:`_gemv_panel` for the half panel ``y[n0:n0 + HALF]``."""
    _wide_vectors()
    acc = numba.carray(_scratch(y.dtype), (PARTIALS, HALF))
    n0 = max(n0, 0)
    n_used = rows_used.shape[0]
    for bb in range(PARTIALS):
        for j in range(HALF):
            acc[bb, j] = 0
    for i0 in range(0, n_used - n_used % PARTIALS, PARTIALS):
        k0, k1 = max(rows_used[i0], 0), max(rows_used[i0 + 1], 0)
        k2, k3 = max(rows_used[i0 + 2], 0), max(rows_used[i0 + 3], 0)
        x0, x1, x2, x3 = x[k0], x[k1], x[k2], x[k3]
        w0, w1, w2, w3 = w[k0], w[k1], w[k2], w[k3]
        for j in range(HALF):
            acc[0, j] += x0 * w0[n0 + j]
            acc[1, j] += x1 * w1[n0 + j]
            acc[2, j] += x2 * w2[n0 + j]
            acc[3, j] += x3 * w3[n0 + j]
    for i in range(n_used - n_used % PARTIALS, n_used):
        k = max(rows_used[i], 0)
        xv, wk = x[k], w[k]
        for j in range(HALF):
            acc[0, j] += xv * wk[n0 + j]
    for j in range(HALF):
        y[n0 + j] += (acc[0, j] + acc[1, j]) + (acc[2, j] + acc[3, j])


# ----------------------------------------------------------------------------- elementwise math

@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy", inline="always")
def _tanh32(x):
    """float32 tanh by the rational TANH_P / TANH_Q (relative error < 4e-7, |tanh| <= 1).

    The clamps are comparisons, so a NaN input passes through to a NaN output.
    """
    if x > TANH_CLAMP:
        x = TANH_CLAMP
    elif x < -TANH_CLAMP:
        x = -TANH_CLAMP
    t = x * x
    p = (((TANH_P[4] * t + TANH_P[3]) * t + TANH_P[2]) * t + TANH_P[1]) * t + TANH_P[0]
    q = (((TANH_Q[4] * t + TANH_Q[3]) * t + TANH_Q[2]) * t + TANH_Q[1]) * t + TANH_Q[0]
    y = x * p / q
    if y > F32_ONE:  # rounding can give 1 + 1 ulp near the clamp
        y = F32_ONE
    elif y < -F32_ONE:
        y = -F32_ONE
    return y


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def _gate(h, z, rows, approx, half):
    """``z = tanh(f) * (half + half tanh(g'))`` for ``h = [f | g']``, z [rows, D]."""
    _wide_vectors()
    d = z.shape[1]
    for b in range(rows):
        f, g, zb = h[b, :d], h[b, d:2 * d], z[b]  # views: offsets like d + j defeat vectorizing
        if approx:
            for j in range(d):
                zb[j] = _tanh32(f[j]) * (F32_HALF + F32_HALF * _tanh32(g[j]))
        else:
            for j in range(d):
                zb[j] = np.tanh(f[j]) * (half + half * np.tanh(g[j]))


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _exp_nonpositive(x):
    """exp(x) for x <= 0 in float64 (relative error about 1 ulp; 0 below EXP_MIN)."""
    n = np.floor(x * LOG2E + 0.5)
    r = x - n * LN2_HI  # exact: n has at most 11 bits, LN2_HI 32
    r = r - n * LN2_LO
    p = EXP_COEF[13]
    for k in range(12, -1, -1):
        p = p * r + EXP_COEF[k]
    scale = _double_from_bits(np.int64(n + 1023.0) << 52)
    return p * scale if x >= EXP_MIN else 0.0


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _sample_row(logits, n_classes, u, temperature, work):
    """Inverse CDF of softmax(logits / T) in float64, as ``sample_next`` (argmax at T = 0).

    ``work`` [>= n_classes] float64 is scratch. The running sum stops at the first class whose
    cumulative weight exceeds ``u`` times the total, which is the reference's count of
    ``cdf <= target`` for a non-decreasing ``cdf``.
    """
    _wide_vectors()
    top = logits[0]
    best = 0
    for c in range(1, n_classes):  # the first maximum, as np.argmax
        if logits[c] > top:
            top, best = logits[c], c
    if temperature == 0.0:
        return best
    if temperature == 1.0:  # skip the division (x / 1 = x): 32 vector divisions a row
        for c in range(n_classes):
            work[c] = _exp_nonpositive(np.float64(logits[c]) - np.float64(top))
    else:
        shift = np.float64(top) / temperature  # = max(logits / T): x / T is monotone in x
        for c in range(n_classes):
            work[c] = _exp_nonpositive(np.float64(logits[c]) / temperature - shift)
    return _search(work, n_classes, u * _sum(work, n_classes))


@njit(cache=True, nogil=True, fastmath=EXACT, error_model="numpy")
def _sample_mixture_row(out, n_out, u, temperature, classes, log_scale_min, work):
    """One code from mixture parameters ``out[:n_out]``, as ``heads.sample_mixture`` (whose
    docstring gives the method) computes it for one row, in float64."""
    m = n_out // 3
    if temperature == 0.0:
        k = 0
        for j in range(1, m):  # the first maximum, as torch.argmax
            if out[j] > out[k]:
                k = j
        value = np.float64(out[m + k])
    else:
        top = np.float64(out[0]) / temperature
        for j in range(1, m):
            top = max(top, np.float64(out[j]) / temperature)
        total = 0.0
        for j in range(m):
            work[j] = np.exp(np.float64(out[j]) / temperature - top)
            total += work[j]
            work[m + j] = total  # the running sum, as torch.cumsum
        target = u * total
        k = 0
        for j in range(m):
            k += work[m + j] <= target
        k = min(k, m - 1)
        v = (target - (work[m + k] - work[k])) / work[k]
        v = min(max(v, 1e-5), 1.0 - 1e-5)
        log_scale = max(np.float64(out[2 * m + k]), log_scale_min)
        value = np.float64(out[m + k]) + np.exp(log_scale) * temperature * (np.log(v) - np.log1p(-v))
    value = min(max(value, -1.0), 1.0)
    code = np.floor((value + 1.0) * ((classes - 1) / 2.0) + 0.5)
    return min(max(np.int64(code), 0), classes - 1)


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _search(weights, n, target):
    """The first ``c`` whose running sum of ``weights[:c + 1]`` exceeds ``target`` (else n - 1).

    Skips SEARCH_STEP weights at a time while their sum keeps the running total at or below
    the target (the scan is a chain of dependent additions).
    """
    running = 0.0
    c = 0
    while c + SEARCH_STEP <= n:
        step = 0.0
        for i in range(SEARCH_STEP):
            step += weights[c + i]
        if running + step > target:
            break
        running += step
        c += SEARCH_STEP
    while c < n:
        running += weights[c]
        if running > target:
            return c
        c += 1
    return n - 1


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def _sum(x, n):
    """Sum of ``x[:n]`` in any order (vectorized; it differs from a running sum by ~1e-16)."""
    _wide_vectors()
    total = 0.0
    for i in range(n):
        total += x[i]
    return total


# ----------------------------------------------------------------------------- the step

@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def _ring_rows(t, offsets, spans, dil, n_taps, rows):
    """Ring-buffer rows of step ``t``: ``rows[k, j]`` holds the input ``n_taps - 1 - j``
    dilations back (the last column, j = n_taps - 1, is where the current input goes)."""
    for k in range(rows.shape[0]):
        for j in range(n_taps):
            rows[k, j] = offsets[k] + (t - (n_taps - 1 - j) * dil[k]) % spans[k]


@njit(cache=True, nogil=True, error_model="numpy")
def _prefetch_inputs(b, hist, rows, bias):
    """Prefetch what :func:`_load_inputs` will read of stream ``b`` in every layer of this
    step: its ring-buffer rows (taps read and the row written) and its bias rows.

    A lone stream's layer reads one ring-buffer row per tap, written up to a dilation of steps
    ago and since evicted to L3 or beyond; each read stalled the layer (10-15 % of thread 0's
    layer time in a lone stream split over two threads, on an AMD EPYC, Zen 3, AVX2).
    Prefetched together at the start of the step, the misses overlap: that time fell from
    7,500-13,600 to 5,500-7,700 cycles a step there, and prefetching the next layer's weights
    as well was slower.
    """
    line = max(64 // hist.itemsize, 1)
    for k in range(rows.shape[0]):
        for j in range(rows.shape[1]):
            first = (rows[k, j] * hist.shape[1] + b) * hist.shape[2]
            for i in range(0, hist.shape[2], line):
                _prefetch(hist, first + i)
        first = (b * bias.shape[1] + k) * bias.shape[2]
        for i in range(0, bias.shape[2], line):
            _prefetch(bias, first + i)


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def _load_inputs(k, b0, nb, hist, rows, state, taps, h, bias, cond, has_cond, tc, b_res):
    """Per stream of the block: the layer's taps, its ring-buffer write, ``h`` = bias (+ cond).

    Indices that LLVM cannot prove non-negative make numba test each one for Python's
    negative indexing, which stops vectorization; ``max(..., 0)`` (a no-op here) proves it.
    """
    _wide_vectors()
    r = max(b_res.shape[1], 0)
    b0 = max(b0, 0)
    n_taps = max(rows.shape[1], 1)
    write = max(rows[k, n_taps - 1], 0)
    for b in range(nb):
        for j in range(n_taps - 1):
            row = max(rows[k, j], 0)
            for i in range(r):
                taps[b, j * r + i] = hist[row, b0 + b, i]
        last = max((n_taps - 1) * r, 0)
        for i in range(r):
            x = state[b, i]
            taps[b, last + i] = x
            hist[write, b0 + b, i] = x
            state[b, i] = x + b_res[k, i]
        for j in range(h.shape[1]):
            h[b, j] = bias[b0 + b, k, j]
        if has_cond:
            for j in range(cond.shape[3]):
                h[b, j] += cond[b0 + b, max(tc, 0), k, j]


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def _output(state, nb, r, b_skip, w1, b1, w2, b2, sk, e, lg, idx, zero):
    """Logits ``lg[:nb]`` from the skip sums in ``state[:, r:r + S]`` (``zero`` of the dtype)."""
    _wide_vectors()
    r = max(r, 0)  # proves r + j >= 0 (see the module docstring)
    for b in range(nb):
        for j in range(b_skip.shape[0]):
            sk[b, j] = max(state[b, r + j] + b_skip[j], zero)
        for j in range(b1.shape[0]):
            e[b, j] = b1[j]
        for j in range(b2.shape[0]):
            lg[b, j] = b2[j]
    _gemm(sk, w1, e, nb, True, idx)
    flat = e.ravel()  # one flat loop: LLVM vectorized the nested one across rows, with gathers
    for i in range(flat.shape[0]):
        flat[i] = max(flat[i], zero)
    _gemm(e, w2, lg, nb, True, idx)


@njit(cache=True, nogil=True)
def _buffers(nb, width, n_end, n_out, w, run):
    """Zeroed :class:`Buffers` for ``nb`` streams: ``state`` at least ``width`` wide (and R),
    ``e`` ``n_end`` and ``lg`` ``n_out``."""
    dt = w.emb.dtype
    n_idx = max(w.w_taps.shape[1], w.w_rs.shape[1], w.w1.shape[0], w.w2.shape[0])
    return Buffers(state=np.zeros((nb, max(width, w.emb.shape[1])), dt),
                   taps=np.zeros((nb, w.w_taps.shape[1]), dt),
                   h=np.zeros((nb, w.w_taps.shape[2]), dt), z=np.zeros((nb, w.w_rs.shape[1]), dt),
                   sk=np.zeros((nb, w.b_skip.shape[0]), dt), e=np.zeros((nb, n_end), dt),
                   lg=np.zeros((nb, n_out), dt), idx=np.zeros(n_idx, np.int64),
                   work=np.zeros(max(run.n_classes, 1)),
                   rows=np.zeros((w.w_taps.shape[0], run.n_taps), np.int64))


@njit(cache=True, nogil=True)
def _block_steps(b0, stop, t0, t1, cond, w, run):
    """Advance streams ``b0 .. stop - 1`` from position ``t0`` to ``t1``: :func:`_advance`
    with this block's buffers."""
    nb = stop - b0
    _advance(b0, nb, t0, t1, cond, w, run,
             _buffers(nb, w.w_rs.shape[2], w.w1.shape[1], w.w2.shape[1], w, run))


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def _advance(b0, nb, t0, t1, cond, w, run, buf):
    """Advance streams ``b0 .. b0 + nb - 1`` from position ``t0`` to ``t1`` (module docstring).

    ``cond`` [batch, t1 - t0, L, 2D] holds the mel terms of these steps when ``run.has_cond``.
    The arguments are borrowed (:func:`_borrowed`): the caller owns them for the whole call.
    The helpers called per layer and per step take the arrays they use, not the bundles:
    passing the bundles down (numba hands over every field of every array in them, over 150
    values a call) cost about 4% at batch 1 in ``benchmarks/bench_samplers.py``.
    """
    _wide_vectors()
    _keep_outlined()
    cond, w, run, buf = _borrowed((cond, w, run, buf))
    state, taps, h, z, sk, e, lg, idx, work, rows = buf
    r = max(w.emb.shape[1], 0)
    rs_cols = _rs_columns(r, w.b_skip.shape[0], w.w_rs.shape[2], nb == 1)
    for t in range(t0, t1):
        _start_step(w.emb, run.prev, b0, nb, state)
        _ring_rows(t, run.offsets, run.spans, run.dil, run.n_taps, rows)
        if nb == 1:  # a block's rows are nb times larger, and their misses overlap anyway
            _prefetch_inputs(b0, run.hist, rows, run.bias)
        for k in range(w.w_taps.shape[0]):
            _load_inputs(k, b0, nb, run.hist, rows, state, taps, h, run.bias, cond,
                         run.has_cond, t - t0, w.b_res)
            _gemm(taps, w.w_taps[k], h, nb, False, idx)
            _gate(h, z, nb, run.approx, run.half)
            _gemm_cols(z, w.w_rs[k], state, nb, False, idx, rs_cols)
            if run.res_scale != 1.0:
                _scale_residual(state, nb, r, run.res_scale)
        _output(state, nb, r, w.b_skip, w.w1, w.b1, w.w2, w.b2, sk, e, lg, idx,
                run.half - run.half)
        _draw(lg, b0, nb, t - run.p, run.uniforms, run.temperature, run.n_classes, work,
              run.codes, run.prev, run.logits_out, run.keep, run.mixture, run.classes,
              run.log_scale_min)


@njit(cache=True, nogil=True)
def _rs_columns(r, s, padded, lone):
    """Columns of ``[W_res | W_skip]`` computed for a ``lone`` stream, or for a block of
    streams: R + S up to a half panel where that product can end on one (a lone stream:
    HALF_PANELS; a block: the build's tiles, TR, which its single rows follow), else all
    ``padded`` (a multiple of NB)."""
    ends_early = HALF_PANELS if lone else TR > 0
    return min(-(-(r + s) // HALF) * HALF, padded) if ends_early else padded


@njit(cache=True, nogil=True, error_model="numpy")
def _scale_residual(state, nb, r, scale):
    """``state[:nb, :r] *= scale``: the layer output (x + res(z)) times ``residual_scale``."""
    for b in range(nb):
        for i in range(r):
            state[b, i] *= scale


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def _start_step(emb, prev, b0, nb, state):
    """``state[b] = [embedding of the previous code | zero skip sum]``."""
    _wide_vectors()
    r = max(emb.shape[1], 0)
    for b in range(nb):
        code = max(prev[b0 + b], 0)
        for i in range(r):
            state[b, i] = emb[code, i]
        for j in range(state.shape[1] - r):
            state[b, r + j] = 0


@njit(cache=True, nogil=True, error_model="numpy")
def _draw(lg, b0, nb, step, uniforms, temperature, n_classes, work, codes, prev, logits_out,
          keep, mixture, classes, log_scale_min):
    """Each stream's code of generated step ``step`` from its outputs (and the outputs kept)."""
    _wide_vectors()
    b0, step = max(b0, 0), max(step, 0)
    for b in range(nb):
        if mixture:
            code = _sample_mixture_row(lg[b], n_classes, uniforms[b0 + b, step], temperature,
                                       classes, log_scale_min, work)
        else:
            code = _sample_row(lg[b], n_classes, uniforms[b0 + b, step], temperature, work)
        codes[b0 + b, step] = code
        prev[b0 + b] = code
        if keep:
            for c in range(n_classes):
                logits_out[b0 + b, step, c] = lg[b, c]


@njit(cache=True, nogil=True, parallel=True)
def _steps_parallel(block, t0, t1, cond, w, run):
    """Blocks of streams on numba's threads; streams never interact, so no synchronization.

    A last block of one stream beside others joins the block before it: a lone row takes
    :func:`_gemv`'s summation order, not the blocks' or the tiles', so a stream's bits would
    depend on how the batch was divided among the threads."""
    batch = run.codes.shape[0]
    n_blocks = (batch + block - 1) // block
    if n_blocks > 1 and batch % block == 1:
        n_blocks -= 1
    for i in prange(n_blocks):
        _block_steps(i * block, batch if i == n_blocks - 1 else (i + 1) * block, t0, t1, cond,
                     w, run)


# ----------------------------------------------------------------------------- batch 1, split

class Share(NamedTuple):
    """One thread's columns of the products that a lone stream splits (:func:`_split_steps`)."""

    w_rs: np.ndarray  # [L, D, width] its panels of [W_res | W_skip] (thread 0's start with W_res)
    rs0: int  # their first column
    w1: np.ndarray  # [S, width] its panels of the first end product
    b1: np.ndarray
    e0: int
    w2: np.ndarray  # [E', width] its panels of the second end product
    b2: np.ndarray
    c0: int


class Meeting(NamedTuple):
    """What the threads of a lone stream hand each other, and their counters."""

    z: np.ndarray  # [L, D] each layer's gate output in this step (written by thread 0)
    rs: np.ndarray  # [1, R + S'] [x | skip sums] at the end of the step, each thread its columns
    e: np.ndarray  # [1, E'] the first end layer's output
    lg: np.ndarray  # [1, C'] the outputs
    sync: np.ndarray  # counters (atomics.counters): one per thread, then thread 0's layer count


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def _split_steps(tid, n_threads, t0, t1, cond, w, share, meet, run, buf):
    """Thread ``tid``'s part of steps ``t0 .. t1 - 1`` of a lone stream (module docstring).

    Thread 0 runs the layers as :func:`_advance` does for one stream, with its own panels
    of ``[W_res | W_skip]`` (the residual columns among them), and hands each layer's gate
    output to the others, which add their panels' skip terms. Counter values only grow: the
    gate output of layer ``k`` in step ``t`` is published as ``t L + k + 1``, and the step's
    barriers are ``3 t + 1 .. 3 t + 3``. A thread reads a shared array only after the counter
    that says it is written, and no thread rewrites it before everyone has passed the next
    barrier. The arguments are borrowed (:func:`_borrowed`); ``buf`` is the thread's own
    (:func:`_buffers` for its share).
    """
    _wide_vectors()
    _keep_outlined()
    cond, w, share, meet, run, buf = _borrowed((cond, w, share, meet, run, buf))
    state, taps, h, z, sk, e, lg, idx, work, rows = buf
    zero = run.half - run.half
    lead = tid == 0
    r, n_layers = max(w.emb.shape[1], 0), w.w_taps.shape[0]
    width = share.w_rs.shape[2]
    d = z.shape[1]
    seen = 0  # the lead's layer count as last read (it only grows)
    for t in range(t0, t1):
        if lead:
            _start_step(w.emb, run.prev, 0, 1, state)
            _ring_rows(t, run.offsets, run.spans, run.dil, run.n_taps, rows)
            _prefetch_inputs(0, run.hist, rows, run.bias)
        else:
            for j in range(width):
                state[0, j] = 0
        for k in range(n_layers):
            if lead:
                _load_inputs(k, 0, 1, run.hist, rows, state, taps, h, run.bias, cond,
                             run.has_cond, t - t0, w.b_res)
                _gemm(taps, w.w_taps[k], h, 1, False, idx)
                _gate(h, z, 1, run.approx, run.half)
                for i in range(d):
                    meet.z[k, i] = z[0, i]
                publish(meet.sync, n_threads, t * n_layers + k + 1)
            else:
                if seen < t * n_layers + k + 1:  # the lead is often layers ahead: one read
                    seen = wait_for(meet.sync, n_threads, t * n_layers + k + 1)
                for i in range(d):
                    z[0, i] = meet.z[k, i]
            _gemm(z, share.w_rs[k], state, 1, False, idx)
            if lead and run.res_scale != 1.0:
                _scale_residual(state, 1, r, run.res_scale)
        rs0, e0, c0 = max(share.rs0, 0), max(share.e0, 0), max(share.c0, 0)
        for j in range(width):
            meet.rs[0, rs0 + j] = state[0, j]
        barrier(meet.sync, tid, n_threads, 3 * t + 1)
        for j in range(sk.shape[1]):
            sk[0, j] = max(meet.rs[0, r + j] + w.b_skip[j], zero)
        for j in range(e.shape[1]):
            e[0, j] = share.b1[j]
        _gemm(sk, share.w1, e, 1, True, idx)
        for j in range(e.shape[1]):
            meet.e[0, e0 + j] = max(e[0, j], zero)
        barrier(meet.sync, tid, n_threads, 3 * t + 2)
        for j in range(lg.shape[1]):
            lg[0, j] = share.b2[j]
        _gemm(meet.e, share.w2, lg, 1, True, idx)
        for j in range(lg.shape[1]):
            meet.lg[0, c0 + j] = lg[0, j]
        barrier(meet.sync, tid, n_threads, 3 * t + 3)
        step = max(t - run.p, 0)
        u = run.uniforms[0, step]
        if run.mixture:
            code = _sample_mixture_row(meet.lg[0], run.n_classes, u, run.temperature,
                                       run.classes, run.log_scale_min, work)
        else:
            code = _sample_row(meet.lg[0], run.n_classes, u, run.temperature, work)
        if lead:
            run.codes[0, step] = code
            run.prev[0] = code
            if run.keep:
                for c in range(run.n_classes):
                    run.logits_out[0, step, c] = meet.lg[0, c]


def split_threads(batch: int, w: dict) -> int:
    """Threads a generation's steps are split over: numba's thread count for a lone stream,
    at most one per core this process may use (a spinning thread must not wait for one that
    is not running) and one per whole panel of ``[W_res | W_skip]``; else 1."""
    if batch != 1:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(numba.get_num_threads(), cores or 1, w["w_rs"].shape[-1] // NB))


def _panels(n_panels: int, n_threads: int) -> list:
    """``n_panels`` split into ``n_threads`` runs ``(p0, p1)`` as even as possible (a run may
    be empty), the longer ones last."""
    sizes = [n_panels // n_threads + (i >= n_threads - n_panels % n_threads)
             for i in range(n_threads)]
    ends = np.cumsum([0] + sizes).tolist()
    return list(zip(ends[:-1], ends[1:]))


def _lead_panels(w: dict, r: int, n_threads: int) -> int:
    """Whole panels of ``[W_res | W_skip]`` for thread 0, which also runs every taps product
    and gate: at least the residual columns', then as many as keep the busiest thread's
    multiply-adds per layer lowest (ties: fewer, since the others wait for thread 0). A last
    half panel goes with the last thread, which also gets the longest run of whole panels."""
    n_cols, d = _rs_columns(r, w["b_skip"].shape[0], w["w_rs"].shape[-1], True), w["w_rs"].shape[1]
    n_panels, half = n_cols // NB, n_cols % NB
    taps = w["w_taps"].shape[1] * w["w_taps"].shape[2]

    def busiest(a):
        rest = -(-(n_panels - a) // (n_threads - 1))
        return max(taps + a * NB * d, (rest * NB + half) * d)
    return min(range(min(-(-r // NB), n_panels), n_panels + 1), key=busiest)


def split_shares(w: dict, r: int, n_threads: int) -> list:
    """Each thread's :class:`Share` of the weights (contiguous copies of its panels)."""
    lead = _lead_panels(w, r, n_threads)
    n_cols = _rs_columns(r, w["b_skip"].shape[0], w["w_rs"].shape[-1], True)
    # column bounds of each thread's part of [W_res | W_skip]: the lead's panels, the others'
    # runs, and a last half panel with the last thread (or with the lead, all of it, where
    # the residual columns reach into it)
    rs = [0, lead * NB] + [(lead + b) * NB for _, b in
                           _panels(n_cols // NB - lead, n_threads - 1)]
    rs[-1] = n_cols
    if r > lead * NB:
        rs[1:] = [n_cols] * n_threads
    cuts = {"w1": _panels(w["w1"].shape[-1] // NB, n_threads),
            "w2": _panels(w["w2"].shape[-1] // NB, n_threads)}
    shares = []
    for i in range(n_threads):
        (e0, e1), (c0, c1) = cuts["w1"][i], cuts["w2"][i]
        shares.append(Share(
            w_rs=aligned(w["w_rs"][:, :, rs[i]:rs[i + 1]]), rs0=rs[i],
            w1=aligned(w["w1"][:, e0 * NB:e1 * NB]), b1=w["b1"][e0 * NB:e1 * NB],
            e0=e0 * NB, w2=aligned(w["w2"][:, c0 * NB:c1 * NB]),
            b2=w["b2"][c0 * NB:c1 * NB], c0=c0 * NB))
    return shares


def _run_blocks(block, chunks, cond_of, weights, run):
    """Steps of blocks of streams on numba's threads, chunk by chunk (yields ``(t0, t1)``)."""
    for t0, t1 in chunks:
        _steps_parallel(block, t0, t1, cond_of(t0, t1), weights, run)
        yield t0, t1


def _run_split(n_threads, chunks, cond_of, weights, shares, run, dtype) -> None:
    """Steps of a lone stream on ``n_threads`` Python threads (the kernel releases the GIL),
    chunk by chunk (yields ``(t0, t1)``); ``cond_of(t0, t1)`` gives a chunk's mel terms.

    Python threads, not numba's ``prange``: the kernel's barriers need every part running at
    once, which a thread pool that may hand two parts to one thread does not promise."""
    meet = Meeting(z=aligned(np.zeros((weights.w_rs.shape[0], weights.w_rs.shape[1]), dtype)),
                   rs=aligned(np.zeros((1, weights.w_rs.shape[2]), dtype)),
                   e=aligned(np.zeros((1, weights.w1.shape[1]), dtype)),
                   lg=aligned(np.zeros((1, weights.w2.shape[1]), dtype)),
                   sync=counters(n_threads + 1))
    bufs = [_buffers(1, share.w_rs.shape[2], share.w1.shape[1], share.w2.shape[1], weights, run)
            for share in shares]
    with ThreadPoolExecutor(n_threads, thread_name_prefix="fused-split") as pool:
        for t0, t1 in chunks:
            cond = cond_of(t0, t1)
            jobs = [pool.submit(_split_steps, tid, n_threads, t0, t1, cond, weights, shares[tid],
                                meet, run, bufs[tid]) for tid in range(n_threads)]
            for job in jobs:
                job.result()
            yield t0, t1


# ----------------------------------------------------------------------------- Python side

def fused_weights(model, np_dtype) -> tuple[dict, torch.Tensor]:
    """The kernel's weight layout, from :func:`step_weights` (float64) cast to ``np_dtype``.

    Returns
    -------
    dict
        ``emb [C, R]``; ``w_taps [L, K R, 2D]`` (past taps oldest first, then the current
        input; gate columns halved); ``b_conv [L, 2D]``; ``w_rs [L, D, R + S]`` (``[W_res |
        W_skip]`` of each layer); ``b_res [L, R]``; ``b_skip [S]``; ``w1 [S, E]``, ``b1``,
        ``w2 [E, C]``, ``b2``; and when mel-conditioned ``w_cond``, ``b_cond`` with gate
        columns halved. Output widths (2D, R + S, E, C) are padded with zeros to multiples of
        NB, the products' panel width (zero columns give zero outputs, never read).
    torch.Tensor [shape=(2D,)]
        The gate scale (1 for filter columns, 1/2 for gate columns).
    """
    c = model.config
    w = step_weights(model, torch.float64, "cpu")
    k, r, d = c.kernel_size, c.residual_channels, c.dilation_channels
    n_layers = len(c.dilations)
    # w_old rows hold taps 1, 2, ... dilations back; the kernel wants oldest first, then current
    old = w["w_old"].reshape(n_layers, k - 1, r, 2 * d).flip(1).reshape(n_layers, -1, 2 * d)
    gate_scale = torch.cat([torch.ones(d), torch.full((d,), 0.5)]).double()
    out = {name: w[name] for name in ("emb", "b_res", "b_skip")}
    out["w_taps"] = _pad_columns(torch.cat([old, w["w_new"]], 1) * gate_scale)
    out["b_conv"] = _pad_columns(w["b_conv"] * gate_scale)
    out["w_rs"] = _pad_columns(torch.cat([w["w_res"], w["w_skip"].reshape(n_layers, d, -1)], 2))
    out["w1"], out["b1"] = _pad_columns(w["w1"]), _pad_columns(w["b1"])
    e_pad = out["w1"].shape[-1] - c.end_channels  # zero rows for the zero columns of w1
    out["w2"] = _pad_columns(torch.nn.functional.pad(w["w2"], (0, 0, 0, e_pad)))
    out["b2"] = _pad_columns(w["b2"])
    if c.uses_mel:
        scale = gate_scale.repeat(n_layers)
        out["w_cond"], out["b_cond"] = w["w_cond"] * scale, w["b_cond"] * scale
    return {name: aligned(t.numpy(), np_dtype) for name, t in out.items()}, gate_scale


def aligned(a: np.ndarray, dtype=None) -> np.ndarray:
    """A C-contiguous copy of ``a`` (cast to ``dtype``) whose data starts on a 64-byte boundary:
    a cache line, and the widest vector load."""
    a = np.asarray(a)
    dtype = a.dtype if dtype is None else np.dtype(dtype)
    buf = np.empty(a.size * dtype.itemsize + ALIGN, np.uint8)
    start = -buf.ctypes.data % ALIGN
    out = buf[start:start + a.size * dtype.itemsize].view(dtype).reshape(a.shape)
    out[...] = a
    return out


def _pad_columns(t: torch.Tensor) -> torch.Tensor:
    """Zero columns up to a multiple of NB in the last dimension."""
    return torch.nn.functional.pad(t, (0, -t.shape[-1] % NB))


def run_fused(model, inputs: Inputs, *, dtype, device, progress=None, callback=None,
              keep_logits=False, block: int | None = None):
    """Run the compiled cached step; arguments as the other samplers (CPU only).

    ``block`` caps the streams one thread advances together (default: the batch spread over
    numba's threads, at most BLOCK, rounded up to a multiple of MB).
    """
    c = model.config
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    w, gate_scale = fused_weights(model, np_dtype)
    batch, p, n = inputs.batch, inputs.prime_length, inputs.n_samples
    state = _initial_state(model, inputs, dtype)
    bias = aligned(np.repeat(w["b_conv"][None], batch, 0))
    spk = speaker_bias(model, inputs.speaker, torch.float64, "cpu")
    if spk is not None:
        bias[:, :, :2 * c.dilation_channels] += (spk.permute(1, 0, 2) * gate_scale).numpy()
    weights = Weights(**{name: w[name] for name in Weights._fields})
    run = Run(
        hist=aligned(state.buffer.numpy(), np_dtype),
        offsets=state.offset.numpy().astype(np.int64), spans=state.span.numpy().astype(np.int64),
        dil=state.dil.numpy().astype(np.int64), n_taps=c.kernel_size, bias=bias,
        prev=(inputs.prime[:, -1].cpu().numpy().astype(np.int64) if p
              else np.full(batch, model.start_code, np.int64)),
        codes=np.zeros((batch, n), np.int64), uniforms=inputs.uniforms,
        logits_out=np.zeros((batch, n if keep_logits else 1, c.out_channels), np_dtype),
        keep=bool(keep_logits), p=p, temperature=float(inputs.temperature),
        n_classes=c.out_channels, has_cond=bool(c.uses_mel), approx=np_dtype == np.float32,
        half=np_dtype(0.5), res_scale=np_dtype(c.residual_scale), mixture=c.output == "mol",
        classes=c.classes, log_scale_min=float(c.log_scale_min))
    if block is None:
        block = min(BLOCK, -(-batch // numba.get_num_threads()))
        block = -(-block // MB) * MB if batch > MB else block
    cond_w = {"w_cond": torch.from_numpy(w["w_cond"]).double(),
              "b_cond": torch.from_numpy(w["b_cond"]).double(),
              "b_conv": torch.from_numpy(w["b_conv"])} if c.uses_mel else None
    no_cond = np.zeros((1, 1, 1, 1), np_dtype)
    cond_up = inputs.cond_up.detach().cpu().double() if c.uses_mel else None

    def cond_of(t0, t1):  # [chunk, L, batch, 2D] -> [batch, chunk, L, 2D]
        if not c.uses_mel:
            return no_cond
        return np.ascontiguousarray(cond_terms(cond_w, cond_up, t0, t1).permute(2, 0, 1, 3)
                                    .numpy().astype(np_dtype))

    chunks = [(t0, min(t0 + CHUNK, p + n)) for t0 in range(p, p + n, CHUNK)]
    n_split = split_threads(batch, w)
    if n_split > 1:
        steps = _run_split(n_split, chunks, cond_of, weights,
                           split_shares(w, c.residual_channels, n_split), run, np_dtype)
    else:
        steps = _run_blocks(block, chunks, cond_of, weights, run)
    for t0, t1 in steps:
        if progress is not None:
            progress.update(t1 - t0)
        if callback is not None:
            callback(run.codes[:, t0 - p:t1 - p].copy(), t0 - p)
    return run.codes, (run.logits_out if keep_logits else None)


def _initial_state(model, inputs: Inputs, dtype) -> CachedState:
    """The cached sampler's ring buffers after the prime, on the CPU: the kernel reads the
    same layout (rows [sum of spans, batch, R], position q of layer k at offset_k + q % span_k)."""
    m = working_copy(model, "cpu", dtype)
    with torch.no_grad():
        state = CachedState(m.config, prime_history(m, inputs), "cpu")
    state.place_prime(inputs.prime_length)
    return state


register(SamplerSpec(
    name="fused", run=run_fused, devices=("cpu",),
    wrong_device="sampler 'fused' runs on the CPU, not {device}; use cached or cuda-graph"))
