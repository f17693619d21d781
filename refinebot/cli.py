"""The ``refinebot`` command line: demo, scan, rules, config check and db upgrade."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, get_args, get_origin

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from connectors.base import MemorySyncStateStore
from refinebot.config import DEFAULT_CONFIG_PATH, ConfigError, LoadedConfig, load_config
from refinebot.models import Finding, Issue, Severity
from refinebot.pipeline import ProjectResult, run
from refinebot.store.engine import StoreError, database_url_for
from refinebot.store.migrate import migrate_url
from refinebot.terminal import TerminalProgress
from rules.registry import RegistryError, RuleRegistry, default_registry

app = typer.Typer(
    name="refinebot",
    help="Keep Jira and Azure DevOps backlogs ready for refinement.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Work with the configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")
db_app = typer.Typer(help="Work with the database (database_url in the config).", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)

DEMO_AS_OF = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
_SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


class OutputFormat(StrEnum):
    """How scan results are printed."""

    TABLE = "table"
    JSON = "json"


ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="REFINEBOT_CONFIG",
        help="Path to the TOML configuration.",
        show_default=True,
    ),
]


def _registry() -> RuleRegistry:
    try:
        return default_registry()
    except RegistryError as exc:
        _error(str(exc))
        raise typer.Exit(2) from None


def _error(message: str) -> None:
    """Print an error line; the message is data (paths, keys, vendor text), never Rich markup."""
    err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)


def _load(path: Path, registry: RuleRegistry, *, check_env: bool = True) -> LoadedConfig:
    """The validated config, or every problem printed and exit 1.

    ``check_env=False`` leaves unset token variables and missing source files to the projects that use
    them: a scan fails those projects only (exit 2), and ``--project OTHER`` is not blocked by them.
    """
    try:
        return load_config(path, registry, check_env=check_env)
    except ConfigError as exc:
        for problem in exc.problems:
            _error(str(problem))
        raise typer.Exit(1) from None


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO date-time: {value!r}", param_hint="--now") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _print_results(results: Sequence[ProjectResult], fmt: OutputFormat) -> None:
    if fmt is OutputFormat.JSON:
        payload = [f.to_json() for r in results for f in r.findings]
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return
    for result in results:
        if result.ok:
            _print_project(result)


def _print_project(result: ProjectResult) -> None:
    issues = {issue.key: issue for issue in result.issues}
    table = Table(title=f"Project {result.project}: findings by issue", box=box.SIMPLE_HEAD, expand=False)
    table.add_column("Issue", style="bold", no_wrap=True)
    table.add_column("Severity", no_wrap=True)
    table.add_column("Rule", no_wrap=True)
    table.add_column("Why", overflow="fold", ratio=1)
    by_issue: dict[str, list[Finding]] = {}
    for finding in result.findings:
        by_issue.setdefault(finding.issue, []).append(finding)
    for index, (key, findings) in enumerate(by_issue.items()):
        issue: Issue | None = issues.get(key)
        # The title heads the group in the wide column, so narrow terminals still show it whole.
        table.add_row(Text(key), "", "", Text(issue.title if issue else "", style="bold"))
        for position, finding in enumerate(findings):
            table.add_row(
                "",
                Text(finding.severity.value, style=_SEVERITY_STYLE[finding.severity]),
                Text(finding.rule),
                Text(finding.message),
                end_section=position == len(findings) - 1 and index < len(by_issue) - 1,
            )
    if by_issue:
        out.print(table)
    else:
        out.print(Text(f"Project {result.project}: no findings."))
    summary = result.summary
    if summary is not None:
        out.print(
            Text.assemble(
                ("Readiness", "bold"),
                f" {result.project}: {summary.ready_items} of {summary.open_items} open items ready; "
                f"top {summary.top_n} by rank: ",
                (f"{summary.ready_in_top} ready", "bold"),
                f" (not ready: {', '.join(summary.not_ready_top)})" if summary.not_ready_top else "",
            )
        )
        counts = ", ".join(f"{rule} {count}" for rule, count in sorted(summary.by_rule.items()))
        if counts:
            out.print(Text(f"Findings by rule: {counts}"))
    for skipped in result.skipped:
        err.print(Text.assemble(("skipped ", "yellow"), skipped))


def _report_failures(results: Sequence[ProjectResult]) -> int:
    for result in results:
        for failure in result.rule_failures:
            err.print(Text.assemble((f"project {result.project}: ", "yellow"), failure.describe()))
    failed = [r for r in results if not r.ok]
    for result in failed:
        err.print(Text.assemble((f"project {result.project} failed: ", "bold red"), result.error or ""))
    return 2 if failed else 0


@app.command()
def scan(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    project: Annotated[
        list[str] | None, typer.Option("--project", "-p", help="Only these projects (repeatable).")
    ] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="table or json.")] = OutputFormat.TABLE,
    full: Annotated[bool, typer.Option("--full", help="Ignore incremental state; fetch everything.")] = False,
    now: Annotated[
        str | None, typer.Option("--now", help="Evaluate as of this ISO date-time (default: now).")
    ] = None,
    fail_on: Annotated[
        Severity | None,
        typer.Option("--fail-on", help="Exit 1 when a finding of this severity or worse exists."),
    ] = None,
) -> None:
    """Fetch configured projects, run the rules and print the findings."""
    registry = _registry()
    loaded = _load(config, registry, check_env=False)
    unknown = [p for p in project or [] if p not in loaded.config.projects]
    if unknown:
        known = ", ".join(loaded.config.projects) or "none"
        _error(f"unknown project(s) {', '.join(unknown)} (configured: {known})")
        raise typer.Exit(1)
    with TerminalProgress() as progress:
        results = run(
            loaded,
            project or None,
            registry=registry,
            now=_parse_now(now),
            full=full,
            state=MemorySyncStateStore(),
            progress=progress,
        )
    _print_results(results, fmt)
    code = _report_failures(results)
    if code == 0 and fail_on is not None:
        order = [Severity.INFO, Severity.WARNING, Severity.ERROR]
        worst = {f.severity for r in results for f in r.findings}
        if any(order.index(s) >= order.index(fail_on) for s in worst):
            code = 1
    raise typer.Exit(code)


def demo_config_path() -> Path:
    """The bundled demo config (its file source points at the bundled demo backlog)."""
    return Path(str(resources.files("refinebot.demo") / "config.toml"))


@app.command()
def demo(
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="table or json.")] = OutputFormat.TABLE,
) -> None:
    """Run every rule on the bundled demo backlog (no accounts needed)."""
    started = time.perf_counter()
    registry = _registry()
    loaded = _load(demo_config_path(), registry)
    results = run(loaded, registry=registry, now=DEMO_AS_OF)
    _print_results(results, fmt)
    if fmt is OutputFormat.TABLE:
        out.print(
            f"[dim]Demo backlog as of {DEMO_AS_OF:%Y-%m-%d}; ran in {time.perf_counter() - started:.2f} s. "
            f"Try: refinebot rules missing-acceptance-criteria[/]",
            highlight=False,
        )
    raise typer.Exit(_report_failures(results))


@app.command("rules")
def rules_command(
    name: Annotated[str | None, typer.Argument(help="A rule name or code to explain.")] = None,
) -> None:
    """List the rules, or explain one with its options."""
    registry = _registry()
    if name is None:
        table = Table(title="Rules", box=box.SIMPLE_HEAD)
        for column in ("Code", "Name", "Severity"):
            table.add_column(column, no_wrap=True)
        table.add_column("Summary", ratio=1)
        for rule in registry:
            table.add_row(rule.code, rule.name, rule.default_severity.value, rule.summary())
        out.print(table)
        out.print("Explain one: refinebot rules NAME", highlight=False, markup=False)
        return
    found = registry.get(name)
    if found is None:
        _error(f"no rule named {name!r}; run 'refinebot rules' for the list")
        raise typer.Exit(1)
    rule = found
    out.print(
        Text.assemble(
            (f"{rule.code} {rule.name}", "bold"), f" ({rule.default_severity.value}, {rule.scope}-level)"
        )
    )
    out.print(rule.summary(), highlight=False, markup=False)
    for paragraph in rule.explanation().split("\n\n"):
        if paragraph.strip():
            out.print()
            out.print(" ".join(paragraph.split()), highlight=False, markup=False)
    options = Table(title="Options", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("Option", "Values", "Default"):
        options.add_column(column, no_wrap=True)
    options.add_column("Description", ratio=1)
    for field_name, info in rule.Options.model_fields.items():
        default = info.get_default(call_default_factory=True)
        description = info.description or _OPTION_HELP.get(field_name, "")
        options.add_row(field_name, _toml_type(info.annotation), _toml_value(default), description)
    out.print(options)
    out.print(
        f"Configure in [rules] or [projects.KEY.rules]: {rule.name} = {{ enabled = true }}",
        highlight=False,
        markup=False,
    )


def _toml_type(annotation: object) -> str:
    """How an option's type reads to someone writing TOML."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    origin = get_origin(annotation)
    if origin is list and args:
        return "list of " + _toml_type(args[0])
    if args and origin is not list:
        return " | ".join(_toml_type(a) for a in args)
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return "|".join(member.value for member in annotation)
    return {bool: "true|false", int: "integer", float: "number", str: "text"}.get(
        annotation if isinstance(annotation, type) else object, str(annotation)
    )


