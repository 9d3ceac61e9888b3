"""Scoring speed of the default metric set: audio seconds scored per wall second.

Scores every file of a folder of speech (default ``../shared/data/speech16k``) against a degraded
copy of itself (white noise at 20 dB SNR, then 8-bit mu-law) with the default metrics
(mcd, c0_rmse_db, mel_l1, stoi, estoi) in a pool of worker processes, one BLAS thread each. Loading and
degrading happen in each worker before the clock starts; every worker scores one short pair
untimed first (building the cached mel-cepstrum operators). Prints the host's CPU model and vector
ISA, the CPU time per metric group and of the whole default set beside pystoi's STOI alone on the
same pairs (best of ``--repeats``; ``--processes 0`` skips the pools), the throughput for each
pool size, and (with pysptk installed) the compiled ``mcep`` against
pysptk's, frame by frame.

Usage: python benchmarks/bench_metrics.py [--data DIR] [--processes 1,2] [--repeats 3]
"""
from __future__ import annotations

import os

# one thread per worker (set before numpy loads BLAS): small matrix products are slower, not
# faster, with threads on busy cores
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from multiprocessing import get_context  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from metrics import DEFAULT_METRICS, score_pair, x_realtime  # noqa: E402
from metrics.cepstral_distance import FRAME_LENGTH, INT16_SCALE, mel_cepstral_scores  # noqa: E402
from metrics.intelligibility import intelligibility_scores  # noqa: E402
from metrics.mel import mel_l1  # noqa: E402
from metrics.mel_cepstrum import mcep  # noqa: E402
from metrics.validation import HOP  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vocoder_metrics import host  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech16k"
_PAIRS: list = []


