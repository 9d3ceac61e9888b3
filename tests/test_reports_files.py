"""Tests of table files: atomic writes, CSV round trip, refusing broken CSVs, Parquet, JSON."""
import importlib.util
import json
import os

import numpy as np
import pandas as pd
import pytest

import reports.files as files
from reports.files import read_csv_table, write_csv, write_json, write_parquet
from reports.table import make_results_table
from wavebench_base.errors import InputError, MissingDependencyError


@pytest.fixture
def table():
    rows = [
        {"system": "wavenet, tiny", "utterance": 'spk1/utt "1"', "metric": "mcd",
         "value": 4.123456789012345},
        {"system": "wavenet, tiny", "utterance": "spk1/ütt-2", "metric": "mcd",
         "value": float("nan"), "status": "too_short"},
        {"system": "oracle", "utterance": "spk1/utt 3\nnewline", "metric": "stoi",
         "value": 1e-300},
        {"system": "oracle", "utterance": "4", "metric": "stoi", "value": -0.0},
    ]
    meta = {"run": "2024-01-01", "git_rev": "0123", "versions": {"torch": "2.13.0"},
            "device": None}
    return make_results_table(rows, meta)


def test_csv_round_trip_is_exact(table, tmp_path):
    path = write_csv(table, tmp_path / "results.csv")
    back = read_csv_table(path)
    # Exact: floats are written in shortest round-trip form, strings are never re-typed
    # ("0123" stays a string, "" stays empty, not NaN).
    pd.testing.assert_frame_equal(back, table)
    assert back["git_rev"].iloc[0] == "0123" and back["device"].iloc[0] == ""


def test_csv_write_is_atomic_and_leaves_no_temporary_files(table, tmp_path, monkeypatch):
    path = tmp_path / "results.csv"
    path.write_text("old contents\n")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_csv(table, path)
    assert path.read_text() == "old contents\n"  # the old file survives a failed write
    assert os.listdir(tmp_path) == ["results.csv"]  # and the temporary file is removed
    monkeypatch.undo()
    write_csv(table, path)
    assert os.listdir(tmp_path) == ["results.csv"]
    pd.testing.assert_frame_equal(read_csv_table(path), table)


def test_writing_into_a_missing_folder_creates_it(table, tmp_path):
    # One atomic-write helper for the whole tree (wavebench_base.files), one contract.
    path = write_csv(table, tmp_path / "new" / "folder" / "results.csv")
    pd.testing.assert_frame_equal(read_csv_table(path), table)
    assert os.listdir(path.parent) == ["results.csv"]


def _csv_text(table, tmp_path) -> str:
    return write_csv(table, tmp_path / "good.csv").read_text(encoding="utf-8")


def _broken(tmp_path, name: str, content) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def test_missing_and_empty_files_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"absent\.csv: no such file$"):
        read_csv_table(tmp_path / "absent.csv")
    with pytest.raises(InputError, match=r"empty\.csv: empty file; expected a CSV results table"):
        read_csv_table(_broken(tmp_path, "empty.csv", ""))
    with pytest.raises(InputError, match=r"blank\.csv: empty file"):
        read_csv_table(_broken(tmp_path, "blank.csv", "\n\n"))
    with pytest.raises(InputError, match=r": not a file"):
        read_csv_table(tmp_path)


def test_header_only_file_is_refused(table, tmp_path):
    header = _csv_text(table, tmp_path).splitlines()[0] + "\n"
    with pytest.raises(InputError, match=r"header\.csv: has a header but no rows"):
        read_csv_table(_broken(tmp_path, "header.csv", header))


