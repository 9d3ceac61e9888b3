"""What this CPU can do, measured: the bounds that sampler speeds are read against.

A sampler step reads every weight once per step and does one multiply-add per weight and stream.
So on one thread its rate is bounded twice over:

- by **weight traffic**: at batch 1 a step cannot be faster than one matrix-vector product over
  the step's weights (:func:`matvec_per_s` on a matrix of that many floats);
- by **compute**: at any batch, samples/s cannot exceed the single-thread SGEMM rate
  (:func:`sgemm_gflops`) divided by the step's flops per sample (2 per multiply-add).

Both are measured here, in the same process and just before the samplers, so figures from
different machines (AVX-512 servers, AVX2 laptops) carry their own yardstick.

An AVX-512 host can also stand in for an AVX2 one (:func:`isa_emulation_env`): numba builds the
fused kernels without AVX-512, and torch's MKL and aten kernels and numpy's OpenBLAS dispatch
their AVX2 code, so samplers and bounds are both AVX2 figures (on this host's caches and
memory, which an AVX2 laptop need not match).
"""
from __future__ import annotations

import contextlib
import os
import platform
import time

import torch

#: Set (to the ISA's name) in a process started by :func:`isa_emulation_env`.
EMULATED_ISA = "WAVEBENCH_EMULATED_ISA"
MIN_SECONDS = 0.25  # each measurement repeats its operation for at least this long, best of 3
SGEMM_SIZE = 512


def cpu_description(text: str | None = None) -> dict:
    """``{"cpu": model name with family/model numbers, "isa": widest vector extension}``.

    The ISA is the widest of avx512f, avx2, avx and neon/asimd that the CPU reports
    (``text``, by default ``/proc/cpuinfo``), else ``"unknown"``.
    """
    if text is None:
        try:
            text = open("/proc/cpuinfo").read()
        except OSError:
            return {"cpu": platform.processor() or platform.machine() or "unknown CPU",
                    "isa": "unknown"}
    fields = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor's block is enough
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    isa = next((name for name in ("avx512f", "avx2", "avx", "asimd", "neon") if name in flags),
               "unknown")
    name = fields.get("model name") or fields.get("Hardware") or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name = f"{name} (family {fields['cpu family']} model {fields['model']})"
    emulated = os.environ.get(EMULATED_ISA)
    if emulated:
        isa = f"{emulated} (emulated on {isa})"
    return {"cpu": name, "isa": isa}


def kernel_build() -> str:
    """The ISA the fused kernels are built for here and their register block, in words."""
    from reference_model.sampling.isa import (
        PANEL,
        register_block,
        target_features,
    )

    block = register_block(target_features())
    tiles = (f" and {block.tile_rows} x {block.tile_columns} tiles for float32 batches"
             if block.tile_rows else "")
    return f"{block.isa}, {block.gemm_rows} x {PANEL} register blocks{tiles}"


def isa_emulation_env(isa: str, environ=None) -> dict:
    """The environment under which a new process computes as on an ``isa`` host.

    Only ``"avx2"`` is offered, and only on an x86 host whose CPU has AVX2 (the code must run).

    Raises
    ------
    ValueError
        Another ISA, or a host without AVX2 and FMA.
    """
    from llvmlite import binding

    from reference_model.sampling.isa import (
        isa_of,
        parse_features,
        without_wider_than_avx2,
    )

    if isa != "avx2":
        raise ValueError(f"only avx2 can be emulated, not {isa!r}")
    host = binding.get_host_cpu_features().flatten()
    if isa_of(parse_features(host)) not in ("avx2", "avx512"):
        raise ValueError("this CPU has no AVX2 with FMA, so it cannot run an AVX2 build")
    env = dict(os.environ if environ is None else environ)
    env.update({
        EMULATED_ISA: isa,
        "NUMBA_CPU_FEATURES": without_wider_than_avx2(host),  # numba: the fused kernels
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # torch's matrix products (the bounds, cached)
        "ATEN_CPU_CAPABILITY": "avx2",  # torch's elementwise kernels
        "OPENBLAS_CORETYPE": "Haswell",  # numpy's and scipy's OpenBLAS
    })
    return env


@contextlib.contextmanager
def one_thread():
    """torch on one thread inside the block (the bounds are single-thread figures)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _rate(run, repeats: int = 3) -> float:
    """Best of ``repeats`` rates (calls per second) of ``run``, each over >= MIN_SECONDS."""
    run()  # warm-up: page in, caches, the library's dispatch
    best = 0.0
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            run()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= MIN_SECONDS:
                break
        best = max(best, calls / elapsed)
    return best


def matvec_per_s(n_floats: int) -> float:
    """Single-thread float32 matrix-vector products per second over ``n_floats`` weights (a
    matrix of 256 columns, as the samplers' layers are a few hundred wide)."""
    cols = 256
    rows = max(1, -(-n_floats // cols))
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(rows, cols, generator=generator)
    x = torch.randn(cols, generator=generator)
    y = torch.empty(rows)
    with one_thread(), torch.inference_mode():
        return _rate(lambda: torch.mv(w, x, out=y))


def sgemm_gflops(size: int = SGEMM_SIZE) -> float:
    """Single-thread float32 GFLOP/s of a ``size`` x ``size`` matrix product."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    c = torch.empty(size, size)
    with one_thread(), torch.inference_mode():
        return _rate(lambda: torch.mm(a, b, out=c)) * 2 * size ** 3 / 1e9


def sampler_bounds(weight_floats: int, macs: int) -> dict:
    """This host's single-thread bounds for a model (see the module docstring).

    Parameters
    ----------
    weight_floats : int
        Weights a step reads (``reference_model.config.step_weight_floats``).
    macs : int
        Multiply-adds per sample of one stream (``reference_model.config.step_macs``).

    Returns
    -------
    dict
        ``cpu``, ``isa``, ``kernels`` (:func:`kernel_build`); ``traffic_samples_per_s``
        (matrix-vector products per second over the step's weights) and
        ``traffic_gb_per_s`` (float32 bytes read per second);
        ``compute_samples_per_s`` (SGEMM GFLOP/s over ``2 macs`` flops) and ``sgemm_gflops``.
    """
    traffic = matvec_per_s(weight_floats)
    gflops = sgemm_gflops()
    return {**cpu_description(), "kernels": kernel_build(),
            "weight_floats": weight_floats, "macs_per_sample": macs,
            "traffic_samples_per_s": traffic, "traffic_gb_per_s": traffic * weight_floats * 4 / 1e9,
            "compute_samples_per_s": gflops * 1e9 / (2 * macs), "sgemm_gflops": gflops}


def row_bound(bounds: dict, batch: int, threads: int) -> float:
    """The bound of a CPU row: ``threads x min(batch x traffic, compute)`` samples/s.

    A step's weights are read once for all ``batch`` streams, so traffic allows ``batch`` times
    its single-stream rate; compute does not grow with the batch. Threads are taken to scale
    both perfectly (an optimistic bound: cores share the memory bus).
    """
    return threads * min(batch * bounds["traffic_samples_per_s"], bounds["compute_samples_per_s"])