def _toml_value(value: object) -> str:
    """A default value as it would be written in TOML."""
    if value is None:
        return "(rule default)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, StrEnum):
        return f'"{value.value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_OPTION_HELP = {
    "enabled": "false turns the rule off",
    "severity": "replaces the rule's severity",
    "issue_types": "item types checked",
    "max_points": "largest estimate that fits in one sprint",
    "days": "days without an update before an item is stale",
    "min_length": "fewest characters a description needs, markup stripped",
}


@config_app.command("check")
def config_check(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Validate the configuration and print every problem at once."""
    registry = _registry()
    loaded = _load(config, registry)
    projects = ", ".join(loaded.config.projects) or "none"
    out.print(
        f"[green]ok[/]: {config} ({len(loaded.config.sources)} sources, projects: {projects})",
        highlight=False,
    )


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Create or migrate the database to this version's schema (the store also does it when it opens)."""
    loaded = _load(config, _registry(), check_env=False)  # the database needs no source token
    try:
        done = migrate_url(database_url_for(loaded))
    except StoreError as exc:
        _error(str(exc))
        raise typer.Exit(1) from None
    was = "already current" if not done.changed else f"was {done.before or 'empty'}"
    out.print(Text(f"ok: {done.url} at revision {done.after} ({was})"))


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    logging.basicConfig(
        level=os.environ.get("REFINEBOT_LOG_LEVEL", "WARNING").upper(),
        format="%(levelname)s %(name)s: %(message)s",
    )
    # The jira package logs a failed request's whole response (a login page, say) at ERROR before
    # raising; the connector's own error says what matters, once.
    logging.getLogger("jira").setLevel(logging.CRITICAL)
    app(args=list(argv) if argv is not None else None, prog_name="refinebot")
