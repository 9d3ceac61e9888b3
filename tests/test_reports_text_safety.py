"""Text from users cannot act: no spreadsheet formulas in CSV, no raw HTML in Markdown."""
import csv

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reports import markdown_text, read_csv_table, to_markdown, write_csv
from reports.cells import csv_text, csv_untext
from reports.files import read_csv_strings

TRIGGERS = ["=1+2", "+A1", "-cmd|' /C calc'!A0", "@SUM(A1:A2)", "\tx", "=HYPERLINK(\"x\")"]


@pytest.mark.parametrize("cell", TRIGGERS)
def test_formula_cells_are_written_as_text(tmp_path, cell):
    path = write_csv(pd.DataFrame({"system": [cell], "value": [1.5]}), tmp_path / "t.csv")
    with open(path, newline="") as f:
        written = list(csv.reader(f))[1][0]
    assert written == "'" + cell  # what a spreadsheet shows as text
    assert read_csv_strings(path)["system"].tolist() == [cell]  # and our readers restore it


def test_a_carriage_return_in_a_cell_does_not_split_the_record(tmp_path):
    df = pd.DataFrame({"device": ["laptop\rspeakers", "\rx", "a\r\nb"], "value": [1.0, 2.0, 3.0]})
    back = read_csv_strings(write_csv(df, tmp_path / "t.csv"))
    assert back["device"].tolist() == ["laptop\nspeakers", "\nx", "a\nb"]
    assert back["value"].tolist() == ["1.0", "2.0", "3.0"]


def test_numbers_stay_numbers(tmp_path):
    df = pd.DataFrame({"label": ["-3.5", "+2", "-inf"], "value": [-1.25, -0.0, -1e300]})
    text = write_csv(df, tmp_path / "t.csv").read_text()
    assert text.splitlines()[1:] == ["-3.5,-1.25", "+2,-0.0", "-inf,-1e+300"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("'=+-@\t\r 1.ae"), max_size=6))
def test_text_escaping_is_exactly_invertible(text):
    escaped = csv_text(text)
    assert csv_untext(escaped) == text
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(text)
        except ValueError:
            assert escaped.startswith("'")


def test_results_table_round_trips_a_formula_utterance(tmp_path):
    rows = pd.DataFrame({"run": ["r"], "system": ["s"], "utterance": ["=evil"], "metric": ["mcd"],
                         "value": [2.0], "status": ["ok"]})
    back = read_csv_table(write_csv(rows, tmp_path / "r.csv"))
    assert back["utterance"].tolist() == ["=evil"] and back["value"].tolist() == [2.0]


def test_markdown_escapes_html_in_cells_and_text():
    table = to_markdown(pd.DataFrame({"system": ["<script>alert(1)</script>"],
                                      "device": ['<img src=x onerror="alert(1)">'],
                                      "mean": [1.0]}))
    assert "<" not in table and ">" not in table
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in table
    assert markdown_text("a & <b>") == "a &amp; &lt;b&gt;"


def test_bidirectional_characters_are_shown_escaped_in_tables():
    """A right-to-left override would make a reader see another name than the one stored."""
    from reports import Section, render_html
    df = pd.DataFrame({"system": ["good\u202edab"], "mean": [1.0]})
    table = to_markdown(df)
    page = render_html([Section("s", table=df)], "t")
    assert "\u202e" not in page and "good\\u202edab" in page
    assert "\u202e" not in table and "good\\\\u202edab" in table  # Markdown doubles a backslash
