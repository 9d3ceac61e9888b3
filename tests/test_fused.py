"""The ``fused`` sampler's kernels against independent references (numpy, the cached sampler)."""
import os
import sys

import numba
import numpy as np
import pytest
import torch
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from reference_model.config import PRESETS, ModelConfig
from reference_model.model import WaveNet
from reference_model.sampling import fused, generate, sample_next

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@njit(fastmath=fused.FAST)  # as in _gate: _tanh32 is inlined, so its caller's flags apply
def _apply_tanh32(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = fused._tanh32(x[i])
    return out


@njit
def _apply_exp(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = fused._exp_nonpositive(x[i])
    return out


@intrinsic
def _meminfo_address(typingctx, array):
    """The address of an array's meminfo (0 where it has none)."""
    def codegen(context, builder, signature, args):
        meminfo = context.make_array(signature.args[0])(context, builder, value=args[0]).meminfo
        return builder.ptrtoint(meminfo, ir.IntType(64))
    return types.int64(array), codegen


@njit
def _borrow_and_write(a, bundle):
    """Meminfo addresses of ``a`` and of the borrowed arrays, after a write through each."""
    mine, bundle = fused._borrowed(a), fused._borrowed(bundle)
    mine[0] = 7.0
    bundle[0][1, 1] = bundle[1]  # a nested array, written with the bundle's scalar
    view = mine[1:]  # a view of a borrowed array has no meminfo either
    view[0] = 8.0
    return (_meminfo_address(a), _meminfo_address(mine), _meminfo_address(bundle[0]),
            _meminfo_address(view), bundle[1])


def test_borrowed_arrays_write_through_and_own_no_reference():
    a, b = np.zeros(4), np.zeros((2, 3), np.int64)
    refs = sys.getrefcount(a), sys.getrefcount(b)
    for _ in range(1000):  # an unbalanced count would free or leak the arrays
        owned, mine, nested, view, scalar = _borrow_and_write(a, (b, 5))
    assert owned != 0 and mine == nested == view == 0 and scalar == 5
    np.testing.assert_array_equal(a, [7.0, 8.0, 0.0, 0.0])
    assert b[1, 1] == 5 and b.sum() == 5
    assert (sys.getrefcount(a), sys.getrefcount(b)) == refs


def test_tanh32_is_within_a_few_ulp_of_numpy_tanh():
    x = np.concatenate([np.linspace(-12, 12, 400_001), np.geomspace(1e-30, 1, 10_001),
                        -np.geomspace(1e-30, 1, 10_001)]).astype(np.float32)
    got = _apply_tanh32(x).astype(np.float64)
    ref = np.tanh(x.astype(np.float64))
    # the fit's float32 evaluation error is 3.7e-7 (about 6 ulp); the logits tests need ~1e-6
    np.testing.assert_allclose(got, ref, rtol=4e-7, atol=0)
    assert np.all(np.abs(got) <= 1)
    big = _apply_tanh32(np.array([9.5, 30.0, np.inf, -np.inf, -50.0], np.float32))
    assert big.tolist() == [1.0, 1.0, 1.0, -1.0, -1.0]  # float32 tanh rounds to +-1 there
    assert np.isnan(_apply_tanh32(np.array([np.nan], np.float32))[0])  # NaN is not hidden


def test_exp_nonpositive_matches_numpy_exp():
    x = np.concatenate([-np.geomspace(1e-12, 708, 200_001), [0.0, -0.0]])
    # Cody-Waite reduction and a degree-13 Taylor polynomial: a few ulp of float64 at most
    np.testing.assert_allclose(_apply_exp(x), np.exp(x), rtol=5e-16, atol=0)
    # below EXP_MIN the result would be subnormal; it is flushed to 0 (terms < 1e-307)
    assert _apply_exp(np.array([-709.0, -800.0, -np.inf])).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, n_in, n_out", [(1, 64, 64), (3, 24, 128), (4, 200, 64),
                                               (7, 32, 320), (64, 256, 256),
                                               (2, 16, 64), (11, 48, 128),  # every tile height
                                               (1, 32, 288), (1, 40, 32)])  # half panels
def test_gemm_matches_numpy_matmul(dtype, rows, n_in, n_out):
    rng = np.random.default_rng(rows * n_in + n_out)
    x = rng.standard_normal((rows, n_in)).astype(dtype)
    x[x < -0.3] = 0  # zeros, as after a ReLU, so that the sparse single rows skip some
    w = rng.standard_normal((n_in, n_out)).astype(dtype)
    y0 = rng.standard_normal((rows, n_out)).astype(dtype)
    ref = y0.astype(np.float64) + x.astype(np.float64) @ w.astype(np.float64)
    # rounding of n_in products in the working precision, relative to the sum of magnitudes
    eps = np.finfo(dtype).eps
    scale = np.abs(y0) + np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64)
    for sparse in (False, True):
        y = y0.copy()
        fused._gemm(x, w, y, rows, sparse, np.empty(n_in, np.int64))
        assert np.all(np.abs(y - ref) <= 4 * n_in * eps * scale)


