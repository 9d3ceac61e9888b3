"""CPU samplers side by side: samples/s of ``cached``, ``fused`` and optionally an older fused.

Usage:
    python benchmarks/bench_samplers.py [--preset reference | --checkpoint MODEL.pt]
        [--batches 1,8,64] [--samplers cached,fused] [--threads 1] [--repeats 5]
        [--before OLD_FUSED.py] [--compile-time] [--isa avx2]

On a shared machine one sampler timed after another sees different loads, so every repeat runs
each sampler once, in rotating order, after one untimed warm-up each; the table gives the median
and the best of the repeats (aggregate samples/s = batch x steps / wall time of the sampling
loop) and the load average around the run. ``--before`` times another version of
``reference_model/sampling/fused.py`` (for example
``git show REV:reference_model/sampling/fused.py > old.py``) through its ``run_fused``, so
before/after figures come from one run (a fused.py from before the ``sampling`` package imports
``reference_model.sample``: point that import at ``reference_model.sampling.state``).
At batch 1 on several threads, check a ``--before`` verdict with each version run alone, in
turn, from its own checkout: on a 2-core Xeon (family 6 model 167, AVX-512) ``--before`` timed
an older fused.py 10-20 % faster than the current one in one session, and a near-copy of the
current one 2-15 % faster, while separate processes of the two versions were within noise.
``--compile-time`` times the first ``fused`` call in fresh processes: with an empty numba cache,
then with it filled. ``--checkpoint`` times a saved model (one converted from another project,
say); a mel-conditioned one gets random frames and a speaker-conditioned one speaker 0.
``--isa avx2`` reruns the benchmark in a process built for AVX2 (``wavebench.host.
isa_emulation_env``: the fused kernels, numba's register blocks and torch's kernels), so an
AVX-512 host times both builds: for example the AVX2 build against the kernel before its
register blocks were chosen per ISA (``--before`` with fused.py from commit 36e3baf).
"""
import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import torch

from reference_model.config import get_preset
from reference_model.model import WaveNet
from reference_model.sampling import REGISTRY, generate, prepare_inputs
from wavebench.host import EMULATED_ISA, cpu_description, isa_emulation_env, kernel_build

REFERENCE_MACS = 538_624  # multiply-adds per generated sample of the reference preset


