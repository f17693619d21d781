"""The ``refinebot`` command line: the Typer app, its global options (version, verbosity) and the entry point."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Annotated, NoReturn

import typer

from refinebot import __version__, logs
from refinebot.cli.agenda import agenda
from refinebot.cli.configuration import config_app
from refinebot.cli.console import err, exit_frees_nothing
from refinebot.cli.database import db_app
from refinebot.cli.digest import digest
from refinebot.cli.report_page import report as report_command
from refinebot.cli.rule_help import rules_command
from refinebot.cli.scan import DEMO_AS_OF, demo, demo_config_path, scan
from refinebot.cli.serve import serve_command
from refinebot.cli.suppress import suppress_app

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

app = typer.Typer(
    name="refinebot",
    help="Keep Jira and Azure DevOps backlogs ready for refinement.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain Click help: no '<bool>' placeholders, fits 80 columns
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command()(scan)
app.command()(digest)
app.command()(demo)
app.command()(agenda)
app.command("report")(report_command)
app.command("rules")(rules_command)
app.command("serve")(serve_command)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(suppress_app, name="suppress")


def _version(value: bool) -> None:
    if value:
        print(f"refinebot {__version__}")
        raise typer.Exit()


def configure_logging(verbose: int, quiet: bool, *, service: bool = False) -> None:
    """Log to stderr at ``REFINEBOT_LOG_LEVEL`` (default WARNING), ``-v`` INFO, ``-vv`` DEBUG, ``-q`` ERROR,
    in ``REFINEBOT_LOG_FORMAT`` (text, json, or auto: json when stderr is not a terminal; the default
    for the ``service``, ``serve``, and text for the other commands)."""
    raw = os.environ.get("REFINEBOT_LOG_LEVEL", "WARNING").strip().upper()
    if raw not in LOG_LEVELS:
        err.print(f"error: REFINEBOT_LOG_LEVEL={raw!r} is not a log level (one of: {', '.join(LOG_LEVELS)})")
        raise typer.Exit(1)
    level = logging.getLevelName(raw)
    if verbose:
        level = logging.DEBUG if verbose > 1 else logging.INFO
    if quiet:
        level = logging.ERROR
    logs.configure(level, logs.format_from_env("auto" if service else "text"))
    # The jira package logs a failed request's whole response (a login page, say) at ERROR before
    # raising; the connector's own error says what matters, once.
    logging.getLogger("jira").setLevel(logging.CRITICAL)


@app.callback()
def main_options(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", metavar="", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, metavar="", help="More log lines (-vv: debug).")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", metavar="", help="Only errors.")] = False,
) -> None:
    """Keep Jira and Azure DevOps backlogs ready for refinement.

    The log level is also set by REFINEBOT_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR).
    """
    configure_logging(verbose, quiet, service=ctx.invoked_subcommand == "serve")


class Interrupted(BaseException):
    """Ctrl-C, raised past Click (which would print 'Aborted!') to the entry point."""


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: quiet on a closed pipe (``refinebot demo | head``), 'interrupted' on Ctrl-C."""
    signal.signal(signal.SIGINT, _interrupt)
    try:
        app(args=list(argv) if argv is not None else None, prog_name="refinebot")
    except Interrupted:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away: send nothing more (and no traceback) to the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)


def run() -> NoReturn:
    """The console script and ``python -m refinebot``: ``main``, then the process ends at once.

    What the command left alive (a 200k scan's backlog, duplicate index and half a million
    findings: 1.2 GB of objects) would otherwise be freed one object at a time by the interpreter's
    teardown, 0.4-0.8 s after the output is complete. The exit handlers still run (log handlers,
    child processes, temporary folders) and both streams are flushed; then the OS takes the rest.
    While another thread still runs, the process exits as usual, so that thread can finish; so it
    does under a profiler or tracer (``python -m cProfile -o out -m refinebot ...``), which writes
    its results after ``run`` returns.
    ``main`` itself returns normally, for callers in a process that goes on.
    """
    exit_frees_nothing()
    try:
        main()
        code: int = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # sys.exit("message"): printed as the interpreter would
            sys.stderr.write(f"{exc.code}\n")
            code = 1
    this = threading.current_thread()
    if any(t is not this and t.is_alive() and not t.daemon for t in threading.enumerate()):
        # Another thread still works (serve's request handlers, an executor's workers): the
        # interpreter's own exit joins them first, which the exit handlers below do not.
        sys.exit(code)
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)  # under cProfile, a debugger or a tracer: they write their results after this

    # What the interpreter itself calls at exit (atexit has no public way to run the handlers
    # early); os._exit then skips only the teardown that frees every object.
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:  # the reader went away: exit 1, as ``main`` does
            code = code or 1
        except ValueError:
            pass  # closed by the command: nothing left to flush, as at the interpreter's own exit
    os._exit(code)


__all__ = ["DEMO_AS_OF", "app", "demo_config_path", "main", "run"]
