"""The trainer: loss falls, resume equals an uninterrupted run, schedules, early stopping; its
state is its checkpoint payload, which round-trips, and checkpoints written in the layout the
trainer has always used still resume; picking a device loads no sampler."""
import json
import math
import subprocess
import sys

import pytest
import torch

from reference_model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from reference_model.config import PRESETS, ModelConfig
from reference_model.embedded import embedded_audioset
from reference_model.model import WaveNet
from reference_model.train import TrainState, train
from reference_model.train_config import TrainConfig, lr_at
from wavebench_base.errors import InputError

SMALL = ModelConfig(blocks=1, layers=5, residual_channels=8, dilation_channels=8,
                    skip_channels=16, end_channels=16, n_mels=8, hop_length=64)
QUICK = TrainConfig(steps=6, batch_size=2, crop=256, eval_every=3, eval_batches=1,
                    checkpoint_every=3, warmup=2, lr=3e-3)


@pytest.fixture(scope="module")
def data():
    return embedded_audioset(n_clips=6, seconds=0.5)


def quiet(_line):
    pass


@pytest.mark.parametrize("overrides", [
    {}, {"optimizer": "rmsprop", "schedule": "step", "step_size": 2, "lr": 1e-3},
    {"optimizer": "sgd", "weight_decay": 1e-4, "accumulate": 2, "ema": 0.9, "augment": True},
])
def test_resume_gives_the_same_weights_as_one_run(tmp_path, data, overrides):
    config = QUICK.replace(**overrides)
    whole = train(SMALL, config, data, tmp_path / "whole", progress=False, log=quiet)
    halfway = tmp_path / "whole" / "checkpoints" / "step_0000003.pt"
    resumed = train(SMALL, config, data, tmp_path / "resumed", resume=halfway, progress=False,
                    log=quiet)
    a, b = read_checkpoint(whole.last_checkpoint), read_checkpoint(resumed.last_checkpoint)
    assert a["step"] == b["step"] == 6
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key  # bit-identical on the CPU
    if config.ema:
        for key in a["ema_state"]:
            assert torch.equal(a["ema_state"][key], b["ema_state"][key])
    assert [h["val_bits"] for h in a["history"]] == [h["val_bits"] for h in b["history"]]


def test_mel_conditioned_training_end_to_end(tmp_path, data):
    config = SMALL.replace(cond="mel+speaker", n_speakers=len(data.speakers))
    result = train(config, QUICK, data, tmp_path, progress=False, log=quiet)
    model, payload = load_checkpoint(result.last_checkpoint)
    assert model.config == config and payload["step"] == 6
    assert all(math.isfinite(h["val_bits"]) for h in result.history)


@pytest.mark.slow
def test_tiny_preset_validation_loss_falls_on_embedded_data(tmp_path):
    data = embedded_audioset()
    config = TrainConfig(**{**PRESETS["tiny"].train, "steps": 120, "eval_every": 40})
    result = train(PRESETS["tiny"].model, config, data, tmp_path, progress=False, log=quiet)
    # untrained: about log2(256) = 8 bits; the demo's mel-conditioned run of this preset on this
    # data reaches 4.55 by step 111
    assert result.initial_val_bits == pytest.approx(8.0, abs=0.1)
    assert result.best_val_bits < result.initial_val_bits - 1.5
    assert result.best_checkpoint.exists()


def test_early_stopping_when_validation_stalls(tmp_path, data):
    config = QUICK.replace(steps=50, lr=1e-12, warmup=0, schedule="constant", eval_every=1,
                           patience=2)
    result = train(SMALL, config, data, tmp_path, progress=False, log=quiet)
    assert result.stopped_early and result.step == 2


def test_lr_schedules_worked_by_hand():
    c = TrainConfig(steps=110, lr=1.0, warmup=10, schedule="cosine", min_lr_ratio=0.0)
    assert lr_at(0, c) == pytest.approx(0.1) and lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(10, c) == pytest.approx(1.0) and lr_at(60, c) == pytest.approx(0.5)
    assert lr_at(110, c) == pytest.approx(0.0, abs=1e-12)
    s = TrainConfig(lr=1.0, warmup=0, schedule="step", step_size=5, gamma=0.5)
    assert [lr_at(i, s) for i in (0, 4, 5, 10)] == [1.0, 1.0, 0.5, 0.25]


def test_checkpoint_holds_everything_needed_to_resume(tmp_path, data):
    result = train(SMALL, QUICK, data, tmp_path, progress=False, log=quiet)
    payload = torch.load(result.last_checkpoint, weights_only=True)
    for key in ("optimizer", "scheduler", "step", "epoch", "best_val_loss", "rng",
                "data_fingerprint", "versions", "train_config"):
        assert key in payload, key
    assert payload["data_fingerprint"] == data.fingerprint


