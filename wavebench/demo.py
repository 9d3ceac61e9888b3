"""`wavebench demo`: the whole pipeline on the embedded default, in a few minutes on a CPU.

Train the tiny WaveNet (mel-conditioned, with a linear predictor from the mel frames) on the
built-in synthetic set, resynthesize the validation clips from their mel frames (checking two
samplers against each other), score them against the references (with two oracles, the predictor
alone and the model's likelihood), time the samplers, and write one report.
Nothing is downloaded and nothing outside the package is read.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from metrics import DEFAULT_METRICS
from reference_model.checkpoint import load_checkpoint
from reference_model.config import PRESETS, parameter_count
from reference_model.embedded import DEFAULT_CLIPS, VALID_EVERY, write_embedded_audio
from reference_model.features import log_mel
from reference_model.linear_prediction import white_excitation_copy
from reference_model.sampling import fastest_sampler, generate, resolve_device
from wavebench.score import reference_free_metrics, score
from wavebench.score_checkpoint import likelihood_record
from wavebench.score_worker import oracle_audio
from wavebench.training import run_training
from wavebench_base.audio import load_audio, save_wav
from wavebench_base.errors import InputError

#: Seconds of each copy that a second, slower sampler also makes, to show that the two agree
#: sample for sample: cached checks fused's copies; naive, which runs the whole network for
#: every sample (about 100 samples/s on the tiny model), checks cached's over one 16 ms hop.
CHECK_SECONDS = {"cached": 0.25, "naive": 0.016}
#: The demo model's predictor order (``lpc_order``, LPCNet's split): an all-pole filter read
#: from each mel frame shapes the spectrum and the network models what it leaves. Measured with
#: benchmarks/demo_quality.py on a 2-core AMD EPYC (family 25 model 1, AVX2), 300 steps: with 80
#: mel bands, copies scored MCD 3.21 dB and mel L1 0.50 at order 128, 4.28 and 0.66 at 64, and
#: 8.8 and 1.44 with no predictor (the network alone, 40 mel bands); the tiny preset's 256 bands
#: give the order-128 filter finer spectra (MCD 3.09, mel L1 0.46, nll_bits 2.97 against 3.20).
DEMO_LPC_ORDER = 128
#: The demo model's copies, as the report names them.
SYSTEM = "tiny"
#: The predictor alone: white noise at each frame's excitation level through its filter.
PREDICTOR_ONLY = "predictor_only"
#: Training steps of the demo: 53-84 s on a 2-core Xeon (family 6 model 167, AVX-512) with two
#: processes, as fast as PyTorch ran that day, so that the whole demo stays within 5 minutes on
#: slower 2-core hosts.
DEMO_STEPS = 300
#: Minutes of training audio in the embedded default (2 s clips, every 5th one validates).
TRAIN_MINUTES = DEFAULT_CLIPS * (1 - 1 / VALID_EVERY) * 2.0 / 60


@dataclass
class DemoResult:
    out_dir: Path
    report_html: Path
    summary: str
    identical_samplers: bool
    seconds: float
    mos_page: Path | None = None


def copy_synthesize(model, references: dict, mels: np.ndarray, out_dir: Path, sampler: str, *,
                    progress: bool, temperature: float = 1.0) -> float:
    """Resynthesize every reference from its own mel frames, all clips in one batch.

    float64, so that the two samplers' codes are exactly equal: in float32 their logits agree
    to about 1e-6, which lets a uniform draw that lands that close to a class boundary pick
    the neighbouring code, after which the streams part.
    """
    config = model.config
    n = mels.shape[-1] * config.hop_length
    result = generate(model, n, batch=len(references), cond=mels, sampler=sampler, seed=0,
                      temperature=temperature, dtype=torch.float64, progress=progress)
    for path, audio in zip(references, result.audio):
        save_wav(out_dir / path.name, audio, config.sample_rate)
    return result.seconds


def demo_sampler(model) -> str:
    """The sampler the demo makes its copies with: the fastest that runs the model on a CPU."""
    return fastest_sampler(model.config, resolve_device("cpu"))


def spread_over_families(paths: list[Path], count: int) -> list[Path]:
    """The first ``count`` clips taking the families in turn (chords, formants, tones, chords,
    ...), so that a few clips show each kind of sound; ``paths`` are sorted by name.

    >>> names = ["chords_004", "chords_019", "formants_014", "tones_009", "tones_024"]
    >>> [p.name for p in spread_over_families([Path(n) for n in names], 4)]
    ['chords_004', 'formants_014', 'tones_009', 'chords_019']
    """
    families: dict[str, list[Path]] = {}
    for path in paths:
        families.setdefault(path.stem.rsplit("_", 1)[0], []).append(path)
    queues = list(families.values())
    chosen = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return chosen


def crop_references(references: list[Path], out_dir: Path, seconds: float, rate: int) -> dict:
    """The first ``seconds`` of each reference, written as 16-bit WAV (so references and copies
    have equal length); returns each written path with its audio as read back."""
    cropped = {}
    for path in references:
        written = save_wav(out_dir / path.name, load_audio(path, rate).audio[: int(seconds * rate)],
                           rate)
        cropped[written] = load_audio(written).audio
    return cropped


def build_mos_packet(out_dir: Path, references: dict, generated: Path, rate: int, log):
    """A small ACR packet: the references, the model's copies and the 8-bit mu-law oracle.

    A copy the packet would refuse (one that clips: a noise-excited copy of a loud clip can
    reach full scale, and whether it does depends on the draw) leaves its item out, with the
    reason logged, rather than losing the packet. Three conditions need three rated items, so
    with four clips one is the hold-out (calibration, gold and trap trials play its natural
    audio); with one left out, none is; with fewer than three items the packet is skipped.
    Returns the packet's offline page, or None (with the reason logged).
    """
    from wavebench.mos.packet.build import PacketOptions, build_packet
    from wavebench.mos.packet.inputs import load_clip

    oracle = out_dir / "generated" / "oracle_mulaw"
    items = []
    for path, audio in references.items():
        save_wav(oracle / path.name, oracle_audio("mulaw", audio), rate)
        try:
            load_clip(SYSTEM, path.stem, generated / path.name)
            items.append(path.stem)
        except InputError as exc:
            log(f"  {path.stem} left out of the MOS packet: {exc}")
    systems = [f"{SYSTEM}={generated}", f"oracle_mulaw={oracle}"]
    conditions = len(systems) + 1  # and the natural references
    if len(items) < conditions:
        log(f"  MOS packet skipped: {len(items)} of {len(references)} copies are fit to play, "
            f"and {conditions} conditions need {conditions} rated items")
        return None
    holdout = 1 if len(items) > conditions else 0
    options = PacketOptions(reference=f"natural={next(iter(references)).parent}", votes=4,
                            holdout=holdout, items=items, level="lufs:-23",
                            question="How natural does this audio sound?")
    try:
        result = build_packet(systems, out_dir / "mos", options,
                              force=True)  # a rerun keeps the old one
    except InputError as exc:
        log(f"  MOS packet skipped: {exc}")
        return None
    if result.backup:
        log(f"  the earlier demo packet, key included, is kept in {result.backup}")
    page = result.out_dir / "packet" / "index.html"
    log(f"  {result.n_lists} rater lists, {result.minutes_per_session:.1f} min per session, "
        f"{len(items)} items ({holdout or 'no'} hold-out): {page}")
    return page


def train_demo_model(out_dir: Path, steps: int, *, progress: bool, log) -> Path:
    """Train the tiny mel-conditioned WaveNet on the embedded set; return its best checkpoint.

    With two or more cores, two training processes share each batch (``train --nproc 2``):
    measured on a 2-core Xeon (family 6 model 167), they train at 58,400 samples/s where one
    process with two threads reached 35,400 and one thread 33,300 (the tiny model's
    convolutions are too small to split across threads). The results then depend on the
    process count, so they repeat on a machine with the same number of cores.
    """
    train_dir = out_dir / "train"
    options = ["--preset", "tiny", "--cond", "mel", "--lpc-order", str(DEMO_LPC_ORDER),
               "--steps", str(steps),
               "--eval-every", str(max(steps // 10, 1)), "--resume", "auto"]
    if (os.cpu_count() or 1) >= 2:
        from wavebench.launch import launch
        code = launch(["train", "-o", str(train_dir), *options,
                       *([] if progress else ["--no-progress"])], 2, log=log)
        if code:
            raise InputError(f"demo training failed (exit status {code}); see the lines above",
                             train_dir)
    else:
        torch.manual_seed(0)
        run_training(data=None, out_dir=train_dir, preset="tiny",
                     model_overrides={"cond": "mel", "lpc_order": DEMO_LPC_ORDER},
                     train_overrides={"steps": steps, "eval_every": max(steps // 10, 1)},
                     resume="auto", progress=progress, log=log)
    best = train_dir / "best.pt"
    return best if best.exists() else train_dir / "last.pt"


def preface(model, steps: int, train_seconds: float) -> str:
    """What the demo's numbers mean for a model this small, for the top of its report."""
    config = model.config
    split = (
        f"It splits the work as LPCNet does: an all-pole filter of order {config.lpc_order}, read "
        "from each mel frame, predicts every sample from the ones before it, and the network "
        "models only what the filter leaves, the excitation. The filter carries the spectral "
        f"envelope, and with it most of the copies' MCD and mel L1: {PREDICTOR_ONLY} is that "
        "filter driven by white noise at each frame's excitation level, what the copies would be "
        "had the network learned the level alone, so the distance from it to "
        f"{SYSTEM} is what the network adds. "
    ) if config.lpc_order else ""
    curve = ("validation bits per excitation code (what the network predicts; nll_bits in the "
             "tables scores the samples' own codes)") if config.lpc_order else \
        "validation bits per sample"
    return (
        f"The demo's WaveNet is deliberately tiny: {config.blocks} x {config.layers} layers, "
        f"{config.residual_channels} residual channels, {parameter_count(config):,} parameters, a "
        f"receptive field of {config.receptive_field} samples "
        f"({1000 * config.receptive_field / config.sample_rate:.0f} ms), trained for {steps} "
        f"steps ({train_seconds:.0f} s here) on {TRAIN_MINUTES:.1f} minutes of synthesized tones, "
        f"chords and vowel-like sweeps. {split}Read the numbers as proof that the pipeline works "
        "and that the model learns, not as what a WaveNet can do (the reference preset has "
        f"{parameter_count(PRESETS['reference'].model):,} parameters and trains for hours). "
        "Three more yardsticks: oracle_mulaw is the reference through 8-bit mu-law, "
        "the floor no 256-class WaveNet can beat; oracle_noise40 is the reference plus white noise "
        "at -40 dBFS, a copy exact but for a faint hiss (a model whose every prediction was "
        "right but for that much Gaussian spread would score nll_bits of about 3.2 on these "
        "clips); nll_bits cannot go below about 2.35 bits per "
        "sample on these four clips, the entropy of their -50 dBFS noise after mu-law coding "
        "(8 bits is a uniform guess). The model's copies are sampled at temperature "
        f"{PRESETS['tiny'].temperature:g}, the tiny preset's, which trades some variety for less "
        f"noise. The training curve at the end shows {curve} against wall time."
    )