@pytest.mark.skipif(not fused.TR, reason="this build has no explicit tiles (AVX2 only)")
def test_tiles_give_a_stream_the_same_bits_in_every_slot():
    # 13 streams: two tiles of 6 and a tile of 1. Reversed, each stream lands in another
    # tile and row of it, and every output must still be the same chain of multiply-adds.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((13, 40)).astype(np.float32)
    w = rng.standard_normal((40, 128)).astype(np.float32)
    y0 = rng.standard_normal((13, 128)).astype(np.float32)
    y, y_reversed = y0.copy(), y0[::-1].copy()
    fused._gemm(x, w, y, 13, False, np.empty(40, np.int64))
    fused._gemm(x[::-1].copy(), w, y_reversed, 13, False, np.empty(40, np.int64))
    assert np.array_equal(y, y_reversed[::-1])
    assert not np.array_equal(y, y0)


@pytest.mark.parametrize("rows", [1, 7, 13])
def test_gemm_cols_stops_at_its_column(rows):
    # 288 of 320 columns: AVX-512 tiles end on a half tile, AVX2 on a whole one, a single row
    # on a half panel
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((rows, 32)).astype(np.float32)
    w = rng.standard_normal((32, 320)).astype(np.float32)
    y0 = rng.standard_normal((rows, 320)).astype(np.float32)
    whole, part = y0.copy(), y0.copy()
    fused._gemm(x, w, whole, rows, False, np.empty(32, np.int64))
    fused._gemm_cols(x, w, part, rows, False, np.empty(32, np.int64), 288)
    ref = y0[:, :288] + x.astype(np.float64) @ w[:, :288].astype(np.float64)
    scale = np.abs(y0[:, :288]) + np.abs(x).astype(np.float64) @ np.abs(w[:, :288])
    assert np.all(np.abs(part[:, :288] - ref) <= 4 * 32 * np.finfo(np.float32).eps * scale)
    if rows == 1 or fused.TR:  # single rows and tiles leave the rest alone (MB-row loops not)
        assert np.array_equal(part[:, 288:], y0[:, 288:])
    if rows > 1 and fused.TR:  # chains of multiply-adds in IR: the whole product's bits
        # (FAST loops may pair partial sums otherwise where LLVM compiles them in another
        # caller, so a single row is only held to rounding)
        assert np.array_equal(part[:, :288], whole[:, :288])


def test_gemm_leaves_rows_beyond_the_count_alone():
    x = np.ones((8, 64), np.float32)
    y = np.zeros((8, 64), np.float32)
    fused._gemm(x, np.ones((64, 64), np.float32), y, 5, False, np.empty(64, np.int64))
    assert np.all(y[:5] == 64) and np.all(y[5:] == 0)  # 64 products of ones: exact


@pytest.mark.parametrize("temperature", [0.0, 0.5, 1.0, 2.0])
def test_sample_row_equals_sample_next(temperature):
    rng = np.random.default_rng(int(temperature * 10))
    logits = (rng.standard_normal((2000, 256)) * 4).astype(np.float32)
    logits[:5, 7] = logits[:5].max(1) + 1  # clear maxima for the argmax rows
    u = rng.random(2000)
    work = np.empty(256)
    got = [fused._sample_row(row, 256, ui, temperature, work) for row, ui in zip(logits, u)]
    # differences only for a u within ~1e-16 (relative) of a CDF boundary: probability ~1e-13
    assert got == sample_next(logits, u, temperature=temperature).tolist()


# ----------------------------------------------------------------------------- whole sampler

def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    config = PRESETS["tiny"].model if not overrides else ModelConfig(**{
        **PRESETS["tiny"].model.__dict__, **overrides})
    return WaveNet(config).eval()


def test_float64_equals_cached_for_every_block_split():
    # tiny: widths 48, 88 and 64 exercise the zero padding; batch 7 = a block of 4 and 3 rows
    model = tiny_model(1)
    prime = np.random.default_rng(1).integers(0, 256, (7, 40))
    ref = generate(model, 200, batch=7, prime=prime, sampler="cached", dtype=torch.float64,
                   seed=2, keep_logits=True)
    from reference_model.sampling import prepare_inputs
    inputs = prepare_inputs(model, 200, batch=7, temperature=1.0, prime=prime, cond=None,
                            speaker=None, seed=2, device=torch.device("cpu"),
                            dtype=torch.float64)
    for block in (None, 1, 4, 5, 7):
        codes, logits = fused.run_fused(model, inputs, dtype=torch.float64, device="cpu",
                                        keep_logits=True, block=block)
        np.testing.assert_array_equal(codes, ref.codes, err_msg=f"block {block}")
        # float64 with another summation order: ~1e-15 per step; 1e-10 leaves room
        np.testing.assert_allclose(logits, ref.logits, rtol=0, atol=1e-10)


