"""``refinebot suppress list|add|remove|unused``: the suppressions people made, from the command line."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.text import Text

from refinebot.cli.console import ConfigOption, error, load, out, registry
from refinebot.cli.scan import open_store
from refinebot.comments.commands import VERBS, CommandError, ParseContext, Snooze
from refinebot.config import DEFAULT_CONFIG_PATH
from refinebot.cycle import project_zone
from refinebot.suppressions import Suppression, SuppressionKind, SuppressionSource, unused

suppress_app = typer.Typer(
    help="List, add and remove suppressions (snooze, ignore, not a duplicate).", no_args_is_help=True
)

ProjectArg = Annotated[str, typer.Argument(metavar="PROJECT", help="The project key from the config.")]


def _line(s: Suppression) -> str:
    what = {
        SuppressionKind.SNOOZE: f"snooze {s.issue}{' ' + s.rule if s.rule else ''} until {s.until:%Y-%m-%d}"
        if s.until
        else "",
        SuppressionKind.IGNORE: f"ignore {s.rule} on {s.issue}",
        SuppressionKind.NOT_DUPLICATE: f"not-duplicate {s.issue} ~ {s.other_issue}",
    }[s.kind]
    state = f" (lifted {s.lifted:%Y-%m-%d})" if s.lifted else ""
    reason = f": {s.reason}" if s.reason else ""
    return f"#{s.id} {s.project} {what} by {s.by} via {s.source.value} on {s.created:%Y-%m-%d}{reason}{state}"


@suppress_app.command("list")
def suppress_list(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    project: Annotated[
        str | None, typer.Option("--project", "-p", metavar="KEY", help="Only this project.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", metavar="", help="Also lifted and expired ones.")] = False,
) -> None:
    """The suppressions in force (with --all: every one ever made)."""
    loaded = load(config, registry(), check_env=False)
    with open_store(loaded) as store:
        now = datetime.now(UTC)
        found = store.suppressions.list_suppressions(project, active_at=None if all_ else now)
    for suppression in found:
        out.print(Text(_line(suppression)))
    if not found:
        out.print("no suppressions")


@suppress_app.command("add")
def suppress_add(
    project: ProjectArg,
    kind: Annotated[SuppressionKind, typer.Argument(help="snooze, ignore or not_duplicate.")],
    issue: Annotated[str, typer.Argument(metavar="ISSUE")],
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    rule: Annotated[
        str | None, typer.Option("--rule", metavar="NAME", help="ignore: the rule; snooze: only this rule.")
    ] = None,
    other: Annotated[
        str | None, typer.Option("--other", metavar="KEY", help="not_duplicate: the other issue.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--for", metavar="2w|3d|1m|YYYY-MM-DD", help="snooze: how long.")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="Why (ignore needs one).")] = "",
    by: Annotated[
        str | None, typer.Option("--by", metavar="NAME", help="Who decided (default: your login).")
    ] = None,
) -> None:
    """Add a suppression (recorded as made from the CLI)."""
    rules = registry()
    loaded = load(config, rules, check_env=False)
    if project not in loaded.config.projects:
        error(f"unknown project {project!r}")
        raise typer.Exit(1)
    now = datetime.now(UTC)
    when = None
    if kind is SuppressionKind.SNOOZE:
        # The ticket command's grammar, so "--for 2w" here and "refinebot snooze 2w" on a ticket agree.
        snooze_verb = next(verb for verb in VERBS if verb.name == "snooze")
        context = ParseContext(issue, frozenset(), now, project_zone(loaded.config, project))
        try:
            snooze = snooze_verb.parse(until or "2w", context)
        except CommandError as exc:
            error(f"--for: {exc}")
            raise typer.Exit(1) from None
        assert isinstance(snooze, Snooze)
        when = snooze.until
    if kind is SuppressionKind.IGNORE and rule not in {r.name for r in rules}:
        error(f"ignore needs --rule with a known rule name, not {rule!r}")
        raise typer.Exit(1)
    try:
        made = Suppression(
            kind=kind, project=project, issue=issue, created=now, by=by or getpass.getuser(),
            source=SuppressionSource.CLI, rule=rule, other_issue=other, until=when, reason=reason,
        )  # fmt: skip
    except ValueError as exc:
        error(str(exc))
        raise typer.Exit(1) from None
    with open_store(loaded) as store:
        out.print(Text(f"added {_line(store.suppressions.add(made))}"))


@suppress_app.command("remove")
def suppress_remove(
    suppression_id: Annotated[int, typer.Argument(metavar="ID", help="The #id 'suppress list' shows.")],
    config: ConfigOption = DEFAULT_CONFIG_PATH,
) -> None:
    """Lift a suppression (it is kept, marked lifted, for the record)."""
    loaded = load(config, registry(), check_env=False)
    with open_store(loaded) as store:
        if not store.suppressions.lift(suppression_id, datetime.now(UTC)):
            error(f"no suppression #{suppression_id} in force")
            raise typer.Exit(1)
    out.print(f"lifted #{suppression_id}")


@suppress_app.command("unused")
def suppress_unused(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    project: Annotated[
        str | None, typer.Option("--project", "-p", metavar="KEY", help="Only this project.")
    ] = None,
) -> None:
    """Suppressions in force that no longer match any open finding (from the last digest's findings)."""
    loaded = load(config, registry(), check_env=False)
    now = datetime.now(UTC)
    found: list[Suppression] = []
    with open_store(loaded) as store:
        for key in [project] if project else list(loaded.config.projects):
            active = store.suppressions.list_suppressions(key, active_at=now)
            findings = [stored.finding for stored in store.findings.open(key)]
            found += unused(active, findings, now)
    for suppression in found:
        out.print(Text(_line(suppression)))
    if not found:
        out.print("every suppression in force still matches a finding")
