"""What the command modules share: the click context, the ``--no-progress`` option, the
progress-bar rule and the distributed-run helpers (``RAW_ARGS``, :func:`rank_prefix`)."""
from __future__ import annotations

import os
import sys

import click

#: Context settings of every command and group: ``-h`` as well as ``--help``, 100 columns.
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: The command line as given (set by :func:`wavebench.cli.main`): ``train --nproc N`` starts
#: its workers with the same arguments.
RAW_ARGS: list[str] = []


def no_progress_option(help: str = "Hide the progress bar."):
    """The ``--no-progress`` flag; pass it on through :func:`show_progress`."""
    return click.option("--no-progress", is_flag=True, help=help)


def show_progress(no_progress: bool) -> bool:
    """Progress bars on an interactive terminal only: logs and pipes get plain lines."""
    return not no_progress and sys.stderr.isatty()


def rank_prefix() -> str:
    """Names the process in errors from a distributed worker other than rank 0."""
    rank = os.environ.get("RANK", "0")
    return f"[rank {rank}] " if os.environ.get("WORLD_SIZE", "1") != "1" and rank != "0" else ""


def log_to_stderr(line: str) -> None:
    """The ``log`` callback of the work functions: one line to stderr."""
    click.echo(line, err=True)
