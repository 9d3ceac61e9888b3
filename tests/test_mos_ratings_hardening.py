"""`mos import` validates ratings as data (issue 17, items 2, 3 and 6).

Impossible scores, stuffed sessions, foreign stimuli, integer fields that are not integers,
oversized or deeply nested files: each is refused in one line or rejected and listed, and
nothing off the scale reaches the ratings `mos analyze` reads. The packet and the simulated
raters come from ``test_mos_analysis_sim`` (the one place that knows the formats).
"""
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_mos_analysis_sim import build_packet, results_document, simulate_study

from wavebench.mos.analysis import ratings as R
from wavebench.mos.analysis import screening
from wavebench.mos.analysis.report import AnalysisOptions, run_analysis
from wavebench.mos.packet_files import json_shape
from wavebench_base.errors import InputError

LIST = "L01"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A packet (40 lists of 10 rating trials and 3 checks) and one good session per list."""
    root = tmp_path_factory.mktemp("hardening")
    packet = build_packet(root / "pk")
    paths = simulate_study(packet, root / "results")
    return {"root": root, "packet": packet, "paths": paths, "loaded": R.load_packet(root / "pk")}


def _doc(study, list_id=LIST) -> dict:
    """The simulated results document of a list (a fresh copy)."""
    path = next(p for p in study["paths"] if f"_{list_id}_" in p.name)
    return json.loads(path.read_text())


def _write(path: Path, payload: dict) -> Path:
    """A results file whose checksum was recomputed, as an attacker can (it is unkeyed)."""
    path.write_text(json.dumps(results_document(payload)))
    return path


def _rating_index(study, condition="sysA", list_id=LIST) -> int:
    """Index of the first rating trial of ``condition`` in a list."""
    return next(k for k, t in enumerate(study["packet"].lists[list_id])
                if t["trial_type"] == "rating" and t["condition"] == condition)


def _import_edited(study, tmp_path, edit, list_id=LIST) -> R.ImportResult:
    payload = _doc(study, list_id)["payload"]
    edit(payload)
    return R.import_results([_write(tmp_path / "edited.json", payload)], study["loaded"])


def _analyze(study, tmp_path, replaced: dict):
    """Import every session, with ``replaced`` (list_id -> payload) instead of the simulated
    one, and analyze; returns the analysis result."""
    tmp_path.mkdir(exist_ok=True)
    paths = [p for p in study["paths"] if not any(f"_{lid}_" in p.name for lid in replaced)]
    paths += [_write(tmp_path / f"{lid}.json", payload) for lid, payload in replaced.items()]
    R.write_ratings(R.import_results(paths, study["loaded"]), tmp_path / "ratings.csv")
    return run_analysis(tmp_path / "ratings.csv", study["root"] / "pk", tmp_path / "report",
                        AnalysisOptions(n_boot=20, plots=False))


# ---------------------------------------------------------------- 2. impossible scores

@pytest.mark.parametrize("score, rule", [
    (0, "score_out_of_scale"), (6, "score_out_of_scale"), (-3, "score_out_of_scale"),
    (3.5, "score_off_step"), (1e308, "score_out_of_scale"), (10**40, "score_out_of_scale"),
    (math.inf, "score_not_finite"), (-math.inf, "score_not_finite"),
    (math.nan, "score_not_finite"), (None, "score_missing")])
def test_impossible_score_is_rejected_and_listed(study, tmp_path, score, rule):
    k = _rating_index(study)
    result = _import_edited(study, tmp_path,
                            lambda p: p["responses"][k].update(score=score))
    trial_id = study["packet"].lists[LIST][k]["trial_id"]
    assert trial_id not in set(result.ratings["trial_id"])
    assert len(result.ratings) == len(study["packet"].lists[LIST]) - 1
    assert result.rejects[["trial_id", "rule", "response"]].values.tolist() == \
        [[trial_id, rule, k]]
    assert any(n.startswith("rejected 1 responses (1 trials) in 1 of 1 sessions: " + rule)
               for n in result.notes)


def test_a_score_on_a_choice_trial_is_rejected(study, tmp_path):
    k = next(k for k, t in enumerate(study["packet"].lists[LIST]) if t["trial_type"] == "trap")
    result = _import_edited(study, tmp_path, lambda p: p["responses"][k].update(score=5))
    assert result.rejects["rule"].tolist() == ["score_unexpected"]


def test_scores_on_the_scale_are_kept_as_floats(study, tmp_path):
    k = _rating_index(study)
    result = _import_edited(study, tmp_path, lambda p: p["responses"][k].update(score=4.0))
    assert result.rejects.empty and result.ratings["score"].dtype == float


def test_impossible_scores_never_reach_analyze(study, tmp_path):
    """The repro: 1e308 and NaN scores made analyze print a 306-digit MOS or 'MOS inf'."""
    payload = _doc(study)["payload"]
    for k, t in enumerate(study["packet"].lists[LIST]):
        if t["trial_type"] == "rating":
            payload["responses"][k]["score"] = 1e308 if k % 2 else math.nan
    result = _analyze(study, tmp_path, {LIST: payload})
    table = result.system_scores
    assert table["mean"].between(1, 5).all() and np.isfinite(table["ci_lo_boot2way"]).all()
    # The session lost its rating trials, so screening excludes it as incomplete.
    sessions = result.screening.sessions.set_index("list_id")
    assert sessions.loc[LIST, "exclusion_reasons"] == "incomplete_session"
    rejects = pd.read_csv(tmp_path / "rejects.csv", dtype=str, keep_default_na=False)
    assert len(rejects) == 10 and set(rejects["score"]) == {"1e+308", "nan"}


# ---------------------------------------------------------------- 3. stuffed sessions

def test_a_trial_answered_twice_is_rejected_whole(study, tmp_path):
    k = _rating_index(study)

    def twice(p):
        p["responses"].append(dict(p["responses"][k], score=1))
    result = _import_edited(study, tmp_path, twice)
    assert result.rejects["rule"].tolist() == ["duplicate_answer"] * 2
    assert "answered 2 times" in result.rejects["reason"].iloc[0]
    assert study["packet"].lists[LIST][k]["trial_id"] not in set(result.ratings["trial_id"])


def test_a_trial_answered_21_times_is_refused(study, tmp_path):
    """The repro: 21 answers of one sysA trial moved A's MOS from 4.02 to 3.17."""
    k = _rating_index(study)

    def stuffed(p):
        p["responses"] += [dict(p["responses"][k], score=1) for _ in range(20)]
    with pytest.raises(InputError, match=r"edited\.json: 33 responses for list L01, which asks "
                                         r"for 13 answers; at most 26 are read"):
        _import_edited(study, tmp_path, stuffed)


