"""Which exceptions are the user's bad input (one line, exit 1) rather than bugs."""
from reference_model.errors import InputError as ModelInputError


def input_error_types() -> tuple:
    """The InputError classes of every package (each package defines its own)."""
    types = [ModelInputError]
    for module in ("metrics.checks", "reports.errors"):
        try:
            types.append(__import__(module, fromlist=["InputError"]).InputError)
        except (ImportError, AttributeError):
            pass
    return tuple(types)
