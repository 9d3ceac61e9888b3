"""Writing tables atomically (CSV, Parquet, JSON) and reading a results CSV back safely."""
from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from reports.cells import csv_text, csv_untext
from reports.table import ALL_COLUMNS, RESULT_COLUMNS, validate_results
from wavebench_base.errors import InputError, MissingDependencyError
from wavebench_base.files import atomic_write_bytes, atomic_write_text


def write_csv(df: pd.DataFrame, path) -> Path:
    """Write a table as CSV atomically, without its index.

    Floats are written with the shortest representation that reads back to the same float64,
    and NaN as an empty field, so :func:`read_csv_table` round-trips a results table exactly.
    Text cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
    ``@``, tab or CR) get a leading apostrophe (:func:`reports.cells.csv_text`); the readers
    here remove it again. Numeric columns are written as numbers. A line break inside a text
    cell is written as ``\n`` (a lone CR would not be quoted and would split the record).

    Parameters
    ----------
    df : pd.DataFrame
        The table.
    path : str or os.PathLike
        Destination file.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    buffer = io.StringIO()
    _formula_safe(df).to_csv(buffer, index=False, lineterminator="\n")
    return atomic_write_text(path, buffer.getvalue())


def _formula_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells cannot act as formulas nor split a record."""
    text_columns = [c for c in df.columns if df[c].dtype == object
                    or isinstance(df[c].dtype, pd.StringDtype)]
    if not text_columns:
        return df
    df = df.copy()
    for c in text_columns:
        df[c] = df[c].map(lambda v: csv_text(v.replace("\r\n", "\n").replace("\r", "\n"))
                          if isinstance(v, str) else v)
    return df


def write_parquet(df: pd.DataFrame, path) -> Path:
    """Write a table as Parquet atomically (needs ``pyarrow``).

    Raises
    ------
    MissingDependencyError
        pyarrow is not installed; the message says how to install it.
    """
    if importlib.util.find_spec("pyarrow") is None:
        raise MissingDependencyError("Parquet output needs pyarrow, which is not installed: "
                                     "pip install 'wavebench[parquet]' or write CSV instead", path)
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False, engine="pyarrow")
    return atomic_write_bytes(path, buffer.getvalue())


def write_json(df: pd.DataFrame, path) -> Path:
    """Write a table as a JSON list of row objects, atomically.

    NaN becomes ``null`` (strict JSON has no NaN); floats keep full precision.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    records = [{str(k): _json_value(v) for k, v in zip(df.columns, row)}
               for row in df.itertuples(index=False, name=None)]
    text = json.dumps(records, indent=1, allow_nan=False, ensure_ascii=False)
    return atomic_write_text(path, text + "\n")


def _json_value(value):
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        # Infinity has no JSON form either; null with the status column beside it says enough.
        return None
    return value


def read_csv_table(path, *, allow_no_rows: bool = False) -> pd.DataFrame:
    """Read a results table from CSV, refusing missing, empty and truncated files.

    Parameters
    ----------
    path : str or os.PathLike
        A CSV written by :func:`write_csv` (or by hand) with at least :data:`RESULT_COLUMNS`.
    allow_no_rows : bool
        Accept a header without rows (a shard of a scoring job that got no utterances).

    Returns
    -------
    pd.DataFrame
        The validated table (see :func:`reports.table.validate_results`); empty ``value``
        fields and ``nan`` read as NaN, metadata columns keep empty strings.

    Raises
    ------
    InputError
        ``"<path>: <problem>"`` when the file is missing, empty, not UTF-8 text, has a header
        but no rows, a line with a different number of fields than the header (a truncated
        last line among them), a value that is not a number, or fails validation.
    """
    # Strings stay strings ("0123" is a git revision, "" an unknown device); only value parses.
    df = read_csv_strings(path, "a CSV results table", allow_no_rows=allow_no_rows)
    missing = [c for c in RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; found {', '.join(df.columns)}",
                         path)
    df["value"] = parse_numbers(df["value"], "value", path)
    for name in ALL_COLUMNS:
        if name in df.columns and name != "value":
            df[name] = df[name].astype(str)
    return validate_results(df, path)


def read_csv_strings(path, what: str = "a CSV table", *,
                     allow_no_rows: bool = False) -> pd.DataFrame:
    """Every field of a CSV as a string, refusing a missing, empty, undecodable or truncated
    file (a record with another number of fields than the header) with one line; a header
    without rows too, unless ``allow_no_rows``."""
    text = _read_text(path, what)
    _check_shape(text, path, allow_no_rows)
    return untext_cells(pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                                    na_filter=False))


def untext_cells(df: pd.DataFrame) -> pd.DataFrame:
    """A table of strings read back from :func:`write_csv`, its formula guards removed."""
    return df.apply(lambda column: column.map(csv_untext)) if len(df) else df


def _read_text(path, what: str) -> str:
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file" if not path.exists() else "not a file", path)
    data = path.read_bytes()
    if not data.strip():
        raise InputError(f"empty file; expected {what}", path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"not a UTF-8 text CSV (undecodable byte at offset {err.start})",
                         path) from None


def _check_shape(text: str, path, allow_no_rows: bool = False) -> list[str]:
    """Return the header after checking every record has as many fields as it."""
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as err:
        raise InputError(f"malformed CSV ({err}); the file may be truncated", path) from None
    records = [r for r in records if r]  # blank lines carry no data; pandas skips them too
    header = records[0]
    if len(records) == 1 and not allow_no_rows:
        raise InputError("has a header but no rows", path)
    for number, record in enumerate(records[1:], start=2):
        if len(record) != len(header):
            where = "last line" if number == len(records) else f"record {number}"
            raise InputError(f"{where} has {len(record)} fields, the header has {len(header)}; "
                             "the file may be truncated", path)
    return header


def parse_numbers(column: pd.Series, name: str, path) -> np.ndarray:
    """A string column as float64; empty fields and ``nan`` are NaN, anything else that is not
    a number is refused, naming the record."""
    blank = column.str.strip().str.lower().isin(["", "nan"])
    parsed = pd.to_numeric(column.where(~blank, "nan"), errors="coerce")
    bad = parsed.isna() & ~blank
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"column {name!r} record {row + 2} is {column.iloc[row]!r}, "
                         "not a number", path)
    return parsed.to_numpy(dtype=np.float64)
