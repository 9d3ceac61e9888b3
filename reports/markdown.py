"""A DataFrame as a GitHub-flavoured Markdown pipe table (no ``tabulate`` needed)."""
from __future__ import annotations

import html

import pandas as pd

from reports.cells import format_cell, is_numeric_column
from wavebench_base.errors import InputError


def to_markdown(df: pd.DataFrame, digits: int = 4) -> str:
    """Render a table as Markdown.

    Parameters
    ----------
    df : pd.DataFrame
        Any table; its index is not shown (reset it first to show it).
    digits : int
        Significant digits for non-integral numbers (see :func:`reports.cells.format_cell`).

    Returns
    -------
    str
        A pipe table ending in a newline: header, alignment row (numbers right-aligned) and one
        line per row, columns padded to equal width. ``|`` in a cell is escaped and line breaks
        become spaces, so every row stays on one line; ``<``, ``>`` and ``&`` become entities
        (see :func:`markdown_text`).

    Raises
    ------
    InputError
        ``df`` is not a DataFrame or has no columns.

    Examples
    --------
    >>> print(to_markdown(pd.DataFrame({"system": ["a"], "mean": [2.51234]})), end="")
    | system |  mean |
    | :----- | ----: |
    | a      | 2.512 |
    """
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"to_markdown needs a pandas DataFrame, got {type(df).__name__}")
    if df.shape[1] == 0:
        raise InputError("to_markdown: the table has no columns")
    header = [_escape(str(c)) for c in df.columns]
    right = [is_numeric_column(df.iloc[:, j]) for j in range(df.shape[1])]
    body = [[_escape(format_cell(v, digits)) for v in row]
            for row in df.itertuples(index=False, name=None)]
    widths = [max(3, len(header[j]), *(len(r[j]) for r in body)) for j in range(len(header))]
    rule = [("-" * (w - 1) + ":") if r else (":" + "-" * (w - 1)) for w, r in zip(widths, right)]
    lines = [_line(header, widths, right), _line(rule, widths, right)]
    lines += [_line(r, widths, right) for r in body]
    return "\n".join(lines) + "\n"


def markdown_text(text) -> str:
    """Text from users (names, notes, free-text answers) made inert in Markdown.

    Markdown renderers pass raw HTML through, so ``<script>`` or ``<img onerror=...>`` in a
    system name or a rater's comment would run in the reader's viewer. ``<``, ``>`` and ``&``
    become HTML entities, which every renderer shows as the characters themselves.

    Examples
    --------
    >>> markdown_text("<img src=x onerror=alert(1)>")
    '&lt;img src=x onerror=alert(1)&gt;'
    """
    return html.escape(str(text), quote=False)


def _escape(text: str) -> str:
    text = markdown_text(text).replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def _line(cells: list[str], widths: list[int], right: list[bool]) -> str:
    padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)]
    return "| " + " | ".join(padded) + " |"
