"""`report` and `mos analyze` replace their output folder whole: old set or new set, never a mix."""
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_mos_analysis_sim import build_packet, import_ratings, simulate_study
from test_report_command import UTTERANCES, score_values, write_audio, write_score_run, write_speed_run

from wavebench.mos.analysis.report import AnalysisOptions, run_analysis
from wavebench.report import build_report
from wavebench_base.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def snapshot(folder: Path) -> dict:
    """{name: sha256} of every file in ``folder`` (hidden files included)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def report_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    reference = write_audio(root / "ref", UTTERANCES, seed=0)
    gen = write_audio(root / "gen", UTTERANCES, seed=5)
    one = write_score_run(root / "one", reference, {"a": gen},
                          score_values(("a", "b"), UTTERANCES, seed=3))
    two = write_score_run(root / "two", reference, {"a": gen},
                          score_values(("a", "c"), UTTERANCES, seed=4))
    speed = write_speed_run(root / "speed")
    return {"one": one, "two": two, "speed": speed}


def test_report_of_other_runs_is_refused_then_forced(report_runs, tmp_path):
    out = tmp_path / "rep"
    build_report([report_runs["one"]], out)
    again = snapshot(out)
    build_report([report_runs["one"]], out)  # the same job: rebuilt in place, same bytes
    assert snapshot(out) == again
    with pytest.raises(InputError, match=r"rep: holds a report of another job; the inputs "
                                         r"changed: runs: .*one.* -> .*two.*--force"):
        build_report([report_runs["two"]], out)
    assert snapshot(out) == again  # untouched by the refusal
    with pytest.raises(InputError, match=r"options\.baseline: null -> \"a\""):
        build_report([report_runs["one"]], out, baseline="a")
    result = build_report([report_runs["two"]], out, force=True)
    assert set(result.results["system"]) == {"a", "c"}


def test_report_never_replaces_a_folder_of_other_files(report_runs, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    for force in (False, True):
        with pytest.raises(InputError, match="holds files that are not a report"):
            build_report([report_runs["one"]], out, force=force)
    assert (out / "thesis.tex").read_text() == "years of work"
    with pytest.raises(InputError, match="one of the runs being reported"):
        build_report([report_runs["one"]], report_runs["one"].parent)  # holds a run


def kill_trials(argv, out: Path, restore_old, trials: int = 8, most: int = 20) -> list:
    """Run ``argv`` once whole, then SIGKILL it at random moments of its run, again and again.

    Before each trial ``restore_old()`` writes the old set; after each, ``out`` must hold the
    old set or the new one byte for byte. Trials go on past ``trials`` (up to ``most``) until
    at least one kill landed while the new set was being written (its temporary folder is left),
    so the test cannot pass by killing only before or after the writing. Returns the outcomes:
    "old", "old, killed mid-write" or "new".
    """
    import random
    env = {**os.environ, "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, env=env)
    whole = time.perf_counter() - start
    new = snapshot(out)
    rng, outcomes = random.Random(7), []
    while len(outcomes) < trials or (not any("mid" in o for o in outcomes) and len(outcomes) < most):
        restore_old()
        assert temporaries(out) == []  # the restoring run cleared what the last kill left
        old = snapshot(out)
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env)
        time.sleep(rng.uniform(0.3 * whole, 1.3 * whole))  # start-up, reading, writing, swap
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        now = snapshot(out)
        assert now in (old, new), f"a mix of two sets after a kill: {sorted(now)}"
        outcomes.append("new" if now == new else
                        "old, killed mid-write" if temporaries(out) else "old")
    assert any("mid" in o for o in outcomes), f"no kill landed while writing: {outcomes}"
    return outcomes


def temporaries(out: Path) -> list:
    return [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp-")]


@pytest.mark.slow
def test_report_killed_while_replacing_leaves_old_or_new_set(report_runs, tmp_path):
    out = tmp_path / "rep"
    argv = [sys.executable, "-m", "wavebench", "report", str(report_runs["two"]),
            str(report_runs["speed"]), "-o", str(out), "--force"]
    outcomes = kill_trials(argv, out, lambda: build_report([report_runs["one"]], out, force=True))
    print(f"report killed {len(outcomes)} times: {outcomes}")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    packet = build_packet(root / "pk")
    paths = simulate_study(packet, root / "results")
    import_ratings(paths, root / "pk", root / "ratings.csv")
    return root


def test_analysis_of_other_options_is_refused_then_forced(study, tmp_path):
    out = tmp_path / "an"
    fast = AnalysisOptions(n_boot=50, plots=False)
    run_analysis(study / "ratings.csv", study / "pk", out, fast)
    before = snapshot(out)
    with pytest.raises(InputError, match=r"an: holds a MOS analysis of another job; the inputs "
                                         r"changed: options\.n_boot: 50 -> 60"):
        run_analysis(study / "ratings.csv", study / "pk", out, AnalysisOptions(n_boot=60, plots=False))
    assert snapshot(out) == before
    run_analysis(study / "ratings.csv", study / "pk", out,
                 AnalysisOptions(n_boot=60, plots=False), force=True)
    assert snapshot(out) != before and temporaries(out) == []


@pytest.mark.slow
def test_analysis_killed_while_replacing_leaves_old_or_new_set(study, tmp_path):
    out = tmp_path / "an"
    argv = [sys.executable, "-m", "wavebench", "mos", "analyze", str(study / "ratings.csv"),
            "--packet", str(study / "pk"), "-o", str(out), "--bootstrap", "200", "--force"]
    outcomes = kill_trials(argv, out, lambda: run_analysis(
        study / "ratings.csv", study / "pk", out, AnalysisOptions(n_boot=50, plots=False),
        force=True))
    print(f"mos analyze killed {len(outcomes)} times: {outcomes}")
