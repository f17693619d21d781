"""``refinebot digest``: run one cycle per project (sync, replies, rules, store, ticket comments) and say what it did."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from refinebot.cli.console import ConfigOption, error, load, out, registry
from refinebot.cli.scan import open_store, parse_now
from refinebot.config import DEFAULT_CONFIG_PATH
from refinebot.terminal import TerminalProgress

# The store (SQLAlchemy, Alembic) and the Slack SDK load when a digest runs, not for every command.
if TYPE_CHECKING:
    from refinebot.digest import CycleReport


class DigestFormat(StrEnum):
    """How ``digest`` reports."""

    TEXT = "text"
    JSON = "json"


def digest(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    project: Annotated[
        list[str] | None,
        typer.Option("--project", "-p", metavar="KEY", help="Only this project (repeatable)."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", metavar="", help="Print the comments it would post; write nothing anywhere."
        ),
    ] = False,
    fmt: Annotated[DigestFormat, typer.Option("--format", "-f", help="text or json.")] = DigestFormat.TEXT,
    now: Annotated[
        str | None,
        typer.Option("--now", metavar="ISO-TIME", help="Run as of this ISO date-time (default: now)."),
    ] = None,
    enable_slack: Annotated[
        bool,
        typer.Option(
            "--enable-slack",
            help="Turn Slack posting back on (after reinstalling the app: app_uninstalled or "
            "tokens_revoked turned it off), then run.",
        ),
    ] = False,
) -> None:
    """Run one digest cycle per project: sync, apply ticket replies, run the rules, update ticket comments."""
    from refinebot.digest import rehearsal
    from refinebot.slack import posting
    from refinebot.slack.runs import digest_cycle

    rules = registry()
    loaded = load(config, rules, check_env=False)
    selected = list(project or loaded.config.projects)
    unknown = [p for p in selected if p not in loaded.config.projects]
    if unknown:
        error(
            f"unknown project(s) {', '.join(unknown)} (configured: {', '.join(loaded.config.projects) or 'none'})"
        )
        raise typer.Exit(1)
    store = open_store(loaded)
    if enable_slack and not dry_run:
        for team, reason in posting.enable(store.sync_state).items():
            out.print(Text(f"Slack posting re-enabled for workspace {team} (it was off: {reason})"))
    reports: list[CycleReport] = []
    with store, TerminalProgress() as progress:
        cycle = digest_cycle(loaded, store, rules, dry_run=dry_run, progress=progress)
        at = parse_now(now)
        for key in selected:
            if dry_run:
                with rehearsal(store):
                    reports.append(cycle.run(key, at))
            else:
                reports.append(cycle.run(key, at))
    if fmt is DigestFormat.JSON:
        print(json.dumps([_report_json(r, dry_run) for r in reports], indent=2))
    else:
        for report in reports:
            _print_report(report, dry_run)
    for report in reports:
        if not report.ok:
            out.print(Text.assemble((f"project {report.project} failed: ", "bold red"), report.error or ""))
    raise typer.Exit(2 if any(not r.ok for r in reports) else 0)


def _counts(report: CycleReport) -> dict[str, int]:
    counts = {"posted": 0, "edited": 0, "ready": 0, "recovered": 0}
    for action in report.comments:
        counts[action.action] = counts.get(action.action, 0) + 1
    return counts | {"unchanged": report.unchanged}


def _report_json(report: CycleReport, dry_run: bool) -> dict[str, Any]:
    result = report.result
    return {
        "project": report.project,
        "cycle": report.cycle,
        "ok": report.ok,
        "error": report.error,
        "skipped": report.skipped,
        "dry_run": dry_run,
        "findings_shown": len(result.findings),
        "findings_hidden": result.hidden,
        "comments": _counts(report),
        "comment_reads": report.comment_reads,
        "replies": [
            {"issue": r.issue, "author": r.author, "command": r.line, "outcome": r.outcome}
            for r in report.replies
        ],
        "planned" if dry_run else "written": [
            {"issue": c.issue, "action": c.action, "text": c.document.plain_text()} for c in report.comments
        ],
        "slack": report.digest,
        "agenda": report.agenda.to_json() if report.agenda is not None else None,
    }


def _print_report(report: CycleReport, dry_run: bool) -> None:
    if report.skipped:
        out.print(Text(report.skipped))
        return
    if not report.result.ok:
        return
    result = report.result
    counts = _counts(report)
    verb = "would write" if dry_run else "comments"
    out.print(
        Text(
            f"{report.project} {report.cycle}: {len(result.findings)} findings shown, {result.hidden} hidden; "
            f"{verb}: {counts['posted']} posted, {counts['edited']} edited, {counts['ready']} ready, "
            f"{counts['recovered']} recovered, {counts['unchanged']} unchanged; "
            f"replies read on {report.comment_reads} tickets, {len(report.replies)} commands; slack: {report.digest}"
        )
    )
    for reply in report.replies:
        out.print(Text(f"  {reply.issue}: {reply.outcome}"))
    if dry_run:
        for action in report.comments:
            out.print(Text(f"\n--- {action.issue} ({'post' if action.action == 'posted' else 'edit'}) ---"))
            out.print(Text(action.document.plain_text()))
