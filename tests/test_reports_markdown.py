"""Tests of cell formatting and the Markdown table renderer."""
import re

import numpy as np
import pandas as pd
import pytest

from reports.cells import MISSING, format_cell
from reports.markdown import to_markdown
from wavebench_base.errors import InputError


@pytest.mark.parametrize("value, text", [
    (2.51234, "2.512"),          # 4 significant digits
    (0.0123456, "0.01235"),
    (16000.0, "16000"),          # integral floats print as integers, no "1.6e+04"
    (123456.789, "123457"),
    (-0.5, "-0.5000"),
    (0.0002, "0.0002"),          # below 1e-3: general format, still readable
    (1.23456e-7, "1.235e-07"),
    (2.5e12, "2.5e+12"),
    (np.float32(0.25), "0.2500"),
    (7, "7"), (np.int64(64), "64"),
    (True, "yes"), (np.bool_(False), "no"),
    (float("nan"), MISSING), (None, MISSING), (pd.NA, MISSING),
    (float("inf"), "inf"), (-np.inf, "-inf"),
    ("cuda-graph", "cuda-graph"),
])
def test_format_cell(value, text):
    assert format_cell(value) == text


def _cells(line: str) -> list[str]:
    """Split a Markdown table line on unescaped pipes and undo the escapes."""
    inner = line.strip()[1:-1]
    parts = re.split(r"(?<!\\)\|", inner)
    return [p.strip().replace("\\|", "|") for p in parts]


def test_markdown_table_reads_back_cell_for_cell():
    df = pd.DataFrame({"system": ["wavenet", "a|b", "multi\nline"],
                       "mean": [2.51234, float("nan"), 16000.0],
                       "n": [3, 40, 500], "better": [True, False, True]})
    lines = to_markdown(df).splitlines()

    assert len(lines) == 2 + len(df)
    assert len({len(line) for line in lines}) == 1  # every line padded to the same width
    assert _cells(lines[0]) == ["system", "mean", "n", "better"]
    rule = _cells(lines[1])
    # Numbers right-aligned (---:), text and bools left-aligned (:---).
    assert [r.startswith(":") for r in rule] == [True, False, False, True]
    assert [r.endswith(":") for r in rule] == [False, True, True, False]
    for line, row in zip(lines[2:], df.itertuples(index=False)):
        expected = [format_cell(v).replace("\n", " ") for v in row]
        assert _cells(line) == expected


def test_markdown_ignores_the_index_and_ends_with_a_newline():
    df = pd.DataFrame({"x": [1.5]}, index=["hidden"])
    text = to_markdown(df)
    assert "hidden" not in text and text.endswith("|\n")
    assert text == "|     x |\n| ----: |\n| 1.500 |\n"


def test_markdown_refuses_non_tables():
    with pytest.raises(InputError, match=r"to_markdown needs a pandas DataFrame, got dict"):
        to_markdown({"a": [1]})
    with pytest.raises(InputError, match=r"to_markdown: the table has no columns"):
        to_markdown(pd.DataFrame())
