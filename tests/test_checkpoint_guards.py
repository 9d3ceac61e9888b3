"""Guards before allocation: bounded config values, weights compared with the config before a
model is built, and `--resume auto` that falls back past an unreadable last.pt (issue 17)."""
import contextlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from reference_model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from reference_model.config import (
    LIMITS,
    MAX_PARAMETERS,
    MAX_RECEPTIVE_FIELD,
    PRESETS,
    ModelConfig,
    parameter_count,
)
from reference_model.model import WaveNet, count_parameters
from wavebench.cli import main
from wavebench.training import resolve_run
from wavebench_base.errors import InputError

REPO = Path(__file__).resolve().parents[1]
SMALL = ModelConfig(blocks=2, layers=3, residual_channels=4, dilation_channels=4,
                    skip_channels=8, end_channels=8)
REFUSE_WITHIN_S = 5.0  # generous: each refusal takes well under 0.1 s here

# Config values from the attacks, and the bound each must be refused by.
ABSURD = {
    "blocks-1e6": ({"blocks": 10 ** 6}, "blocks must be at most 64"),
    "layers-64": ({"layers": 64}, "layers must be at most 16"),
    "channels-1e6": ({"residual_channels": 10 ** 6}, "residual_channels must be at most 4096"),
    "classes-1e9": ({"classes": 10 ** 9}, "classes must be at most 65536"),
    "kernel-1e9": ({"kernel_size": 10 ** 9}, "kernel_size must be at most 16"),
    "hop-1e9": ({"cond": "mel", "hop_length": 10 ** 9}, "hop_length must be at most 8192"),
    "blocks-1e30": ({"blocks": 10 ** 30}, r"blocks must be at most 64, got an .* of about 10\^30"),
    "receptive-field": ({"blocks": 64, "layers": 16}, "receptive field of 4194241 samples"),
    "parameters": ({"blocks": 4, "residual_channels": 4096, "dilation_channels": 4096,
                    "skip_channels": 4096, "end_channels": 4096},
                   "parameters, more than the limit of 100,000,000"),
}


def with_config(payload, **values):
    payload["config"].update(values)


def reshape_first(payload):
    key = next(iter(payload["model"]))
    payload["model"][key] = torch.zeros(3, 3)


# Weights that do not fit the stored config, and the tensor each message must name.
MISFITS = {
    "more-blocks": (lambda p: with_config(p, blocks=3), "tensor layers.6.conv.weight is missing"),
    "wider": (lambda p: with_config(p, residual_channels=5),
              r"tensor start.weight has shape \[4, 256, 1\], the config implies \[5, 256, 1\]"),
    "reshaped": (reshape_first, r"start.weight has shape \[3, 3\]"),
    "extra": (lambda p: p["model"].update(bogus=torch.zeros(2)), "first 'bogus'"),
    "integer": (lambda p: p["model"].update({"end2.bias": torch.zeros(256, dtype=torch.int64)}),
                "end2.bias is a tensor of int64 on cpu, not a dense floating-point tensor"),
    "sparse": (lambda p: p["model"].update({"end2.bias": torch.zeros(256).to_sparse()}),
               "end2.bias is a sparse_coo tensor of float32 on cpu"),
    "meta": (lambda p: p["model"].update({"end2.bias": torch.empty(256, device="meta")}),
             "end2.bias is a tensor of float32 on meta"),
    "ema": (lambda p: p.update(ema_state={"start.weight": torch.zeros(1)}),
            r"ema_state tensor start.weight has shape \[1\]"),
}


def small_checkpoint(path: Path, edit=None, config: ModelConfig = SMALL) -> Path:
    """A valid checkpoint of ``config``, then ``edit`` applied to its contents."""
    save_checkpoint(path, config=config, model_state=WaveNet(config).state_dict(), step=1)
    if edit is not None:
        payload = torch.load(path, weights_only=True)
        edit(payload)
        torch.save(payload, path)
    return path


def absurd_checkpoint(path: Path, values: dict) -> Path:
    return small_checkpoint(path, lambda p: with_config(p, **values))


@contextlib.contextmanager
def no_model_with_storage():
    """Fail if a WaveNet is built inside the block anywhere but on the ``meta`` device (where
    tensors have shapes and no storage): a refusal must come before any allocation."""
    devices, original = [], WaveNet.__init__

    def recording(self, config):
        devices.append(torch.get_default_device().type)
        original(self, config)

    WaveNet.__init__ = recording
    try:
        yield devices
    finally:
        WaveNet.__init__ = original
    assert set(devices) <= {"meta"}, devices


def reference_folder(root: Path) -> Path:
    folder = root / "ref"
    folder.mkdir(exist_ok=True)
    t = np.arange(1600) / 16000
    sf.write(folder / "a.wav", 0.5 * np.sin(2 * np.pi * 220 * t), 16000)
    return folder


