"""``refinebot report``: write one self-contained HTML page per run from the store (chart, agenda, findings, suppressions).

It reads the store only, the way Slack's buttons rebuild a digest: the issues, findings, suppressions and
readiness the last ``refinebot digest`` (or ``serve``) cycle recorded, with suppressions decided as of
``--now``. It calls no tracker and writes nothing to the database: the store is opened without migrating
(an old schema is an error naming ``refinebot db upgrade``), and a SQLite file that does not exist is
an error rather than a new empty database. The page is written to a temporary file and renamed over
``--out``, so a reader never sees half a page.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from refinebot.agenda import AgendaSettings, build_agenda, display_key
from refinebot.chart import MAX_POINTS, alt_text, readiness_png
from refinebot.cli.console import ConfigOption, ProjectOption, error, load, out, registry, require_projects
from refinebot.config import DEFAULT_CONFIG_PATH, LoadedConfig
from refinebot.cycle import current_cycle, project_zone
from refinebot.htmlreport import FindingRow, ProjectPage, Ticket, describe_hidden, render_report
from refinebot.suppressions import decide

if TYPE_CHECKING:  # SQLAlchemy and Alembic load when a report is written, not for every command
    from refinebot.store import Store


def open_read_only(loaded: LoadedConfig) -> Store:
    """The config's store as it is (not migrated, not created), or the reason printed and exit 1."""
    from refinebot.store import Store, StoreError
    from refinebot.store.engine import database_url_for, is_sqlite_file, safe_url
    from refinebot.store.migrate import current_revision, head_revision

    url = database_url_for(loaded)
    if is_sqlite_file(url) and not Path(str(url.database)).exists():
        error(
            f"no store at {safe_url(url)}: run 'refinebot digest' first (the report reads what it recorded)"
        )
        raise typer.Exit(1)
    try:
        store = Store.open(url, migrate=False)
    except StoreError as exc:
        error(str(exc))
        raise typer.Exit(1) from None
    at, head = current_revision(store.engine), head_revision()
    if at != head:
        store.close()
        state = f"at revision {at}" if at else "empty"
        error(
            f"the store at {safe_url(url)} is {state}, this refinebot needs {head}: run 'refinebot db upgrade'"
        )
        raise typer.Exit(1)
    return store


def project_page(loaded: LoadedConfig, store: Store, project: str, now: datetime) -> ProjectPage:
    """What the report shows for ``project``, from the store alone."""
    zone = project_zone(loaded.config, project)
    issues = store.issues.load(project)
    if issues is None:
        return ProjectPage(
            project, zone, note="No cycle recorded yet: run 'refinebot digest' for this project."
        )
    tickets = {i.key: Ticket(display_key(i), i.title, i.url) for i in issues}
    stored = store.findings.open(project)
    suppressions = store.suppressions.list_suppressions(project)
    cycle = current_cycle(loaded.config, project, now, store.cycle_last_run)
    previous = store.readiness.previous(project, cycle)
    agenda = build_agenda(
        project,
        cycle,
        issues,
        [s.finding for s in stored],
        suppressions,
        now,
        AgendaSettings.from_project(loaded.config.projects[project]),
        previous_share=previous.share if previous is not None else None,
    )
    rows = []
    for entry in stored:
        decision = decide(entry.finding, suppressions, now)
        hidden = None
        if not decision.shown and decision.suppression is not None:
            hidden = describe_hidden(decision.suppression, zone)
        elif not decision.shown:
            hidden = "hidden"
        ticket = tickets.get(entry.finding.issue, Ticket(entry.finding.issue))
        rows.append(FindingRow(entry.finding, ticket, entry.first_seen, hidden))
    history = store.readiness.history(project, MAX_POINTS)
    return ProjectPage(
        project,
        zone,
        agenda=agenda,
        chart_png=readiness_png(project, history),
        chart_alt=alt_text(project, history),
        findings=rows,
        suppressions=[s for s in suppressions if s.active(now)],
        tickets=tickets,
    )


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 would outlive the rename; open() gives the umask's usual permissions.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def report(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    project: ProjectOption = None,
    out_path: Annotated[
        Path, typer.Option("--out", "-o", metavar="FILE", help="Where to write the HTML page.")
    ] = Path("report.html"),
    now: Annotated[
        str | None,
        typer.Option(
            "--now", metavar="ISO-TIME", help="Decide suppressions as of this ISO date-time (default: now)."
        ),
    ] = None,
) -> None:
    """Write an HTML report (readiness chart, agenda, open findings, suppressions) from the store."""
    from refinebot.cli.scan import parse_now

    loaded = load(config, registry(), check_env=False)  # no tracker is called: no token needed
    require_projects(loaded, project)
    as_of = parse_now(now) or datetime.now(UTC)
    selected = list(project or loaded.config.projects)
    with open_read_only(loaded) as store:
        pages = [project_page(loaded, store, key, as_of) for key in selected]
    try:
        write_atomically(out_path, render_report(pages, as_of))
    except OSError as exc:
        error(f"cannot write {out_path}: {exc.strerror or exc}")
        raise typer.Exit(1) from None
    empty = [p.project for p in pages if p.note]
    said = f"wrote {out_path} ({len(pages)} project{'s' if len(pages) != 1 else ''}"
    said += f"; no cycle recorded yet for {', '.join(empty)})" if empty else ")"
    out.print(Text(said))
