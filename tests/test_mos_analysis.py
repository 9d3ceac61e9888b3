"""End-to-end and bad-input tests of `wavebench mos import` and `wavebench mos analyze`."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st
from test_mos_analysis_sim import TRUE_MOS, build_packet, results_document, simulate_study

from wavebench.mos.analysis import ratings as R
from wavebench.mos.analysis.report import AnalysisOptions, run_analysis
from wavebench_base.errors import InputError

BAD = {"L01": "trap", "L02": "straight", "L03": "skip"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A packet, simulated results with three bad raters, imported ratings and one analysis."""
    root = tmp_path_factory.mktemp("study")
    packet = build_packet(root / "pk")
    paths = simulate_study(packet, root / "results", bad=BAD)
    loaded = R.load_packet(root / "pk")
    R.write_ratings(R.import_results(paths, loaded), root / "ratings.csv")
    result = run_analysis(root / "ratings.csv", root / "pk", root / "report",
                          AnalysisOptions(n_boot=400, seed=3))
    return {"root": root, "packet": packet, "paths": paths, "loaded": loaded, "result": result}


@pytest.fixture
def wavebench_main():
    """The real `wavebench` entry point (its lazy `mos` group registers import and analyze)."""
    from wavebench.cli import main
    return main


# ---------------------------------------------------------------- import

def test_import_writes_canonical_schema(study):
    ratings = pd.read_csv(study["root"] / "ratings.csv", dtype=str, keep_default_na=False)
    raters = pd.read_csv(study["root"] / "raters.csv", dtype=str, keep_default_na=False)
    assert tuple(ratings.columns) == R.RATING_COLUMNS
    assert len(ratings) == sum(len(t) for t in study["packet"].lists.values())
    assert len(raters) == len(study["packet"].lists)
    assert set(raters["code_ok"]) == {"True"}
    # No system name may appear in the blind ratings file.
    text = (study["root"] / "ratings.csv").read_text()
    assert not any(f",{name}," in text for name in TRUE_MOS)


def test_import_skips_an_identical_duplicate(study, tmp_path):
    copy = tmp_path / "again.json"
    shutil.copy(study["paths"][0], copy)
    result = R.import_results([study["paths"][0], copy], study["loaded"])
    assert len(result.notes) == 1 and "skipped the duplicate" in result.notes[0]
    assert len(result.raters) == 1


def _edited(path, tmp_path, edit):
    doc = json.loads(path.read_text())
    edit(doc)
    out = tmp_path / "edited.json"
    out.write_text(json.dumps(doc))
    return out


def test_import_refuses_truncated_results(study, tmp_path):
    cut = tmp_path / "cut.json"
    cut.write_bytes(study["paths"][0].read_bytes()[:-200])
    with pytest.raises(InputError, match=r"cut\.json: results file is not valid JSON"):
        R.import_results([cut], study["loaded"])


def test_import_refuses_an_edited_score(study, tmp_path):
    def bump(doc):
        doc["payload"]["responses"][0]["score"] = 5 if doc["payload"]["responses"][0][
            "score"] != 5 else 4
    with pytest.raises(InputError, match="checksum does not match"):
        R.import_results([_edited(study["paths"][0], tmp_path, bump)], study["loaded"])


def test_import_refuses_results_of_another_packet(study, tmp_path):
    def other(doc):
        doc["payload"]["packet_id"] = "pOTHER"
        doc.update(results_document(doc["payload"]))
    with pytest.raises(InputError, match="results are from packet 'pOTHER'"):
        R.import_results([_edited(study["paths"][0], tmp_path, other)], study["loaded"])


def test_import_refuses_unknown_list_and_trial(study, tmp_path):
    def bad_list(doc):
        doc["payload"]["list_id"] = "L99"
        doc.update(results_document(doc["payload"]))
    with pytest.raises(InputError, match="unknown list 'L99'"):
        R.import_results([_edited(study["paths"][0], tmp_path, bad_list)], study["loaded"])

    def bad_trial(doc):
        doc["payload"]["responses"][0]["trial_id"] = "tnope"
        doc.update(results_document(doc["payload"]))
    with pytest.raises(InputError, match="trial 'tnope' is not in list L01"):
        R.import_results([_edited(study["paths"][0], tmp_path, bad_trial)], study["loaded"])


