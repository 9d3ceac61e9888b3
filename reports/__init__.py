"""Reports: the long results table, summaries with bootstrap intervals, comparisons, rendering."""
from reports.compare import compare_systems
from reports.files import read_csv_table, write_csv, write_json, write_parquet
from reports.html import Image, Section, render_html, write_html
from reports.markdown import markdown_text, to_markdown
from reports.summary import summarize
from reports.table import concat_results, make_results_table, name_systems_by_run, validate_results

# The plots need matplotlib (most of a second to import): load them on first use only.
_PLOTS = ("plot_metric_distribution", "plot_spectrogram_pair", "plot_speed", "plot_training_curve")

__all__ = [
    "make_results_table", "validate_results",
    "concat_results", "name_systems_by_run", "summarize", "compare_systems", "write_csv",
    "write_parquet", "write_json", "read_csv_table", "to_markdown", "markdown_text",
    *_PLOTS, "Section",
    "Image", "render_html", "write_html",
]


def __getattr__(name):
    if name in _PLOTS:
        from reports import plots
        return getattr(plots, name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