def degrade(audio: np.ndarray, seed: int, snr_db: float = 20.0) -> np.ndarray:
    """White noise at ``snr_db`` SNR, then 8-bit mu-law quantization (round trip)."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(audio.size)
    noisy = audio + noise * np.sqrt(np.mean(audio ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    mu = 255.0
    x = np.clip(noisy, -1.0, 1.0)
    codes = np.round((np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) + 1.0) / 2.0 * mu)
    y = 2.0 * codes / mu - 1.0
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu


def load_pairs(files: list[Path]) -> list[tuple[np.ndarray, np.ndarray, int]]:
    pairs = []
    for index, path in enumerate(files):
        audio, rate = sf.read(path, dtype="float64")
        pairs.append((audio, degrade(audio, seed=index), rate))
    return pairs


def _init_worker(files: list[Path]) -> None:
    _PAIRS[:] = load_pairs(files)
    reference, generated, rate = _PAIRS[0]
    score_pair(reference=reference[: 2 * rate], generated=generated[: 2 * rate], sample_rate=rate)


def _score(index: int) -> int:
    reference, generated, rate = _PAIRS[index]
    results = score_pair(DEFAULT_METRICS, reference=reference, generated=generated,
                         sample_rate=rate)
    return sum(not result.ok for result in results.values())


def _pid(_) -> int:
    time.sleep(0.1)  # long enough that one worker cannot take every task
    return os.getpid()


def _wait_until_ready(pool, processes: int) -> None:
    """Return once every worker has run its initializer (tasks wait for it)."""
    seen: set[int] = set()
    while len(seen) < processes:
        seen.update(pool.map(_pid, range(processes), chunksize=1))


def throughput(files: list[Path], durations: list[float], processes: int, repeats: int) -> None:
    order = sorted(range(len(files)), key=lambda i: -durations[i])  # longest first: balanced tail
    context = get_context("spawn")
    with context.Pool(processes, initializer=_init_worker, initargs=(files,)) as pool:
        _wait_until_ready(pool, processes)
        walls = []
        for _ in range(repeats):
            start = time.perf_counter()
            failures = sum(pool.imap_unordered(_score, order, chunksize=1))
            walls.append(time.perf_counter() - start)
    audio = sum(durations)
    wall = statistics.median(walls)
    print(f"{processes} process(es): {audio:.1f} s of audio scored in {wall:.2f} s wall "
          f"(median of {repeats}) = {x_realtime(compute_seconds=wall, audio_seconds=audio):.1f}x "
          f"real time; metrics with no value: {failures}")


def per_group_cpu(pairs, durations, repeats: int = 3) -> None:
    """CPU time per audio second of each metric group, of the default set through
    ``score_pair``, and of pystoi's STOI alone (the yardstick), all on the same pairs, best of
    ``repeats``, each repeat timing every entry in turn so that load from other processes falls
    on all of them alike."""
    from pystoi import stoi as pystoi_stoi

    audio = sum(durations)
    groups = {"pystoi STOI alone (yardstick)": lambda reference, generated, sample_rate:
              pystoi_stoi(reference, generated, sample_rate),
              "mcd + c0_rmse_db (mel-cepstra)": mel_cepstral_scores, "mel_l1": mel_l1,
              "stoi + estoi": intelligibility_scores,
              "default set (score_pair)": lambda **pair: score_pair(DEFAULT_METRICS, **pair)}
    best = dict.fromkeys(groups, float("inf"))
    for _ in range(repeats):
        for name, function in groups.items():
            start = time.process_time()
            for reference, generated, rate in pairs:
                if name.startswith("pystoi"):
                    function(reference, generated, rate)
                else:
                    function(reference=reference, generated=generated, sample_rate=rate)
            best[name] = min(best[name], time.process_time() - start)
    yardstick = best["pystoi STOI alone (yardstick)"]
    print("| group | ms CPU per audio s | x pystoi STOI |\n| --- | ---: | ---: |")
    for name, spent in best.items():
        print(f"| {name} | {1000 * spent / audio:.2f} | {spent / yardstick:.2f} |")


def mcep_against_pysptk(pairs) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pysptk 1.0.1 imports the deprecated pkg_resources
            import pysptk
    except ImportError:
        print("pysptk not installed: skipping the mcep comparison")
        return
    reference, _, rate = max(pairs, key=lambda pair: pair[0].size)
    windowed = (np.lib.stride_tricks.sliding_window_view(reference * INT16_SCALE, FRAME_LENGTH)[::HOP]
                * np.hamming(FRAME_LENGTH))
    start = time.process_time()
    ours = mcep(windowed, order=23, alpha=0.42)
    ours_s = time.process_time() - start
    start = time.process_time()
    theirs = np.array([pysptk.mcep(frame, 23, 0.42, etype=1, eps=1e-6) for frame in windowed])
    theirs_s = time.process_time() - start
    seconds = reference.size / rate
    print(f"mcep on {len(windowed)} frames ({seconds:.1f} s at {rate} Hz, order 23, alpha 0.42): "
          f"compiled {1000 * ours_s / seconds:.1f} ms CPU per audio second, pysptk "
          f"{1000 * theirs_s / seconds:.1f} ms ({theirs_s / ours_s:.0f}x); "
          f"max |difference| {np.max(np.abs(ours - theirs)):.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    files = sorted(args.data.glob("*.flac")) + sorted(args.data.glob("*.wav"))
    if not files:
        sys.exit(f"error: {args.data}: no .flac or .wav files")
    durations = [sf.info(path).frames / sf.info(path).samplerate for path in files]
    print(f"{len(files)} files, {sum(durations):.1f} s; metrics: {', '.join(DEFAULT_METRICS)}; "
          "generated = reference + white noise at 20 dB SNR, 8-bit mu-law")
    pairs = load_pairs(files)
    mcep(np.hamming(FRAME_LENGTH)[None, :], order=23, alpha=0.42)  # build the cached operators
    print(f"host: {host()}")
    print(f"CPU time per metric group (one process, one BLAS thread, best of {args.repeats}):")
    per_group_cpu(pairs, durations, args.repeats)
    mcep_against_pysptk(pairs)
    for processes in (int(p) for p in args.processes.split(",") if int(p) > 0):
        throughput(files, durations, processes, args.repeats)


if __name__ == "__main__":
    main()
