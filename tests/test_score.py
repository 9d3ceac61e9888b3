"""`wavebench score`: file matching, rates, failures as NaN with status, resume, the oracle."""
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from wavebench.cli import main
from wavebench.score import score
from wavebench_base.errors import InputError

RATE = 16000
METRICS = ("mcd", "mel_l1")  # the quick ones; STOI is exercised in the metrics tests


def clip(seed, seconds=1.0, noise=0.0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.3 * np.sin(2 * np.pi * (140 + 20 * seed) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (x + 0.01 * rng.standard_normal(len(t)) + noise * rng.standard_normal(len(t))
            ).astype(np.float32)


@pytest.fixture
def folders(tmp_path):
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    (ref / "spk").mkdir(parents=True)
    (gen / "spk").mkdir(parents=True)
    for i, name in enumerate(["a", "b", "spk/c"]):
        sf.write(ref / f"{name}.wav", clip(i), RATE)
        sf.write(gen / f"{name}.flac", clip(i, noise=0.05), RATE)  # extension may differ
    return ref, gen


def quiet(_):
    pass


def run(folders, out, **kw):
    ref, gen = folders
    return score(reference_dir=ref, generated={"sys": gen}, out_dir=out, metrics=METRICS,
                 progress=False, log=quiet, **kw)


def test_tables_have_one_row_per_utterance_and_metric(folders, tmp_path):
    result = run(folders, tmp_path / "out", oracles=("mulaw",))
    table = pd.read_csv(result.per_utterance)
    assert len(table) == 2 * 3 * 2  # systems x utterances x metrics
    assert set(table["utterance"]) == {"a", "b", "spk/c"}
    assert list(table.columns[:6]) == ["run", "system", "utterance", "metric", "value", "status"]
    summary = pd.read_csv(result.summary)
    for column in ("n", "n_failed", "mean", "median", "std", "ci_low", "ci_high"):
        assert column in summary
    by = summary.set_index(["system", "metric"])["mean"]
    # noise at about 16 dB SNR is far worse than 8-bit mu-law of the reference itself
    assert by[("oracle_mulaw", "mcd")] < by[("sys", "mcd")]
    assert by[("oracle_mulaw", "mel_l1")] < by[("sys", "mel_l1")]


def test_mismatched_sets_list_missing_and_extra(folders, tmp_path):
    ref, gen = folders
    (gen / "a.flac").unlink()
    sf.write(gen / "zzz.wav", clip(9), RATE)
    with pytest.raises(InputError, match=r"1 reference file\(s\) have no generated file: a; "
                                         r"1 generated file\(s\) have no reference: zzz"):
        run(folders, tmp_path / "out")
    result = run(folders, tmp_path / "out2", allow_missing=True)
    assert set(pd.read_csv(result.per_utterance)["utterance"]) == {"b", "spk/c"}
    assert any("skipped 1 missing and 1 extra" in n for n in result.notes)


def test_other_rate_is_resampled_and_noted_or_refused(folders, tmp_path):
    ref, gen = folders
    import soxr
    sf.write(gen / "b.flac", soxr.resample(clip(1, noise=0.05), RATE, 22050), 22050)
    result = run(folders, tmp_path / "out")
    assert any("b: sys resampled 22050 -> 16000" in n for n in result.notes)
    assert (pd.read_csv(result.per_utterance)["status"] == "ok").all()
    with pytest.raises(InputError, match=r"b.flac: 22050 Hz but the reference is at 16000 Hz"):
        run(folders, tmp_path / "out2", strict_rate=True)


def test_nan_silence_and_length_mismatch_become_nan_with_status(folders, tmp_path):
    ref, gen = folders
    bad = clip(0, noise=0.05)
    bad[100] = np.nan
    sf.write(gen / "a.flac", np.zeros(RATE, np.float32), RATE)  # silent generated: scored
    sf.write(gen / "b.wav", bad, RATE, subtype="FLOAT")
    (gen / "b.flac").unlink()
    sf.write(gen / "spk" / "c.flac", clip(2)[: RATE // 2], RATE)  # half a second short
    table = pd.read_csv(run(folders, tmp_path / "out").per_utterance).set_index("utterance")
    assert set(table.loc["b", "status"]) == {"nonfinite_generated"}
    assert table.loc["b", "value"].isna().all()
    assert set(table.loc["spk/c", "status"]) == {"length_mismatch"}
    assert (table.loc["a", "status"] == "ok").all()  # silence is a (terrible) valid output


def test_resume_skips_done_utterances_and_gives_the_same_tables(folders, tmp_path):
    out = tmp_path / "out"
    first = run(folders, out)
    whole = pd.read_csv(first.per_utterance)
    rows = (out / "rows.jsonl").read_text().splitlines()
    (out / "rows.jsonl").write_text("\n".join(rows[:1]) + "\n" + rows[1][:20])  # killed mid-line
    (out / "per_utterance.csv").unlink()
    again = run(folders, out)
    assert again.n_resumed == 1 and again.n_scored == 2
    pd.testing.assert_frame_equal(pd.read_csv(again.per_utterance), whole)


def test_resume_refuses_other_settings(folders, tmp_path):
    run(folders, tmp_path / "out")
    ref, gen = folders
    with pytest.raises(InputError, match=r"another job; the inputs changed: settings\.metrics"):
        score(reference_dir=ref, generated={"sys": gen}, out_dir=tmp_path / "out",
              metrics=("mcd",), progress=False, log=quiet)


def test_two_jobs_equal_one(folders, tmp_path, monkeypatch):
    import wavebench.score as score_module
    monkeypatch.setattr(score_module, "POOL_STARTUP_S", 0)  # a pool however small the job
    one = pd.read_csv(run(folders, tmp_path / "one").per_utterance)
    two = pd.read_csv(run(folders, tmp_path / "two", jobs=2).per_utterance)
    cols = ["system", "utterance", "metric", "value", "status"]
    pd.testing.assert_frame_equal(one[cols], two[cols])


def test_a_job_shorter_than_the_pools_start_up_is_scored_in_this_process(folders, tmp_path,
                                                                         monkeypatch):
    import wavebench.score as score_module

    def no_pool(*args, **kwargs):
        raise AssertionError("a pool was started")

    monkeypatch.setattr(score_module, "ProcessPoolExecutor", no_pool)
    monkeypatch.setattr(score_module, "POOL_STARTUP_S", 1e6)
    one = pd.read_csv(run(folders, tmp_path / "one").per_utterance)
    two = pd.read_csv(run(folders, tmp_path / "two", jobs=2).per_utterance)
    assert two["utterance"].nunique() == 3  # one more than the two tasks that are timed
    cols = ["system", "utterance", "metric", "value", "status"]
    pd.testing.assert_frame_equal(one[cols], two[cols])
    monkeypatch.setattr(score_module, "POOL_STARTUP_S", 0)  # and a long job does start one
    with pytest.raises(AssertionError, match="a pool was started"):
        run(folders, tmp_path / "three", jobs=2)


def test_cli_errors_are_one_line(folders, tmp_path, capsys):
    ref, gen = folders
    code = main(["score", "--reference", str(ref), "--generated", str(gen), "-o",
                 str(tmp_path / "o"), "--metrics", "stio"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == ("error: unknown metric 'stio'; did you mean 'stoi'? available: "
                                 + err.split("available: ")[1])
    code = main(["score", "--reference", str(tmp_path / "nope"), "--generated", str(gen),
                 "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "nope" in err[0]


def test_cli_prints_the_summary(folders, tmp_path, capsys):
    ref, gen = folders
    code = main(["score", "--reference", str(ref), "--generated", f"mine={gen}", "-o",
                 str(tmp_path / "o"), "--metrics", "mcd", "--oracle", "mulaw"])
    out = capsys.readouterr().out
    assert code == 0 and "| mine " in out and "oracle_mulaw" in out
    info = json.loads((tmp_path / "o" / "run.json").read_text())
    assert info["kind"] == "score" and info["settings"]["metrics"] == ["mcd"]


def test_a_length_mismatch_spares_the_metric_that_aligns(folders, tmp_path):
    ref, gen = folders
    sf.write(gen / "spk" / "c.flac", clip(2)[: RATE // 2], RATE)  # half a second short
    result = score(reference_dir=ref, generated={"sys": gen}, out_dir=tmp_path / "out",
                   metrics=("mcd", "mcd_dtw"), progress=False, log=quiet)
    table = pd.read_csv(tmp_path / "out" / "per_utterance.csv").set_index(["utterance", "metric"])
    assert table.loc[("spk/c", "mcd"), "status"] == "length_mismatch"
    assert table.loc[("spk/c", "mcd_dtw"), "status"] == "ok"
    assert any("spk/c: sys: mcd: " in note and "differ by 8000 samples" in note
               for note in result.notes)


def test_scoring_audio_files_does_not_load_torch():
    """Importing torch takes over a second: a small score of audio files with metrics that do
    not need it (all but the pitch metrics, which run torchcrepe) should not pay it."""
    import subprocess
    import sys
    code = "import sys, wavebench.score, wavebench.score_worker; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_noise_oracle_adds_white_noise_at_minus_40_dbfs_and_redraws_it_exactly():
    from wavebench.score_worker import oracle_audio
    reference = clip(0, seconds=4.0)
    noisy = oracle_audio("noise40", reference)
    assert noisy.dtype == np.float32 and noisy.shape == reference.shape
    added = noisy.astype(np.float64) - reference
    assert 20 * np.log10(np.sqrt(np.mean(added ** 2))) == pytest.approx(-40.0, abs=0.1)
    spectrum = np.abs(np.fft.rfft(added)) ** 2  # white: as much power above 4 kHz as below
    half = len(spectrum) // 2
    assert spectrum[half:].sum() / spectrum[:half].sum() == pytest.approx(1.0, abs=0.05)
    assert np.array_equal(oracle_audio("noise40", reference), noisy)  # the report redraws it
    other = oracle_audio("noise40", clip(1, seconds=4.0)) - clip(1, seconds=4.0)
    assert abs(np.corrcoef(added, other)[0, 1]) < 0.05  # each reference its own noise
    with pytest.raises(InputError, match="unknown oracle 'hiss'; available: mulaw, noise40"):
        oracle_audio("hiss", reference)


def test_the_command_line_offers_every_oracle(folders, tmp_path, capsys):
    from wavebench.score_worker import ORACLES
    ref, gen = folders
    options = [o for a in ORACLES for o in ("--oracle", a)]
    assert main(["score", "--reference", str(ref), "-o", str(tmp_path / "o"), "--metrics", "mcd",
                 *options]) == 0
    summary = pd.read_csv(tmp_path / "o" / "summary.csv")
    assert set(summary["system"]) == {f"oracle_{a}" for a in ORACLES}
    by = summary.set_index("system")["mean"]
    assert by["oracle_mulaw"] < by["oracle_noise40"]  # 8-bit mu-law of a 0.3 tone is cleaner
