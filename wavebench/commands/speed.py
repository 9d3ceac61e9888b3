"""``wavebench speed``: the click layer over :func:`wavebench.speed.run_speed`."""
from __future__ import annotations

import os
import subprocess
import sys

import click

from wavebench.commands.context import CONTEXT, log_to_stderr
from wavebench_base.errors import InputError


def _int_list(text: str, name: str) -> tuple:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--{name} takes comma-separated integers, got {text!r}") from None


def _names(text: str) -> list:
    return [v.strip() for v in text.split(",") if v.strip()]


@click.command("speed", context_settings=CONTEXT)
@click.option("--preset", default="reference", show_default=True)
@click.option("--checkpoint", default=None,
              help="Time a saved model (ours or converted) instead of the preset's random weights.")
@click.option("--devices", default="cpu,cuda", show_default=True, help="Comma-separated.")
@click.option("--samplers", default="naive,cached,fused,cuda-graph", show_default=True)
@click.option("--batch", "batch", default="1,8,64", show_default=True,
              help="Comma-separated batch sizes.")
@click.option("--threads", default="1", show_default=True, help="Comma-separated CPU thread counts.")
@click.option("--samples", type=int, default=16000, show_default=True,
              help="Samples per stream in each timed run.")
@click.option("--naive-samples", type=int, default=100, show_default=True,
              help="Samples per timed run of the (very slow) naive sampler.")
@click.option("--repeats", type=int, default=5, show_default=True, help="Timed runs; the median counts.")
@click.option("--baseline", default="cached", show_default=True, help="Sampler of speedup = 1.")
@click.option("--cpu-max-batch", type=int, default=256, show_default=True,
              help="Larger batches are skipped on the CPU (they take minutes).")
@click.option("--float64", is_flag=True, help="Time float64 instead of float32.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--isa", type=click.Choice(["host", "avx2"]), default="host", show_default=True,
              help="avx2: time an AVX-512 host as an AVX2 one (kernels, BLAS and bounds built "
                   "and dispatched for AVX2), in a new process.")
@click.option("-o", "--out", "out_dir", default="runs/speed", show_default=True)
def speed_command(devices, samplers, batch, threads, isa, **options):
    """Benchmark the samplers: samples/s per stream and aggregate, RTF, memory, speed-up.

    \b
    Example:
      wavebench speed --preset reference --devices cpu,cuda --samplers cached,fused,cuda-graph \\
          --batch 1,64 --threads 1,2 --samples 16000 -o runs/speed
    """
    from wavebench.speed import markdown, run_speed

    if isa != "host" and _emulate(isa):
        return
    table = run_speed(devices=_names(devices), samplers=_names(samplers),
                      batches=_int_list(batch, "batch"), threads=_int_list(threads, "threads"),
                      log=log_to_stderr, **options)
    click.echo(markdown(table), nl=False)


def _emulate(isa: str) -> bool:
    """Run this same command in a new process under :func:`wavebench.host.isa_emulation_env`.

    Returns False where there is nothing to emulate: the host's own ISA is ``isa``, or this
    process already runs under the emulation.
    """
    from llvmlite import binding

    from reference_model.sampling.isa import isa_of, parse_features
    from wavebench.host import EMULATED_ISA, isa_emulation_env

    if os.environ.get(EMULATED_ISA) == isa:
        return False
    if isa_of(parse_features(binding.get_host_cpu_features().flatten())) == isa:
        log_to_stderr(f"this host's own ISA is {isa}: --isa {isa} times it as it is")
        return False
    try:
        env = isa_emulation_env(isa)
    except ValueError as error:
        raise InputError(f"--isa {isa}: {error}") from None
    ctx = click.get_current_context()
    args = [sys.executable, "-m", "wavebench", ctx.info_name]
    for param in ctx.command.params:
        value = ctx.params[param.name]
        name = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            args += [name] if value else []
        elif value is not None:
            args += [name, str(value)]
    code = subprocess.run(args, env=env).returncode
    if code:
        sys.exit(code)
    return True