def test_duplicates_within_the_bound_do_not_move_the_mos(study, tmp_path):
    k = _rating_index(study)
    payload = _doc(study)["payload"]
    payload["responses"] += [dict(payload["responses"][k], score=1) for _ in range(12)]
    stuffed = _analyze(study, tmp_path / "stuffed", {LIST: payload})
    clean = _analyze(study, tmp_path / "clean", {})
    a = {name: r.set_index("condition").loc["sysA"] for name, r in
         (("stuffed", stuffed.system_scores), ("clean", clean.system_scores))}
    # The stuffed trial is rejected, so its session is incomplete and screened out whole.
    assert stuffed.screening.sessions.set_index("list_id").loc[LIST, "exclusion_reasons"] \
        == "incomplete_session"
    assert a["stuffed"]["n_ratings"] < a["clean"]["n_ratings"]
    assert abs(a["stuffed"]["mean"] - a["clean"]["mean"]) < 0.1


def test_a_stimulus_of_another_condition_is_not_counted(study, tmp_path):
    """The repro: a sysB trial holding a sysA stimulus was counted for sysA."""
    k = _rating_index(study, "sysB")
    item = study["packet"].lists[LIST][k]["item"]
    foreign = study["packet"].stim_of[("sysA", item)]
    result = _import_edited(study, tmp_path,
                            lambda p: p["responses"][k].update(stimulus_id=foreign, score=1))
    assert result.rejects["rule"].tolist() == ["foreign_stimulus"]
    assert foreign not in set(result.ratings["stimulus_id"])


