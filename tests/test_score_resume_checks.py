"""Resuming `score` proves it is the same job: inputs, contents and options, one run at a time."""
import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest
import soundfile as sf
from test_score import METRICS, RATE, clip, quiet

from wavebench.cli import main
from wavebench.score import score
from wavebench_base.errors import InputError


@pytest.fixture
def sets(tmp_path):
    """A reference folder, a noisy system and an exact copy of the references."""
    ref, gen, same = tmp_path / "ref", tmp_path / "gen", tmp_path / "same"
    for folder in (ref, gen, same):
        folder.mkdir()
    for i, name in enumerate(["a", "b", "c"]):
        sf.write(ref / f"{name}.wav", clip(i), RATE)
        sf.write(same / f"{name}.wav", clip(i), RATE)
        sf.write(gen / f"{name}.wav", clip(i, noise=0.05), RATE)
    return ref, gen, same


def run(ref, gen, out, **kw):
    return score(reference_dir=ref, generated={"sys": gen}, out_dir=out, metrics=METRICS,
                 progress=False, log=quiet, **kw)


def mcd_mean(result):
    table = pd.read_csv(result.per_utterance)
    return table.loc[table["metric"].eq("mcd"), "value"].mean()


def test_other_generated_folder_is_refused_not_resumed(sets, tmp_path):
    """Defect 1: the same -o with another --generated reported the old numbers."""
    ref, gen, same = sets
    out = tmp_path / "S"
    assert mcd_mean(run(ref, gen, out)) > 1.0
    with pytest.raises(InputError, match=r"another job; the inputs changed: "
                                         r"inputs\.generated\.sys: .*gen.* -> .*same"):
        run(ref, same, out)
    fresh = run(ref, same, out, force=True)
    assert fresh.n_resumed == 0 and mcd_mean(fresh) == pytest.approx(0.0, abs=1e-6)
    info = json.loads((out / "run.json").read_text())
    assert info["inputs"]["generated"]["sys"] == str(same.resolve())


def test_other_reference_folder_is_refused(sets, tmp_path):
    ref, gen, same = sets
    run(ref, gen, tmp_path / "S")
    with pytest.raises(InputError, match=r"inputs\.reference"):
        score(reference_dir=same, generated={"sys": gen}, out_dir=tmp_path / "S",
              metrics=METRICS, progress=False, log=quiet)


def test_changed_file_content_is_refused(sets, tmp_path):
    """Same folders, one file rewritten with other audio: the old rows no longer hold."""
    ref, gen, _ = sets
    run(ref, gen, tmp_path / "S")
    sf.write(gen / "b.wav", clip(1, noise=0.2), RATE)
    with pytest.raises(InputError, match=r"content changed \(.*b\.wav\)"):
        run(ref, gen, tmp_path / "S")


def test_touched_but_identical_file_resumes(sets, tmp_path):
    """A new mtime with the same bytes is the same input: resume, do not refuse."""
    ref, gen, _ = sets
    first = run(ref, gen, tmp_path / "S")
    later = time.time() + 100
    os.utime(gen / "a.wav", (later, later))
    again = run(ref, gen, tmp_path / "S")
    assert again.n_resumed == 3 and again.n_scored == 0
    assert mcd_mean(again) == mcd_mean(first)


def test_folder_without_fingerprint_is_refused(sets, tmp_path):
    ref, gen, _ = sets
    out = tmp_path / "S"
    run(ref, gen, out)
    info = json.loads((out / "run.json").read_text())
    del info["fingerprint"]  # as an older wavebench wrote it
    (out / "run.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="no input fingerprint"):
        run(ref, gen, out)


def test_cli_names_the_change_and_force_starts_afresh(sets, tmp_path, capsys):
    ref, gen, same = sets
    out = str(tmp_path / "S")
    args = ["score", "--reference", str(ref), "-o", out, "--metrics", "mcd", "--no-progress"]
    assert main(args + ["--generated", f"sys={gen}"]) == 0
    capsys.readouterr()
    assert main(args + ["--generated", f"sys={same}"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--force" in err and "inputs.generated.sys" in err
    assert main(args + ["--generated", f"sys={same}", "--force"]) == 0
    rows = (tmp_path / "S" / "rows.jsonl").read_text().splitlines()
    assert len(rows) == 3  # the old rows are gone, not appended to


def test_concurrent_run_on_one_folder_is_refused(sets, tmp_path):
    """A second run while the first holds the lock is refused; no duplicate rows."""
    ref, gen, _ = sets
    out = tmp_path / "S"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from wavebench_base.files import locked\n"
         f"with locked({str(out)!r}):\n    print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=r"in use by another run \(pid \d+\)"):
            run(ref, gen, out)
    finally:
        holder.kill()
        holder.wait()
    result = run(ref, gen, out)  # a dead holder's lock is released by the kernel
    assert result.n_scored == 3
    assert len((out / "rows.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize("item, problem", [
    ("=dir", "empty"),
    ("injsys/=1+2", "path separator"),
    ("oracle_mulaw=DIR", "reserved"),
    ("=cmd|x=DIR", "empty"),
    ("@SUM(A1)=DIR", "starts with '@'"),
    ("a\u202eb=DIR", "bidirectional"),
])
def test_bad_system_names_are_refused_before_scoring(sets, tmp_path, capsys, item, problem):
    ref, gen, _ = sets
    item = item.replace("DIR", str(gen))
    code = main(["score", "--reference", str(ref), "--generated", item, "-o",
                 str(tmp_path / "S"), "--metrics", "mcd", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and problem in err and len(err.splitlines()) == 1
    assert not (tmp_path / "S" / "rows.jsonl").exists()  # refused before any work


def die_like_an_oom_kill(task):
    """Stands in for score_task in a worker: the process vanishes, as under the OOM killer."""
    os._exit(9)


def test_a_killed_worker_is_one_line_not_a_traceback(sets, tmp_path, monkeypatch):
    import wavebench.score as score_module
    ref, gen, _ = sets
    monkeypatch.setattr(score_module, "score_task", die_like_an_oom_kill)
    monkeypatch.setattr(score_module, "POOL_STARTUP_S", 0)  # no task in this process
    with pytest.raises(InputError, match=r"a scoring worker was killed .*fewer --jobs"):
        run(ref, gen, tmp_path / "S", jobs=2)
