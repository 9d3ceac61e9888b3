"""A results table laid out as vocoder papers print theirs: one row per system, one column per
metric, each cell a mean with its confidence interval, the better direction in the header; as
Markdown, and as LaTeX (booktabs) to paste into a paper."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from reports.markdown import to_markdown
from wavebench_base.errors import InputError


@dataclass(frozen=True)
class PaperColumn:
    """One column: the metric it shows and how its header reads."""

    metric: str
    label: str
    unit: str
    higher_is_better: bool

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    def header(self) -> str:
        unit = f" ({self.unit})" if self.unit else ""
        return f"{self.label}{unit} {self.arrow}"


def paper_table(summary: pd.DataFrame, columns: Sequence[PaperColumn], *,
                digits: int = 3) -> tuple[pd.DataFrame, list[str]]:
    """The summary as one row per system and one column per metric in ``columns``' order.

    Parameters
    ----------
    summary : pd.DataFrame
        A table from :func:`reports.summarize` (system, metric, n, mean, ci_low, ci_high, ...).
    columns : sequence of PaperColumn
        The metrics to show, in order; those absent from ``summary`` are left out.
    digits : int
        Decimals of every number.

    Returns
    -------
    table : pd.DataFrame
        ``system`` then one text column per metric present, headed like ``"MCD (dB) ↓"``, each
        cell ``"mean [low, high]"`` (``"–"`` where a system has no value of that metric).
    absent : list of str
        The metrics of ``columns`` that no system has.

    Examples
    --------
    >>> summary = pd.DataFrame({"system": ["a", "b"], "metric": ["mcd", "mcd"], "n": [4, 4],
    ...                         "mean": [4.75, 3.25], "ci_low": [4.25, 3.0],
    ...                         "ci_high": [5.25, 3.5]})
    >>> table, absent = paper_table(summary, [PaperColumn("mcd", "MCD", "dB", False),
    ...                                       PaperColumn("stoi", "STOI", "", True)], digits=2)
    >>> table.to_dict("list")
    {'system': ['a', 'b'], 'MCD (dB) ↓': ['4.75 [4.25, 5.25]', '3.25 [3.00, 3.50]']}
    >>> absent
    ['stoi']
    """
    missing = {"system", "metric", "mean", "ci_low", "ci_high"} - set(summary.columns)
    if missing:
        raise InputError(f"a paper table needs a summary with {', '.join(sorted(missing))}")
    cells = {(row.system, row.metric): _cell(row.mean, row.ci_low, row.ci_high, digits)
             for row in summary.itertuples(index=False)}
    present = set(summary["metric"])
    shown = [column for column in columns if column.metric in present]
    absent = [column.metric for column in columns if column.metric not in present]
    systems = list(dict.fromkeys(summary["system"]))
    table = pd.DataFrame({"system": systems,
                          **{column.header(): [cells.get((system, column.metric), "–")
                                               for system in systems] for column in shown}})
    return table, absent


def _cell(mean: float, low: float, high: float, digits: int) -> str:
    if not math.isfinite(mean):
        return "–"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def paper_markdown(table: pd.DataFrame) -> str:
    """The paper table as a Markdown pipe table."""
    return to_markdown(table)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "↑": r"$\uparrow$", "↓": r"$\downarrow$",
                  "–": "--"}


def latex_text(text) -> str:
    """``text`` with LaTeX's special characters escaped (and the arrows and dash as LaTeX)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def paper_latex(table: pd.DataFrame, *, caption: str = "", label: str = "") -> str:
    """The paper table as a LaTeX ``table`` with booktabs rules (``\\usepackage{booktabs}``).

    Examples
    --------
    >>> table = pd.DataFrame({"system": ["hifi_gan"], "MCD (dB) ↓": ["4.75 [4.25, 5.25]"]})
    >>> print(paper_latex(table))
    \\begin{table}[t]
    \\centering
    \\begin{tabular}{lc}
    \\toprule
    System & MCD (dB) $\\downarrow$ \\\\
    \\midrule
    hifi\\_gan & 4.75 [4.25, 5.25] \\\\
    \\bottomrule
    \\end{tabular}
    \\end{table}
    """
    header = ["System", *table.columns[1:]]
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "c" * (len(header) - 1)
             + "}", r"\toprule", " & ".join(latex_text(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_text(v) for v in row) + r" \\"
              for row in table.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(r"\caption{" + latex_text(caption) + "}")
    if label:
        lines.append(r"\label{" + latex_text(label) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines)
