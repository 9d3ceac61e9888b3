"""The trainer's state is its checkpoint payload: it round-trips, and checkpoints written in the
layout the trainer has always used still resume; picking a device loads no sampler."""
import math
import subprocess
import sys

import pytest
import torch

from reference_model.checkpoint import read_checkpoint, save_checkpoint
from reference_model.config import ModelConfig
from reference_model.embedded import embedded_audioset
from reference_model.model import WaveNet
from reference_model.train import TrainState, train
from reference_model.train_config import TrainConfig

SMALL = ModelConfig(blocks=1, layers=5, residual_channels=8, dilation_channels=8,
                    skip_channels=16, end_channels=16, n_mels=8, hop_length=64)
QUICK = TrainConfig(steps=6, batch_size=2, crop=256, eval_every=3, eval_batches=1,
                    checkpoint_every=3, warmup=2, lr=3e-3)
# every entry a trainer checkpoint has held since format version 1, in the order it writes them
LEGACY_KEYS = ["format", "version", "config", "model", "versions", "ema_state", "optimizer",
               "scheduler", "step", "epoch", "best_val_loss", "evals_since_best", "history",
               "initial_val_bits", "rng", "data_fingerprint", "train_config"]


@pytest.fixture(scope="module")
def data():
    return embedded_audioset(n_clips=6, seconds=0.5)


def quiet(_line):
    pass


@pytest.mark.parametrize("state", [
    TrainState(),  # a fresh run: no validation yet, best loss infinite
    TrainState(step=40, best_val_loss=3.25, evals_since_best=2, initial_val_bits=7.9,
               history=[{"step": 0, "val_bits": 7.9, "lr": 1e-4},
                        {"step": 20, "val_bits": 4.6889, "lr": 3e-4}]),
])
def test_state_round_trips_through_a_checkpoint_file(tmp_path, state):
    model = WaveNet(SMALL)
    path = save_checkpoint(tmp_path / "c.pt", config=SMALL, model_state=model.state_dict(),
                           **state.to_payload(epoch=1.5))
    payload = read_checkpoint(path)
    back = TrainState.from_payload(payload)
    assert back == state
    assert back.history is not state.history  # a copy, not shared with the payload
    assert payload["epoch"] == 1.5 and payload["best_val_loss"] == state.best_val_loss
    assert list(state.to_payload(epoch=0.0)) == ["step", "epoch", "best_val_loss",
                                                 "evals_since_best", "history", "initial_val_bits"]


def test_validations_update_the_counters_early_stopping_reads():
    state = TrainState()
    assert state.record_validation(5.0, lr=1e-3)  # the first is always the best
    assert state.initial_val_bits == pytest.approx(5.0 / math.log(2))
    state.step = 10
    assert not state.record_validation(5.0 - 1e-7, lr=1e-3)  # within 1e-6: no improvement
    assert not state.record_validation(6.0, lr=1e-3)
    assert (state.best_val_loss, state.evals_since_best) == (5.0, 2)
    assert state.record_validation(4.0, lr=5e-4)
    assert state.evals_since_best == 0
    assert [h["step"] for h in state.history] == [0, 10, 10, 10]
    assert state.history[-1] == {"step": 10, "val_bits": pytest.approx(4.0 / math.log(2)),
                                 "lr": 5e-4}


def test_checkpoints_keep_the_legacy_layout(tmp_path, data):
    result = train(SMALL, QUICK.replace(ema=0.9), data, tmp_path, progress=False, log=quiet)
    payload = torch.load(result.last_checkpoint, weights_only=True)
    assert list(payload) == LEGACY_KEYS
    assert payload["step"] == 6 and payload["scheduler"] == {"kind": "cosine", "step": 6}
    assert payload["epoch"] == pytest.approx(6 * 2 * 256 / sum(len(u.audio) for u in data.train))
    assert payload["best_val_loss"] == pytest.approx(result.best_val_bits * math.log(2))
    assert payload["initial_val_bits"] == result.initial_val_bits
    assert [h["step"] for h in payload["history"]] == [0, 3, 6]
    assert set(payload["rng"]) == {"torch"}


def test_a_checkpoint_built_by_hand_in_the_legacy_layout_resumes(tmp_path, data):
    whole = train(SMALL, QUICK, data, tmp_path / "whole", progress=False, log=quiet)
    saved = torch.load(tmp_path / "whole" / "checkpoints" / "step_0000003.pt", weights_only=True)
    # the dict written literally, key by key, as the trainer before TrainState wrote it
    legacy = {"format": "wavebench-checkpoint", "version": 1, "config": SMALL.to_dict(),
              "model": saved["model"], "versions": {"python": "3"}, "ema_state": None,
              "optimizer": saved["optimizer"], "scheduler": {"kind": "cosine", "step": 3},
              "step": 3, "epoch": 0.25, "best_val_loss": saved["best_val_loss"],
              "evals_since_best": saved["evals_since_best"], "history": saved["history"],
              "initial_val_bits": saved["initial_val_bits"], "rng": {"torch": saved["rng"]["torch"]},
              "data_fingerprint": data.fingerprint, "train_config": QUICK.to_dict()}
    assert list(legacy) == LEGACY_KEYS
    torch.save(legacy, tmp_path / "legacy.pt")
    resumed = train(SMALL, QUICK, data, tmp_path / "resumed", resume=tmp_path / "legacy.pt",
                    progress=False, log=quiet)
    a, b = read_checkpoint(whole.last_checkpoint), read_checkpoint(resumed.last_checkpoint)
    assert b["step"] == 6 and b["history"] == a["history"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert (resumed.initial_val_bits, resumed.best_val_bits) == (whole.initial_val_bits,
                                                                 whole.best_val_bits)


def test_an_old_checkpoint_without_loop_counters_resumes_from_its_step(tmp_path, data):
    # the earliest checkpoints held weights and a step only: the rest starts afresh
    model = WaveNet(SMALL)
    path = save_checkpoint(tmp_path / "bare.pt", config=SMALL, model_state=model.state_dict(),
                           step=4, data_fingerprint=data.fingerprint)
    assert TrainState.from_payload(read_checkpoint(path)) == TrainState(step=4)
    result = train(SMALL, QUICK, data, tmp_path / "run", resume=path, progress=False, log=quiet)
    assert result.step == 6
    assert [h["step"] for h in result.history] == [6]  # step 0's validation is not replayed
    assert result.initial_val_bits == result.history[0]["val_bits"]


def test_the_trainer_and_device_choice_load_no_sampler():
    code = ("import sys, reference_model.train, reference_model.devices; "
            "print(sorted(m for m in ('numba', 'reference_model.sampling') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    from reference_model import devices, sampling
    assert sampling.resolve_device is devices.resolve_device  # old imports keep working
