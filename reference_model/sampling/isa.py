"""The vector ISA numba compiles the ``fused`` kernels for, and the register blocks chosen for it.

The products of :mod:`~reference_model.sampling.fused` keep a block of accumulators (``rows``
streams by 64 outputs) in vector registers while weight rows stream past. That block must fit
the register file with room to spare, and register files differ:

========  ==============  =========  ===============================================
ISA       vector width    registers  float32 block of 4 x 64 needs
========  ==============  =========  ===============================================
AVX-512   64 bytes        32         16 registers: fits
AVX2      32 bytes        16         32 registers: spills to the stack on every step
other     16 bytes (SSE,  16 or 32   64 registers
          NEON)
========  ==============  =========  ===============================================

So the rows per block are chosen from the features numba targets (not from the CPU alone:
``NUMBA_CPU_FEATURES`` overrides them, which is how an AVX-512 host builds and times the AVX2
variant). The choice is made once, at import, from the same features numba puts into its cache
key, so a cached kernel always matches the constants it was compiled with.
"""
from __future__ import annotations

from typing import NamedTuple

#: Outputs per register block (the fused kernels pad weight columns to a multiple of it).
PANEL = 64
#: Feature-name prefixes an AVX2-only build turns off (every AVX-512 and AMX extension).
WIDER_THAN_AVX2 = ("avx512", "avx10", "amx")


class RegisterBlock(NamedTuple):
    """Register blocking of the fused products for one ISA."""

    isa: str  # "avx512", "avx2" or "other"
    gemm_rows: int  # streams per register block of the batched product
    gemv_panels: int  # PANEL-wide column panels one pass of the one-stream product accumulates
    panel_rows: int  # weight rows of a panel the batched product streams past its blocks at once
    half_panels: bool  # one-stream products may end on a half panel (PANEL / 2 outputs)
    tile_rows: int = 0  # float32 batched products: streams per explicit tile (0: none)
    tile_columns: int = 0  # outputs per explicit tile: 2 ymm (AVX2) or 4 zmm (AVX-512) a stream

    @property
    def lanes(self) -> int:
        """float32 values per vector register of an explicit tile: 16 with AVX-512, 8 with
        AVX2 (and 8 where the build has no tiles, which never reads it)."""
        return 16 if self.isa == "avx512" else 8


def parse_features(text: str) -> set[str]:
    """The enabled features of an LLVM feature string (``"+avx2,-avx512f,..."``)."""
    return {item[1:] for item in text.split(",") if item.startswith("+")}


def target_features() -> set[str]:
    """The CPU features numba compiles for here: ``NUMBA_CPU_FEATURES`` if set, else the host's.

    This is numba's own rule (``CPUCodegen._get_host_cpu_features``), read the same way.
    """
    from llvmlite import binding
    from numba.core import config
    if config.CPU_FEATURES is not None:
        return parse_features(config.CPU_FEATURES)
    return parse_features(binding.get_host_cpu_features().flatten())


def isa_of(features: set[str]) -> str:
    """``"avx512"`` (AVX-512 F), ``"avx2"`` (AVX2 with FMA) or ``"other"``."""
    if "avx512f" in features:
        return "avx512"
    if {"avx2", "fma"} <= features:
        return "avx2"
    return "other"


def register_block(features: set[str]) -> RegisterBlock:
    """The register blocking for a set of target features.

    Measured with ``benchmarks/bench_samplers.py --isa`` (the README's speed section gives the
    figures): with AVX-512, 4 streams x 64 outputs (16 zmm accumulators) run batch 64 about 1.7
    times faster than 1 x 64; built for AVX2 on the same host, 1 x 64 (8 ymm) beats the spilling
    4 x 64 by about 1.2 times at batch 64 and 1.1 times at batch 1. Narrower panels (4 x 16,
    6 x 16) were slower still: LLVM turns their 16-wide loops into scalar code.

    Rows per panel pass: with 1 x 64 blocks every stream re-reads the pass's weight rows and
    its own inputs for them from L1. On an AMD EPYC (Zen 3, AVX2, 32 KiB L1) 128 rows (32 KiB
    of weights alone) ran the end products ([64, 256] @ [256, 256]) at 28-34 GFLOP/s against
    46-50 with 32 rows, and batch 64 about 1.1 times faster end to end; AVX-512 keeps the 128
    it was tuned with.

    Half panels: ``[W_res | W_skip]`` is R + S columns (288 in the reference preset), which
    whole panels pad to 320, so a lone stream read 10 % zeros of that product's weights. With
    AVX2 its one-stream product ends on a half panel (32 outputs, 4 ymm accumulators) instead:
    0.58 -> 0.50 us per layer on the EPYC above. The batched loops keep whole panels (their
    half-panel loop ran 1.5 times slower than the zeros it saves), and so does a lone stream
    with AVX-512: with half panels, batch 1 ran at 21,000-22,000 samples/s on one thread and
    32,600-33,300 on two, as with whole ones (three alternating runs, Intel Xeon, family 6
    model 167, AVX-512). The tiles end on R + S with either ISA (AVX-512: a half tile, 2 zmm a stream).

    Explicit tiles: with 1 x 64 blocks each multiply-add of a ymm register loads its weights
    from L1 (9 loads per 8 multiply-adds, with the input's broadcast), so the loads, not the
    multiply-adds, set the pace. With AVX2 a float32 batched product therefore runs tiles of
    6 streams x 16 outputs written directly in LLVM IR (12 accumulators, 2 weight registers,
    1 broadcast: 8 loads per 12 multiply-adds), the register block of the usual AVX2 SGEMM
    micro-kernel, which numba loops do not reach: written as loops, blocks 16 or 32 floats
    wide (1 x 32, 2 x 32, 4 x 16, 6 x 16) ran at 4-13 GFLOP/s, as scalar code would. On an AMD
    EPYC (Zen 3, AVX2) the layer products ran at 86-88 GFLOP/s against 73-75 with 1 x 64, and
    the 16-output tiles compute 288 columns of ``[W_res | W_skip]``, not 320. With AVX-512 the
    tiles are 6 streams x 64 outputs (24 zmm accumulators, 4 weight registers, 1 broadcast:
    10 loads per 24 multiply-adds, against 8 per 16 for the 4 x 64 loops, whose weights LLVM
    need not keep in registers). On an Intel Xeon (family 6 model 167, AVX-512) the end
    product [64, 256] @ [256, 256] ran at 144-152 GFLOP/s against 114-117 with the loops, and
    batch 64 on one thread at 103,100-103,300 samples/s against 97,800-98,200 (two alternating
    runs of ``wavebench speed``); ending ``[W_res | W_skip]`` on a half tile then gave
    104,500-110,000 against 98,900-99,500 (two more).
    """
    isa = isa_of(features)
    if isa == "avx512":
        return RegisterBlock(isa, gemm_rows=4, gemv_panels=4, panel_rows=128, half_panels=False,
                             tile_rows=6, tile_columns=64)
    if isa == "avx2":
        return RegisterBlock(isa, gemm_rows=1, gemv_panels=1, panel_rows=32, half_panels=True,
                             tile_rows=6, tile_columns=16)
    return RegisterBlock(isa, gemm_rows=1, gemv_panels=1, panel_rows=32, half_panels=True)


def without_wider_than_avx2(text: str) -> str:
    """An LLVM feature string with every AVX-512 and AMX feature turned off (an AVX2 build)."""
    items = []
    for item in text.split(","):
        name = item[1:]
        items.append(f"-{name}" if item and name.startswith(WIDER_THAN_AVX2) else item)
    return ",".join(items)