def test_truncated_files_are_refused(table, tmp_path):
    text = _csv_text(table, tmp_path)
    lines = text.splitlines(keepends=True)
    assert lines[-1].startswith("2024-01-01,oracle,4,stoi,")
    # Cut inside the last line: it has fewer fields than the header.
    with pytest.raises(InputError, match=r"cut\.csv: last line has 4 fields, the header has "
                                         r"11; the file may be truncated"):
        read_csv_table(_broken(tmp_path, "cut.csv", "".join(lines[:-1]) + lines[-1][:22]))
    # Cut inside a quoted field: the CSV parser itself fails.
    quoted = text.index('"spk1/utt ""1"""')
    with pytest.raises(InputError, match=r"quote\.csv: malformed CSV .*may be truncated"):
        read_csv_table(_broken(tmp_path, "quote.csv", text[:quoted + 6]))
    # A line with too many fields is refused too, naming its record.
    lines[2] = lines[2].rstrip("\n") + ",extra\n"
    with pytest.raises(InputError, match=r"extra\.csv: record 3 has 12 fields, the header has 11"):
        read_csv_table(_broken(tmp_path, "extra.csv", "".join(lines)))


def test_missing_columns_and_bad_values_are_refused(table, tmp_path):
    write_csv(table.drop(columns=["status"]), tmp_path / "nostatus.csv")
    with pytest.raises(InputError, match=r"nostatus\.csv: missing column\(s\) status; found run"):
        read_csv_table(tmp_path / "nostatus.csv")
    bad = table.astype({"value": str})
    bad.loc[2, "value"] = "4,2 dB"
    write_csv(bad, tmp_path / "badvalue.csv")
    with pytest.raises(InputError, match=r"badvalue\.csv: column 'value' record 4 is '4,2 dB', "
                                         r"not a number"):
        read_csv_table(tmp_path / "badvalue.csv")
    write_csv(table.assign(system=""), tmp_path / "nosystem.csv")
    with pytest.raises(InputError, match=r"nosystem\.csv: column 'system' needs a non-empty"):
        read_csv_table(tmp_path / "nosystem.csv")


def test_binary_file_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"noise\.csv: not a UTF-8 text CSV \(undecodable byte "
                                         r"at offset 1\)"):
        read_csv_table(_broken(tmp_path, "noise.csv", b"a\xff\xfe\x00,b\n1,2\n"))


def test_hand_written_csv_with_optional_columns_missing(tmp_path):
    text = ("run,system,utterance,metric,value,status,notes\n"
            "r,a,u1,mcd,4.5,ok,first\n"
            "r,a,u2,mcd,,too_short,\n"
            "r,a,u3,mcd,NaN,ok,x\n")  # no trailing-newline requirement beyond complete lines
    out = read_csv_table(_broken(tmp_path, "hand.csv", text))
    assert out["value"].iloc[0] == 4.5 and out["value"].iloc[1:].isna().all()
    assert out["notes"].tolist() == ["first", "", "x"]
    assert (out["checkpoint_hash"] == "").all()


def test_parquet_without_pyarrow_gives_a_clear_error(table, tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(files.importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyarrow" else real_find_spec(name, *a))
    with pytest.raises(MissingDependencyError,
                       match=r"results\.parquet: Parquet output needs pyarrow.*"
                             r"pip install 'wavebench\[parquet\]'"):
        write_parquet(table, tmp_path / "results.parquet")
    assert not (tmp_path / "results.parquet").exists()


def test_parquet_round_trip(table, tmp_path):
    pytest.importorskip("pyarrow")
    path = write_parquet(table, tmp_path / "results.parquet")
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, table, check_dtype=False)


def test_json_is_strict_with_null_for_nan_and_full_precision(table, tmp_path):
    path = write_json(table, tmp_path / "results.json")
    records = json.loads(path.read_text(encoding="utf-8"))  # strict JSON: no NaN literal
    assert len(records) == len(table)
    assert records[0]["value"] == 4.123456789012345
    assert records[1]["value"] is None and records[1]["status"] == "too_short"
    assert records[0]["utterance"] == 'spk1/utt "1"'
    assert records[1]["utterance"] == "spk1/ütt-2"
    ints = pd.DataFrame({"batch": np.array([1, 8], dtype=np.int64), "x": [np.inf, 2.5]})
    assert json.loads(write_json(ints, tmp_path / "i.json").read_text()) == [
        {"batch": 1, "x": None}, {"batch": 8, "x": 2.5}]
