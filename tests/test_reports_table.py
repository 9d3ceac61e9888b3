"""Tests of the long results table: building, validation, merging."""
import json

import numpy as np
import pandas as pd
import pytest

from reports.table import (
    ALL_COLUMNS,
    concat_results,
    make_results_table,
    name_systems_by_run,
    one_value_per_utterance,
    usable,
    validate_results,
)
from wavebench_base.errors import InputError


def _rows():
    return [
        {"system": "a", "utterance": "u1", "metric": "mcd", "value": 4.5},
        {"system": "a", "utterance": "u2", "metric": "mcd", "value": float("nan")},
        {"system": "a", "utterance": "u3", "metric": "stoi", "value": float("nan"),
         "status": "too_short"},
        {"system": "b", "utterance": "u1", "metric": "mcd", "value": 3, "status": "ok"},
    ]


def test_make_results_table_schema_defaults_and_metadata():
    meta = {"run": "r1", "versions": {"torch": "2.13.0", "numpy": "2.4.6"}, "device": "cpu",
            "git_rev": None}
    table = make_results_table(_rows(), meta)

    assert list(table.columns) == list(ALL_COLUMNS)
    assert table["value"].dtype == np.float64
    assert all(pd.api.types.is_string_dtype(table[c]) for c in ALL_COLUMNS if c != "value")
    # A finite value without status is ok, a NaN without status failed; given statuses stay.
    assert table["status"].tolist() == ["ok", "failed", "too_short", "ok"]
    assert table["value"].iloc[3] == 3.0
    assert (table["run"] == "r1").all() and (table["device"] == "cpu").all()
    assert (table["git_rev"] == "").all() and (table["checkpoint_hash"] == "").all()
    assert json.loads(table["versions"].iloc[0]) == {"numpy": "2.4.6", "torch": "2.13.0"}


def test_make_results_table_with_no_rows_is_empty_but_typed():
    table = make_results_table([], {"run": "r"})
    assert len(table) == 0 and list(table.columns) == list(ALL_COLUMNS)
    assert table["value"].dtype == np.float64


@pytest.mark.parametrize("meta, match", [
    ({"run": "r", "gpu": "x"}, r"unknown run metadata 'gpu'; valid keys: run, config_hash"),
    ({"device": "cpu"}, r"needs a non-empty 'run' name"),
    ({"run": ""}, r"needs a non-empty 'run' name"),
])
def test_make_results_table_rejects_bad_run_metadata(meta, match):
    with pytest.raises(InputError, match=match):
        make_results_table(_rows(), meta)


@pytest.mark.parametrize("row, match", [
    ({"system": "a", "utterance": "u", "metric": "m"}, r"row 0: missing 'value'"),
    ({"system": "a", "utterance": "u", "metric": "m", "value": 1.0, "unit": "dB"},
     r"row 0: unknown keys 'unit'"),
    ({"system": "a", "utterance": "u", "metric": "m", "value": "4.2"},
     r"row 0: value must be a number or NaN, got '4.2'"),
    ({"system": "a", "utterance": "u", "metric": "m", "value": True},
     r"row 0: value must be a number or NaN, got True"),
    ({"system": "", "utterance": "u", "metric": "m", "value": 1.0},
     r"results: column 'system' needs a non-empty string in every row; row 0 has ''"),
])
def test_make_results_table_rejects_bad_rows(row, match):
    with pytest.raises(InputError, match=match):
        make_results_table([row], {"run": "r"})


def test_make_results_table_rejects_a_repeated_key():
    rows = _rows() + [{"system": "a", "utterance": "u1", "metric": "mcd", "value": 1.0}]
    with pytest.raises(InputError, match=r"must appear once, but 1 appear more than once, "
                                         r"first: run='r', system='a', utterance='u1', "
                                         r"metric='mcd'"):
        make_results_table(rows, {"run": "r"})


def test_validate_results_fills_metadata_keeps_extras_and_casts_values():
    df = pd.DataFrame({"extra": ["x", "y"], "run": ["r", "r"], "system": ["a", "a"],
                       "utterance": ["u1", "u2"], "metric": ["m", "m"], "value": [1, 2],
                       "status": ["ok", "ok"], "device": ["cpu", None]})
    out = validate_results(df, "in.csv")
    assert list(out.columns) == [*ALL_COLUMNS, "extra"]
    assert out["value"].dtype == np.float64 and out["value"].tolist() == [1.0, 2.0]
    assert out["device"].tolist() == ["cpu", ""]
    assert out["git_rev"].tolist() == ["", ""]
    assert df["value"].dtype == np.int64  # the input is not modified


