"""The one error hierarchy of wavebench, and the exit code each error gives the command line.

Every package raises these; the command line turns them into exit codes without a traceback:

- :class:`InputError` (and :class:`MissingDependencyError`): exit 1, printed as
  ``error: <message>``; the user's input cannot be used, or an optional package is missing;
- :class:`PeerLost`: exit 3, silently; another process of a distributed run stopped and said why;
- a click usage error: exit 2; an interrupt (Ctrl-C): exit 130, with everything written so far
  complete.

Anything else is a bug, and keeps its traceback.
"""
from __future__ import annotations


class WavebenchError(Exception):
    """Base of the errors the command line reports without a traceback."""

    exit_code = 1


class InputError(WavebenchError, ValueError):
    """Bad user input: a file, a value or a setting that cannot be used.

    The message is one line, ``"<file>: <problem>"`` where a file is involved, so the command
    line can print it as ``error: <message>`` and exit 1 without a traceback.

    Parameters
    ----------
    message : str
        What is wrong, with the values, and what to do.
    path : str or os.PathLike, optional
        The file (or other named source) the problem is in; it prefixes the message.
    reason : str, optional
        A short status for a scoring run that records this error against one pair instead of
        stopping (see ``metrics.validation.INPUT_REASONS``).

    Examples
    --------
    >>> str(InputError("sample rate 8000 Hz, expected 16000 Hz", "clips/a.wav"))
    'clips/a.wav: sample rate 8000 Hz, expected 16000 Hz'
    """

    exit_code = 1

    def __init__(self, message: str, path=None, reason: str = "bad_input"):
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {message}" if self.path else message)


class MissingDependencyError(InputError):
    """An optional package that the requested output needs is not installed.

    The message names the package and the command that installs it.
    """


class PeerLost(WavebenchError, RuntimeError):
    """Another process of a distributed run stopped, so this one cannot go on.

    The process that failed has printed the reason; this one exits quietly with
    :data:`PEER_LOST_EXIT` so that the launcher (or torchrun) reports that reason alone.
    """

    exit_code = 3


PEER_LOST_EXIT = PeerLost.exit_code
