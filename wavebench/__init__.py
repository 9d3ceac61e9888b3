"""wavebench: evaluation and benchmarking of neural waveform generators."""
from importlib import metadata


def tool_version() -> str:
    """The installed wavebench version ("unknown" when run from a source tree)."""
    try:
        return metadata.version("wavebench")
    except metadata.PackageNotFoundError:
        return "unknown"