def test_one_rater_under_three_session_ids_is_flagged(study, tmp_path):
    """The repro: one rater sending the same list under three session ids counted 3 times."""
    copies = {}
    for n, lid in enumerate(("L01", "L02", "L03")):
        payload = _doc(study, LIST)["payload"]
        payload.update(session_id=f"{LIST}-r000-s{n}")
        copies[lid] = payload  # replaces lists L02 and L03 by further copies of L01
    result = _analyze(study, tmp_path, copies)
    assert any(n.startswith("rater r000 answered under 3 session ids") for n in result.notes)
    log = result.screening.log.set_index("rule")
    assert log.loc["repeated_rater", ["sessions_failing", "raters_failing",
                                      "sessions_removed"]].tolist() == [2, 1, 2]
    sessions = result.screening.sessions.set_index("session_id")
    assert sessions.loc[[f"{LIST}-r000-s1", f"{LIST}-r000-s2"], "excluded"].all()
    assert not sessions.loc[f"{LIST}-r000-s0", "excluded"]
    imported = R.import_results([tmp_path / f"{lid}.json" for lid in copies], study["loaded"])
    assert any(n.startswith("rater r000 answered under 3 session ids") for n in imported.notes)


def test_repeated_rater_threshold_allows_several_lists():
    df = pd.DataFrame({"rater_id": ["a", "a", "a", "b"], "session_id": ["s1", "s2", "s3", "s4"],
                       "list_id": ["L01", "L02", "L01", "L03"],
                       "answered_at": ["2026-01-02", "2026-01-01", "2026-01-03", "2026-01-01"]})
    failing, notes = screening.repeated_sessions(df, 1)
    assert failing == {"s1", "s3"} and len(notes) == 1  # s2 answered first
    failing, _ = screening.repeated_sessions(df, 3)
    assert failing == {"s3"}  # a repeat of L01, whatever the threshold


# ---------------------------------------------------------------- integer fields

@pytest.mark.parametrize("value, message", [
    (3.0, "n_plays 3.0 is not an integer"), (True, "n_plays True is not an integer"),
    ("2", "n_plays '2' is not an integer")])
def test_integer_fields_must_be_json_integers(study, tmp_path, value, message):
    with pytest.raises(InputError, match=f"response 0: {message}"):
        _import_edited(study, tmp_path, lambda p: p["responses"][0].update(n_plays=value))


@pytest.mark.parametrize("value", [-1, 2**53, 10**30])
def test_integer_fields_out_of_range_are_rejected(study, tmp_path, value):
    result = _import_edited(study, tmp_path,
                            lambda p: p["responses"][3].update(listen_ms=value))
    assert result.rejects["rule"].tolist() == ["integer_out_of_range"]


@pytest.mark.parametrize("edit, message", [
    (lambda p: p.update(rater_id=7), "payload: rater_id 7 is not a string"),
    (lambda p: p.update(list_id=["L01"]), r"payload: list_id \['L01'\] is not a string"),
    (lambda p: p.update(questionnaire=[1]), r"payload: questionnaire \[1\] is not an object"),
    (lambda p: p["responses"][0].update(played_to_end="false"),
     "response 0: played_to_end 'false' is not true or false"),
    (lambda p: p["responses"][0].update(trial_id={"a": 1}), "trial_id .* is not a string"),
    (lambda p: p["responses"][0].pop("trial_index"), "response 0 has no trial_index")])