def steps_for(batch: int, slow: bool = False) -> int:
    """Steps per timed run: about 16,000 samples in all, at least 250 steps (``slow``: 300
    steps, for the naive sampler, which runs the whole network per step)."""
    if slow:
        return 300
    return max(250, 16_000 // batch) if batch > 1 else 2000


def load_run_fused(path: str):
    """``run_fused`` of the fused.py at ``path``, imported as a top-level module named after it.

    numba's cache (beside the file) re-imports a function's module by name when it loads
    compiled code, so the module must be registered under its file's stem. A fused.py that
    registers itself as ``fused`` would replace the current one in the registry: the current
    entries are put back.
    """
    name = Path(path).stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    current = dict(REGISTRY)
    spec.loader.exec_module(module)
    REGISTRY.update(current)
    return module.run_fused


def conditioning(model, steps: int) -> dict:
    """Random mel frames and speaker 0 for the conditionings the model needs."""
    c, extra = model.config, {}
    if c.uses_mel:
        frames = -(-steps // c.hop_length)
        extra["cond"] = torch.randn(c.n_mels, frames, generator=torch.Generator().manual_seed(0))
    if c.uses_speaker:
        extra["speaker"] = 0
    return extra


def timer(model, sampler: str, batch: int, steps: int, run_before=None):
    """A function that runs one generation and returns its sampling-loop seconds."""
    if sampler != "before":
        extra = conditioning(model, steps)
        return lambda n=steps: generate(model, n, batch=batch, sampler=sampler, seed=0,
                                        **extra).seconds

    def run(n=steps):
        inputs = prepare_inputs(model, n, batch=batch, temperature=1.0, prime=None, cond=None,
                                speaker=None, seed=0, device=torch.device("cpu"),
                                dtype=torch.float32)
        with torch.inference_mode():
            start = time.perf_counter()
            run_before(model, inputs, dtype=torch.float32, device=torch.device("cpu"))
            return time.perf_counter() - start
    return run


def measure(model, samplers, batch: int, repeats: int, run_before) -> dict:
    """samples/s of each sampler over ``repeats`` interleaved rounds: {sampler: [rates]}."""
    steps = {s: steps_for(batch, s == "naive") for s in samplers}
    runs = {s: timer(model, s, batch, steps[s], run_before) for s in samplers}
    for run in runs.values():
        run(64)  # warm-up: compilation (or the cache load), allocator, caches
    rates = {s: [] for s in samplers}
    for r in range(repeats):
        order = samplers[r % len(samplers):] + samplers[:r % len(samplers)]
        for s in order:
            rates[s].append(batch * steps[s] / runs[s]())
    return rates


def compile_seconds(preset: str) -> tuple[float, float]:
    """First-call seconds of ``fused`` (float32, batch 5) in fresh processes: cold, then cached."""
    code = ("import time, torch; from reference_model.config import get_preset; "
            "from reference_model.model import WaveNet; "
            "from reference_model.sampling import generate; "
            f"m = WaveNet(get_preset({preset!r}).model).eval(); t = time.perf_counter(); "
            "generate(m, 8, batch=5, sampler='fused'); print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = [float(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                    capture_output=True, text=True).stdout.split()[-1])
               for _ in range(2)]
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="reference")
    parser.add_argument("--checkpoint", help="a saved model to time instead of a preset")
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--samplers", default="cached,fused")
    parser.add_argument("--threads", type=int, default=1, help="torch and numba threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", help="an older fused.py to time beside the current one")
    parser.add_argument("--compile-time", action="store_true")
    parser.add_argument("--isa", choices=["host", "avx2"], default="host",
                        help="avx2: time an AVX2 build of everything, in a new process")
    args = parser.parse_args()
    if args.isa != "host" and os.environ.get(EMULATED_ISA) != args.isa:
        env = isa_emulation_env(args.isa)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)

    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    torch.manual_seed(0)
    if args.checkpoint:
        from reference_model.checkpoint import load_checkpoint
        model, _ = load_checkpoint(args.checkpoint)
        args.preset = f"checkpoint {args.checkpoint}"
    else:
        model = WaveNet(get_preset(args.preset).model).eval()
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    run_before = None
    if args.before:
        samplers.append("before")
        run_before = load_run_fused(args.before)
    rate = model.config.sample_rate
    load = os.getloadavg()
    host = cpu_description()
    print(f"{host['cpu']}, {host['isa']}; fused kernels: {kernel_build()}")
    print(f"preset {args.preset}, float32, {args.threads} thread(s), {os.cpu_count()} CPUs; "
          f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| batch | sampler | median samples/s | best samples/s | per stream (median) "
          "| x real time (median) | GMAC/s (median) | vs cached (median) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for batch in [int(b) for b in args.batches.split(",")]:
        rates = measure(model, samplers, batch, args.repeats, run_before)
        medians = {s: statistics.median(v) for s, v in rates.items()}
        for s, v in rates.items():
            ratio = medians[s] / medians["cached"] if "cached" in medians else float("nan")
            gmacs = (f"{medians[s] * REFERENCE_MACS / 1e9:.1f}" if args.preset == "reference"
                     else "")
            print(f"| {batch} | {s} | {medians[s]:,.0f} | {max(v):,.0f} | "
                  f"{medians[s] / batch:,.0f} | {medians[s] / rate:.2f} | {gmacs} | "
                  f"{ratio:.2f} |", flush=True)
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          "x real time = aggregate samples/s / sample rate (streams sustained)")
    if args.compile_time:
        cold, warm = compile_seconds(args.preset)
        print(f"fused first call: {cold:.1f} s with an empty numba cache (compilation), "
              f"{warm:.1f} s with it filled")


if __name__ == "__main__":
    main()
