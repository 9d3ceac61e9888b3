"""wavebench: evaluation and benchmarking of neural waveform generators."""
from wavebench_base.runinfo import tool_version

__all__ = ["tool_version"]
