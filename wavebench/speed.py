"""``wavebench speed``'s work: time the samplers across devices, batch sizes and thread counts.
The command's options are in :mod:`wavebench.commands.speed`."""
from __future__ import annotations

import contextlib
import math
import resource
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from reference_model.sampling import SAMPLERS, check_sampler_device, generate, resolve_device
from wavebench.generate import set_threads
from wavebench.host import SGEMM_SIZE
from wavebench_base.errors import InputError

COLUMNS = ["device", "sampler", "batch", "threads", "precision", "samples", "repeats",
           "seconds_median", "samples_per_s", "samples_per_s_per_stream", "rtf", "x_realtime",
           "peak_mem_mb", "speedup", "bound", "efficiency", "status", "note"]
DEFINITIONS = (
    "samples_per_s: generated samples of all streams / median wall time (aggregate); "
    "samples_per_s_per_stream: the same for one stream; rtf: compute time / audio time of one "
    "stream (lower is better, < 1 is faster than real time); x_realtime: aggregate samples_per_s "
    "/ sample rate (real-time streams sustained); speedup: samples_per_s / the baseline sampler's "
    "on the same device, batch and threads; bound: what this CPU allows the cached step, "
    "threads x min(batch x weight-traffic bound, compute bound), both measured on one thread "
    "in this run (see the host line above; none for naive, which recomputes its receptive "
    "field, and for GPUs); efficiency: samples_per_s / bound; peak_mem_mb: CUDA peak allocation on cuda, the "
    "process's peak resident size during the timed runs on cpu (since start where the OS "
    "cannot reset it).")


def device_problem(name: str) -> str | None:
    """None if ``name`` can run here, else why not (the samplers' own check, as a reason)."""
    try:
        resolve_device(name)
    except InputError as exc:
        return str(exc)
    return None


def sampler_problem(sampler: str, device: str) -> str | None:
    """None if ``sampler`` runs on ``device``, else why not."""
    try:
        check_sampler_device(sampler, torch.device(device))
    except InputError as exc:
        return str(exc)
    return None


NAIVE_MAX_BATCH = 8  # each naive step recomputes a receptive field per stream: 3 GFLOP at reference


def time_one(model, *, sampler, device, batch, threads, samples, repeats, dtype, seed=0) -> dict:
    """Median wall time of ``repeats`` generations after one untimed warm-up (CUDA synchronized).

    ``naive`` is primed with a receptive field of codes so that every timed step does its
    steady-state work (a full window), and times ``samples`` steps like the others.
    """
    set_threads(threads)
    rf = model.config.receptive_field
    prime = np.full(rf, model.start_code) if sampler == "naive" else None
    kwargs = dict(batch=batch, temperature=1.0, prime=prime, seed=seed, device=device,
                  sampler=sampler, dtype=dtype,
                  **conditioning(model.config, (rf if prime is not None else 0) + samples, seed))
    cuda = device.startswith("cuda")
    generate(model, min(samples, 64), **kwargs)  # warm-up: compilation, allocator, graph capture
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        reset_peak_rss()
    times = [generate(model, samples, **kwargs).seconds for _ in range(repeats)]
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mb()
    seconds = statistics.median(times)
    sr = model.config.sample_rate
    return {"device": device, "sampler": sampler, "batch": batch, "threads": threads,
            "precision": "float64" if dtype == torch.float64 else "float32",
            "samples": samples, "repeats": repeats, "seconds_median": seconds,
            "samples_per_s": batch * samples / seconds,
            "samples_per_s_per_stream": samples / seconds, "rtf": seconds / (samples / sr),
            "x_realtime": batch * samples / seconds / sr, "peak_mem_mb": peak, "status": "ok",
            "note": "primed with a full receptive field" if sampler == "naive" else ""}


def time_source(config, source: str, threads, samples: int, repeats: int, dtype, log) -> list:
    """Rows for the source project's own sampler (:mod:`wavebench.source_samplers`), batch 1,
    float32, per thread count, ``samples`` steps like naive (it is as slow); or one skipped
    row with the reason."""
    from wavebench.source_samplers import ROW_NAME, source_problem, wavenet_vocoder_timer

    name = ROW_NAME.get(source, f"source:{source}")
    base = {"device": "cpu", "sampler": name, "batch": 1}
    why = source_problem(source) or (
        "the source's sampler is timed in float32 only" if dtype != torch.float32 else None)
    if why:
        return [{**base, "threads": threads[0], "status": "skipped", "note": why}]
    rows = []
    run = wavenet_vocoder_timer(config)
    for n_threads in threads:
        set_threads(n_threads)
        run(min(samples, 256))  # warm-up
        times = [run(samples) for _ in range(repeats)]
        seconds, n = statistics.median(t for t, _ in times), times[0][1]
        sr = config.sample_rate
        rows.append({**base, "threads": n_threads, "precision": "float32", "samples": n,
                     "repeats": repeats, "seconds_median": seconds, "samples_per_s": n / seconds,
                     "samples_per_s_per_stream": n / seconds, "rtf": seconds / (n / sr),
                     "x_realtime": n / seconds / sr, "status": "ok",
                     "note": "the source's incremental_forward at this size, random weights"})
        log(f"cpu {name} batch 1 threads {n_threads}: {n / seconds:,.0f} samples/s")
    return rows