def test_fields_of_the_wrong_json_type_are_refused(study, tmp_path, edit, message):
    with pytest.raises(InputError, match=message):
        _import_edited(study, tmp_path, edit)


# ---------------------------------------------------------------- 6. bounded input

def test_json_nested_200000_deep_is_one_line(study, tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(InputError, match=r"deep\.json: results file is nested 200000 levels "
                                         r"deep; at most 32 are read"):
        R.import_results([deep], study["loaded"])


def test_cli_deep_json_is_one_line(study, tmp_path, capsys):
    from wavebench.cli import main
    deep = tmp_path / "deep.json"
    deep.write_text('{"payload": ' + '{"a": ' * 200_000 + "1" + "}" * 200_001)
    code = main(["mos", "import", str(deep), "--packet", str(study["root"] / "pk"),
                 "-o", str(tmp_path / "r.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "nested 200001 levels deep" in err[0]


def test_brackets_inside_strings_do_not_count(study, tmp_path):
    k = _rating_index(study)
    result = _import_edited(study, tmp_path,
                            lambda p: p["responses"][k].update(comment='[{"\\' * 100))
    assert result.rejects.empty


@pytest.mark.parametrize("raw, shape", [
    (b'{"a": [1, {"b": "]]]]"}], "c": "\\"[["}', (3, 2)),
    (b'"unterminated [[[', (0, 0)), (b'"ends in a backslash\\', (0, 0)),
    (b"[[[]]], []", (3, 1))])
def test_json_shape(raw, shape):
    assert json_shape(raw, chunk=2) == shape


def test_an_oversized_file_is_not_read(study, tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(R.MAX_RESULTS_BYTES + 1)
    with pytest.raises(InputError, match="big.json: results file is larger than 16 MiB"):
        R.import_results([big], study["loaded"])


def test_600000_responses_are_refused_before_parsing(study, tmp_path):
    """The repro: 600,000 responses imported in 41 s using 1.2 GB."""
    payload = _doc(study)["payload"]
    payload["responses"] = [{}] * 600_000
    with pytest.raises(InputError, match=r"holds 6000\d\d JSON items; at most 500000 are read"):
        R.import_results([_write(tmp_path / "many.json", payload)], study["loaded"])


def test_the_absolute_response_cap(study, tmp_path, monkeypatch):
    monkeypatch.setattr(R, "MAX_RESPONSES", 12)
    with pytest.raises(InputError, match="13 responses for list L01, .* at most 12 are read"):
        _import_edited(study, tmp_path, lambda p: None)


def test_an_integer_of_5000_digits_is_one_line(study, tmp_path):
    path = tmp_path / "digits.json"
    path.write_text('{"format": ' + "9" * 5000 + "}")
    with pytest.raises(InputError, match="results file is not valid JSON: Exceeds the limit"):
        R.import_results([path], study["loaded"])


# ---------------------------------------------------------------- rejects.csv

def test_rejects_csv_is_written_beside_the_ratings(study, tmp_path):
    k = _rating_index(study)
    result = _import_edited(study, tmp_path, lambda p: p["responses"][k].update(score=6))
    R.write_ratings(result, tmp_path / "ratings.csv")
    rejects = pd.read_csv(tmp_path / "rejects.csv", dtype=str, keep_default_na=False)
    assert tuple(rejects.columns) == R.REJECT_COLUMNS
    assert rejects[["session_id", "score", "rule"]].values.tolist() == \
        [[f"{LIST}-r000-abc", "6", "score_out_of_scale"]]
    # A clean import leaves an empty rejects.csv, not the earlier one.
    R.write_ratings(R.import_results(study["paths"][:1], study["loaded"]),
                    tmp_path / "ratings.csv")
    assert (tmp_path / "rejects.csv").read_text().strip() == ",".join(R.REJECT_COLUMNS)
    with pytest.raises(InputError, match="rejects would overwrite the ratings"):
        R.write_ratings(result, tmp_path / "rejects.csv")


def test_mushra_answers_on_the_slider_step(study):
    """MUSHRA's manifest step (20) spaces the labels; the slider answers in steps of 1."""
    packet = R.Packet(study["loaded"].root, dict(study["loaded"].manifest, method="mushra",
                      scale={"id": "mushra100", "min": 0, "max": 100, "step": 20}),
                      study["loaded"].key)
    scale = R.answer_scale(packet)
    assert scale.problem(73) is None and scale.problem(100.0) is None
    assert scale.problem(99.5).rule == "score_off_step"
    assert scale.problem(101).rule == "score_out_of_scale"


# ---------------------------------------------------------------- a hand-edited ratings.csv

@pytest.fixture(scope="module")
def ratings_csv(study):
    path = study["root"] / "ratings.csv"
    R.write_ratings(R.import_results(study["paths"][:3], study["loaded"]), path)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _first_row(df: pd.DataFrame, trial_type: str) -> int:
    return int(np.flatnonzero(df["trial_type"] == trial_type)[0])


@pytest.mark.parametrize("trial_type, column, value, message", [
    ("rating", "score", "6", "score 6.0 is outside the scale"),
    ("rating", "score", "inf", "score inf is not a finite number"),
    ("rating", "score", "3.5", "score 3.5 is not on the scale"),
    ("rating", "score", "", "a rating trial without a score"),
    ("trap", "score", "1", "a trap trial takes no score"),
    ("rating", "stimulus_id", "other", "stimulus 'other' is not one of trial"),
    ("rating", "n_plays", "-1", "n_plays is not an integer from 0"),
    ("rating", "listen_ms", "1e3", "listen_ms is not an integer from 0"),
    ("rating", "response_ms", "3.0", "response_ms is not an integer from 0"),
    ("rating", "trial_index", "99999999999999999", "trial_index is not an integer from 0")])
def test_edited_ratings_csv_is_refused(study, ratings_csv, tmp_path, trial_type, column, value,
                                       message):
    df = ratings_csv.copy()
    row = _first_row(df, trial_type)
    if column == "stimulus_id":  # a stimulus the key knows, of another trial
        value = df.loc[row + 1, "stimulus_id"]
        message = f"stimulus '{value}' is not one of trial"
    df.loc[row, column] = value
    df.to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(InputError, match=f"r.csv: line {row + 2}: {message}"):
        R.read_ratings(tmp_path / "r.csv", study["loaded"])


def test_a_duplicated_ratings_row_is_refused(study, ratings_csv, tmp_path):
    df = pd.concat([ratings_csv, ratings_csv.iloc[[4]]])
    df.to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(InputError, match=f"line {len(df) + 1}: trial .* answered again"):
        R.read_ratings(tmp_path / "r.csv", study["loaded"])


# ---------------------------------------------------------------- fuzz

SCORES = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 0, 6, -3,
                                    3.5, 4, 4.0, 1, 5, 10**30, None, True, "4", [4]]),
                   st.floats(), st.integers(-10, 10))
EXAMPLES = 150


@st.composite
def edits(draw, trial_ids):
    """A list of edits of a payload: scores, trial ids, repeated or dropped answers, and
    nesting of a field."""
    out = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["score", "trial", "repeat", "drop", "nest", "int"]))
        k = draw(st.integers(0, 12))
        if kind == "score":
            out.append((kind, k, draw(SCORES)))
        elif kind == "trial":
            out.append((kind, k, draw(st.one_of(st.sampled_from(trial_ids), st.text(max_size=8),
                                                st.integers()))))
        elif kind == "repeat":
            out.append((kind, k, draw(st.integers(1, 30))))
        elif kind == "nest":
            out.append((kind, k, draw(st.sampled_from([1, 28, 29, 500]))))
        elif kind == "int":
            out.append((kind, k, draw(st.one_of(st.integers(-2**60, 2**60), st.floats(),
                                                st.booleans()))))
        else:
            out.append((kind, k, None))
    return out


