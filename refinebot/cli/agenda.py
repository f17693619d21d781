"""``refinebot agenda``: print each project's pre-refinement agenda (text, JSON or the Slack payload), writing nothing.

It shows what the next digest would: the stored suppressions apply (snoozes, ignores, pairs marked not a
duplicate, items removed from the agenda) and the readiness is compared with the previous cycle's stored
one. The database is only read: no migration, no sync-state save (the connector's lasts for the process),
no rule-cache write; without a database yet the agenda is shown without history.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from refinebot.agenda import Agenda, AgendaSettings, build_agenda, render_text
from refinebot.cli.console import ConfigOption, ProjectOption, error, load, out, registry, require_projects
from refinebot.cli.report import report_failures, write_json
from refinebot.config import DEFAULT_CONFIG_PATH, LoadedConfig
from refinebot.cycle import LastRun, current_cycle
from refinebot.slack.blocks import backlog_url, digest_payload
from refinebot.suppressions import Suppression
from refinebot.terminal import TerminalProgress

# Loaded when an agenda runs, not for every command: connectors and their SDKs, SQLAlchemy and Alembic.
if TYPE_CHECKING:
    from refinebot.pipeline import ProjectInputs, ProjectResult
    from refinebot.store import Store


class AgendaFormat(StrEnum):
    """How the agenda is printed."""

    TEXT = "text"
    JSON = "json"
    BLOCKS = "blocks"


def agendas(
    loaded: LoadedConfig,
    results: Sequence[ProjectResult],
    now: datetime,
    *,
    suppressions: Sequence[Suppression] = (),
    previous_shares: dict[str, float] | None = None,
    last_run: LastRun | None = None,
) -> list[Agenda]:
    """The agenda of every project that ran, with ``suppressions`` applied and last cycle's share shown."""
    built = []
    for result in results:
        if not result.ok:
            continue
        settings = loaded.config.projects[result.project]
        built.append(
            build_agenda(
                result.project,
                current_cycle(loaded.config, result.project, now, last_run),
                result.issues,
                result.all_findings,  # hidden ones too: a snoozed or removed item is listed as set aside
                [s for s in suppressions if s.project == result.project],
                now,
                AgendaSettings.from_project(settings),
                previous_share=(previous_shares or {}).get(result.project),
            )
        )
    return built


@contextmanager
def read_only_store(loaded: LoadedConfig) -> Iterator[Store | None]:
    """The config's store opened without migrating, or None when there is no database yet.

    A database at another schema revision is an error (exit 1): migrating it would be a write.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from refinebot.store import Store, StoreError
    from refinebot.store.engine import database_url_for, describe_error, is_sqlite_file
    from refinebot.store.migrate import current_revision, head_revision

    url = database_url_for(loaded)
    if is_sqlite_file(url) and not Path(str(url.database)).exists():
        yield None  # creating the file would be a write
        return
    try:
        store = Store.open(url, migrate=False)
    except StoreError as exc:
        error(str(exc))
        raise typer.Exit(1) from None
    try:
        try:
            revision = current_revision(store.engine)
        except SQLAlchemyError as exc:
            error(f"cannot read the database at {store.url}: {describe_error(exc, store.engine.url)}")
            raise typer.Exit(1) from None
        if revision is None:
            yield None  # an empty database: no history to show
            return
        if revision != head_revision():
            error(
                f"the database at {store.url} is at schema revision {revision}, this refinebot needs "
                f"{head_revision()}: run 'refinebot db upgrade' (agenda only reads the database)"
            )
            raise typer.Exit(1)
        yield store
    finally:
        store.close()


def stored_inputs(store: Store, project: str) -> ProjectInputs:
    """What a project's agenda run is given from the store, read only: suppressions, rule cache, bot
    activity and the sync state (saves kept in memory)."""
    from refinebot.digest import scan_inputs
    from refinebot.store.sync_state import ReadThroughSyncState

    return replace(scan_inputs(store, project), state=ReadThroughSyncState(store.sync_state))


def previous_shares(
    store: Store, loaded: LoadedConfig, projects: Sequence[str], now: datetime
) -> dict[str, float]:
    """Each project's readiness share recorded for the cycle before the one ``now`` falls in."""
    shares: dict[str, float] = {}
    for project in projects:
        cycle = current_cycle(loaded.config, project, now, store.cycle_last_run)
        previous = store.readiness.previous(project, cycle)
        if previous is not None:
            shares[project] = previous.share
    return shares


def print_agendas(loaded: LoadedConfig, built: Sequence[Agenda], fmt: AgendaFormat) -> None:
    """Print ``built`` in ``fmt``: text for people, JSON for scripts, blocks as the exact Slack payload."""
    if fmt is AgendaFormat.JSON:
        write_json([a.to_json() for a in built])
        return
    if fmt is AgendaFormat.BLOCKS:
        payloads: list[dict[str, Any]] = [
            digest_payload(a, backlog_url=backlog_url(loaded, a.project)) for a in built
        ]
        write_json(payloads[0] if len(payloads) == 1 else payloads)
        return
    for index, built_agenda in enumerate(built):
        if index:
            out.print()
        out.print(Text(render_text(built_agenda)), soft_wrap=True)


def agenda(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    project: ProjectOption = None,
    fmt: Annotated[
        AgendaFormat,
        typer.Option(
            "--format",
            "-f",
            help="text (a preview), json (a list, one per project) or blocks (the Slack payload; "
            "a list when several projects).",
        ),
    ] = AgendaFormat.TEXT,
    now: Annotated[
        str | None,
        typer.Option("--now", metavar="ISO-TIME", help="As of this ISO date-time (default: now)."),
    ] = None,
) -> None:
    """Print the next refinement session's agenda per project; posts and stores nothing."""
    from refinebot.cli.scan import parse_now
    from refinebot.pipeline import run

    rules = registry()
    loaded = load(config, rules, check_env=False)
    require_projects(loaded, project)
    as_of = parse_now(now) or datetime.now(UTC)
    selected = list(project or loaded.config.projects)
    with read_only_store(loaded) as store, TerminalProgress() as progress:
        results = run(
            loaded,
            selected,
            registry=rules,
            now=as_of,
            progress=progress,
            inputs_for=(lambda key: stored_inputs(store, key)) if store is not None else None,
        )
        suppressions: list[Suppression] = []
        shares: dict[str, float] = {}
        last_run = store.cycle_last_run if store is not None else None
        if store is not None:
            for key in selected:
                suppressions.extend(store.suppressions.list_suppressions(key))
            shares = previous_shares(store, loaded, selected, as_of)
    built = agendas(
        loaded, results, as_of, suppressions=suppressions, previous_shares=shares, last_run=last_run
    )
    print_agendas(loaded, built, fmt)
    raise typer.Exit(report_failures(results))