COMMANDS = {
    "generate": lambda ckpt, root: ["generate", "--checkpoint", ckpt, "--seconds", "0.01",
                                    "--no-progress", "-o", root / "out"],
    "score": lambda ckpt, root: ["score", "--checkpoint", ckpt, "--reference",
                                 reference_folder(root), "--no-progress", "-o", root / "out"],
    "train-resume": lambda ckpt, root: ["train", "--resume", ckpt, "--steps", "2",
                                        "--no-progress", "-o", root / "out"],
}


def refused_line(capsys, command: str, ckpt: Path, root: Path) -> tuple[str, float]:
    """Run ``command`` on ``ckpt``; return its one error line and how long the refusal took."""
    argv = [str(a) for a in COMMANDS[command](ckpt, root)]
    capsys.readouterr()
    started = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - started
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0], seconds


# --- bounded config values ----------------------------------------------------------------

@pytest.mark.parametrize("values, message", ABSURD.values(), ids=ABSURD.keys())
def test_absurd_config_values_are_refused_by_arithmetic(values, message):
    started = time.perf_counter()
    with no_model_with_storage() as built, pytest.raises(InputError, match=message) as caught:
        ModelConfig(**values)
    assert time.perf_counter() - started < 0.5
    assert "\n" not in str(caught.value) and built == []


def test_every_limit_is_named_and_far_above_every_preset():
    for name, limit in LIMITS.items():
        with pytest.raises(InputError, match=f"config: {name} must be at most {limit}, "):
            ModelConfig(**{"cond": "mel+speaker", "n_speakers": 1, name: limit + 1})
    for preset in PRESETS.values():
        for cond in ("none", "mel+speaker"):
            config = preset.model.replace(cond=cond, n_speakers=4)
            assert parameter_count(config) * 50 < MAX_PARAMETERS
            assert config.receptive_field * 100 < MAX_RECEPTIVE_FIELD


@pytest.mark.parametrize("cond", ["none", "mel", "speaker", "mel+speaker"])
@pytest.mark.parametrize("upsample, hop", [("transposed", 256), ("transposed", 200),
                                           ("repeat", 256)])
def test_parameter_count_is_the_built_models(cond, upsample, hop):
    for preset in ("tiny", "reference", "speech"):
        config = PRESETS[preset].model.replace(cond=cond, upsample=upsample, hop_length=hop,
                                               n_speakers=3 if "speaker" in cond else 0)
        assert parameter_count(config) == count_parameters(WaveNet(config))
    assert parameter_count(PRESETS["reference"].model) == 549_728  # the design's figure


# --- absurd and misfit checkpoints, in every path that loads one ----------------------------

@pytest.mark.parametrize("kind", ABSURD.keys())
def test_absurd_checkpoint_is_refused_by_the_loader_before_any_model(tmp_path, kind):
    values, message = ABSURD[kind]
    path = absurd_checkpoint(tmp_path / f"{kind}.pt", values)
    started = time.perf_counter()
    with no_model_with_storage() as built, \
            pytest.raises(InputError, match=f"^{re.escape(str(path))}: .*{message}"):
        load_checkpoint(path)
    assert time.perf_counter() - started < REFUSE_WITHIN_S
    assert built == []


@pytest.mark.parametrize("command", COMMANDS.keys())
@pytest.mark.parametrize("kind", ["blocks-1e6", "layers-64", "channels-1e6", "classes-1e9",
                                  "kernel-1e9"])
def test_absurd_checkpoint_is_one_line_in_every_command(tmp_path, capsys, kind, command):
    values, message = ABSURD[kind]
    path = absurd_checkpoint(tmp_path / f"{kind}.pt", values)
    with no_model_with_storage() as built:
        line, seconds = refused_line(capsys, command, path, tmp_path)
    assert f"{kind}.pt" in line and re.search(message, line), line
    assert seconds < REFUSE_WITHIN_S
    assert built == []


@pytest.mark.parametrize("kind", MISFITS.keys())
def test_misfit_weights_name_the_first_mismatched_tensor_before_any_model(tmp_path, kind):
    edit, message = MISFITS[kind]
    path = small_checkpoint(tmp_path / "misfit.pt", edit)
    with no_model_with_storage(), \
            pytest.raises(InputError, match=f"misfit.pt: weights do not match the stored "
                                            f"config: .*{message}") as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("command", COMMANDS.keys())
@pytest.mark.parametrize("kind", ["more-blocks", "reshaped", "ema"])
def test_misfit_weights_are_one_line_in_every_command(tmp_path, capsys, kind, command):
    edit, message = MISFITS[kind]
    path = small_checkpoint(tmp_path / "misfit.pt", edit)
    with no_model_with_storage():
        line, _ = refused_line(capsys, command, path, tmp_path)
    assert "misfit.pt" in line and re.search(message, line), line


