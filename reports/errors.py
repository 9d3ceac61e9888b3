"""The exception types for bad input to the reports package."""
from __future__ import annotations


class InputError(ValueError):
    """Bad user input: a table, a file or a value that cannot be reported.

    The message is one line, ``"<file>: <problem>"`` where a file is involved, so the command
    line can print it as ``error: <message>`` and exit 1 without a traceback.

    Parameters
    ----------
    message : str
        What is wrong, with the values, and what to do.
    path : str or os.PathLike, optional
        The file (or other named source) the problem is in; it prefixes the message.
    """

    def __init__(self, message: str, path=None):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class MissingDependencyError(InputError):
    """An optional package that the requested output needs is not installed.

    It is an :class:`InputError` so that the command line reports it as one line; the
    message names the package and the command that installs it.
    """