def test_resume_refuses_other_data_or_config(tmp_path, data):
    result = train(SMALL, QUICK, data, tmp_path / "a", progress=False, log=quiet)
    other = embedded_audioset(n_clips=6, seconds=0.5, seed=1)
    with pytest.raises(InputError, match="trained on different data"):
        train(SMALL, QUICK, other, tmp_path / "b", resume=result.last_checkpoint,
              progress=False, log=quiet)
    with pytest.raises(InputError, match="model config differs from this run's in layers"):
        train(SMALL.replace(layers=4), QUICK, data, tmp_path / "c",
              resume=result.last_checkpoint, progress=False, log=quiet)


def test_wrong_sample_rate_and_missing_cuda(tmp_path, data):
    with pytest.raises(InputError, match="data is at 16000 Hz but the model expects 22050 Hz"):
        train(SMALL.replace(sample_rate=22050), QUICK, data, tmp_path, log=quiet)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            train(SMALL, QUICK.replace(device="cuda"), data, tmp_path, log=quiet)


@pytest.mark.parametrize("change, message", [
    ({"optimizer": "adagrad"}, "optimizer must be one of adam, rmsprop, sgd"),
    ({"ema": 1.0}, "ema must be in"), ({"steps": 0}, "steps must be a positive integer"),
    ({"schedule": "linear"}, "schedule must be one of")])
def test_bad_train_settings(change, message):
    with pytest.raises(InputError, match=message):
        TrainConfig(**change)


def test_tensorboard_holds_each_step_once_after_a_resume_over_a_longer_run(tmp_path, data):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(SMALL, QUICK, data, run, progress=False, log=quiet)  # to step 6, as if killed there
    # resumed from the step-3 checkpoint, as `--resume auto` after a kill would: steps 4-6 again
    train(SMALL, QUICK, data, run, resume=run / "checkpoints" / "step_0000003.pt",
          progress=False, log=quiet)
    events = EventAccumulator(str(run / "tensorboard"), purge_orphaned_data=True).Reload()
    steps = [e.step for e in events.Scalars("train/bits_per_sample")]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in events.Scalars("val/bits_per_sample")] == [0, 3, 6]


@pytest.mark.parametrize("cond", ["none", "mel+speaker"])
def test_tensorboard_gets_a_generated_clip_at_each_validation(tmp_path, data, cond):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = SMALL.replace(cond=cond, n_speakers=len(data.speakers) if "speaker" in cond else 0)
    train(model, QUICK.replace(audio_seconds=0.05), data, tmp_path, progress=False, log=quiet)
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"audio": 0}).Reload()
    generated = events.Audio("audio/generated")
    assert [e.step for e in generated] == [0, 3, 6]
    assert [e.step for e in events.Audio("audio/validation_file")] == [0]
    assert generated[0].sample_rate == 16000 and generated[0].length_frames == 800


def test_the_same_command_resumes_a_speaker_conditioned_run(tmp_path, capsys):
    from wavebench.cli import main

    def argv(cond="mel+speaker", steps=2):
        return ["train", "--preset", "tiny", "--cond", cond, "-o", str(tmp_path), "--steps",
                str(steps), "--batch-size", "2", "--crop", "256", "--eval-every", "1",
                "--checkpoint-every", "1", "--no-progress", "--resume", "auto"]
    assert main(argv()) == 0
    assert main(argv(steps=3)) == 0, capsys.readouterr().err  # as after a kill: same command
    assert read_checkpoint(tmp_path / "last.pt")["step"] == 3
    capsys.readouterr()
    assert main(argv(cond="mel", steps=4)) == 1  # another conditioning: refused
    assert "differs in cond" in capsys.readouterr().err


# every entry a trainer checkpoint has held since format version 1, in the order it writes them
LEGACY_KEYS = ["format", "version", "config", "model", "versions", "ema_state", "optimizer",
               "scheduler", "step", "epoch", "best_val_loss", "evals_since_best", "history",
               "initial_val_bits", "rng", "data_fingerprint", "train_config"]


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


def test_the_log_carries_a_training_clock_over_resumes(tmp_path, data):
    train(SMALL, QUICK.replace(steps=3), data, tmp_path, progress=False, log=quiet)
    first = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    train(SMALL, QUICK, data, tmp_path, resume=tmp_path / "last.pt", progress=False, log=quiet)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 3, 6]
    assert records[:2] == first  # the resumed run keeps what the first one logged
    seconds = [r["seconds"] for r in records]
    # the resumed run's clock starts where the first one's stopped, not at 0
    assert 0 <= seconds[0] < seconds[1] < seconds[2]
    # and checkpoints hold no wall time, so that a resumed run's equals an unbroken one's
    assert all("seconds" not in h for h in torch.load(tmp_path / "last.pt",
                                                      weights_only=True)["history"])


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


def test_converted_kinds_of_model_are_not_trained(tmp_path):
    from reference_model.config import ModelConfig
    from reference_model.train import set_up
    for config in (ModelConfig(mu_law="pytorch-wavenet"),
                   ModelConfig(input="scalar", output="mol", classes=65536)):
        with pytest.raises(InputError, match="can be scored, sampled and timed but not trained"):
            set_up(config, None, None, tmp_path, None, "cpu", print)
