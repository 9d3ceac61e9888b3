"""The fused kernels' register blocking per ISA: the choice everywhere, each build where it runs."""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from llvmlite import binding
from numba.core import config as numba_config

from reference_model.sampling import fused
from reference_model.sampling.isa import (
    RegisterBlock,
    isa_of,
    parse_features,
    register_block,
    target_features,
    without_wider_than_avx2,
)

ROOT = Path(__file__).resolve().parents[1]
HOST_FEATURES = binding.get_host_cpu_features().flatten()

# Feature sets as LLVM reports them on three kinds of host (abridged).
SKYLAKE_X = "+avx,+avx2,+fma,+avx512f,+avx512bw,+avx512vl,+sse4.2"
ZEN2 = "+avx,+avx2,+fma,-avx512f,-avx512bw,+sse4.2,+sse4a"
SANDY_BRIDGE = "+avx,-avx2,-fma,-avx512f,+sse4.2"
NEOVERSE = "+neon,+fp-armv8,+sve"


def test_parse_features_keeps_only_enabled_ones():
    assert parse_features("+avx2,-avx512f,+fma,") == {"avx2", "fma"}
    assert parse_features("") == set()


@pytest.mark.parametrize("features, isa, rows, panels, panel_rows, half_panels, tile, lanes", [
    (SKYLAKE_X, "avx512", 4, 4, 128, False, (6, 64), 16),  # 24 + 4 + 1 of 32 zmm registers
    (ZEN2, "avx2", 1, 1, 32, True, (6, 16), 8),  # 12 + 2 + 1 of 16 ymm
    (SANDY_BRIDGE, "other", 1, 1, 32, True, (0, 0), 8),  # AVX without FMA: 16 registers
    (NEOVERSE, "other", 1, 1, 32, True, (0, 0), 8),
    ("", "other", 1, 1, 32, True, (0, 0), 8),
])
def test_register_block_per_isa(features, isa, rows, panels, panel_rows, half_panels, tile,
                                lanes):
    parsed = parse_features(features)
    assert isa_of(parsed) == isa
    block = register_block(parsed)
    assert block == RegisterBlock(isa, rows, panels, panel_rows, half_panels, *tile)
    assert block.lanes == lanes


def test_without_wider_than_avx2_turns_off_avx512_and_amx_only():
    text = without_wider_than_avx2("+avx2,+fma,+avx512f,+avx512vl,+amx-tile,+avx10.1,-sse4a,+sha")
    assert text == "+avx2,+fma,-avx512f,-avx512vl,-amx-tile,-avx10.1,-sse4a,+sha"
    assert isa_of(parse_features(text)) == "avx2"


def test_target_features_follow_numba_cpu_features(monkeypatch):
    monkeypatch.setattr(numba_config, "CPU_FEATURES", ZEN2)
    assert target_features() == parse_features(ZEN2)
    monkeypatch.setattr(numba_config, "CPU_FEATURES", None)
    assert target_features() == parse_features(HOST_FEATURES)


def test_fused_module_uses_the_block_of_its_target():
    block = register_block(target_features())
    assert fused.REGISTER_BLOCK == block
    assert (fused.MB, fused.MV, fused.KC) == (block.gemm_rows, block.gemv_panels,
                                              block.panel_rows)
    assert fused.SCRATCH >= max(fused.MB, fused.MV, fused.PARTIALS) * fused.NB


