"""The paper table: cells from the summary, columns in the given order, LaTeX escaped."""
import math

import pandas as pd
import pytest

from reports.paper import PaperColumn, latex_text, paper_latex, paper_table
from wavebench_base.errors import InputError

COLUMNS = [PaperColumn("mcd", "MCD", "dB", False), PaperColumn("pesq_wb", "PESQ", "", True),
           PaperColumn("stoi", "STOI", "", True)]


def _summary(rows):
    return pd.DataFrame(rows, columns=["system", "metric", "n", "mean", "ci_low", "ci_high"])


def test_cells_follow_the_columns_order_not_the_summary_order():
    summary = _summary([("b", "stoi", 3, 0.91, 0.9, 0.92), ("b", "mcd", 3, 4.0, 3.5, 4.5),
                        ("a", "mcd", 3, 5.0, 4.0, 6.0)])
    table, absent = paper_table(summary, COLUMNS, digits=2)
    assert list(table.columns) == ["system", "MCD (dB) ↓", "STOI ↑"]
    assert absent == ["pesq_wb"]
    assert table.to_dict("records") == [
        {"system": "b", "MCD (dB) ↓": "4.00 [3.50, 4.50]", "STOI ↑": "0.91 [0.90, 0.92]"},
        {"system": "a", "MCD (dB) ↓": "5.00 [4.00, 6.00]", "STOI ↑": "–"}]  # a has no STOI


def test_a_metric_without_values_or_interval_reads_plainly():
    summary = _summary([("a", "mcd", 0, math.nan, math.nan, math.nan),
                        ("b", "mcd", 1, 4.0, math.nan, math.nan)])
    table, _ = paper_table(summary, COLUMNS[:1])
    assert list(table["MCD (dB) ↓"]) == ["–", "4.000"]


def test_latex_is_booktabs_with_escaped_text():
    table = pd.DataFrame({"system": ["a_b & c%", "#1"], "STOI ↑": ["0.9 [0.8, 1.0]", "–"]})
    latex = paper_latex(table, caption="50% of $x", label="tab:res")
    lines = latex.splitlines()
    assert lines[:5] == [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{lc}", r"\toprule",
                         r"System & STOI $\uparrow$ \\"]
    assert r"a\_b \& c\% & 0.9 [0.8, 1.0] \\" in lines and r"\#1 & -- \\" in lines
    assert r"\caption{50\% of \$x}" in lines and r"\label{tab:res}" in lines
    assert lines[-3:] == [r"\caption{50\% of \$x}", r"\label{tab:res}", r"\end{table}"]
    assert latex_text("{~^}\\") == r"\{\textasciitilde{}\textasciicircum{}\}\textbackslash{}"


def test_a_table_that_is_not_a_summary_is_refused():
    with pytest.raises(InputError, match="ci_high, ci_low"):
        paper_table(pd.DataFrame({"system": ["a"], "metric": ["mcd"], "mean": [1.0]}), COLUMNS)
