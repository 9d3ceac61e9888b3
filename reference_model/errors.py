"""The one exception type for bad input to the reference model and its data pipeline."""


class InputError(ValueError):
    """Bad user input: a file, a value or a setting that cannot be used.

    The message is one line, ``"<file>: <problem>"`` where a file is involved, so the command
    line can print it as ``error: <message>`` and exit 1 without a traceback.
    """

    def __init__(self, message: str, path=None):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)
