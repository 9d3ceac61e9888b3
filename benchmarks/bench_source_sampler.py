"""wavenet_vocoder's own incremental sampler beside wavebench's samplers, at the same size.

Usage (wavenet_vocoder importable, e.g. ``pip install --no-deps --target DIR wavenet_vocoder``
and ``PYTHONPATH=DIR``):
    python benchmarks/bench_source_sampler.py --checkpoint CONVERTED.pt [--samples 2000]

``CONVERTED.pt`` is a wavebench checkpoint converted from a wavenet_vocoder model (for example
``benchmarks/vocoder_default_checkpoint.py`` then ``wavebench convert``). The source's model is
built at the same size from the converted config (layers, stacks, channels, kernel, mel channels
and upsampling factors, the mixture head), with random weights: its speed does not depend on
them. Its ``incremental_forward`` (weight normalization removed by ``make_generation_fast_``,
as its synthesis script does) is timed at batch 1 in the same process and on the same thread
count as wavebench's ``cached`` and ``fused``, each median of ``--repeats`` runs after a warm-up.
The PyPI release (0.1.1) predates the fixtures' commit (0.2.0): its upsampler is the older
``UpsampleNetwork`` (a 3-tap frequency kernel, no ConvIn layer), a small part of the work.
"""
import argparse
import inspect
import platform
import statistics
import time

import numba
import torch

from reference_model.checkpoint import load_checkpoint
from reference_model.sampling import generate


def cpu_name() -> str:
    """The CPU model and its widest vector extension, from /proc/cpuinfo."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor() or "unknown CPU"
    fields = dict(line.split(":", 1) for line in text.splitlines()[:30] if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    isa = "avx512f" if " avx512f" in text else "avx2" if " avx2" in text else "no AVX2"
    return (f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')} model "
            f"{fields.get('model', '?')}), {isa}")


def source_model(config):
    """wavenet_vocoder's WaveNet at the converted model's size, generation-fast, eval mode."""
    from wavenet_vocoder import WaveNet
    kwargs = dict(out_channels=config.out_channels, layers=config.blocks * config.layers,
                  stacks=config.blocks, residual_channels=config.residual_channels,
                  gate_channels=2 * config.dilation_channels,
                  skip_out_channels=config.skip_channels, kernel_size=config.kernel_size,
                  dropout=0.0, cin_channels=config.n_mels if config.uses_mel else -1,
                  upsample_conditional_features=config.uses_mel,
                  upsample_scales=list(config.upsample_scales) or None,
                  scalar_input=config.input == "scalar")
    accepted = inspect.signature(WaveNet.__init__).parameters
    model = WaveNet(**{k: v for k, v in kwargs.items() if k in accepted}).eval()
    model.make_generation_fast_()
    return model


def time_source(model, config, samples: int) -> float:
    """Seconds of one ``incremental_forward`` of ``samples`` steps (batch 1; a whole number of
    hops for a mel-conditioned model, as the source requires)."""
    mel = torch.randn(1, config.n_mels, samples // config.hop_length) if config.uses_mel else None
    first = torch.zeros(1, 1, 1) if config.input == "scalar" else None
    with torch.no_grad():
        start = time.perf_counter()
        model.incremental_forward(initial_input=first, c=mel, T=samples, softmax=False,
                                  quantize=True, log_scale_min=config.log_scale_min)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    ours, _ = load_checkpoint(args.checkpoint)
    c = ours.config
    hop = c.hop_length if c.uses_mel else 1
    args.samples = -(-args.samples // hop) * hop
    frames = args.samples // hop
    extra = {"cond": torch.randn(c.n_mels, frames)} if c.uses_mel else {}
    if c.uses_speaker:
        extra["speaker"] = 0
    theirs = source_model(c)
    runs = {
        "wavenet_vocoder incremental_forward": lambda n: time_source(theirs, c, n),
        "wavebench cached": lambda n: generate(ours, n, sampler="cached", **extra).seconds,
        "wavebench fused": lambda n: generate(ours, n, sampler="fused", **extra).seconds,
    }
    for run in runs.values():
        run(hop * -(-64 // hop))  # warm-up
    rates = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            rates[name].append(args.samples / run(args.samples))
    print(f"{cpu_name()}; {args.threads} thread(s), batch 1, float32, {args.samples} samples, "
          f"median of {args.repeats}; model {args.checkpoint}: receptive field "
          f"{c.receptive_field}, {c.blocks * c.layers} layers")
    print("| sampler | samples/s (median) | x the source's |")
    print("|---|---:|---:|")
    base = statistics.median(rates["wavenet_vocoder incremental_forward"])
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"| {name} | {rate:,.0f} | {rate / base:.1f} |")


if __name__ == "__main__":
    main()