def test_import_refuses_conflicting_files_for_one_session(study, tmp_path):
    def other_comment(doc):
        doc["payload"]["responses"][0]["comment"] = "changed"
        doc.update(results_document(doc["payload"]))
    edited = _edited(study["paths"][0], tmp_path, other_comment)
    with pytest.raises(InputError, match="also comes from .* with different responses"):
        R.import_results([study["paths"][0], edited], study["loaded"])


def test_import_refuses_non_results_and_missing_files(study, tmp_path):
    other = tmp_path / "x.json"
    other.write_text('{"format": "something"}')
    with pytest.raises(InputError, match="not a wavebench results file"):
        R.import_results([other], study["loaded"])
    with pytest.raises(InputError, match="no results file here"):
        R.import_results([tmp_path / "missing.json"], study["loaded"])
    with pytest.raises(InputError, match="no results files given"):
        R.import_results([], study["loaded"])


def test_swapped_key_is_detected(study, tmp_path):
    other = build_packet(tmp_path / "other", packet_id="pother001", seed=5, write_audio=False)
    swapped = tmp_path / "swapped"
    shutil.copytree(study["root"] / "pk", swapped)
    shutil.copy(other.root / "private" / "key.json", swapped / "private" / "key.json")
    with pytest.raises(InputError, match="key does not match the packet's key commitment"):
        R.load_packet(swapped)


def test_packet_without_key_or_manifest(tmp_path):
    (tmp_path / "packet").mkdir()
    with pytest.raises(InputError, match="no packet manifest here"):
        R.load_packet(tmp_path)
    (tmp_path / "packet" / "manifest.json").write_text(
        '{"packet_id": "p1", "key_commitment": "00", "lists": {}}')
    with pytest.raises(InputError, match="no private key here"):
        R.load_packet(tmp_path)


# ---------------------------------------------------------------- ratings.csv

def test_ratings_of_another_packet_are_refused(study, tmp_path):
    other = build_packet(tmp_path / "other", packet_id="pother001", seed=5, write_audio=False)
    with pytest.raises(InputError, match="ratings are from packet.s. ptest0001, not pother001"):
        R.read_ratings(study["root"] / "ratings.csv", R.load_packet(other.root))


def test_truncated_ratings_csv_is_refused(study, tmp_path):
    cut = tmp_path / "ratings.csv"
    data = (study["root"] / "ratings.csv").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"line \d+ has \d+ fields, the header 20"):
        R.read_ratings(cut, study["loaded"])


def test_ratings_csv_problems(study, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("")
    with pytest.raises(InputError, match="empty ratings file"):
        R.read_ratings(path, study["loaded"])
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="missing column.s. packet_id"):
        R.read_ratings(path, study["loaded"])
    df = pd.read_csv(study["root"] / "ratings.csv", dtype=str, keep_default_na=False)
    df.loc[3, "score"] = "good"
    df.to_csv(path, index=False)
    with pytest.raises(InputError, match="line 5: score 'good' is not a number"):
        R.read_ratings(path, study["loaded"])


# ---------------------------------------------------------------- analysis

def test_ranking_follows_degradation_order(study):
    scores = study["result"].system_scores
    assert list(scores["condition"]) == sorted(TRUE_MOS, key=TRUE_MOS.get, reverse=True)
    for row in scores.itertuples():
        # Every interval is inside the scale and brackets its own mean.
        assert 1 <= row.ci_lo_boot2way < row.mean < row.ci_hi_boot2way <= 5
        assert row.ci_lo_t < row.mean < row.ci_hi_t


def test_screening_drops_exactly_the_bad_raters(study):
    sessions = study["result"].screening.sessions
    excluded = set(sessions.loc[sessions["excluded"], "list_id"])
    assert excluded == set(BAD)
    reasons = dict(zip(sessions["list_id"], sessions["exclusion_reasons"]))
    assert "trap_failed" in reasons["L01"]
    assert "min_variance" in reasons["L02"]
    assert "not_played_to_end" in reasons["L03"] and "fast_response" in reasons["L03"]


