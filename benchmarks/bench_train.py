"""Training throughput per preset: predicted samples per second of wall time, per optimizer step.

Usage: python benchmarks/bench_train.py [--presets tiny,reference] [--steps 8] [--threads 2]

Each step is forward + backward + Adam on ``batch_size`` crops of receptive field + ``crop``
samples; "samples/s" counts the predicted samples (batch_size x crop), the usual figure.
Timing is the median over steps after two untimed warm-up steps.
"""
import argparse
import statistics
import time

import numpy as np
import torch

from reference_model.batches import Cropper, example_length
from reference_model.config import get_preset
from reference_model.embedded import embedded_audioset
from reference_model.model import WaveNet, count_parameters
from reference_model.train import loss_on
from reference_model.train_config import TrainConfig


def measure(preset: str, steps: int, cond: str) -> dict:
    config = get_preset(preset).model.replace(cond=cond)
    train_config = TrainConfig(**{**get_preset(preset).train})
    data = embedded_audioset(sample_rate=config.sample_rate)
    length = example_length(config, train_config.crop)
    crops = Cropper(data.train, config, length)
    model = WaveNet(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for step in range(steps + 2):
        batch = crops.batch(np.random.default_rng(step), train_config.batch_size)
        start = time.perf_counter()
        optimizer.zero_grad()
        loss_on(model, batch, train_config.crop, "cpu").backward()
        optimizer.step()
        if step >= 2:
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    predicted = train_config.batch_size * train_config.crop
    return {"preset": preset, "cond": cond, "params": count_parameters(model),
            "batch": train_config.batch_size, "crop": train_config.crop, "example": length,
            "s/step": seconds, "samples/s": predicted / seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,reference")
    parser.add_argument("--cond", default="none")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    print("| preset | cond | params | batch x crop (example) | s/step | predicted samples/s |")
    print("| --- | --- | ---: | --- | ---: | ---: |")
    for preset in args.presets.split(","):
        r = measure(preset, args.steps, args.cond)
        print(f"| {r['preset']} | {r['cond']} | {r['params']:,} | {r['batch']} x {r['crop']} "
              f"({r['example']}) | {r['s/step']:.3f} | {r['samples/s']:,.0f} |")


if __name__ == "__main__":
    main()
