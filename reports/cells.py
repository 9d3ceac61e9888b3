"""How a table cell is written as text, shared by the Markdown and HTML renderers."""
from __future__ import annotations

import math
import numbers
import re

import numpy as np
import pandas as pd

#: Shown for a missing number (NaN, None); a blank cell would look like a rendering fault.
MISSING = "n/a"


def format_cell(value, digits: int = 4) -> str:
    """Write one table value as short, readable text.

    Parameters
    ----------
    value : object
        A number, string, bool, None or NaN.
    digits : int
        Significant digits for non-integral numbers.

    Returns
    -------
    str
        Integers in full; other numbers with ``digits`` significant digits in fixed notation
        when 1e-3 <= |x| < 1e9 (so 16000.0 stays "16000"), otherwise in scientific notation;
        NaN and None as :data:`MISSING`; anything else as ``str(value)``, with control and
        bidirectional formatting characters shown escaped (see :func:`visible_text`).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        x = float(value)
        if math.isnan(x):
            return MISSING
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if x == 0.0 or x.is_integer() and abs(x) < 1e9:
            return str(int(x))
        if 1e-3 <= abs(x) < 1e9:
            decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
            return f"{x:.{decimals}f}"
        return f"{x:.{digits}g}"
    return visible_text(str(value))


def visible_text(text: str) -> str:
    """``text`` with control and format characters written as escapes (``\\u202e``).

    Tabs and line breaks are kept: each renderer lays them out (Markdown rows turn them into
    spaces).

    A right-to-left override (U+202E) or an isolate in a name would reorder the text after it
    in a table, so that a reader sees another name or another number than the one stored.

    Examples
    --------
    >>> visible_text("abc\u202egpj.exe")
    'abc\\\\u202egpj.exe'
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in " \t\n\r" else
                   c.encode("unicode_escape").decode("ascii") for c in text)


def is_numeric_column(column: pd.Series) -> bool:
    """Return True when a column holds numbers (not bools), so it is right-aligned."""
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


# OWASP's CSV-injection rule: a spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = re.compile(r"'*[=+\-@\t\r]")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_text(text: str) -> str:
    """A text cell for CSV that a spreadsheet shows as text, never runs as a formula.

    A cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading
    apostrophe (the OWASP rule), unless it is a plain number ("-3.5" stays a number). A cell
    already starting with apostrophes before such a character gets one more, so that
    :func:`csv_untext` restores every cell exactly.

    Examples
    --------
    >>> csv_text("=HYPERLINK(1)"), csv_text("-3.5"), csv_text("tiny")
    ("'=HYPERLINK(1)", '-3.5', 'tiny')
    """
    if _FORMULA_START.match(text) and not _is_number(text):
        return "'" + text
    return text


def csv_untext(text: str) -> str:
    """The inverse of :func:`csv_text`: one leading apostrophe before a formula start removed."""
    if text.startswith("'") and _FORMULA_START.match(text[1:]) and not _is_number(text[1:]):
        return text[1:]
    return text
