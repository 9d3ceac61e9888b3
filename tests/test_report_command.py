"""`wavebench report`: merging score and speed runs, the outputs, and one-line errors."""
import base64
import inspect
import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from metrics import METRICS
from reports import make_results_table, read_csv_table, write_csv
from wavebench import cli as cli_module
from wavebench.report import build_report, extreme_rows
from wavebench_base.errors import InputError

RATE = 16000
UTTERANCES = ("u0", "u1", "sub/u2", "u3")
METRIC_NAMES = ("mcd", "mel_l1")
DEFINITIONS = {m: METRICS[m].description for m in METRIC_NAMES}


# --- building run folders by hand --------------------------------------------------------------

def noise_clip(seed, seconds=0.5):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * (200 + 40 * seed) * t)
            + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def write_audio(folder, utterances, seed):
    for k, utterance in enumerate(utterances):
        path = folder / f"{utterance}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, noise_clip(seed + k), RATE, subtype="PCM_16")
    return folder


def score_values(systems, utterances, seed):
    """(system, utterance, metric) -> a value, drawn once so tests can recompute statistics."""
    rng = np.random.default_rng(seed)
    return {(s, u, m): float(rng.uniform(1.0, 6.0)) for s in systems for u in utterances
            for m in METRIC_NAMES}


def write_score_run(folder, reference, generated, values, *, definitions=DEFINITIONS,
                    run_json=True):
    """A score run folder as ``wavebench score`` writes it: run.json and per_utterance.csv."""
    folder.mkdir(parents=True)
    rows = [{"system": s, "utterance": u, "metric": m, "value": v}
            for (s, u, m), v in values.items()]
    write_csv(make_results_table(rows, {"run": folder.name}), folder / "per_utterance.csv")
    if run_json:
        systems = sorted({s for s, _, _ in values})
        info = {"kind": "score",
                "settings": {"metrics": list(METRIC_NAMES), "systems": systems,
                             "strict_rate": False, "definitions": definitions},
                "inputs": {"reference": str(reference),
                           "generated": {s: str(d) for s, d in generated.items()}},
                "versions": {}, "git_rev": "abc123"}
        (folder / "run.json").write_text(json.dumps(info))
    return folder


SPEED_CSV = """device,sampler,batch,threads,samples,seconds_median,samples_per_s,\
samples_per_s_per_stream,rtf,peak_mem_mb,speedup,status
cpu,naive,1,2,16000,40.0,400.0,400.0,40.0,120.5,1.0,ok
cpu,cached,1,2,16000,0.5,32000.0,32000.0,0.5,130.0,80.0,ok
cpu,cached,8,2,16000,1.0,128000.0,16000.0,1.0,150.0,320.0,ok
cuda,cached,1,,16000,,,,,,,skipped: no CUDA device
"""