def _apply(payload: dict, changes: list) -> dict:
    responses = payload["responses"]
    for kind, k, value in changes:
        if not responses:
            break
        k %= len(responses)
        if kind == "score":
            responses[k]["score"] = value
        elif kind == "trial":
            responses[k]["trial_id"] = value
        elif kind == "repeat":
            responses += [dict(responses[k]) for _ in range(value)]
        elif kind == "drop":
            del responses[k]
        elif kind == "nest":
            for _ in range(value):
                responses[k]["comment"] = [responses[k].get("comment", "")]
        else:
            responses[k]["n_plays"] = value
    return payload


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_import_never_lets_an_impossible_score_through(study, data):
    trial_ids = [t["trial_id"] for lid in ("L01", "L02") for t in study["packet"].lists[lid]]
    payload = _apply(_doc(study)["payload"], data.draw(edits(trial_ids)))
    packet = study["loaded"]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        try:
            result = R.import_results([_write(folder / "fuzz.json", payload)], packet)
        except InputError as err:
            assert "\n" not in str(err)
            event("refused")
            return
        event("imported with rejects" if len(result.rejects) else "imported whole")
        R.write_ratings(result, folder / "ratings.csv")
        if result.ratings.empty:
            return
        ratings = R.read_ratings(folder / "ratings.csv", packet)
    types = [packet.key["trials"][t]["trial_type"] for t in ratings["trial_id"]]
    scored = ratings["score"][[t in R.SCORED_TYPES for t in types]]
    assert scored.isin([1.0, 2.0, 3.0, 4.0, 5.0]).all()
    assert ratings["score"][[t not in R.SCORED_TYPES for t in types]].isna().all()
    assert not ratings.duplicated(["session_id", "trial_id", "stimulus_id"]).any()
    assert len(result.ratings) + len(result.rejects) == len(payload["responses"])


