"""The `wavebench` command line: the top-level group, assembled from :mod:`wavebench.commands`
(one module per command group, each imported when its command runs or help lists it), and
:func:`main`, the exit-code contract."""
from __future__ import annotations

import importlib
import os
import sys
import traceback

import click

from wavebench.commands.context import CONTEXT, RAW_ARGS, rank_prefix
from wavebench_base.errors import PEER_LOST_EXIT, InputError, PeerLost

__all__ = ["COMMANDS", "RAW_ARGS", "cli", "entry", "main", "rank_prefix"]

#: Command name -> the click command (or group) in module ``wavebench.commands.<name>``.
COMMANDS = {"prepare": "prepare_command", "train": "train_command", "score": "score_command",
            "generate": "generate_command", "speed": "speed_command",
            "report": "report_command", "demo": "demo_command", "mos": "mos_group",
            "convert": "convert_command"}


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs (or help lists it). The command
    modules import their work (torch, numba, pandas, matplotlib) inside the command, so neither
    ``wavebench --help`` nor a quick command pays for imports it never uses."""

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx, name):
        if name in COMMANDS and name not in self.commands:
            module = importlib.import_module(f"wavebench.commands.{name}")
            self.add_command(getattr(module, COMMANDS[name]), name)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="wavebench")
def cli(debug):
    """wavebench: how good and how fast is a neural waveform generator?

    \b
    Quick start (no downloads, a few minutes on a laptop CPU):
      wavebench demo -o demo_out
    """


def main(argv=None) -> int:
    """Entry point: one-line errors (exit 1 for input, 2 for usage), tracebacks with --debug."""
    argv = list(sys.argv[1:] if argv is None else argv)
    RAW_ARGS[:] = argv  # `train --nproc N` starts its workers with the same arguments
    debug = "--debug" in argv or os.environ.get("WAVEBENCH_DEBUG") == "1"
    if "--debug" in argv[1:]:  # accepted after the command too: move it in front
        argv = ["--debug"] + [a for a in argv if a != "--debug"]
    code = 0
    try:
        result = cli.main(args=argv, prog_name="wavebench", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        code = 130
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except KeyboardInterrupt:
        if not rank_prefix():  # Ctrl-C reaches every process; one says so
            click.echo("error: interrupted; outputs written so far are complete (resume to "
                       "continue)", err=True)
        code = 130
    except PeerLost:  # the process that failed has said why; the launcher reports it
        if debug:
            traceback.print_exc()
        code = PEER_LOST_EXIT
    except InputError as exc:
        if debug:
            traceback.print_exc()
        if debug or not rank_prefix():  # every process sees the same input: rank 0 says it
            one_line = str(exc).replace("\r", "\\r").replace("\n", "\\n")  # names from files
            click.echo(f"{rank_prefix()}error: {one_line}", err=True)
        code = 1
    except OSError as exc:
        if debug:
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"{rank_prefix()}error: {where}{exc.strerror or exc}", err=True)
        code = 1
    except (MemoryError, RuntimeError) as exc:
        from metrics.validation import allocation_failed
        if not allocation_failed(exc):
            raise  # a bug: its traceback is what a report needs
        if debug:
            traceback.print_exc()
        detail = " ".join(str(exc).split())[:160]
        click.echo(f"{rank_prefix()}error: out of memory ({type(exc).__name__}"
                   f"{': ' + detail if detail else ''}); try shorter inputs, fewer --jobs or a "
                   f"smaller batch", err=True)
        code = 1
    return code


def entry() -> None:
    sys.exit(main())
