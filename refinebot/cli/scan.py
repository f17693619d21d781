"""``refinebot scan`` and ``refinebot demo``: fetch backlogs, run the rules, print the findings."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from refinebot.cli.console import (
    ConfigOption,
    ProjectOption,
    error,
    keep_until_exit,
    load,
    out,
    registry,
    require_projects,
)
from refinebot.cli.report import OutputFormat, RenderedRows, print_results, report_failures, worst_at_least
from refinebot.config import DEFAULT_CONFIG_PATH, LoadedConfig
from refinebot.models import Severity
from refinebot.terminal import TerminalProgress

# The store (SQLAlchemy, Alembic) and the pipeline load when a scan runs, not for every command:
# together they were half of the start-up of ``refinebot rules`` and ``--help``.
if TYPE_CHECKING:
    from refinebot.store import Store

DEMO_AS_OF = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

FormatOption = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="table, json (the findings) or report-json (findings and projects)."),
]
LimitOption = Annotated[
    int | None,
    typer.Option(
        "--limit",
        min=0,
        metavar="N",
        help="Issues shown per project in the table (0: all; default on a terminal: 50).",
    ),
]


def parse_now(value: str | None) -> datetime | None:
    """``--now`` as an aware date-time (UTC when no zone is given)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO date-time: {value!r}", param_hint="--now") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def open_store(loaded: LoadedConfig) -> Store:
    """The config's store (migrated), or the reason printed and exit 1."""
    from refinebot.store import Store, StoreError

    try:
        return Store.from_config(loaded)
    except StoreError as exc:
        error(str(exc))
        raise typer.Exit(1) from None


def scan(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    project: ProjectOption = None,
    fmt: FormatOption = OutputFormat.TABLE,
    limit: LimitOption = None,
    full: Annotated[
        bool, typer.Option("--full", metavar="", help="Ignore incremental state; fetch everything.")
    ] = False,
    now: Annotated[
        str | None,
        typer.Option("--now", metavar="ISO-TIME", help="Evaluate as of this ISO date-time (default: now)."),
    ] = None,
    fail_on: Annotated[
        Severity | None,
        typer.Option("--fail-on", help="Exit 1 when a finding of this severity or worse exists."),
    ] = None,
) -> None:
    """Fetch configured projects, run the rules and print the findings."""
    from refinebot.digest import scan_inputs
    from refinebot.pipeline import run, settled_objects, while_waiting

    rules = registry()
    loaded = load(config, rules, check_env=False)
    require_projects(loaded, project)
    # scan writes no record (findings, suppressions, comments): only the sync state, a copy of the
    # tracker's data, so the next scan or digest syncs incrementally, and the rules' cache (the
    # duplicate index, which a digest keeps too), so the next run re-vectorises only what changed
    # instead of the whole backlog (benchmarks/scan_scale.py --second).
    # JSON rows of the issue rules' findings are encoded while a child runs the backlog rules.
    rendered = RenderedRows() if fmt is OutputFormat.JSON else None
    with (
        open_store(loaded) as store,
        TerminalProgress() as progress,
        while_waiting(rendered.add) if rendered is not None else nullcontext(),
    ):
        results = run(
            loaded,
            project or None,
            registry=rules,
            now=parse_now(now),
            full=full,
            progress=progress,
            inputs_for=lambda key: replace(scan_inputs(store, key), cache=store.rule_cache(key)),
        )
    # Everything alive now (the backlog, the duplicate index, half a million findings at 200k) stays
    # while the output is written: the collector's full passes over it would free nothing. The
    # pipeline's block, so that an in-process caller (tests, the CLI app called from code) keeps no
    # frozen heap afterwards, and a caller's own freeze is left as it was.
    with settled_objects():
        print_results(results, fmt, limit=limit, rendered=rendered)
    code = report_failures(results)
    keep_until_exit((results, rendered))
    if code == 0 and fail_on is not None and worst_at_least(results, fail_on):
        code = 1
    raise typer.Exit(code)


def demo_config_path() -> Path:
    """The bundled demo config (its file source points at the bundled demo backlog)."""
    return Path(str(resources.files("refinebot.demo") / "config.toml"))


def demo(fmt: FormatOption = OutputFormat.TABLE, limit: LimitOption = None) -> None:
    """Run every rule on the bundled demo backlog (no accounts needed)."""
    from refinebot.pipeline import run

    started = time.perf_counter()
    rules = registry()
    loaded = load(demo_config_path(), rules)
    results = run(loaded, registry=rules, now=DEMO_AS_OF)
    print_results(results, fmt, limit=limit)
    if fmt is OutputFormat.TABLE:
        from refinebot.cli.agenda import AgendaFormat, agendas, print_agendas

        out.print()
        print_agendas(loaded, agendas(loaded, results, DEMO_AS_OF), AgendaFormat.TEXT)
        out.print()
        out.print(
            f"[dim]Demo backlog as of {DEMO_AS_OF:%Y-%m-%d}; ran in {time.perf_counter() - started:.2f} s. "
            "Next: 'refinebot rules NAME' explains a rule; 'refinebot agenda --format blocks' shows "
            "the Slack message; 'refinebot config init' starts your own config.[/]",
            highlight=False,
        )
    raise typer.Exit(report_failures(results))
