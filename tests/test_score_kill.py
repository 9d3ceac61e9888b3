"""`wavebench score` killed with SIGKILL at seeded random points resumes without lost or
duplicated rows."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

RATE = 16000
N_UTTERANCES = 12
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def folders(tmp_path):
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    ref.mkdir()
    gen.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(RATE // 2) / RATE
    for i in range(N_UTTERANCES):
        x = (0.3 * np.sin(2 * np.pi * (120 + 10 * i) * t)).astype(np.float32)
        sf.write(ref / f"u{i:02d}.wav", x, RATE)
        sf.write(gen / f"u{i:02d}.wav", x + 0.02 * rng.standard_normal(len(t)).astype(np.float32),
                 RATE)
    return ref, gen


def command(ref, gen, out):
    return [sys.executable, "-m", "wavebench", "score", "--reference", str(ref), "--generated",
            f"sys={gen}", "--oracle", "mulaw", "-o", str(out), "--metrics", "mcd,mel_l1",
            "--jobs", "1", "--no-progress"]


def count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def run_and_kill(cmd, rows: Path, *, lines=None, delay=None) -> bool:
    """Start the command; SIGKILL it once ``rows`` has ``lines`` lines or after ``delay`` s.

    Returns True when it was killed, False when it finished first.
    """
    process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    start = time.monotonic()
    while process.poll() is None:
        if (lines is not None and count_lines(rows) >= lines) or \
                (delay is not None and time.monotonic() - start >= delay):
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return True
        if time.monotonic() - start > 60:  # a hung run: fail rather than wait forever
            process.kill()
            raise AssertionError("wavebench score did not finish in 60 s")
        time.sleep(0.002)
    assert process.returncode == 0
    return False


@pytest.mark.slow
def test_sigkill_at_random_points_loses_and_duplicates_nothing(folders, tmp_path):
    ref, gen = folders
    # both folders are named "scores": the run column holds the folder name
    whole, killed = tmp_path / "a" / "scores", tmp_path / "b" / "scores"
    subprocess.run(command(ref, gen, whole), cwd=REPO, check=True, capture_output=True)
    rows = killed / "rows.jsonl"
    rng = np.random.default_rng(1234)
    for _ in range(3):  # each kill lands 1 to 4 results after the last one
        target = count_lines(rows) + int(rng.integers(1, 5))
        assert run_and_kill(command(ref, gen, killed), rows, lines=target)
    assert count_lines(rows) < 2 * N_UTTERANCES  # at most 12 of 24: the rest is resumed below
    # and one kill at a random moment: mid-startup, mid-metric or mid-write (or none if it won)
    run_and_kill(command(ref, gen, killed), rows, delay=rng.uniform(0.5, 2.5))
    subprocess.run(command(ref, gen, killed), cwd=REPO, check=True, capture_output=True)

    records = [json.loads(line) for line in rows.read_text().splitlines()]
    keys = [(r["system"], r["utterance"]) for r in records]
    assert len(keys) == len(set(keys)) == 2 * N_UTTERANCES  # none lost, none twice
    expected = pd.read_csv(whole / "per_utterance.csv")
    got = pd.read_csv(killed / "per_utterance.csv")
    assert len(got) == 2 * N_UTTERANCES * 2  # systems x utterances x metrics
    # the same computation on the same files: every value and status matches exactly
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_a_line_cut_short_by_a_kill_is_trimmed_and_rescored(folders, tmp_path):
    from wavebench.score import score
    ref, gen = folders
    out = tmp_path / "scores"
    kwargs = dict(reference_dir=ref, generated={"sys": gen}, out_dir=out,
                  metrics=("mcd", "mel_l1"), progress=False, log=lambda _: None)
    score(**kwargs)
    rows = out / "rows.jsonl"
    lines = rows.read_text().splitlines()
    # keep 5 whole records and half of the sixth, as a kill during the write leaves it
    rows.write_text("\n".join(lines[:5]) + "\n" + lines[5][: len(lines[5]) // 2])
    result = score(**kwargs)
    assert (result.n_resumed, result.n_scored) == (5, N_UTTERANCES - 5)
    records = [json.loads(line) for line in rows.read_text().splitlines()]  # all whole again
    assert sorted(r["utterance"] for r in records) == [f"u{i:02d}" for i in range(N_UTTERANCES)]