@pytest.mark.parametrize("batch", [9, 3])  # 3 on 2 threads: blocks of 2 and 1 unless merged
def test_float32_with_two_threads_equals_one_thread_and_cached(batch):
    model = tiny_model(2, kernel_size=3)
    ref = generate(model, 300, batch=batch, sampler="cached", dtype=torch.float64, seed=3,
                   keep_logits=True)
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here: nothing to compare")
    before = numba.get_num_threads()
    try:
        runs = []
        for threads in (1, 2):
            numba.set_num_threads(threads)
            runs.append(generate(model, 300, batch=batch, sampler="fused", seed=3,
                                 keep_logits=True))
    finally:
        numba.set_num_threads(before)
    for got in runs:
        np.testing.assert_array_equal(got.codes, ref.codes)
        # float32 rounding and the rational tanh (< 4e-7) over 16 layers: ~1e-6; 1e-4 allowed
        np.testing.assert_allclose(got.logits, ref.logits, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(runs[0].logits, runs[-1].logits)  # streams never interact


# ----------------------------------------------------------------------------- a lone stream, split

needs_two_cores = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else os.cpu_count() < 2,
    reason="the split's threads spin-wait for each other: they need a core each")


def split_runs(model, n, monkeypatch, threads=(1, 2), **kwargs):
    """fused at batch 1 with its steps split over each of ``threads`` threads (1: unsplit)."""
    runs = {}
    for count in threads:
        monkeypatch.setattr(fused, "split_threads", lambda batch, w, count=count: count)
        runs[count] = generate(model, n, sampler="fused", batch=1, keep_logits=True, **kwargs)
    return runs


@needs_two_cores
@pytest.mark.parametrize("case", ["float64", "float32", "mel+speaker", "mixture", "scaled"])
def test_lone_stream_split_over_threads_equals_naive(case, monkeypatch):
    from test_sample import SMALL, mixture_case
    rng = np.random.default_rng(5)
    kwargs = dict(prime=rng.integers(0, 256, (1, 40)), dtype=torch.float64, seed=6)
    if case == "float64":
        model = tiny_model(3, kernel_size=3)
    elif case == "float32":
        model, kwargs["dtype"] = tiny_model(4), torch.float32
    elif case == "mel+speaker":
        torch.manual_seed(5)
        model = WaveNet(SMALL).eval()
        kwargs.update(cond=rng.standard_normal((1, 6, 60)), speaker=[2])
    elif case == "mixture":
        model, mixture = mixture_case(2)
        kwargs.update(prime=mixture["prime"][:1], cond=mixture["cond"][:1], speaker=[1])
    else:  # wavenet_vocoder's residual scaling, and skip columns that need several panels
        model = tiny_model(6, residual_scale=0.5 ** 0.5, skip_channels=200)
    ref = generate(model, 300, sampler="naive", batch=1, keep_logits=True,
                   **{**kwargs, "dtype": torch.float64})
    runs = split_runs(model, 300, monkeypatch, threads=(1, 2, 3) if case == "scaled" else (1, 2),
                      **kwargs)
    atol = 1e-10 if kwargs["dtype"] == torch.float64 else 1e-4
    for count, got in runs.items():
        np.testing.assert_array_equal(got.codes, ref.codes, err_msg=f"{count} threads")
        np.testing.assert_allclose(got.logits, ref.logits, rtol=0, atol=atol,
                                   err_msg=f"{count} threads")


@needs_two_cores
def test_lone_stream_split_across_chunks_equals_cached(monkeypatch):
    # more steps than one CHUNK: the threads start again on each chunk, counters carry on
    from reference_model.sampling.state import CHUNK
    model = tiny_model(7)
    n = CHUNK + 300
    ref = generate(model, n, sampler="cached", batch=1, dtype=torch.float64, seed=2,
                   keep_logits=True)
    got = split_runs(model, n, monkeypatch, threads=(2,), dtype=torch.float64, seed=2)[2]
    np.testing.assert_array_equal(got.codes, ref.codes)
    np.testing.assert_allclose(got.logits, ref.logits, rtol=0, atol=1e-10)