def conditioning(config, total: int, seed: int) -> dict:
    """What a conditioned model needs to run, for timing: random log-mel-like frames covering
    ``total`` samples and speaker 0 (the work per step does not depend on the values)."""
    extra = {}
    if config.uses_mel:
        frames = -(-total // config.hop_length)
        extra["cond"] = np.random.default_rng(seed).standard_normal((config.n_mels, frames))
    if config.uses_speaker:
        extra["speaker"] = 0
    return extra


def reset_peak_rss() -> bool:
    """Reset this process's peak resident size (Linux >= 4.0: ``/proc/self/clear_refs``), so
    the next :func:`peak_rss_mb` covers one combination; False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident size since the last reset (``VmHWM``), else since the process began."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def add_speedup(table: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """samples_per_s over the baseline sampler's at the same device, batch and threads (NaN if none)."""
    keys = ["device", "batch", "threads"]
    base = (table[table["sampler"].eq(baseline) & table["status"].eq("ok")]
            .set_index(keys)["samples_per_s"])
    ratio = [row.samples_per_s / base.get(tuple(getattr(row, k) for k in keys), math.nan)
             for row in table.itertuples()]
    return table.assign(speedup=ratio)


def run_speed(out_dir, *, preset="reference", checkpoint=None, devices=("cpu",),
              samplers=("cached", "fused"),
              batches=(1,), threads=(1,), samples=4000, naive_samples=100, repeats=5,
              baseline="cached", float64=False, seed=0, cpu_max_batch=256,
              log=print) -> pd.DataFrame:
    """Time every (device, sampler, batch, threads) combination and write the tables.

    Writes ``OUT/speed.csv``, ``OUT/speed.md`` (Markdown table with the definitions) and
    ``OUT/speed.png`` (bar chart). ``checkpoint`` times a saved model (one converted from
    another project, say) instead of a preset's random weights; a conditioned model gets
    random mel frames and speaker 0. Devices that are absent and samplers that do not run on a
    device are listed with status ``skipped`` and the reason, not raised.

    Returns
    -------
    pd.DataFrame
        One row per combination, with the columns of :data:`COLUMNS`.

    Raises
    ------
    InputError
        Unknown sampler or preset, an unknown baseline, non-positive counts.
    """
    from reference_model.config import get_preset
    from reference_model.model import WaveNet

    _check_args(samplers, batches, threads, samples, naive_samples, repeats, baseline)
    torch.manual_seed(seed)
    source = None
    if checkpoint is not None:
        from reference_model.checkpoint import load_checkpoint
        model, payload = load_checkpoint(checkpoint)
        label = f"checkpoint {Path(checkpoint).name}"
        source = (payload.get("converted") or {}).get("source")
    else:
        model = WaveNet(get_preset(preset).model).eval()
        label = f"preset {preset}"
    dtype = torch.float64 if float64 else torch.float32
    bounds = None
    with threads_restored():
        if "cpu" in devices:
            bounds = measure_bounds(model.config, log)
        rows = _time_all(model, devices, samplers, batches, threads, samples, naive_samples,
                         repeats, dtype, seed, cpu_max_batch, log)
        if source and "cpu" in devices:
            rows += time_source(model.config, source, threads, naive_samples, repeats, dtype,
                                log)
    table = add_bounds(add_speedup(pd.DataFrame(rows).reindex(columns=COLUMNS), baseline),
                       bounds, dtype)
    write_tables(table, Path(out_dir), label, baseline, bounds)
    return table


def measure_bounds(config, log) -> dict:
    """The host's single-thread bounds for this model (:mod:`wavebench.host`), logged."""
    from reference_model.config import step_macs, step_weight_floats
    from wavebench.host import sampler_bounds

    bounds = sampler_bounds(step_weight_floats(config), step_macs(config))
    log(host_line(bounds))
    return bounds


def host_line(bounds: dict) -> str:
    """One line: the CPU, its vector ISA and the two bounds with what they were measured from."""
    return (f"host: {bounds['cpu']}, {bounds['isa']}; fused kernels: "
            f"{bounds.get('kernels', 'unknown')}; weight-traffic bound "
            f"{bounds['traffic_samples_per_s']:,.0f} samples/s (one thread: a float32 "
            f"matrix-vector product over the step's {bounds['weight_floats']:,} weights, "
            f"{bounds['traffic_gb_per_s']:.1f} GB/s); compute bound "
            f"{bounds['compute_samples_per_s']:,.0f} samples/s (one thread: "
            f"{bounds['sgemm_gflops']:.1f} GFLOP/s of {SGEMM_SIZE}x{SGEMM_SIZE} SGEMM over "
            f"{2 * bounds['macs_per_sample']:,} flops per sample)")


def add_bounds(table: pd.DataFrame, bounds: dict | None, dtype) -> pd.DataFrame:
    """``bound`` and ``efficiency`` of every timed CPU row of a cached-step sampler (float32
    bounds; a float64 run reads twice the bytes and runs at half the vector width, so its
    bounds are halved)."""
    from wavebench.host import row_bound

    if bounds is None:
        return table
    scale = 0.5 if dtype == torch.float64 else 1.0
    bound = [scale * row_bound(bounds, int(row.batch), int(row.threads))
             if row.device == "cpu" and row.sampler != "naive" and row.status == "ok"
             else math.nan for row in table.itertuples()]
    return table.assign(bound=bound, efficiency=table["samples_per_s"] / bound)


@contextlib.contextmanager
def threads_restored():
    """Put torch's and numba's thread counts back afterwards: timing sets them per row, and a
    caller that goes on computing (the demo) must not inherit the last row's."""
    before = torch.get_num_threads()
    try:
        import numba
        numba_before = numba.get_num_threads()
    except ImportError:
        numba = numba_before = None
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if numba is not None:
            numba.set_num_threads(numba_before)


def _time_all(model, devices, samplers, batches, threads, samples, naive_samples, repeats,
              dtype, seed, cpu_max_batch, log) -> list:
    """One row per (device, sampler, batch, threads): timed, or skipped with the reason."""
    rows = []
    for device in devices:
        why = device_problem(device)
        for sampler in samplers:
            for batch in batches:
                for n_threads in threads:
                    skip = why or sampler_problem(sampler, device)
                    if not skip and sampler == "naive" and batch > NAIVE_MAX_BATCH:
                        skip = f"naive is timed at batch <= {NAIVE_MAX_BATCH} only"
                    if not skip and device == "cpu" and batch > cpu_max_batch:
                        skip = f"cpu is timed at batch <= {cpu_max_batch} (--cpu-max-batch)"
                    base = {"device": device, "sampler": sampler, "batch": batch,
                            "threads": n_threads}
                    if skip:
                        rows.append({**base, "status": "skipped", "note": skip})
                        continue
                    n = naive_samples if sampler == "naive" else samples
                    row = time_one(model, sampler=sampler, device=device, batch=batch,
                                   threads=n_threads, samples=n, repeats=repeats, dtype=dtype,
                                   seed=seed)
                    log(f"{device} {sampler} batch {batch} threads {n_threads}: "
                        f"{row['samples_per_s']:,.0f} samples/s")
                    rows.append(row)
    return rows


def _check_args(samplers, batches, threads, samples, naive_samples, repeats, baseline) -> None:
    for s in samplers:
        if s not in SAMPLERS:
            raise InputError(f"unknown sampler {s!r}; available: {', '.join(SAMPLERS)}")
    if baseline not in SAMPLERS:
        raise InputError(f"unknown baseline {baseline!r}; available: {', '.join(SAMPLERS)}")
    for name, values in (("batch", batches), ("threads", threads)):
        if not values or any(v < 1 for v in values):
            raise InputError(f"--{name} needs positive integers, got {list(values)}")
    for name, value in (("samples", samples), ("naive-samples", naive_samples),
                        ("repeats", repeats)):
        if value < 1:
            raise InputError(f"--{name} must be >= 1, got {value}")


def write_tables(table: pd.DataFrame, out_dir: Path, label: str, baseline: str,
                 bounds: dict | None = None) -> None:
    """speed.csv, speed.md, speed.png and (with CPU bounds) speed.json, each written
    atomically; ``label`` names the model ("preset reference", "checkpoint model.pt")."""
    import json

    from wavebench_base.files import atomic_write_bytes

    atomic_write_bytes(out_dir / "speed.csv", table.to_csv(index=False).encode())
    host = f"{host_line(bounds)}\n\n" if bounds else ""
    if bounds:
        atomic_write_bytes(out_dir / "speed.json",
                           json.dumps({"model": label, "host": bounds}, indent=2).encode())
    text = f"# Sampling speed: {label}, baseline {baseline}\n\n{host}{markdown(table)}\n"
    atomic_write_bytes(out_dir / "speed.md", text.encode())
    if table["status"].eq("ok").any():
        from reports.plots import plot_speed
        atomic_write_bytes(out_dir / "speed.png", plot_speed(table[table["status"].eq("ok")]))


def markdown(table: pd.DataFrame) -> str:
    """The measured rows as a Markdown table, then one line per reason for skipped ones (the
    CSV keeps every row), then the column definitions."""
    from reports.markdown import to_markdown

    ok = table["status"].ne("skipped")
    text = to_markdown(table[ok].drop(columns=["repeats", "status"])) if ok.any() \
        else "No combination ran.\n"
    skipped = table[~ok]
    if len(skipped):
        text += "\nSkipped:\n"
        for (device, note), rows in skipped.groupby(["device", "note"], sort=False):
            samplers = ", ".join(dict.fromkeys(rows["sampler"]))
            count = f"{len(rows)} combination{'s' if len(rows) > 1 else ''}"
            text += f"- {device}: {samplers} ({count}): {note}\n"
    return f"{text}\n{DEFINITIONS}\n"
