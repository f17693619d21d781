"""``refinebot report`` in a subprocess over a real store (SQLite, and PostgreSQL for the main case): the page is self-contained (no script,
stylesheet link, font or image fetched from anywhere), has the chart, agenda, findings by rule with ticket
links and the suppressions, escapes hostile ticket text, makes no link of a non-http URL, and leaves the
database exactly as it was. A missing or outdated store is an error that creates or changes nothing."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

from sqlalchemy import MetaData, create_engine, select, text
from sqlalchemy.engine import URL

from refinebot.models import Finding, Issue, IssueType, Severity, SourceKind
from refinebot.store import ReadinessRecord, Store
from refinebot.suppressions import Suppression, SuppressionKind, SuppressionSource, decide
from tests.cli_process import run_cli

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
TICKET_URL = "https://t.example/browse/{}"


@dataclass
class Parsed(HTMLParser):
    """Every start tag with its attributes, the text by enclosing element id/class, and links."""

    tags: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # link text -> href
    styles: list[str] = field(default_factory=list)
    _href: str | None = None
    _in_style: bool = False

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "a":
            self._href = dict(attrs).get("href")
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)
            return
        self.text.append(data)
        if self._href is not None:
            self.links[data] = self._href

    def classes(self) -> set[str]:
        return {c for _, attrs in self.tags for c in (attrs.get("class") or "").split()}


def issue(n: int, title: str = "", points: float | None = 3.0, url: str | None = None) -> Issue:
    return Issue(
        key=f"SHOP-{n}", project="SHOP", source_kind=SourceKind.JIRA, title=title or f"Story {n}",
        type=IssueType.STORY, url=url or TICKET_URL.format(f"SHOP-{n}"), story_points=points,
        rank=f"0|i{n:04d}:", created=NOW - timedelta(days=60),
    )  # fmt: skip


def finding(n: int, rule: str, severity: Severity = Severity.ERROR) -> Finding:
    return Finding("SHOP", f"SHOP-{n}", rule, "x", severity, f"{rule} on SHOP-{n}")


def make_store(url: URL | str) -> URL | str:
    issues = [
        issue(1),
        issue(2, title=HOSTILE),
        issue(3, points=None),
        issue(4, url="javascript:alert(1)"),
        issue(5, points=21.0),
    ]
    found = [
        finding(2, "missing-acceptance-criteria"),
        finding(3, "missing-estimate", Severity.WARNING),
        finding(4, "missing-acceptance-criteria"),
        finding(5, "oversized-story", Severity.WARNING),
    ]
    snooze = Suppression(
        kind=SuppressionKind.SNOOZE, project="SHOP", issue="SHOP-3", created=NOW - timedelta(days=1),
        by="ana", source=SuppressionSource.SLACK, until=NOW + timedelta(days=9), reason="waiting on <legal>",
    )  # fmt: skip
    with Store.open(url) as store:
        store.issues.save("SHOP", issues)
        added = store.suppressions.add(snooze)
        store.findings.record("SHOP", "2026-W49", found, [decide(f, [added], NOW) for f in found], NOW)
        for week, ready in ((47, 1), (48, 2), (49, 3)):
            at = NOW - timedelta(weeks=49 - week)
            store.readiness.record(
                ReadinessRecord("SHOP", f"2026-W{week}", ready, 5, ready / 5, 5, ready, at)
            )
    return url


def sqlite_url(tmp_path: Path, name: str = "refinebot.db") -> str:
    return f"sqlite:///{tmp_path / name}"


def write_config(tmp_path: Path, url: URL | str) -> Path:
    rendered = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    config = tmp_path / "refinebot.toml"
    config.write_text(
        f"""
database_url = "{rendered}"
timezone = "Europe/Berlin"

[sources.demo]
kind = "file"
path = "backlog.json"

[projects.SHOP]
source = "demo"
ready_top_n = 5

[projects.PAY]
source = "demo"
""",
        encoding="utf-8",
    )
    return config


def dump(url: URL | str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table (the alembic version included), to compare before and after."""
    engine = create_engine(url)
    try:
        tables = MetaData()
        tables.reflect(engine)
        with engine.connect() as connection:
            return {
                name: sorted(map(tuple, connection.execute(select(table))), key=repr)
                for name, table in tables.tables.items()
            }
    finally:
        engine.dispose()


