"""`prepare` under attack (issue 17): temporary folders of killed runs are cleared, the output
folder is locked, and an edited manifest is never trusted, neither by `prepare` (it prepares
again, with a note) nor by the loader that `train` uses (one line naming the entry)."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from reference_model.data import load_prepared, prepare
from wavebench.cli import main
from wavebench_base.errors import InputError
from wavebench_base.files import atomic_path, clear_stale_in, locked

REPO = Path(__file__).resolve().parents[1]
RATE = 16000


@pytest.fixture
def corpus(tmp_path) -> Path:
    """Four short tones in two speaker folders."""
    root = tmp_path / "audio"
    for i, rel in enumerate(["a/one.wav", "a/two.wav", "b/three.wav", "b/four.wav"]):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(0.2 * RATE)) / RATE
        sf.write(root / rel, 0.5 * np.sin(2 * np.pi * (200 + 70 * i) * t), RATE)
    return root


@pytest.fixture
def prepared(corpus, tmp_path) -> Path:
    out = tmp_path / "data"
    prepare(corpus, out, progress=False)
    return out


def hidden(folder: Path) -> list:
    """Hidden names in ``folder`` other than lock files (``.NAME.lock`` stays by design)."""
    return sorted(p.name for p in folder.iterdir()
                  if p.name.startswith(".") and not p.name.endswith(".lock"))


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- temporary folders and the lock --------------------------------------------------------

def test_atomic_file_writes_are_owned_and_a_folder_sweep_clears_dead_ones(tmp_path):
    """A kill inside an atomic file write (say of last.pt) leaves a temporary named by its pid;
    the folder-wide sweep the trainer runs on start removes it once that process is dead."""
    with atomic_path(tmp_path / "last.pt") as tmp:
        assert tmp.name.startswith(f".last.pt.tmp-{os.getpid()}-") and tmp.suffix == ".pt"
        tmp.write_bytes(b"x")
        assert clear_stale_in(tmp_path) == []  # ours, and we are alive
    stale = tmp_path / f".step_000010.pt.tmp-{dead_pid()}-0123abcd.pt"
    stale.write_bytes(b"half a checkpoint")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        busy = tmp_path / f".last.pt.tmp-{live.pid}-4567cdef.pt"
        busy.write_bytes(b"being written")
        assert clear_stale_in(tmp_path) == [stale]
        assert busy.exists() and (tmp_path / "last.pt").read_bytes() == b"x"
    finally:
        live.kill()
        live.wait()


def test_prepare_clears_temporaries_of_dead_runs_and_keeps_live_ones(corpus, prepared):
    stale = prepared.with_name(f".data.tmp-{dead_pid()}-0123abcd")
    (stale / "audio.raw").parent.mkdir()
    (stale / "audio.raw").write_bytes(b"\0" * 4096)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as live:
        busy = prepared.with_name(f".data.tmp-{live.pid}-4567cdef")
        busy.mkdir()
        try:
            assert prepare(corpus, prepared, progress=False).reused
            assert hidden(prepared.parent) == [busy.name]  # its owner may still finish
        finally:
            live.kill()
    prepare(corpus, prepared, progress=False)
    assert hidden(prepared.parent) == []


SLOW_PREPARE = """
import sys, time
import reference_model.data as data
load = data.load_audio
def slow(*args, **kwargs):
    time.sleep(0.3)
    return load(*args, **kwargs)
