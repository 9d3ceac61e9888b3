"""The one exception type for bad input to the reference model and its data pipeline."""


class InputError(ValueError):
    """Bad user input: a file, a value or a setting that cannot be used.

    The message is one line, ``"<file>: <problem>"`` where a file is involved, so the command
    line can print it as ``error: <message>`` and exit 1 without a traceback.
    """

    def __init__(self, message: str, path=None):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class PeerLost(RuntimeError):
    """Another process of a distributed run stopped, so this one cannot go on.

    The process that failed has printed the reason; this one exits quietly with
    ``PEER_LOST_EXIT`` so that the launcher (or torchrun) reports that reason alone.
    """


PEER_LOST_EXIT = 3
