"""System names as users give them on the command line, checked once before any work is done.

A name becomes a folder, a CSV cell, a Markdown table cell and an HTML label, so it may not look
like a path, a spreadsheet formula or reordered text, and may not pose as a built-in oracle.
"""
from __future__ import annotations

import unicodedata

from wavebench_base.errors import InputError

#: Systems computed from the references themselves are called ``oracle_<kind>``.
ORACLE_PREFIX = "oracle_"
MAX_NAME_LENGTH = 100
_FORMULA_START = ("=", "+", "-", "@")


def check_system_name(name: str, what: str = "system name") -> str:
    """Return ``name`` if it can name a system; raise one line saying why not.

    Parameters
    ----------
    name : str
    what : str
        How the message calls it (``"system name"``, ``"--system"``).

    Raises
    ------
    InputError
        Empty or over :data:`MAX_NAME_LENGTH` characters; holds ``/`` or ``\\``, a control,
        format or bidirectional character (U+202E and friends reorder what a reader sees);
        starts with ``=``, ``+``, ``-`` or ``@`` (a spreadsheet formula) or with ``.``; or
        starts with ``oracle_``, which is reserved for ``--oracle``.

    Examples
    --------
    >>> check_system_name("hifigan_v1")
    'hifigan_v1'
    """
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{what} is empty; give NAME=DIR")
    shown = name.encode("unicode_escape").decode("ascii")
    if len(name) > MAX_NAME_LENGTH:
        raise InputError(f"{what} {shown[:40]!r}... is longer than {MAX_NAME_LENGTH} characters")
    if "/" in name or "\\" in name:
        raise InputError(f"{what} {shown!r} holds a path separator; a name is one word, "
                         f"such as NAME=DIR with NAME free of '/'")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise InputError(f"{what} {shown!r} holds control or bidirectional formatting characters")
    if name.startswith(_FORMULA_START) or name.startswith("."):
        raise InputError(f"{what} {shown!r} starts with {name[0]!r}; names may not start with "
                         f"=, +, -, @ (spreadsheet formulas) or '.'")
    if name.startswith(ORACLE_PREFIX):
        raise InputError(f"{what} {shown!r}: names starting with {ORACLE_PREFIX!r} are reserved "
                         f"for --oracle systems")
    return name