def test_pairwise_finds_the_planted_differences(study):
    pairs = study["result"].pairwise
    assert len(pairs) == 3  # systems only; natural and anchor need --compare-anchors
    assert pairs["significant"].all()
    assert (pairs["mos_a"] > pairs["mos_b"]).all()
    assert set(pairs["diff_ci_method"]) == {"rater_bootstrap_item_adjusted"}


def test_report_files_and_checklist(study):
    out = study["root"] / "report"
    for name in ("system_scores", "pairwise", "per_item", "per_rater", "screening_log",
                 "design_balance", "sensitivity"):
        assert (out / f"{name}.csv").stat().st_size > 0
    for fig in ("system_mos", "rating_distribution", "pairwise_matrix", "rater_bias",
                "item_heatmap", "votes_per_cell"):
        assert (out / f"{fig}.png").read_bytes().startswith(b"\x89PNG")
        assert b"<svg" in (out / f"{fig}.svg").read_bytes()
    report = json.loads((out / "report.json").read_text())
    assert report["header"]["packet_id"] == "ptest0001"
    assert report["checklist"]["6. Platform"] == "NOT REPORTED"
    md = (out / "report.md").read_text()
    assert "Reporting checklist" in md and "not comparable across tests" in md
    assert "<h2>Screening waterfall</h2>" in (out / "report.html").read_text()


def test_per_rater_table_marks_the_excluded(study):
    raters = pd.read_csv(study["root"] / "report" / "per_rater.csv")
    bad = raters[raters["excluded"]]
    assert sorted(bad["rater_id"]) == ["r000", "r001", "r002"]
    assert not raters.loc[raters["rater_id"] == "r000", "traps_ok"].item()


def test_analysis_is_deterministic(study, tmp_path):
    run_analysis(study["root"] / "ratings.csv", study["root"] / "pk", tmp_path / "again",
                 AnalysisOptions(n_boot=400, seed=3, plots=False))
    for name in ("system_scores.csv", "pairwise.csv", "per_rater.csv"):
        assert (tmp_path / "again" / name).read_bytes() == \
            (study["root"] / "report" / name).read_bytes()


def test_analyze_refuses_a_swapped_key(study, tmp_path):
    other = build_packet(tmp_path / "other", packet_id="pother001", seed=5, write_audio=False)
    with pytest.raises(InputError, match="ratings are from packet"):
        run_analysis(study["root"] / "ratings.csv", other.root, tmp_path / "out",
                     AnalysisOptions(n_boot=10))


def test_unknown_baseline_is_refused(study, tmp_path):
    with pytest.raises(InputError, match="baseline .sysZ. is not among the rated conditions"):
        run_analysis(study["root"] / "ratings.csv", study["root"] / "pk", tmp_path / "out",
                     AnalysisOptions(n_boot=10, baseline="sysZ"))


# ---------------------------------------------------------------- command line

def test_cli_import_and_analyze(study, tmp_path, wavebench_main, capsys):
    code = wavebench_main(["mos", "import", *map(str, study["paths"]), "--packet",
                           str(study["root"] / "pk"), "-o", str(tmp_path / "ratings.csv")])
    assert code == 0 and (tmp_path / "raters.csv").is_file()
    code = wavebench_main(["mos", "analyze", str(tmp_path / "ratings.csv"), "--packet",
                           str(study["root"] / "pk"), "-o", str(tmp_path / "rep"),
                           "--bootstrap", "200", "--baseline", "sysC", "--no-plots"])
    out = capsys.readouterr().out
    assert code == 0 and "3 of 40 sessions excluded" in out
    assert len(pd.read_csv(tmp_path / "rep" / "pairwise.csv")) == 2  # sysA and sysB vs sysC