def write_speed_run(folder, text=SPEED_CSV, run_json=True):
    folder.mkdir(parents=True)
    (folder / "speed.csv").write_text(text)
    if run_json:
        (folder / "run.json").write_text(json.dumps({"kind": "speed", "settings": {}}))
    return folder


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Two score runs sharing system 'a' (same utterances) and the oracle, plus a speed run."""
    root = tmp_path_factory.mktemp("study")
    reference = write_audio(root / "ref", UTTERANCES, seed=0)
    a = write_audio(root / "gen_a", UTTERANCES, seed=10)
    b = write_audio(root / "gen_b", UTTERANCES, seed=20)
    values1 = score_values(("a", "oracle_mulaw"), UTTERANCES, seed=1)
    values2 = score_values(("a", "b"), UTTERANCES, seed=2)
    run1 = write_score_run(root / "run1", reference, {"a": a}, values1)
    run2 = write_score_run(root / "run2", reference, {"a": a, "b": b}, values2)
    speed = write_speed_run(root / "speed")
    result = build_report([run1, run2, speed], root / "out")
    return {"root": root, "result": result, "values1": values1, "values2": values2,
            "runs": (run1, run2, speed)}


# --- merging -----------------------------------------------------------------------------------

def test_merge_names_shared_systems_per_run_and_counts_each_utterance_once(study):
    result = study["result"]
    expected = {("run1/a", u, m): v for (s, u, m), v in study["values1"].items() if s == "a"}
    expected |= {("run2/a", u, m): v for (s, u, m), v in study["values2"].items() if s == "a"}
    expected |= {(s, u, m): v for (s, u, m), v in {**study["values1"], **study["values2"]}.items()
                 if s != "a"}
    table = result.results
    got = {(r.system, r.utterance, r.metric): r.value for r in table.itertuples()}
    assert got == expected  # every input value once, under its per-run name; exact floats
    summary = result.summary.set_index(["system", "metric"])
    for system in ("run1/a", "run2/a", "b", "oracle_mulaw"):
        for metric in METRIC_NAMES:
            values = [v for (s, _, m), v in expected.items() if s == system and m == metric]
            assert summary.loc[(system, metric), "n"] == len(UTTERANCES)
            # 1e-12: one float64 mean over four values, summed in another order.
            assert summary.loc[(system, metric), "mean"] == pytest.approx(np.mean(values),
                                                                          rel=1e-12)
    assert any("'a' scored the same utterances in several runs" in n for n in result.notes)


def test_default_baseline_is_the_first_system_that_is_not_an_oracle(study):
    result = study["result"]
    assert result.baseline == "run1/a"
    comparisons = result.comparisons
    assert set(comparisons["baseline"]) == {"run1/a"}
    assert set(comparisons["system"]) == {"run2/a", "b", "oracle_mulaw"}
    pairs = comparisons.set_index(["system", "metric"])
    for metric in METRIC_NAMES:
        diffs = [study["values2"][("b", u, metric)] - study["values1"][("a", u, metric)]
                 for u in UTTERANCES]
        # 1e-12: the mean of four paired differences, computed in another order.
        assert pairs.loc[("b", metric), "mean_diff"] == pytest.approx(np.mean(diffs), rel=1e-12)
        assert pairs.loc[("b", metric), "n_pairs"] == len(UTTERANCES)


def test_disjoint_utterances_of_one_system_merge_as_shards(tmp_path):
    reference = write_audio(tmp_path / "ref", UTTERANCES, seed=0)
    gen = write_audio(tmp_path / "gen", UTTERANCES, seed=5)
    shard1 = score_values(("a",), UTTERANCES[:2], seed=3)
    shard2 = score_values(("a",), UTTERANCES[2:], seed=4)
    runs = [write_score_run(tmp_path / "s1", reference, {"a": gen}, shard1),
            write_score_run(tmp_path / "s2", reference, {"a": gen}, shard2)]
    (tmp_path / "out").mkdir()  # an older wavebench's report (no fingerprint): --force replaces
    (tmp_path / "out" / "report.json").write_text("{}\n")
    (tmp_path / "out" / "comparisons.csv").write_text("left by an earlier report\n")
    result = build_report(runs, tmp_path / "out", force=True)
    assert list(result.summary["system"].unique()) == ["a"]
    assert set(result.summary["n"]) == {len(UTTERANCES)}
    assert result.baseline is None and result.comparisons is None  # one system: nothing to compare
    assert "comparisons.csv" not in result.files
    assert not (tmp_path / "out" / "comparisons.csv").exists()  # no stale table from before
    assert any("merged as shards" in n for n in result.notes)


def test_two_runs_with_the_same_folder_name_get_distinct_run_names(tmp_path):
    reference = write_audio(tmp_path / "ref", UTTERANCES[:2], seed=0)
    values = score_values(("a",), UTTERANCES[:2], seed=3)
    runs = [write_score_run(tmp_path / "x" / "scores", reference, {}, values),
            write_score_run(tmp_path / "y" / "scores", reference, {}, values)]
    result = build_report(runs, tmp_path / "out")
    assert set(result.results["system"]) == {"scores/a", "scores#2/a"}
    assert any("two runs are named 'scores'" in n for n in result.notes)


def test_speed_runs_are_stacked_with_their_run_names(study):
    speed = study["result"].speed
    assert list(speed["run"].unique()) == ["speed"]
    source = pd.read_csv(study["runs"][2] / "speed.csv")
    # Exact: the numbers are parsed from the same text by pandas and by the report.
    np.testing.assert_array_equal(speed["samples_per_s"].to_numpy(),
                                  source["samples_per_s"].to_numpy())
    assert np.isnan(speed["samples_per_s"].iloc[-1])  # the skipped device keeps no number
    assert speed["batch"].tolist() == [1, 1, 8, 1] and speed["batch"].dtype == np.int64
    assert speed["threads"].isna().iloc[-1]  # a count with a gap stays float, NaN where missing


def test_extreme_rows_follow_each_metrics_direction():
    rows = [{"system": "a", "utterance": u, "metric": "m", "value": v}
            for u, v in (("u1", 3.0), ("u2", 1.0), ("u3", 2.0))]
    table = make_results_table(rows, {"run": "r"})
    lower = {label: table.at[i, "utterance"] for label, i in extreme_rows(table, "m", False)}
    higher = {label: table.at[i, "utterance"] for label, i in extreme_rows(table, "m", True)}
    assert lower == {"best": "u2", "worst": "u1"} and higher == {"best": "u1", "worst": "u2"}


# --- outputs -----------------------------------------------------------------------------------

class Page(HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.urls, self.images, self.headings, self.captions = [], [], [], []
        self._into = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [v for k, v in attrs.items() if k in ("src", "href", "srcset", "action")]
        if tag == "img":
            self.images.append(attrs["src"])
        self._into = tag if tag in ("h2", "figcaption") else None

    def handle_data(self, data):
        if self._into == "h2":
            self.headings.append(data)
        elif self._into == "figcaption":
            self.captions.append(data)

    def handle_endtag(self, tag):
        self._into = None


def test_html_page_is_self_contained_with_the_expected_sections(study):
    page_text = (study["root"] / "out" / "report.html").read_text()
    page = Page(page_text)
    assert re.search(r"https?://", page_text) is None  # nothing to fetch, not even a link
    assert all(u.startswith("#") or u.startswith("data:image/png;base64,") for u in page.urls)
    assert page.headings == ["Overview", "Metrics", "Summary", "Comparisons",
                             "Metric distributions", "Best and worst utterances", "Speed", "Notes"]
    for src in page.images:
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    # 2 distributions + best and worst for each of 4 systems + 1 speed chart.
    assert len(page.images) == 2 + 2 * 4 + 1
    assert "lower is better" in page_text and "mel-cepstral distortion" in page_text


def test_spectrograms_show_each_systems_best_and_worst_headline_utterance(study):
    page = Page((study["root"] / "out" / "report.html").read_text())
    for system, values in (("b", study["values2"]), ("oracle_mulaw", study["values1"])):
        mcd = {u: values[(system, u, "mcd")] for u in UTTERANCES}
        best, worst = min(mcd, key=mcd.get), max(mcd, key=mcd.get)  # mcd: lower is better
        assert any(c.startswith(f"{system}: best mcd") and c.endswith(best) for c in page.captions)
        assert any(c.startswith(f"{system}: worst mcd") and c.endswith(worst)
                   for c in page.captions)


def test_results_csv_round_trips_and_other_tables_are_written(study):
    out, result = study["root"] / "out", study["result"]
    # Exact: write_csv writes shortest round-trip floats and strings are never re-typed.
    pd.testing.assert_frame_equal(read_csv_table(out / "results.csv"), result.results)
    summary = pd.read_csv(out / "summary.csv")
    np.testing.assert_array_equal(summary["mean"].to_numpy(), result.summary["mean"].to_numpy())
    assert len(pd.read_csv(out / "comparisons.csv")) == len(result.comparisons)
    assert len(pd.read_csv(out / "speed.csv")) == 4
    assert {p.name for p in out.iterdir() if not p.name.endswith(".parquet")} == {
        "report.html", "report.md", "report.json", "results.csv", "summary.csv",
        "comparisons.csv", "speed.csv", "fingerprint.json", "paper.md",
        "report.tex"}  # and no temporary files left behind
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".out.tmp")] == []


def test_markdown_and_json_reports_hold_the_tables(study):
    out, result = study["root"] / "out", study["result"]
    markdown = (out / "report.md").read_text()
    for heading in ("## Runs", "## Metrics", "## Summary", "## Comparisons", "## Speed"):
        assert heading in markdown
    assert "| run2/a " in markdown and "| oracle_mulaw " in markdown

    def no_nan(name):
        raise AssertionError(f"{name} in strict JSON")
    doc = json.loads((out / "report.json").read_text(), parse_constant=no_nan)
    assert doc["baseline"] == "run1/a" and doc["headline_metric"] == "mcd"
    assert [r["mean"] for r in doc["summary"]] == result.summary["mean"].tolist()
    assert doc["speed"][-1]["samples_per_s"] is None  # NaN as null
    assert {m["metric"]: m["better"] for m in doc["metrics"]} == {"mcd": "lower",
                                                                  "mel_l1": "lower"}


def test_parquet_copy_matches_the_csv(study):
    pytest.importorskip("pyarrow")
    out = study["root"] / "out"
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"),
                                  read_csv_table(out / "results.csv"), check_dtype=False)


def test_without_pyarrow_the_report_skips_parquet(tmp_path, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyarrow" else real(name, *a))
    result = build_report([write_speed_run(tmp_path / "speed")], tmp_path / "out")
    assert not any(name.endswith(".parquet") for name in result.files)
    assert result.results is None and "speed.csv" in result.files


def test_missing_audio_skips_spectrograms_with_a_note(tmp_path):
    values = score_values(("a", "b"), UTTERANCES[:2], seed=7)
    run = write_score_run(tmp_path / "run", tmp_path / "gone", {"a": tmp_path / "gone"}, values,
                          run_json=False)
    result = build_report([run], tmp_path / "out", baseline="b")
    assert result.baseline == "b"
    assert any(n.startswith("spectrograms of a skipped: ") and "no run.json" in n
               for n in result.notes)
    assert any("records no metric definitions" in n for n in result.notes)
    assert len(Page((tmp_path / "out" / "report.html").read_text()).images) == 2  # distributions


def test_unfindable_audio_is_noted_per_system_and_the_rest_is_drawn(tmp_path):
    reference = write_audio(tmp_path / "ref", UTTERANCES[:2], seed=0)
    (tmp_path / "empty").mkdir()
    values = score_values(("a", "b", "oracle_mulaw"), UTTERANCES[:2], seed=8)
    run = write_score_run(tmp_path / "run", reference, {"a": tmp_path / "empty"}, values)
    result = build_report([run], tmp_path / "out")
    notes = "\n".join(result.notes)
    assert re.search(r"spectrograms of a skipped: .*empty: no audio file for utterance 'u[01]'",
                     notes)
    assert re.search(r"spectrograms of b skipped: .*run\.json: names no audio folder for "
                     r"system 'b'", notes)
    captions = Page((tmp_path / "out" / "report.html").read_text()).captions
    # The oracle's audio is recomputed from the reference: its best and worst are drawn.
    assert sum(c.startswith("oracle_mulaw: ") for c in captions) == 2


# --- the command line and bad input ------------------------------------------------------------

@pytest.fixture
def wavebench(capsys):
    def run(*argv):
        code = cli_module.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def one_error_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_command_prints_a_summary_and_has_a_worked_example(tmp_path, wavebench):
    code, out, _ = wavebench("report", write_speed_run(tmp_path / "speed"), "-o", tmp_path / "o")
    assert code == 0 and "merged 1 speed run" in out and "report.html" in out
    code, out, _ = wavebench("report", "--help")
    assert code == 0 and "Example:" in out and "wavebench report runs/hifigan" in out


def truncated_per_utterance(root):
    run = write_score_run(root / "run", root, {}, score_values(("a",), UTTERANCES, seed=1))
    path = run / "per_utterance.csv"
    path.write_bytes(path.read_bytes()[:-40])  # killed mid-write: the last line is cut short
    return [run]


def incompatible(root):
    values = score_values(("a",), UTTERANCES, seed=1)
    other = {**DEFINITIONS, "mcd": "mel-cepstral distortion with mcep order 34"}
    return [write_score_run(root / "old", root, {}, values),
            write_score_run(root / "new", root, {}, values, definitions=other)]


def bad_run_json(root):
    run = write_speed_run(root / "speed")
    (run / "run.json").write_text('{"kind": "spe')
    return [run]


def score_run_json_only(root):
    run = write_score_run(root / "run", root, {}, score_values(("a",), UTTERANCES, seed=1))
    (run / "per_utterance.csv").unlink()
    return [run]


def bad_definitions(root):
    return [write_score_run(root / "run", root, {}, score_values(("a",), UTTERANCES, seed=1),
                            definitions=["mcd"])]


def file_instead_of_folder(root):
    (root / "table.csv").write_text("a,b\n1,2\n")
    return [root / "table.csv"]


def speed_file(text):
    def make(root):
        return [write_speed_run(root / "speed", text, run_json=False)]
    return make


def run_json(text):
    def make(root):
        (root / "x").mkdir()
        (root / "x" / "run.json").write_text(text)
        return [root / "x"]
    return make


def truncated_speed(root):
    return [write_speed_run(root / "speed", SPEED_CSV + "cuda,cached,8,", run_json=False)]


BAD_INPUT = [
    (lambda r: [r / "nope"], r"nope: no such folder"),
    (lambda r: [(r / "empty").mkdir() or r / "empty"],
     r"empty: not a wavebench run \(no run\.json, per_utterance\.csv, speed\.csv or log\.jsonl\)"),
    (truncated_per_utterance, r"run/per_utterance\.csv: last line has \d+ fields.*truncated"),
    (incompatible, r"metric 'mcd' is defined differently in run 'old' .*and run 'new' .*order 34"),
    (bad_run_json, r"speed/run\.json: not valid JSON"),
    (lambda r: [write_speed_run(r / "speed", "device,sampler\ncpu,naive\n")],
     r"speed\.csv: missing column\(s\) batch, samples_per_s"),
    (truncated_speed, r"speed\.csv: last line has 4 fields, the header has 12; .*truncated"),
    (lambda r: [write_speed_run(r / "speed", SPEED_CSV.replace("400.0,400.0", "fast,400.0"))],
     r"speed\.csv: column 'samples_per_s' record 2 is 'fast', not a number"),
    (speed_file(SPEED_CSV.replace("400.0,400.0", "0.0,400.0")),
     r"speed\.csv: record 2: samples_per_s is 0\.0; a measured speed is positive"),
    (speed_file(""), r"speed\.csv: empty file"),
    (speed_file(SPEED_CSV.splitlines()[0] + "\n"), r"speed\.csv: has a header but no rows"),
    (speed_file(SPEED_CSV + '"cuda,cached'), r"speed\.csv: malformed CSV .*truncated"),
    (lambda r: [write_speed_run(r / "speed").joinpath("speed.csv").unlink() or r / "speed"],
     r"speed: no speed\.csv; the speed run did not finish"),
    (score_run_json_only, r"run: no per_utterance\.csv; the score run did not finish"),
    (bad_definitions, r"run/run\.json: settings\.definitions must map metric names"),
    (file_instead_of_folder, r"table\.csv: not a folder; give the output folder of wavebench"),
    (run_json('{"kind": "mos"}'),
     r"x: run\.json has kind 'mos'; wavebench report reads runs of kind score, speed, train"),
    (run_json("[1]"), r"x/run\.json: expected a JSON object, found list"),
]


@pytest.mark.parametrize("make, message", BAD_INPUT)
def test_bad_input_is_one_error_line(tmp_path, wavebench, make, message):
    code, _, err = wavebench("report", *make(tmp_path), "-o", tmp_path / "out")
    assert code == 1 and re.search(message, one_error_line(err))
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_unknown_baseline_lists_the_systems(study, tmp_path, wavebench):
    run1, run2, _ = study["runs"]
    code, _, err = wavebench("report", run1, run2, "--baseline", "a", "-o", tmp_path / "out")
    assert code == 1
    assert one_error_line(err) == ("error: unknown --baseline 'a'; systems: run1/a, "
                                   "oracle_mulaw, run2/a, b")


def test_output_folder_may_not_be_an_input_run(tmp_path):
    run = write_speed_run(tmp_path / "speed")
    with pytest.raises(InputError, match=r"speed: is or holds .*speed, one of the runs being "
                                         r"reported"):
        build_report([run], run)
    with pytest.raises(InputError, match=r"speed: given twice"):
        build_report([run, tmp_path / "." / "speed"], tmp_path / "out")
    assert (run / "speed.csv").read_text() == SPEED_CSV


def test_output_folder_may_not_be_a_file_and_runs_are_needed(tmp_path):
    (tmp_path / "out").write_text("")
    with pytest.raises(InputError, match=r"out: exists and is not a folder; choose another -o"):
        build_report([write_speed_run(tmp_path / "speed")], tmp_path / "out")
    with pytest.raises(InputError, match=r"^no run folders given$"):
        build_report([], tmp_path / "out2")


def test_baseline_without_score_runs_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"--baseline 'a' needs score runs"):
        build_report([write_speed_run(tmp_path / "speed")], tmp_path / "out", baseline="a")


# --- with real score runs ----------------------------------------------------------------------

def score_runs_work():
    from wavebench_base.audio import load_audio
    return "allow_nonfinite" in inspect.signature(load_audio).parameters


@pytest.mark.skipif(not score_runs_work(),
                    reason="wavebench score needs load_audio(allow_nonfinite)")
def test_report_of_real_score_runs(tmp_path):
    from wavebench.score import score
    reference = write_audio(tmp_path / "ref", UTTERANCES[:3], seed=0)
    gen = write_audio(tmp_path / "gen", UTTERANCES[:3], seed=30)
    for name in ("s1", "s2"):
        score(reference_dir=reference, generated={"sys": gen}, out_dir=tmp_path / name,
              metrics=list(METRIC_NAMES), oracles=("mulaw",), progress=False, log=lambda _: None)
    result = build_report([tmp_path / "s1", tmp_path / "s2"], tmp_path / "out")
    assert set(result.results["system"]) == {"s1/sys", "s2/sys", "s1/oracle_mulaw",
                                             "s2/oracle_mulaw"}
    assert result.baseline == "s1/sys"
    # Same audio, same metrics: both runs measured the same numbers (exactly: deterministic).
    values = result.results.set_index(["system", "utterance", "metric"])["value"]
    np.testing.assert_array_equal(values.loc["s1/sys"].sort_index().to_numpy(),
                                  values.loc["s2/sys"].sort_index().to_numpy())
    assert len(Page((tmp_path / "out" / "report.html").read_text()).images) == 2 + 2 * 4


def test_paper_table_has_a_row_per_system_and_the_summary_in_each_cell(study):
    out, result = study["root"] / "out", study["result"]
    summary = result.summary.set_index(["system", "metric"])
    paper = result.paper
    assert list(paper.columns) == ["system", "MCD (dB) ↓", "Mel L1 (nats) ↓"]  # papers' order
    assert list(paper["system"]) == list(dict.fromkeys(result.summary["system"]))
    for row in paper.itertuples(index=False):
        s = summary.loc[(row.system, "mcd")]
        assert row[1] == f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"
    markdown = (out / "paper.md").read_text()
    assert "MCD (dB) ↓" in markdown and len(markdown.strip().splitlines()) == 2 + len(paper)
    latex = (out / "report.tex").read_text()
    assert "\\toprule" in latex and "\\bottomrule" in latex and "$\\downarrow$" in latex
    assert "oracle\\_mulaw" in latex  # underscores escaped


def test_command_prints_the_paper_table(study, tmp_path, wavebench):
    runs = [study["root"] / "run1", study["root"] / "run2"]
    code, out, err = wavebench("report", *runs, "-o", tmp_path / "p", "--table", "paper")
    assert code == 0, err
    assert "| system" in out and "MCD (dB) ↓" in out and "report.tex" in out