def test_absurd_checkpoints_are_refused_in_bounded_memory(tmp_path):
    """Peak resident memory of a fresh process refusing every absurd checkpoint under
    `train --resume` stays near what importing torch costs (about 250 MB here)."""
    paths = {kind: str(absurd_checkpoint(tmp_path / f"{kind}.pt", values))
             for kind, (values, _) in ABSURD.items()}
    script = (
        "import json, resource, sys, time\n"
        "from wavebench.cli import main\n"
        "paths, out, times = json.loads(sys.argv[1]), sys.argv[2], {}\n"
        "for kind, path in paths.items():\n"
        "    started = time.perf_counter()\n"
        "    code = main(['train', '--resume', path, '--steps', '2', '--no-progress', '-o', out])\n"
        "    times[kind] = [code, time.perf_counter() - started]\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps({'times': times, 'peak_mb': peak}))\n")
    done = subprocess.run([sys.executable, "-c", script, json.dumps(paths), str(tmp_path / "o")],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(code == 1 and seconds < REFUSE_WITHIN_S
               for code, seconds in report["times"].values()), report
    assert report["peak_mb"] < 1024, report
    assert done.stderr.count("error: ") == len(ABSURD) and "Traceback" not in done.stderr


# --- unreadable checkpoints: one whole line, and `--resume auto` falls back ------------------

def truncate(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def test_truncated_checkpoint_reason_is_a_whole_sentence(tmp_path, capsys):
    path = truncate(small_checkpoint(tmp_path / "cut.pt"))
    line, _ = refused_line(capsys, "train-resume", path, tmp_path)
    assert line == (f"error: {path}: not a readable wavebench checkpoint (the file is cut "
                    "short: its zip archive has no end record)")


def run_folder(root: Path, steps=(2, 4)) -> Path:
    """A run folder as `train` leaves it: step checkpoints and last.pt (the newest)."""
    out = root / "run"
    for step in steps:
        small_checkpoint(out / "checkpoints" / f"step_{step:07d}.pt")
    small_checkpoint(out / "last.pt")
    return out


def test_resume_auto_falls_back_to_the_newest_readable_step_checkpoint(tmp_path):
    out = run_folder(tmp_path, steps=(2, 4, 10))
    truncate(out / "last.pt")
    truncate(out / "checkpoints" / "step_0000010.pt")
    lines = []
    model, _, resume = resolve_run(out_dir=out, resume="auto", log=lines.append)
    assert resume == out / "checkpoints" / "step_0000004.pt" and model == SMALL
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert len(warnings) == 2 and all("\n" not in line for line in warnings)
    assert "step_0000010.pt: not a readable" in warnings[0]
    assert warnings[1] == (f"warning: {out / 'last.pt'}: not a readable wavebench checkpoint "
                           "(the file is cut short: its zip archive has no end record); "
                           f"resuming from {resume} instead, the newest readable step "
                           "checkpoint")


def test_resume_auto_without_a_readable_checkpoint_is_one_error_line(tmp_path, capsys):
    out = run_folder(tmp_path, steps=(2,))
    truncate(out / "last.pt")
    truncate(out / "checkpoints" / "step_0000002.pt")
    capsys.readouterr()
    code = main(["train", "--resume", "auto", "--steps", "2", "--no-progress", "-o", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and [line.split(":")[0] for line in lines] == ["warning", "error"], lines
    assert lines[0].startswith(f"warning: {out / 'checkpoints' / 'step_0000002.pt'}: not a "
                               "readable wavebench checkpoint")
    assert lines[1] == (f"error: {out / 'last.pt'}: not a readable wavebench checkpoint (the "
                        "file is cut short: its zip archive has no end record); and "
                        f"{out / 'checkpoints'} holds no readable step_*.pt to resume from "
                        "instead (move last.pt away to start a new run)")


def test_resume_auto_past_a_truncated_last_checkpoint_trains_on(tmp_path, capsys):
    out = tmp_path / "run"
    settings = ["--batch-size", "2", "--crop", "256", "--checkpoint-every", "2",
                "--eval-every", "2", "--threads", "1", "--no-progress", "-o", str(out)]
    assert main(["train", "--steps", "4", *settings]) == 0
    truncate(out / "last.pt")
    capsys.readouterr()
    assert main(["train", "--resume", "auto", "--steps", "6", *settings]) == 0
    err = capsys.readouterr().err
    assert (f"resuming from {out / 'checkpoints' / 'step_0000004.pt'} instead" in err
            and "error" not in err), err
    assert read_checkpoint(out / "last.pt")["step"] == 6
