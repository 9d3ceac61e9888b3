"""`wavebench train` killed with SIGKILL at seeded random points resumes (`--resume auto`) to the
weights of an uninterrupted run, with no validation logged twice; a killed launcher takes its
worker processes with it."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SETTINGS = ["--steps", "12", "--batch-size", "4", "--crop", "256", "--eval-every", "3",
            "--checkpoint-every", "2", "--threads", "1", "--no-progress"]


def command(out: Path, nproc: int = 1) -> list:
    return [sys.executable, "-m", "wavebench", "train", "-o", str(out), "--resume", "auto",
            "--nproc", str(nproc), *SETTINGS]


def workers_of(out: Path) -> list[int]:
    """Pids of live processes whose command line names ``out`` (the run's workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
                state = (entry / "stat").read_text().split(")")[-1].split()[0]
            except OSError:
                continue
            if str(out) in cmdline and state != "Z":
                pids.append(int(entry.name))
    return pids


def run_and_kill(cmd, delay: float) -> bool:
    """SIGKILL the command after ``delay`` s; True if it was killed, False if it finished."""
    process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        process.wait(delay)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        return True
    assert process.returncode == 0
    return False


def final_state(out: Path):
    """Step, weights and the validation log; the log's wall-clock seconds (which differ
    between runs) are checked to run forward over the resumes and then left out."""
    payload = torch.load(out / "last.pt", weights_only=True)
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    seconds = [record.pop("seconds") for record in records]
    assert seconds == sorted(seconds) and seconds[0] >= 0, seconds
    return payload["step"], payload["model"], records


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_sigkill_at_random_points_resumes_to_the_uninterrupted_weights(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(command(whole), cwd=REPO, check=True, capture_output=True)
    rng = np.random.default_rng(2026)
    kills = 0
    for _ in range(4):  # start-up takes about 2 s; the 12 steps about 2 s more
        kills += run_and_kill(command(killed), rng.uniform(1.0, 5.0))
    assert kills >= 2  # the test must have interrupted something
    subprocess.run(command(killed), cwd=REPO, check=True, capture_output=True)

    step_a, model_a, log_a = final_state(whole)
    step_b, model_b, log_b = final_state(killed)
    assert step_a == step_b == 12
    for name in model_a:  # same process count and threads: bit-identical on the CPU
        assert torch.equal(model_a[name], model_b[name]), name
    assert log_b == log_a  # validations at 0, 3, 6, 9, 12: none lost, none twice
    assert not list(killed.rglob(".*tmp-*"))  # no temporary file survives a kill


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_a_killed_launcher_takes_its_workers_with_it_and_the_run_resumes(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(command(whole, nproc=2), cwd=REPO, check=True, capture_output=True)
    launcher = subprocess.Popen(command(killed, nproc=2), cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "checkpoints").exists():  # kill once training is under way
        assert launcher.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait()
    deadline = time.monotonic() + 10
    while workers_of(killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers_of(killed) == []  # no orphan goes on writing into the run

    subprocess.run(command(killed, nproc=2), cwd=REPO, check=True, capture_output=True)
    step_a, model_a, log_a = final_state(whole)
    step_b, model_b, log_b = final_state(killed)
    assert step_a == step_b == 12
    for name in model_a:
        assert torch.equal(model_a[name], model_b[name]), name
    assert log_b == log_a