def run_demo(out_dir, *, steps: int = DEMO_STEPS, clips: int = 4,
             seconds: float = 1.0, progress: bool = True, log=print) -> DemoResult:
    """Run the demo pipeline into ``out_dir`` and return where the report is."""
    from wavebench.report import build_report
    from wavebench.speed import run_speed

    out_dir = Path(out_dir)
    started = time.perf_counter()

    def stage(number, text):
        log(f"[{number}/6 {time.perf_counter() - started:5.0f} s] {text}")

    stage(1, f"training the tiny mel-conditioned WaveNet for {steps} steps on the embedded set")
    checkpoint = train_demo_model(out_dir, steps, progress=progress, log=log)
    train_seconds = time.perf_counter() - started
    model, _ = load_checkpoint(checkpoint)
    rate = model.config.sample_rate
    temperature = PRESETS["tiny"].temperature

    sampler = demo_sampler(model)
    checker = "naive" if sampler == "cached" else "cached"
    stage(2, f"resynthesizing {clips} validation clips ({seconds:g} s each) from their mel "
             f"frames with the {sampler} sampler (temperature {temperature:g}), and their first "
             f"{CHECK_SECONDS[checker]:g} s with the {checker} one as a check")
    full = spread_over_families(write_embedded_audio(out_dir / "embedded_valid",
                                                     sample_rate=rate), clips)
    references = crop_references(full, out_dir / "references", seconds, rate)
    hop = model.config.hop_length
    n = int(seconds * rate) // hop * hop
    mels = np.stack([log_mel(audio[:n], model.config) for audio in references.values()])
    copies = out_dir / "generated" / SYSTEM
    wall = copy_synthesize(model, references, mels, copies, sampler, progress=progress,
                           temperature=temperature)
    log(f"  {sampler}: {clips * n / wall:,.0f} samples/s")
    # the first frames alone give the same first samples: repeated frames condition only
    # their own hop (an upsampler that looks ahead, like wavenet_vocoder's, would not)
    frames = min(max(int(CHECK_SECONDS[checker] * rate) // hop, 1), mels.shape[-1])
    check = out_dir / "generated" / f"{checker}_check"
    wall = copy_synthesize(model, references, mels[..., :frames], check, checker,
                           progress=progress, temperature=temperature)
    log(f"  {checker}: {clips * frames * hop / wall:,.0f} samples/s")
    identical = all(np.array_equal(load_audio(check / p.name).audio,
                                   load_audio(copies / p.name).audio[:frames * hop])
                    for p in references)  # each stream's draws do not depend on its length
    log(f"  {checker} {'equals' if identical else 'DIFFERS FROM'} {sampler} sample for sample "
        f"over the first {frames * hop} samples of each clip"
        + ("" if identical else ": the samplers disagree, please report it"))
    systems = {SYSTEM: copies}
    if model.config.lpc_order:  # the yardstick that shows what the network adds
        systems[PREDICTOR_ONLY] = out_dir / "generated" / PREDICTOR_ONLY
        for i, (path, audio) in enumerate(references.items()):
            save_wav(systems[PREDICTOR_ONLY] / path.name,
                     white_excitation_copy(audio, model.config, seed=i), rate)

    reference_free = reference_free_metrics()  # DNSMOS, where wavebench[dnsmos] is installed
    stage(3, "scoring the copies against the references (with two oracles: 8-bit mu-law, and "
             "white noise at -40 dBFS; and the predictor alone, on white noise)"
             + (f"; {', '.join(reference_free)} without them" if reference_free else ""))
    likelihood = [likelihood_record(model, SYSTEM, p.stem, audio, [])
                  for p, audio in references.items()]
    score(reference_dir=out_dir / "references", generated=systems, out_dir=out_dir / "score",
          metrics=DEFAULT_METRICS + reference_free, oracles=("mulaw", "noise40"), progress=progress,
          log=log, extra_records=likelihood,
          force=True)  # the demo's folder is its own: a rerun (say with other --steps) replaces it

    stage(4, f"building a blind MOS listening-test packet ({SYSTEM} against the mu-law oracle)")
    packet = build_mos_packet(out_dir, references, systems[SYSTEM], rate, log)

    stage(5, "timing the samplers on the tiny preset (1 thread)")
    run_speed(out_dir / "speed", preset="tiny", samplers=("naive", "cached", "fused"),
              batches=(1, 8), threads=(1,), samples=2000, naive_samples=50, repeats=3, log=log)

    stage(6, "writing the report")
    report = build_report([out_dir / "score", out_dir / "speed", out_dir / "train"],
                          out_dir / "report", baseline=SYSTEM,
                          title="wavebench demo: the tiny WaveNet", force=True,
                          preface=preface(model, steps, train_seconds))
    seconds_total = time.perf_counter() - started
    return DemoResult(out_dir, report.files["report.html"], report.describe(), identical,
                      seconds_total, packet)