# One script, run in a fresh process per build: the products against numpy and the sampler's
# codes against naive (float64 and float32, one and two threads, batches that leave remainders).
CHECK = r"""
import json, numba, numpy as np, torch
from reference_model.config import PRESETS, ModelConfig
from reference_model.model import WaveNet
from reference_model.sampling import fused, generate
torch.set_num_threads(1)
out = {"block": list(fused.REGISTER_BLOCK), "gemm": True, "codes": True}
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    for rows, n_in, n_out in ((1, 64, 64), (3, 24, 128), (5, 200, 192), (64, 256, 320),
                              (2, 16, 64), (13, 40, 128), (1, 32, 288)):
        x = rng.standard_normal((rows, n_in)).astype(dtype)
        x[x < -0.3] = 0
        w = rng.standard_normal((n_in, n_out)).astype(dtype)
        y0 = rng.standard_normal((rows, n_out)).astype(dtype)
        ref = y0.astype(np.float64) + x.astype(np.float64) @ w.astype(np.float64)
        scale = np.abs(y0) + np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64)
        for sparse in (False, True):
            y = y0.copy()
            fused._gemm(x, w, y, rows, sparse, np.empty(n_in, np.int64))
            ok = np.abs(y - ref) <= 4 * n_in * np.finfo(dtype).eps * scale
            out["gemm"] &= bool(ok.all())
# explicit tiles: a stream's outputs do not depend on its tile or its row in it
x = rng.standard_normal((13, 40)).astype(np.float32)
w = rng.standard_normal((40, 128)).astype(np.float32)
y, y_reversed = np.zeros((13, 128), np.float32), np.zeros((13, 128), np.float32)
fused._gemm(x, w, y, 13, False, np.empty(40, np.int64))
fused._gemm(x[::-1].copy(), w, y_reversed, 13, False, np.empty(40, np.int64))
out["slots"] = bool(np.array_equal(y, y_reversed[::-1]))
torch.manual_seed(3)
c = PRESETS["tiny"].model
model = WaveNet(ModelConfig(**{**c.__dict__, "kernel_size": 3})).eval()
prime = np.random.default_rng(1).integers(0, 256, (6, 30))
ref = generate(model, 150, batch=6, prime=prime, sampler="naive", dtype=torch.float64, seed=4)
for dtype in (torch.float64, torch.float32):
    for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
        numba.set_num_threads(threads)
        for batch in (1, 6):
            got = generate(model, 150, batch=batch, prime=prime[:batch], sampler="fused",
                           dtype=dtype, seed=4)
            same = np.array_equal(got.codes, ref.codes[:batch])
            out["codes"] &= bool(same)
            if not same:
                out.setdefault("differs", []).append([str(dtype), threads, batch])
print(json.dumps(out))
"""


def run_build(features: str | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("NUMBA_CPU_FEATURES", None)
    if features is not None:
        env["NUMBA_CPU_FEATURES"] = features
    done = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True,
                          text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


x86 = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                         reason="AVX builds need an x86-64 host")


@pytest.mark.slow
@x86
@pytest.mark.skipif(isa_of(parse_features(HOST_FEATURES)) == "other",
                    reason="host has neither AVX2 nor AVX-512")
def test_avx2_build_equals_naive():
    # on an AVX-512 host this builds the AVX2 kernels (NUMBA_CPU_FEATURES), so both run here
    result = run_build(without_wider_than_avx2(HOST_FEATURES))
    assert result["block"] == ["avx2", 1, 1, 32, True, 6, 16]
    assert result["gemm"], "AVX2 build: _gemm differs from numpy beyond rounding"
    assert result["slots"], "AVX2 build: a stream's tile outputs depend on its place"
    assert result["codes"], f"AVX2 build: fused codes differ from naive: {result.get('differs')}"


@pytest.mark.slow
@x86
@pytest.mark.skipif(isa_of(parse_features(HOST_FEATURES)) != "avx512",
                    reason="host has no AVX-512")
def test_avx512_build_equals_naive():
    result = run_build(None)
    assert result["block"] == ["avx512", 4, 4, 128, False, 6, 64]
    assert result["gemm"], "AVX-512 build: _gemm differs from numpy beyond rounding"
    assert result["slots"], "AVX-512 build: a stream's tile outputs depend on its place"
    assert result["codes"], f"AVX-512 build: fused codes differ from naive: {result.get('differs')}"
