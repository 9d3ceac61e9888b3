"""The command line: one-line errors with exit codes, and `prepare` + `train` end to end."""
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from wavebench.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("error: ")
    return lines[0]


def tone(seconds=0.5, rate=16000, freq=220.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def audio_dir(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    for i in range(4):
        sf.write(folder / f"clip{i}.wav", tone(freq=200 + 50 * i), 16000, subtype="PCM_16")
    return folder


def put(name, write):
    """A maker that adds one bad file to the folder and returns the folder."""
    def make(folder):
        write(folder / name)
        return folder
    return make


BAD_FOLDERS = [
    (lambda d: d / "missing", "missing: no such folder"),
    (lambda d: d, "no audio files found"),
    (put("a.wav", lambda p: p.write_bytes(b"")), "a.wav: empty file"),
    (put("a.flac", lambda p: p.write_bytes(b"hello, not audio" * 20)), "a.flac: .*(format|read)"),
    (put("a.wav", lambda p: sf.write(p, np.full(800, np.nan, np.float32), 16000, subtype="FLOAT")),
     "a.wav: .*NaN"),
    (put("a.wav", lambda p: sf.write(p, np.zeros(800, np.float32), 16000)), "a.wav: .*silent"),
]


@pytest.mark.parametrize("make, problem", BAD_FOLDERS)
def test_prepare_bad_input_is_one_line_and_exit_1(tmp_path, capsys, make, problem):
    folder = tmp_path / "in"
    folder.mkdir()
    if "no audio" not in problem:
        sf.write(folder / "good.wav", tone(), 16000)
        sf.write(folder / "good2.wav", tone(freq=330), 16000)
    code, _, err = run(capsys, "prepare", str(make(folder)), "-o", str(tmp_path / "out"))
    assert code == 1
    assert re.search(problem, one_error_line(err), re.IGNORECASE)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_prepare_accepts_odd_formats_with_notes(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    x = tone(rate=44100)
    sf.write(folder / "stereo.wav", np.stack([x, x], axis=1), 44100, subtype="PCM_24")
    sf.write(folder / "u8.wav", tone(), 16000, subtype="PCM_U8")
    sf.write(folder / "i32.flac", tone(), 16000, subtype="PCM_24")
    sf.write(folder / "f32.wav", tone(), 22050, subtype="FLOAT")
    code, out, err = run(capsys, "prepare", str(folder), "-o", str(tmp_path / "out"))
    assert code == 0, err
    assert "prepared 4 files" in out
    assert "mixed 2 channels to mono" in err and "resampled 44100 -> 16000" in err
    code, out, _ = run(capsys, "prepare", str(folder), "-o", str(tmp_path / "out"))
    assert code == 0 and out.startswith("reused 4 files")


def test_help_lists_every_command_module_without_loading_the_work():
    """`wavebench --help` imports each command module (for its summary line) but none of the
    work behind it: no torch, numba, pandas or numpy."""
    code = ("import sys\n"
            "from wavebench.cli import main\n"
            "try:\n"
            "    main(['--help'])\n"
            "finally:\n"
            "    heavy = {'torch', 'numba', 'pandas', 'numpy', 'matplotlib'} & set(sys.modules)\n"
            "    print('heavy:', sorted(heavy), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "heavy: []" in proc.stderr
    listed = re.findall(r"^  (\w+)  ", proc.stdout.split("Commands:")[1], flags=re.M)
    assert listed == ["convert", "demo", "generate", "mos", "prepare", "report", "score", "speed",
                      "train"]


def test_each_command_lives_in_its_own_module_of_wavebench_commands():
    import click

    from wavebench.cli import COMMANDS, cli

    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command.name == name
        assert command.callback.__module__ == f"wavebench.commands.{name}"


def test_usage_errors_exit_2(capsys):
    code, _, err = run(capsys, "train", "--no-such-option")
    assert code == 2 and "No such option" in err


def test_train_bad_inputs(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--data", str(tmp_path / "nope"), "-o", str(tmp_path / "o"))
    assert code == 1 and "data folder not found" in one_error_line(err)
    toml = tmp_path / "c.toml"
    toml.write_text("[train]\nstepz = 3\n")
    code, _, err = run(capsys, "train", "--config", str(toml), "-o", str(tmp_path / "o"))
    assert code == 1 and "unknown key(s) stepz" in one_error_line(err)
    code, _, err = run(capsys, "train", "--resume", str(tmp_path / "none.pt"), "-o", str(tmp_path))
    assert code == 1 and "checkpoint not found" in one_error_line(err)


@pytest.mark.slow
def test_prepare_then_train_mel_model_and_resume_from_the_command_line(tmp_path, audio_dir):
    def wavebench(*argv):
        proc = subprocess.run([sys.executable, "-m", "wavebench", *argv], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc
    wavebench("prepare", str(audio_dir), "-o", str(tmp_path / "data"))
    common = ["--data", str(tmp_path / "data"), "-o", str(tmp_path / "run"), "--no-progress"]
    wavebench("train", *common, "--cond", "mel", "--steps", "4", "--batch-size", "2",
              "--crop", "256", "--eval-every", "2", "--checkpoint-every", "2")
    proc = wavebench("train", *common, "--resume", "auto", "--steps", "6")
    assert "resuming from" in proc.stderr and "checkpoint:" in proc.stdout
    from reference_model.checkpoint import read_checkpoint
    payload = read_checkpoint(tmp_path / "run" / "last.pt")
    assert payload["step"] == 6 and payload["config"]["cond"] == "mel"


def test_debug_is_accepted_after_the_command_and_shows_the_traceback(tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out"),
                 "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")


def test_checkpoint_scoring_refuses_options_it_would_ignore(tmp_path, capsys):
    assert main(["score", "--checkpoint", "x.pt", "--reference", str(tmp_path),
                 "--generated", str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    assert "--checkpoint scores the model's own output" in capsys.readouterr().err