# ---------------------------------------------------------------- formulas in ratings.csv

def test_a_formula_rater_id_is_written_as_text_and_read_back_exactly(study, tmp_path):
    """A rater id is the rater's own text: ratings.csv guards it, read_ratings undoes the guard."""
    payload = _doc(study)["payload"]
    payload["rater_id"] = "=HYPERLINK(\"http://x\")"
    result = R.import_results([_write(tmp_path / "f.json", payload)], study["loaded"])
    ratings, raters = R.write_ratings(result, tmp_path / "ratings.csv")
    for written in (ratings, raters):
        text = written.read_text()
        assert text.count("'=HYPERLINK") == text.count("=HYPERLINK") > 0  # every one guarded
    back = R.read_ratings(ratings, study["loaded"])
    assert set(back["rater_id"]) == {payload["rater_id"]}


@pytest.mark.parametrize("edit, field", [
    (lambda key: key.update(trials=list(key["trials"])), "trials must be an object"),
    (lambda key: key.update(trials={t: "x" for t in key["trials"]}), "must be an object"),
    (lambda key: key.update(stimuli=[]), "stimuli must be an object"),
])
def test_a_key_of_the_wrong_shape_is_one_line_even_with_a_matching_commitment(
        study, tmp_path, edit, field):
    """Someone who edits the key and re-commits it in the manifest gets a line, not a crash."""
    import hashlib
    import shutil
    root = tmp_path / "pk"
    shutil.copytree(study["root"] / "pk", root)
    key_path, manifest_path = root / "private" / "key.json", root / "packet" / "manifest.json"
    key = json.loads(key_path.read_text())
    edit(key)
    key_path.write_text(json.dumps(key))
    manifest = json.loads(manifest_path.read_text())
    manifest["key_commitment"] = hashlib.sha256(key_path.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=field) as caught:
        R.load_packet(root)
    assert "key.json" in str(caught.value) and "\n" not in str(caught.value)