def test_cli_bad_input_is_one_line_and_exit_1(study, tmp_path, wavebench_main, capsys):
    cut = tmp_path / "cut.json"
    cut.write_bytes(study["paths"][0].read_bytes()[:100])
    code = wavebench_main(["mos", "import", str(cut), "--packet", str(study["root"] / "pk"),
                           "-o", str(tmp_path / "r.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert err[0].startswith("error: ") and "not valid JSON" in err[0]


def test_incomplete_session_is_excluded(study, tmp_path):
    from test_mos_analysis_sim import simulate_session

    doc = simulate_session(study["packet"], "L05", "r004", np.random.default_rng(0))
    payload = doc["payload"]
    payload["responses"] = payload["responses"][:6]
    payload["completed"] = False
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(results_document(payload)))
    paths = [p for p in study["paths"] if "_L05_" not in p.name] + [partial]
    R.write_ratings(R.import_results(paths, study["loaded"]), tmp_path / "ratings.csv")
    result = run_analysis(tmp_path / "ratings.csv", study["root"] / "pk", tmp_path / "rep",
                          AnalysisOptions(n_boot=50, plots=False))
    sessions = result.screening.sessions.set_index("list_id")
    assert sessions.loc["L05", "exclusion_reasons"].startswith("incomplete_session")
    log = result.screening.log.set_index("rule")
    assert log.loc["incomplete_session", "sessions_removed"] == 1
    assert log.loc["incomplete_session", "ratings_removed"] == 6  # its six rating trials
    assert set(sessions.index[sessions["excluded"]]) == set(BAD) | {"L05"}


def test_screening_file_changes_rules_and_hash(study, tmp_path):
    rules = tmp_path / "screening.json"
    rules.write_text(json.dumps({"rules": {"trap_failed": {"exclude": False}}}))
    result = run_analysis(study["root"] / "ratings.csv", study["root"] / "pk", tmp_path / "rep",
                          AnalysisOptions(n_boot=50, plots=False, screening_path=str(rules)))
    sessions = result.screening.sessions.set_index("list_id")
    # The trap failure is now only recorded, not an exclusion.
    assert not sessions.loc["L01", "excluded"] and "trap_failed" in sessions.loc["L01", "failed"]
    assert result.screening.rules_sha256 != study["result"].screening.rules_sha256
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["header"]["screening rules sha256"] == result.screening.rules_sha256


def test_import_refuses_a_non_numeric_score(study, tmp_path):
    def text_score(doc):
        doc["payload"]["responses"][0]["score"] = "good"
        doc.update(results_document(doc["payload"]))
    with pytest.raises(InputError, match="response 0: score 'good' is not a number"):
        R.import_results([_edited(study["paths"][0], tmp_path, text_score)], study["loaded"])


def test_binary_ratings_file_is_refused(study, tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="not a UTF-8 text CSV"):
        R.read_ratings(path, study["loaded"])


# ---------------------------------------------------------------- every other raise

def _payload_edit(edit):
    def apply(doc):
        edit(doc["payload"])
        doc.update(results_document(doc["payload"]))
    return apply


@pytest.mark.parametrize("edit, message", [
    (_payload_edit(lambda p: p.update(responses="none")), "payload has no responses list"),
    (_payload_edit(lambda p: p.update(rater_id=" ")), "payload has an empty rater_id"),
    (_payload_edit(lambda p: p["responses"].__setitem__(0, 7)), "response 0 is not an object"),
    (_payload_edit(lambda p: p["responses"][0].update(stimulus_id="zzz")),
     "response 0: unknown stimulus 'zzz'"),
])
def test_import_refuses_malformed_payloads(study, tmp_path, edit, message):
    with pytest.raises(InputError, match=message):
        R.import_results([_edited(study["paths"][0], tmp_path, edit)], study["loaded"])


def test_import_refuses_non_object_and_non_utf8_json(study, tmp_path):
    path = tmp_path / "x.json"
    path.write_text("[1, 2]")
    with pytest.raises(InputError, match="results file must be a JSON object, got list"):
        R.import_results([path], study["loaded"])
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(InputError, match="results file is not UTF-8 text"):
        R.import_results([path], study["loaded"])
    with pytest.raises(InputError, match="not a file"):
        R.import_results([tmp_path], study["loaded"])


def test_missing_packet_folder(tmp_path):
    with pytest.raises(InputError, match="packet folder does not exist"):
        R.load_packet(tmp_path / "nowhere")


def test_ratings_and_raters_cannot_share_a_file(study, tmp_path):
    result = R.import_results(study["paths"][:1], study["loaded"])
    with pytest.raises(InputError, match="ratings and raters would be the same file"):
        R.write_ratings(result, tmp_path / "raters.csv")


@pytest.mark.parametrize("column, value, message", [
    ("n_plays", "two", r"line 2: n_plays is not an integer"),
    ("trial_type", "dance", "unknown trial_type 'dance'"),
    ("trial_id", "tmissing", "1 trial id.s. not in the packet key .e.g. tmissing."),
])
def test_ratings_csv_bad_values(study, tmp_path, column, value, message):
    df = pd.read_csv(study["root"] / "ratings.csv", dtype=str, keep_default_na=False)
    df.loc[0, column] = value
    df.to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(InputError, match=message):
        R.read_ratings(tmp_path / "r.csv", study["loaded"])


def test_analyze_option_and_input_errors(study, tmp_path):
    args = (study["root"] / "ratings.csv", study["root"] / "pk", tmp_path / "out")
    with pytest.raises(InputError, match="--ci 'bayes' is not available"):
        run_analysis(*args, AnalysisOptions(ci="all,bayes"))
    everything = tmp_path / "strict.json"
    everything.write_text(json.dumps({"min_variance": {"threshold": 99}}))
    with pytest.raises(InputError, match="no ratings left after screening"):
        run_analysis(*args, AnalysisOptions(n_boot=10, screening_path=str(everything)))
    bad_raters = tmp_path / "raters.csv"
    bad_raters.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="not a readable raters CSV"):
        run_analysis(*args, AnalysisOptions(n_boot=10, raters_path=str(bad_raters)))


def test_lmm_intervals_beside_the_others(study, tmp_path):
    pytest.importorskip("statsmodels")
    args = (study["root"] / "ratings.csv", study["root"] / "pk", tmp_path / "out")
    result = run_analysis(*args, AnalysisOptions(ci="all,lmm", n_boot=50, plots=False))
    table = result.system_scores
    assert (table["ci_primary"] == "boot2way").all()
    assert np.isfinite(table[["ci_lo_lmm", "ci_hi_lmm"]].to_numpy()).all()
    middle = (table["ci_lo_lmm"] + table["ci_hi_lmm"]) / 2  # the model's marginal mean
    assert np.allclose(middle, table["mean"], atol=0.3)  # near the raw mean, not equal to it
    assert (table["ci_hi_lmm"] > table["ci_lo_lmm"]).all()
    only = run_analysis(*args[:2], tmp_path / "lmm", AnalysisOptions(ci="lmm", n_boot=50,
                                                                    plots=False))
    assert (only.system_scores["ci_primary"] == "lmm").all()


def test_raw_tests_are_scipys_on_the_raw_ratings(study, tmp_path):
    args = (study["root"] / "ratings.csv", study["root"] / "pk", tmp_path / "out")
    result = run_analysis(*args, AnalysisOptions(raw_tests=True, n_boot=50, plots=False))
    kept = result.screening.kept
    for row in result.pairwise.itertuples():
        a = kept.loc[kept["condition"] == row.sys_a, "score"].to_numpy(float)
        b = kept.loc[kept["condition"] == row.sys_b, "score"].to_numpy(float)
        assert row.p_mannwhitney_raw == pytest.approx(
            st.mannwhitneyu(a, b, alternative="two-sided").pvalue, rel=1e-12)
        assert row.p_welch_raw == pytest.approx(st.ttest_ind(a, b, equal_var=False).pvalue,
                                                rel=1e-12)
    plain = run_analysis(args[0], args[1], tmp_path / "plain",
                         AnalysisOptions(n_boot=50, plots=False))
    assert "p_welch_raw" not in plain.pairwise.columns


def test_strict_report_refuses_missing_checklist_fields_before_writing(study, tmp_path):
    args = (study["root"] / "ratings.csv", study["root"] / "pk", tmp_path / "out")
    with pytest.raises(InputError, match=r"--strict-report: \d+ checklist field\(s\) not "
                                         r"reported \(.*Platform"):
        run_analysis(*args, AnalysisOptions(strict_report=True, n_boot=50, plots=False))
    assert not (tmp_path / "out").exists()