def _valid_frame():
    return make_results_table(_rows(), {"run": "r"})


@pytest.mark.parametrize("change, match", [
    (lambda d: d.drop(columns=["status", "metric"]),
     r"^in\.csv: missing column\(s\) metric, status; a results table has run, system"),
    (lambda d: d.assign(value=d["value"].astype(str)),
     r"^in\.csv: column 'value' must be numeric .*got dtype"),
    (lambda d: d.assign(value=d["value"] > 0),
     r"^in\.csv: column 'value' must be numeric .*got dtype bool"),
    (lambda d: d.assign(system=np.arange(len(d))),
     r"^in\.csv: column 'system' must hold strings, got dtype int64"),
    (lambda d: d.assign(utterance=pd.Series(["u1", None, "u3", "u4"], dtype=object)),
     r"^in\.csv: column 'utterance' needs a non-empty string in every row; row 1 has None"),
    (lambda d: d.assign(status=pd.Series(["ok", 5, "ok", "ok"], dtype=object)),
     r"^in\.csv: column 'status' needs a non-empty string in every row; row 1 has 5"),
    (lambda d: d.assign(device=pd.Series(["cpu", 0.5, "cpu", "cpu"], dtype=object)),
     r"^in\.csv: column 'device' needs a string \(or nothing\) in every row; row 1 has 0.5"),
])
def test_validate_results_names_the_file_and_the_problem(change, match):
    with pytest.raises(InputError, match=match):
        validate_results(change(_valid_frame()), "in.csv")


def test_validate_results_rejects_a_non_frame():
    with pytest.raises(InputError, match=r"^x: expected a pandas DataFrame, got list"):
        validate_results([1, 2], "x")


def test_usable_masks_failed_status_and_nan_values():
    table = _valid_frame()
    table.loc[0, "status"] = "error"
    table.loc[1, "status"] = "ok"  # ok status but NaN value: still not usable
    assert usable(table).tolist() == [False, False, False, True]


def test_concat_results_merges_runs_and_refuses_repeats():
    r1 = make_results_table(_rows(), {"run": "r1", "device": "cpu"})
    r2 = make_results_table(_rows(), {"run": "r2", "device": "cuda"})
    merged = concat_results([(r1, "r1.csv"), (r2, "r2.csv")])
    assert len(merged) == 8 and merged["run"].tolist() == ["r1"] * 4 + ["r2"] * 4
    assert merged["device"].tolist() == ["cpu"] * 4 + ["cuda"] * 4
    with pytest.raises(InputError, match=r"^r1\.csv \+ r1\.csv: each .* but 4 appear more"):
        concat_results([(r1, "r1.csv"), (r1, "r1.csv")])
    with pytest.raises(InputError, match=r"no results tables to merge"):
        concat_results([])
    with pytest.raises(InputError, match=r"^bad\.csv: missing column\(s\) value"):
        concat_results([(r1, "r1.csv"), (r2.drop(columns="value"), "bad.csv")])


def test_one_value_per_utterance_refuses_a_system_repeated_across_runs():
    r1 = make_results_table(_rows(), {"run": "r1"})
    r2 = make_results_table(_rows(), {"run": "r2"})
    merged = concat_results([(r1, "r1.csv"), (r2, "r2.csv")])
    with pytest.raises(InputError, match=r"system='a', utterance='u1', metric='mcd'; give a "
                                         r"system that appears in several runs a distinct name"):
        one_value_per_utterance(merged, "merged")
    one_value_per_utterance(r1, "r1")  # a single run passes


def test_name_systems_by_run_separates_only_repeated_systems():
    r1 = make_results_table(_rows(), {"run": "r1"})
    r2 = make_results_table([{"system": "a", "utterance": "u1", "metric": "mcd", "value": 1.0},
                             {"system": "c", "utterance": "u1", "metric": "mcd", "value": 2.0}],
                            {"run": "r2"})
    merged = concat_results([(r1, "r1.csv"), (r2, "r2.csv")])
    named = name_systems_by_run(merged)
    assert named["system"].tolist() == ["r1/a", "r1/a", "r1/a", "b", "r2/a", "c"]
    one_value_per_utterance(named)  # now each (system, utterance, metric) is unique
    assert merged["system"].tolist() == ["a", "a", "a", "b", "a", "c"]  # input unchanged
