"""Multi-process training: 2 gloo processes compute the step of one process on the combined
batch, a run resumes with another process count, and bad launches fail before starting."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reference_model.batches import Cropper
from reference_model.config import ModelConfig
from reference_model.distributed import Processes, as_peer_lost
from reference_model.embedded import embedded_audioset
from wavebench_base.errors import PEER_LOST_EXIT, PeerLost

REPO = Path(__file__).resolve().parents[1]
# small and quick: 6 steps of 4 examples, validated and saved every 2 steps
QUICK = ["--steps", "6", "--batch-size", "4", "--crop", "256", "--eval-every", "2",
         "--checkpoint-every", "2", "--no-progress"]


def wavebench(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "wavebench", *map(str, args)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    if check and result.returncode:
        raise AssertionError(f"wavebench {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result


def train(out, *extra, nproc=1):
    return wavebench("train", "-o", out, "--nproc", nproc, *QUICK, *extra)


def weights(run: Path, key="model") -> dict:
    return torch.load(run / "last.pt", weights_only=True)[key]


def assert_close(a: dict, b: dict, atol=1e-5):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=0, atol=atol), \
            f"{name}: max difference {(a[name] - b[name]).abs().max().item():.2e}"


@pytest.mark.slow
@pytest.mark.parametrize("extra", [
    [],
    # conditioning, augmentation, accumulation (no_sync on all but the last micro-batch) and EMA
    ["--cond", "mel+speaker", "--accumulate", "2", "--ema", "0.9", "--optimizer", "sgd"],
])
def test_two_processes_give_the_weights_of_one_with_the_combined_batch(tmp_path, extra):
    one, two = tmp_path / "one", tmp_path / "two"
    train(one, *extra)
    result = train(two, *extra, nproc=2)
    assert "2 processes (gloo), 2 examples each per step" in result.stderr
    assert result.stdout.count("checkpoint:") == 1  # only rank 0 reports
    assert_close(weights(one), weights(two))
    if "--ema" in extra:
        assert_close(weights(one, "ema_state"), weights(two, "ema_state"))
    a, b = (torch.load(run / "last.pt", weights_only=True)["history"] for run in (one, two))
    assert [h["step"] for h in a] == [h["step"] for h in b] == [0, 2, 4, 6]
    np.testing.assert_allclose([h["val_bits"] for h in a], [h["val_bits"] for h in b], rtol=1e-6)
    # and the weights moved: the comparison is not between two untouched initializations
    first = torch.load(one / "checkpoints" / "step_0000002.pt", weights_only=True)["model"]
    assert any(not torch.equal(first[k], weights(one)[k]) for k in first)


@pytest.mark.slow
def test_a_run_resumes_with_a_different_number_of_processes(tmp_path):
    whole, mixed = tmp_path / "whole", tmp_path / "mixed"
    train(whole)
    train(mixed, "--steps", "2", nproc=2)  # 2 processes, then 1, then 2 again
    train(mixed, "--resume", "auto", "--steps", "4")
    result = train(mixed, "--resume", "auto", nproc=2)
    assert "resuming from" in result.stderr
    assert_close(weights(whole), weights(mixed))
    log = [line for line in (mixed / "log.jsonl").read_text().splitlines()]
    assert len(log) == 4  # validations at steps 0, 2, 4, 6: none lost, none twice


def test_batch_that_does_not_split_is_refused_before_any_process_starts(tmp_path):
    result = wavebench("train", "-o", tmp_path / "run", "--nproc", "3", "--batch-size", "4",
                       check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: batch size 4 does not split evenly over 3 processes; use a multiple of 3"]
    assert not (tmp_path / "run").exists()


def test_missing_data_is_refused_before_any_process_starts(tmp_path):
    result = wavebench("train", "-o", tmp_path / "run", "--nproc", "2", "--data",
                       tmp_path / "nowhere", check=False)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "nowhere" in result.stderr and "not found" in result.stderr


def test_launcher_returns_the_workers_status():
    from wavebench.launch import launch
    lines = []
    assert launch(["train", "--no-such-option"], 2, log=lines.append) == 2  # click usage error
    assert lines == []  # rank 0 printed its own error


@pytest.mark.parametrize("failed, code, says", [
    ({0: 1, 1: PEER_LOST_EXIT}, 1, None),  # rank 0's input error; rank 1 lost its peer
    ({0: PEER_LOST_EXIT, 1: 1}, 1, "process 1 of 2 failed (exit 1) and rank 0 did not"),
    ({0: PEER_LOST_EXIT, 1: -9}, 1, "process 1 of 2 was killed by signal 9"),
    ({1: PEER_LOST_EXIT}, PEER_LOST_EXIT, "process 1 of 2 failed"),
])
def test_launcher_reports_the_failure_that_caused_the_others(failed, code, says):
    from wavebench.launch import report_failure
    lines = []
    assert report_failure(failed, 2, lines.append) == code
    assert (lines == []) if says is None else (len(lines) == 1 and says in lines[0])


def test_a_lost_peer_is_told_apart_from_other_errors():
    lost = as_peer_lost(RuntimeError("[pair.cc:553] Connection closed by peer [127.0.0.1]:1"))
    assert isinstance(lost, PeerLost)
    other = RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    assert as_peer_lost(other) is other


@pytest.mark.parametrize("world", [1, 2, 4])
def test_process_parts_cover_the_batch_without_overlap(world):
    data = embedded_audioset(n_clips=6, seconds=0.5)
    config = ModelConfig(blocks=1, layers=4, residual_channels=8, dilation_channels=8,
                         skip_channels=8, end_channels=8, cond="mel", n_mels=8, hop_length=64)
    cropper = Cropper(data.train, config, 512, augment=True)
    whole = cropper.batch(np.random.default_rng([3, 1]), 8)
    parts = [cropper.batch(np.random.default_rng([3, 1]), 8, Processes(r, world).part(8))
             for r in range(world)]
    assert sorted(r for rank in range(world) for r in Processes(rank, world).part(8)) == \
        list(range(8))
    for i, tensor in enumerate(whole):  # codes, mel, speaker: the parts stack to the batch
        assert torch.equal(torch.cat([p[i] for p in parts]), tensor)


def bad_data(root: Path, kind: str) -> Path:
    import soundfile as sf
    folder = root / kind
    folder.mkdir()
    if kind == "empty":
        return folder
    t = np.arange(8000) / 16000
    for i in range(3):
        sf.write(folder / f"ok{i}.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 16000)
    if kind == "corrupt":
        (folder / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    elif kind == "nan":
        sf.write(folder / "bad.wav", np.full(8000, np.nan), 16000, subtype="FLOAT")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["empty", "corrupt", "nan"])
def test_bad_data_under_two_processes_gives_one_error_line(tmp_path, kind):
    folder = bad_data(tmp_path, kind)
    result = wavebench("train", "-o", tmp_path / "out", "--nproc", "2", "--data", folder,
                       "--steps", "2", "--no-progress", check=False)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
    assert str(folder.name) in errors[0] and "Traceback" not in result.stderr
    assert not list((tmp_path / "out").rglob("*.pt"))


@pytest.mark.slow
def test_torchrun_runs_the_same_training_as_nproc(tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "torchrun"
    train(ours, "--steps", "2", nproc=2)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                    "-m", "wavebench", "train", "-o", str(theirs), *QUICK, "--steps", "2"],
                   cwd=REPO, check=True, capture_output=True, timeout=300)
    assert_close(weights(ours), weights(theirs), atol=1e-6)  # thread counts may differ


@pytest.mark.slow
def test_a_raw_audio_folder_is_prepared_once_under_two_processes(tmp_path):
    folder = bad_data(tmp_path, "good")  # three clean clips, nothing bad added
    result = wavebench("train", "-o", tmp_path / "out", "--nproc", "2", "--data", folder,
                       "--steps", "2", "--batch-size", "2", "--crop", "256", "--no-progress")
    assert result.stderr.count("data: preparing") == 1  # rank 0 prepares; rank 1 waits
    assert (tmp_path / "out" / "last.pt").is_file()