data.load_audio = slow
data.prepare(sys.argv[1], sys.argv[2], progress=False)
"""


def test_a_prepare_killed_mid_run_is_cleared_by_the_next(corpus, tmp_path):
    out = tmp_path / "data"
    child = subprocess.Popen([sys.executable, "-c", SLOW_PREPARE, str(corpus), str(out)],
                             cwd=REPO)
    deadline = time.monotonic() + 60
    while not hidden(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    left = hidden(tmp_path)
    assert [name.startswith(f".data.tmp-{child.pid}-") for name in left] == [True], left
    result = prepare(corpus, out, progress=False)
    assert not result.reused and result.n_files == 4
    assert hidden(tmp_path) == []


def test_a_second_prepare_on_the_same_folder_is_refused(corpus, tmp_path):
    out = tmp_path / "data"
    with locked(out), pytest.raises(InputError, match=f"^{out}: is in use by another run"):
        prepare(corpus, out, progress=False)
    assert not out.exists()


# --- edited manifests ------------------------------------------------------------------------

def entry(index: int, **values):
    def edit(manifest):
        manifest["files"][index].update(values)
    return edit


def swap_hash(manifest):
    manifest["files"][1]["sha256"] = "0" * 64  # a valid-looking hash the fingerprint lacks


def duplicate_path(manifest):
    manifest["files"][1]["path"] = manifest["files"][0]["path"]


# (edit, what the one-line refusal must say)
EDITS = {
    "offset-1e12": (entry(1, offset=1e12),
                    r"entry 1 \(a/two.wav\) is damaged: offset must be a whole number, got 10{12}\.0"),
    "offset-10^12": (entry(1, offset=10 ** 12),
                     r"entry 1 \(a/two.wav\) is damaged: offset must be 3200 .*got 10{12};"),
    "offset-negative": (entry(2, offset=-5000), r"entry 2 \(b/four.wav\) .*offset must be 6400"),
    "offset-overlap": (entry(3, offset=0), r"entry 3 \(b/three.wav\) .*offset must be 9600"),
    "length-zero": (entry(0, length=0),
                    r"entry 0 \(a/one.wav\) .*length and size must be positive"),
    "length-huge": (entry(3, length=10 ** 9),
                    r"entry 3 .*length of 10{9} samples is more than its duration of 0.2 s"),
    "duration-nan": (entry(0, duration=float("nan")), "duration must be a positive number"),
    "split-unknown": (entry(1, split="test"), "split must be one of train, valid, got 'test'"),
    "speaker-number": (entry(1, speaker=5), "speaker must be a text, got 5"),
    "path-twice": (duplicate_path, r"entry 1 \(a/one.wav\) is damaged: its path is listed twice"),
    "entry-missing-key": (lambda m: m["files"][2].pop("length"), "entry 2 .*it lacks length"),
    "entry-not-object": (lambda m: m["files"].__setitem__(0, [1, 2]),
                         "entry 0 is damaged: it is a list"),
    "files-empty": (lambda m: m.update(files=[]), "files must be a non-empty list"),
    "options-bad": (lambda m: m["options"].update(seed="x"), "options are damaged"),
    "rate-differs": (lambda m: m.update(sample_rate=8000),
                     "sample_rate 8000 differs from its options' 16000"),
    "fingerprint": (swap_hash, "fingerprint does not match its own options and files"),
}


def edit_manifest(folder: Path, edit) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("kind", EDITS.keys())
def test_an_edited_manifest_is_refused_by_the_loader_in_one_line(prepared, kind):
    edit, message = EDITS[kind]
    edit_manifest(prepared, edit)
    with pytest.raises(InputError, match=f"^{prepared}: manifest.json .*{message}") as caught:
        load_prepared(prepared)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("kind", ["offset-1e12", "offset-negative", "length-zero",
                                  "fingerprint"])
def test_train_refuses_an_edited_manifest_before_training(prepared, tmp_path, capsys, kind):
    edit, message = EDITS[kind]
    edit_manifest(prepared, edit)
    capsys.readouterr()
    code = main(["train", "--data", str(prepared), "--steps", "1", "--no-progress",
                 "-o", str(tmp_path / "run")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: {prepared}: manifest.json ") and "again" in lines[0]
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("kind", ["offset-1e12", "offset-negative", "length-huge",
                                  "split-unknown", "fingerprint"])
def test_prepare_rebuilds_an_edited_manifest_with_a_note(corpus, prepared, kind):
    edit_manifest(prepared, EDITS[kind][0])
    result = prepare(corpus, prepared, progress=False)
    assert not result.reused
    assert any(note.startswith(f"{prepared}: manifest.json ") and
               note.endswith("; not reused, prepared again") for note in result.notes), \
        result.notes
    data = load_prepared(prepared)  # sound again
    assert all(len(u.audio) == int(0.2 * RATE) for u in data.train + data.valid)
    assert prepare(corpus, prepared, progress=False).reused


def test_prepare_rebuilds_a_store_that_disagrees_with_its_manifest(corpus, prepared):
    np.save(prepared / "codes.npy", np.zeros(10, np.uint8))
    result = prepare(corpus, prepared, progress=False)
    assert not result.reused
    assert any("store file codes.npy holds" in note for note in result.notes), result.notes
    load_prepared(prepared)