def set_revision(url: URL | str, revision: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()


def test_the_report_is_one_self_contained_page_with_every_section(tmp_path: Path, database_url: URL) -> None:
    database = make_store(database_url)
    config = write_config(tmp_path, database)
    before = dump(database)
    out = tmp_path / "out" / "report.html"

    result = run_cli(["report", "--config", str(config), "--out", str(out), "--now", NOW.isoformat()])
    assert result.code == 0, result.stderr
    assert f"wrote {out} (2 projects; no cycle recorded yet for PAY)" in result.stdout
    assert dump(database) == before  # read only

    raw = out.read_text(encoding="utf-8")
    page = Parsed()
    page.feed(raw)
    tags = [tag for tag, _ in page.tags]
    assert raw.startswith("<!DOCTYPE html>")
    assert {"chart", "agenda", "findings", "suppressions", "project"} <= page.classes()

    # Nothing fetched at view time: no scripts, no linked stylesheets or fonts, every src a data: URI.
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    sources = [attrs.get("src") or "" for _, attrs in page.tags if "src" in attrs]
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    assert base64.b64decode(sources[0].split(",", 1)[1]).startswith(b"\x89PNG")
    css = "".join(page.styles)
    assert "url(" not in css and "@import" not in css and "http" not in css

    # Hostile ticket text arrives as text: the parser saw no tag from it, and the words are intact.
    assert HOSTILE in page.text
    assert not any(tag == "img" and attrs.get("onerror") for tag, attrs in page.tags)
    assert "waiting on <legal>" in page.text

    # Ticket links: http(s) URLs only; SHOP-4's javascript: URL is shown as a plain key.
    assert page.links["SHOP-2"] == TICKET_URL.format("SHOP-2")
    assert page.links["SHOP-5"] == TICKET_URL.format("SHOP-5")
    assert "SHOP-4" not in page.links and "SHOP-4" in page.text
    hrefs = [attrs.get("href") or "" for tag, attrs in page.tags if tag == "a"]
    assert all(h.startswith(("https://", "#")) for h in hrefs), hrefs

    text = " ".join(page.text)
    # Findings grouped by rule, with counts; the snoozed one is listed and says who snoozed it until when.
    assert "missing-acceptance-criteria" in page.text and "(2)" in page.text
    assert "snoozed by ana until 2026-12-11" in text
    # The agenda (SHOP-3 is snoozed off it; SHOP-2 and SHOP-4 lack criteria; SHOP-5 is oversized).
    assert "Agenda" in page.text and "Set aside this cycle" in page.text
    # Suppressions: who, why, until.
    assert "ana" in page.text and "2026-12-11" in page.text
    # The readiness line under the chart, compared with last cycle's (W48: 2 of 5). Only SHOP-1 is ready:
    # a snooze takes SHOP-3 off the agenda but does not make it ready.
    assert "1 of the top 5 ready (20%), down from 40% last cycle" in page.text
    assert "No cycle recorded yet" in text  # PAY


def test_only_the_named_projects_are_reported(tmp_path: Path) -> None:
    config = write_config(tmp_path, make_store(sqlite_url(tmp_path)))
    out = tmp_path / "shop.html"
    result = run_cli(["report", "-c", str(config), "-p", "SHOP", "-o", str(out), "--now", NOW.isoformat()])
    assert result.code == 0, result.stderr
    assert 'id="project-SHOP"' in out.read_text() and 'id="project-PAY"' not in out.read_text()
    unknown = run_cli(["report", "-c", str(config), "-p", "NOPE", "-o", str(out)])
    assert unknown.code == 1 and "NOPE" in unknown.stderr


def test_a_missing_store_is_an_error_and_no_database_is_created(tmp_path: Path) -> None:
    database = tmp_path / "never.db"
    config = write_config(tmp_path, sqlite_url(tmp_path, "never.db"))
    result = run_cli(["report", "-c", str(config), "-o", str(tmp_path / "r.html")])
    assert result.code == 1
    assert "no store at" in result.stderr and "refinebot digest" in result.stderr
    assert not database.exists() and not (tmp_path / "r.html").exists()


def test_an_outdated_store_is_not_migrated_by_the_report(tmp_path: Path, database_url: URL) -> None:
    revision = "0001"
    database = make_store(database_url)
    set_revision(database, revision)
    before = dump(database)
    result = run_cli(["report", "-c", str(write_config(tmp_path, database)), "-o", str(tmp_path / "r.html")])
    assert result.code == 1
    assert f"is at revision {revision}" in result.stderr and "refinebot db upgrade" in result.stderr
    assert dump(database) == before
