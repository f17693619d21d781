"""``refinebot agenda``: print each project's pre-refinement agenda (text, JSON or the Slack payload), writing nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from refinebot.agenda import Agenda, AgendaSettings, build_agenda, render_text
from refinebot.cli.console import ConfigOption, ProjectOption, load, out, registry, require_projects
from refinebot.cli.report import report_failures, write_json
from refinebot.config import DEFAULT_CONFIG_PATH, LoadedConfig
from refinebot.cycle import cycle_of, project_zone
from refinebot.slack.blocks import digest_payload
from refinebot.suppressions import Suppression
from refinebot.terminal import TerminalProgress

if TYPE_CHECKING:
    from refinebot.pipeline import ProjectResult  # connectors and their SDKs: loaded when an agenda runs


class AgendaFormat(StrEnum):
    """How the agenda is printed."""

    TEXT = "text"
    JSON = "json"
    BLOCKS = "blocks"


def backlog_url(loaded: LoadedConfig, project: str) -> str | None:
    """Where "and N more" links to: the project's source URL, when it has one."""
    url = getattr(loaded.source_for(project), "url", None)
    return url if isinstance(url, str) else None


def agendas(
    loaded: LoadedConfig,
    results: Sequence[ProjectResult],
    now: datetime,
    *,
    suppressions: Sequence[Suppression] = (),
    previous_shares: dict[str, float] | None = None,
) -> list[Agenda]:
    """The agenda of every project that ran (until the store lands: no suppressions, no previous share)."""
    built = []
    for result in results:
        if not result.ok:
            continue
        settings = loaded.config.projects[result.project]
        built.append(
            build_agenda(
                result.project,
                cycle_of(now, project_zone(loaded.config, result.project)),
                result.issues,
                result.findings,
                [s for s in suppressions if s.project == result.project],
                now,
                AgendaSettings.from_project(settings),
                previous_share=(previous_shares or {}).get(result.project),
            )
        )
    return built


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
    with TerminalProgress() as progress:
        results = run(loaded, project or None, registry=rules, now=as_of, progress=progress)
    print_agendas(loaded, agendas(loaded, results, as_of), fmt)
    raise typer.Exit(report_failures(results))
