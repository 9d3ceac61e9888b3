"""The long results table: one row per (run, system, utterance, metric), and its validation."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from wavebench_base.errors import InputError

#: Columns every results table has, in order; ``value`` is float64, the others strings.
KEY_COLUMNS = ("run", "system", "utterance", "metric")
RESULT_COLUMNS = (*KEY_COLUMNS, "value", "status")
#: Run metadata columns; a table without one gets it filled with empty strings.
META_COLUMNS = ("config_hash", "checkpoint_hash", "versions", "device", "git_rev")
ALL_COLUMNS = (*RESULT_COLUMNS, *META_COLUMNS)
#: The status of a value that counts; anything else (a reason such as "too_short") is a failure.
OK = "ok"
FAILED = "failed"

_ROW_KEYS = ("system", "utterance", "metric", "value", "status")
_RUN_KEYS = ("run", *META_COLUMNS)


def make_results_table(rows: Iterable[Mapping], run_meta: Mapping) -> pd.DataFrame:
    """Build a results table for one run from per-utterance metric rows.

    Parameters
    ----------
    rows : iterable of mapping
        Each has ``system``, ``utterance``, ``metric`` and ``value`` (a number or NaN), and
        optionally ``status``: ``"ok"`` or the reason the value failed. Without a status a
        finite value is ``"ok"`` and a NaN is ``"failed"``.
    run_meta : mapping
        ``run`` (the run's name, required) and any of ``config_hash``, ``checkpoint_hash``,
        ``versions`` (a string, or a mapping of package to version, stored as sorted JSON),
        ``device`` and ``git_rev``; missing or None ones become empty strings.

    Returns
    -------
    pd.DataFrame
        The validated table with columns :data:`ALL_COLUMNS`, one row per input row.

    Raises
    ------
    InputError
        An unknown or missing key, a value that is not a number, or a duplicated
        (system, utterance, metric).

    Examples
    --------
    >>> t = make_results_table([{"system": "a", "utterance": "u1", "metric": "mcd",
    ...                          "value": 4.2}], {"run": "r1"})
    >>> t.loc[0, "status"]
    'ok'
    """
    meta = _run_metadata(run_meta)
    records = [_row_record(i, row) for i, row in enumerate(rows)]
    table = pd.DataFrame(records, columns=list(_ROW_KEYS)).astype({"value": "float64"})
    for name in _RUN_KEYS:
        table[name] = meta[name]
    return validate_results(table, "results")


def _run_metadata(run_meta: Mapping) -> dict:
    unknown = sorted(set(run_meta) - set(_RUN_KEYS))
    if unknown:
        raise InputError(f"unknown run metadata {', '.join(map(repr, unknown))}; "
                         f"valid keys: {', '.join(_RUN_KEYS)}")
    if not run_meta.get("run"):
        raise InputError("run metadata needs a non-empty 'run' name")
    meta = {}
    for name in _RUN_KEYS:
        value = run_meta.get(name)
        if isinstance(value, Mapping):
            # One string column keeps the table flat; sorted JSON keeps it comparable across runs.
            value = json.dumps(dict(value), sort_keys=True, separators=(",", ":"))
        meta[name] = "" if value is None else str(value)
    return meta


def _row_record(index: int, row: Mapping) -> dict:
    unknown = sorted(set(row) - set(_ROW_KEYS))
    missing = [k for k in _ROW_KEYS[:4] if k not in row]
    if unknown or missing:
        problem = (f"unknown keys {', '.join(map(repr, unknown))}" if unknown
                   else f"missing {', '.join(map(repr, missing))}")
        raise InputError(f"row {index}: {problem}; a row has {', '.join(_ROW_KEYS)} "
                         "(status optional)")
    value = row["value"]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise InputError(f"row {index}: value must be a number or NaN, got {value!r}")
    value = float(value)
    status = row.get("status")
    if status is None:
        status = OK if np.isfinite(value) else FAILED
    return {"system": row["system"], "utterance": row["utterance"], "metric": row["metric"],
            "value": value, "status": status}


def validate_results(df: pd.DataFrame, source) -> pd.DataFrame:
    """Check a results table and return it in canonical form.

    Parameters
    ----------
    df : pd.DataFrame
        A table with at least :data:`RESULT_COLUMNS`. Metadata columns may be missing (they
        are filled with ``""``); extra columns are kept after the standard ones.
    source : str or os.PathLike
        Where the table came from (a file name); it prefixes every error message.

    Returns
    -------
    pd.DataFrame
        A copy: string columns as strings, ``value`` as float64, columns in standard order,
        index 0..n-1.

    Raises
    ------
    InputError
        ``"<source>: <problem>"`` for a missing column, a column of the wrong type, an empty
        key or status, or a (run, system, utterance, metric) that appears twice.
    """
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"expected a pandas DataFrame, got {type(df).__name__}", source)
    missing = [c for c in RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; a results table has "
                         f"{', '.join(RESULT_COLUMNS)}", source)
    out = df.reset_index(drop=True).copy()
    for name in META_COLUMNS:
        out[name] = _string_column(out[name], name, source, allow_empty=True) \
            if name in out.columns else pd.Series([""] * len(out), dtype=_str_dtype())
    for name in (*KEY_COLUMNS, "status"):
        out[name] = _string_column(out[name], name, source, allow_empty=False)
    out["value"] = _value_column(out["value"], source)
    extras = [c for c in out.columns if c not in ALL_COLUMNS]
    out = out[[*ALL_COLUMNS, *extras]]
    _check_unique(out, KEY_COLUMNS, source)
    return out


def _str_dtype():
    # pandas >= 3 has a dedicated string dtype; astype(str) picks whatever this pandas uses.
    return pd.Series(["x"]).astype(str).dtype


def _string_column(col: pd.Series, name: str, source, *, allow_empty: bool) -> pd.Series:
    if not (pd.api.types.is_string_dtype(col) or col.dtype == object):
        raise InputError(f"column '{name}' must hold strings, got dtype {col.dtype}", source)
    if allow_empty:
        col = col.where(col.notna(), "")
    bad = ~col.map(lambda v: isinstance(v, str), na_action=None).astype(bool)
    if not allow_empty:
        bad |= col.eq("").fillna(False).astype(bool)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        need = "a string (or nothing)" if allow_empty else "a non-empty string"
        raise InputError(f"column '{name}' needs {need} in every row; row {row} "
                         f"has {col.iloc[row]!r}", source)
    return col.astype(str)


def _value_column(col: pd.Series, source) -> pd.Series:
    if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
        raise InputError(f"column 'value' must be numeric (float, NaN for failures), got dtype "
                         f"{col.dtype}", source)
    return col.astype("float64")


def _check_unique(df: pd.DataFrame, keys: Sequence[str], source, hint: str = "") -> None:
    dup = df.duplicated(list(keys), keep=False)
    if dup.any():
        repeated = df.loc[dup, list(keys)].drop_duplicates()
        where = ", ".join(f"{k}={repeated.iloc[0][k]!r}" for k in keys)
        raise InputError(f"each ({', '.join(keys)}) must appear once, but {len(repeated)} "
                         f"appear more than once, first: {where}{hint}", source)


def concat_results(tables: Sequence[tuple[pd.DataFrame, str]]) -> pd.DataFrame:
    """Merge the results tables of several runs into one.

    Parameters
    ----------
    tables : sequence of (pd.DataFrame, str)
        Each table with its source name (file), used in error messages.

    Returns
    -------
    pd.DataFrame
        The validated tables stacked in order, index 0..n-1.

    Raises
    ------
    InputError
        No tables, an invalid table (named by its source), or the same
        (run, system, utterance, metric) in two tables.
    """
    if not tables:
        raise InputError("no results tables to merge")
    checked = [validate_results(df, source) for df, source in tables]
    merged = pd.concat(checked, ignore_index=True)
    return validate_results(merged, " + ".join(str(s) for _, s in tables))


def name_systems_by_run(df: pd.DataFrame) -> pd.DataFrame:
    """Rename ``system`` to ``"<run>/<system>"`` wherever one system name is in several runs.

    Use it on merged runs before :func:`reports.summary.summarize` or
    :func:`reports.compare.compare_systems`, which need each (system, utterance, metric) once.

    Parameters
    ----------
    df : pd.DataFrame
        A results table.

    Returns
    -------
    pd.DataFrame
        A copy; systems that occur in only one run keep their names.
    """
    runs_per_system = df.groupby("system")["run"].nunique()
    shared = df["system"].map(runs_per_system).gt(1).to_numpy()
    out = df.copy()
    out.loc[shared, "system"] = (df["run"] + "/" + df["system"])[shared]
    return out


def usable(df: pd.DataFrame) -> pd.Series:
    """Return the mask of rows whose value counts: status ``"ok"`` and a finite value.

    Parameters
    ----------
    df : pd.DataFrame
        A results table.

    Returns
    -------
    pd.Series of bool
        True where the row enters statistics; the other rows are counted as failed.
    """
    return df["status"].eq(OK) & np.isfinite(df["value"].to_numpy())


def one_value_per_utterance(df: pd.DataFrame, source="results") -> None:
    """Check that each (system, utterance, metric) appears once, whatever the run.

    Statistics resample utterances; a system repeated across merged runs would count each of
    its utterances twice, so the caller must give such systems distinct names first.

    Raises
    ------
    InputError
        Naming the first repeated (system, utterance, metric).
    """
    _check_unique(df, ("system", "utterance", "metric"), source,
                  "; give a system that appears in several runs a distinct name per run")