@needs_two_cores
def test_generations_free_every_numba_allocation(monkeypatch):
    # borrowed views take no part in numba's reference counts: a count wrongly dropped or
    # kept on a real array shows here as a free too many or an allocation left
    from numba.core.runtime import _nrt_python, rtsys
    model = tiny_model(8)
    _nrt_python.memsys_enable_stats()
    try:
        for batch, count in ((1, 1), (1, 2), (3, 1)):
            monkeypatch.setattr(fused, "split_threads", lambda b, w, count=count: count)
            before = rtsys.get_allocation_stats()
            generate(model, 200, sampler="fused", batch=batch, seed=3)
            after = rtsys.get_allocation_stats()
            made, freed = after.mi_alloc - before.mi_alloc, after.mi_free - before.mi_free
            assert made > 0 and made == freed, (batch, count, made, freed)
            assert after.alloc - before.alloc == after.free - before.free
    finally:
        _nrt_python.memsys_disable_stats()


def test_split_shares_tile_every_product():
    # [W_res | W_skip]: 48 + 300 -> 6 panels (AVX-512), or 5 and a half panel (AVX2)
    model = tiny_model(8, skip_channels=300)
    w, _ = fused.fused_weights(model, np.float64)
    r = model.config.residual_channels
    for n_threads in (2, 3, 4):
        shares = fused.split_shares(w, r, n_threads)
        # [W_res | W_skip] up to its last half panel (AVX2) or its padding (AVX-512)
        n_cols = fused._rs_columns(r, w["b_skip"].shape[0], w["w_rs"].shape[-1], True)
        assert n_cols == (352 if fused.HALF_PANELS else 384) and not w["w_rs"][..., n_cols:].any()
        for name, first in (("w_rs", "rs0"), ("w1", "e0"), ("w2", "c0")):
            starts = [getattr(share, first) for share in shares]
            widths = [getattr(share, name).shape[-1] for share in shares]
            assert starts == np.cumsum([0] + widths[:-1]).tolist()  # in order, no gap
            joined = np.concatenate([getattr(share, name) for share in shares], axis=-1)
            np.testing.assert_array_equal(joined, w[name][..., :n_cols] if name == "w_rs"
                                          else w[name])
        assert shares[0].w_rs.shape[-1] >= r  # thread 0 holds the residual columns
        np.testing.assert_array_equal(np.concatenate([s.b1 for s in shares]), w["b1"])
        np.testing.assert_array_equal(np.concatenate([s.b2 for s in shares]), w["b2"])


def test_weights_and_shares_start_on_cache_lines():
    # numpy's large arrays start 16 bytes into a page, which split vector loads across lines
    model = tiny_model(8, skip_channels=300)
    for dtype in (np.float32, np.float64):
        w, _ = fused.fused_weights(model, dtype)
        arrays = list(w.values())
        for share in fused.split_shares(w, model.config.residual_channels, 2):
            arrays += [share.w_rs, share.w1, share.w2]
        for a in arrays:  # (an empty share has no data to align)
            assert a.size == 0 or a.ctypes.data % fused.ALIGN == 0
            assert a.flags.c_contiguous and a.dtype == dtype
    odd = np.arange(10.0)[1:]  # 8 bytes past an allocation's start
    copy = fused.aligned(odd, np.float32)
    assert copy.ctypes.data % 64 == 0 and copy.dtype == np.float32
    np.testing.assert_array_equal(copy, odd)


def test_lead_panels_balance_the_busiest_thread():
    # reference preset: taps product 64 x 64 = 4096 multiply-adds a layer, panels of 32 x 64
    w = {"w_rs": np.zeros((30, 32, 320)), "w_taps": np.zeros((30, 64, 64)),
         "b_skip": np.zeros(288)}  # R + S = 320: whole panels
    # lead 1 panel: max(4096 + 2048, 4 x 2048) = 8192; 2 panels: max(8192, 6144) = 8192 (tie)
    assert fused._lead_panels(w, 32, 2) == 1
    # three threads: 1 panel -> max(6144, 2 x 2048) = 6144, the least
    assert fused._lead_panels(w, 32, 3) == 1
    # a residual of 100 channels needs 2 panels whatever the balance
    assert fused._lead_panels(w, 100, 3) == 2
    assert fused._panels(5, 2) == [(0, 2), (2, 5)] and fused._panels(1, 2) == [(0, 0), (0, 1)]


def test_split_threads_only_for_a_lone_stream():
    w = {"w_rs": np.zeros((2, 8, 320))}
    assert fused.split_threads(4, w) == 1
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert fused.split_threads(1, w) == 1
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        assert 1 <= fused.split_threads(1, w) <= min(numba.config.NUMBA_NUM_THREADS, 5)
    finally:
        numba.set_num_threads(before)
