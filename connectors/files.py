"""Read exported backlogs from disk: Jira REST search JSON, Jira CSV exports and Azure DevOps work-items JSON."""

from __future__ import annotations

import csv
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, TextIO

from connectors.ado_json import map_work_item
from connectors.base import ConnectorError, FetchCounters, FetchResult, SkippedItem
from connectors.field_values import parse_number
from connectors.jira_json import (
    JiraFieldMap,
    issues_from_search_pages,
    link_kind_from_text,
    map_jira_issue,
    parse_sprints,
)
from connectors.mapping_errors import MappingError
from refinebot.config import FileSourceConfig
from refinebot.markup import wiki_to_text
from refinebot.models import Issue, IssueType, Link, LinkKind, SourceKind, StatusCategory

logger = logging.getLogger(__name__)

# Jira's CSV export names the link direction only by column; these are the default texts of common link types.
_CSV_LINK_TEXT = {
    ("inward", "blocks"): "is blocked by",
    ("outward", "blocks"): "blocks",
    ("inward", "blocker"): "is blocked by",
    ("outward", "blocker"): "blocks",
    ("inward", "dependency"): "is depended on by",
    ("outward", "dependency"): "depends on",
    ("inward", "duplicate"): "is duplicated by",
    ("outward", "duplicate"): "duplicates",
}
_CSV_DATE_FORMATS = (
    "%d/%b/%y %I:%M %p",
    "%d/%b/%y %H:%M",
    "%d/%b/%Y %I:%M %p",
    "%d/%b/%Y %H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
_POINT_COLUMNS = (
    "custom field (story points)",
    "story points",
    "custom field (story point estimate)",
    "story point estimate",
)


class FileConnector:
    """A ``Connector`` over one exported file; the format is detected from the content."""

    def __init__(self, source: FileSourceConfig, path: Path, tz: tzinfo = UTC) -> None:
        self.source = source
        self.path = path
        self.tz = tz

    def fetch(self, project: str, query: str | None, *, full: bool = False) -> FetchResult:
        """The items of ``project`` in the file (matched by project key or name, case-insensitively).

        A file whose items carry no project is read whole; a file of other projects only is an error, so a
        typo in the project key cannot report another team's backlog under this one's name.
        """
        backlog = read_backlog(self.path, self.source, tz=self.tz)
        issues = backlog.issues
        if query:
            logger.info("%s: file sources ignore the query; the file's items are used", project)
        projects = {issue.project for issue in issues if issue.project}
        if not projects:
            return FetchResult(
                issues=issues,
                skipped=backlog.skipped,
                synced_at=datetime.now(UTC),
                counters=FetchCounters(fetched=len(issues)),
            )
        wanted = project.casefold()
        mine = [issue for issue in issues if issue.project.casefold() == wanted]
        if not mine:
            raise ConnectorError(
                f"{self.path}: no items of project {project!r}; the file holds "
                f"{', '.join(sorted(projects)[:10])} (use one of these as the project key)"
            )
        return FetchResult(
            issues=mine,
            skipped=backlog.skipped,
            synced_at=datetime.now(UTC),
            counters=FetchCounters(fetched=len(mine)),
        )


@dataclass(frozen=True, slots=True)
class FileBacklog:
    """What a file held: the items read and the records (or rows) skipped, each with file, record, field, reason."""

    issues: list[Issue]
    skipped: tuple[SkippedItem, ...] = ()


MAX_LISTED_PROBLEMS = 10  # in the error of a file nothing could be read from


def read_backlog(path: Path, source: FileSourceConfig | None = None, *, tz: tzinfo = UTC) -> FileBacklog:
    """Issues from a Jira CSV export, a Jira search response (one page or a list of pages) or ADO JSON.

    A record or row that cannot be mapped is skipped, like a live connector skips a malformed issue,
    and every one is listed in ``skipped``; only a file that cannot be read at all, or of which no
    record could be read, raises ``ConnectorError``. CSV dates carry no zone and are read in ``tz``
    (the config's ``timezone``). An item that appears twice (overlapping pages) is kept once, as last seen.
    """
    problems: list[SkippedItem] = []
    if path.suffix.lower() == ".csv":
        started, cpu = time.perf_counter(), time.process_time()
        issues = _read_jira_csv(path, tz, problems)
        logger.debug(
            "phase csv-read: %.3f s (cpu %.3f s)", time.perf_counter() - started, time.process_time() - cpu
        )
    else:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConnectorError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            data = json.loads(raw.decode("utf-8-sig"))
        except UnicodeDecodeError:
            raise ConnectorError(f"{path}: not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise ConnectorError(
                f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
            ) from None
        try:
            issues = _read_json(path, data, source, problems)
        except ValueError as exc:
            raise ConnectorError(f"{path}: {exc}") from None
    if not issues and problems:
        listed = "; ".join(f"{p.key}: {p.reason}" for p in problems[:MAX_LISTED_PROBLEMS])
        if len(problems) == 1:
            raise ConnectorError(listed)
        more = (
            f" (and {len(problems) - MAX_LISTED_PROBLEMS} more)"
            if len(problems) > MAX_LISTED_PROBLEMS
            else ""
        )
        raise ConnectorError(f"{path}: no record could be read ({len(problems)} problems): {listed}{more}")
    for problem in problems:
        logger.info("skipping %s: %s", problem.key, problem.reason)
    return FileBacklog(_unique(issues), tuple(problems))


def read_backlog_file(path: Path, source: FileSourceConfig | None = None, *, tz: tzinfo = UTC) -> list[Issue]:
    """The issues ``read_backlog`` reads (skipped records are logged, not returned)."""
    return read_backlog(path, source, tz=tz).issues


def _unique(issues: list[Issue]) -> list[Issue]:
    by_key: dict[str, Issue] = {}
    for issue in issues:
        by_key.pop(issue.key, None)  # keep the position of the last occurrence too
        by_key[issue.key] = issue
    return list(by_key.values())


def _read_json(
    path: Path, data: Any, source: FileSourceConfig | None, problems: list[SkippedItem]
) -> list[Issue]:
    pages: Sequence[Any] | None = None
    if isinstance(data, Mapping) and "issues" in data:
        pages = [data]
    elif isinstance(data, list) and data and all(isinstance(p, Mapping) and "issues" in p for p in data):
        pages = data
    if pages is not None:
        raw_issues, names = issues_from_search_pages(pages)
        overrides: dict[str, str | None] = {}
        if source is not None:
            overrides = {
                "story_points": source.story_points_field,
                "sprint": source.sprint_field,
                "rank": source.rank_field,
                "acceptance_criteria": source.acceptance_criteria_field,
            }
        field_map = JiraFieldMap.from_names(names, overrides)
        site = source.url if source is not None else None
        return _map_each(path, raw_issues, lambda item: map_jira_issue(item, field_map, site=site), problems)
    items: Any = None
    if isinstance(data, Mapping) and isinstance(data.get("value"), list):
        items = data["value"]
    elif isinstance(data, list):
        items = data
    if items is not None and all(isinstance(i, Mapping) and "fields" in i for i in items):
        states = {
            str(i.get("id")): StatusCategory.guess_from_status(
                str((i.get("fields") or {}).get("System.State"))
            )
            for i in items
        }
        return _map_each(path, items, lambda item: map_work_item(item, target_categories=states), problems)
    if isinstance(data, Mapping) and "workItems" in data:
        raise ValueError("this is a WIQL result (ids only); export the work items themselves (with fields)")
    raise ValueError(
        "unrecognised JSON: expected a Jira search response ({'issues': [...]}), a list of them, "
        "or Azure DevOps work items ({'value': [{'id', 'fields', ...}]})"
    )


def _map_each(
    path: Path, items: Sequence[Any], mapper: Callable[[Any], Issue], problems: list[SkippedItem]
) -> list[Issue]:
    """Map every record; one that fails is recorded in ``problems`` (by key, else by position) and skipped."""
    issues: list[Issue] = []
    for index, item in enumerate(items):
        try:
            issues.append(mapper(item))
        except MappingError as exc:
            record = f"#{index + 1}" if exc.record.startswith("<") else exc.record
            problems.append(SkippedItem(f"{path}: record {record}", f"field {exc.field!r}: {exc.reason}"))
    return issues


# --- Jira CSV export -----------------------------------------------------------------------------


def _read_jira_csv(path: Path, tz: tzinfo, problems: list[SkippedItem]) -> list[Issue]:
    # Streamed: a 200k-row export is hundreds of MiB, and holding its bytes, its decoded text and a
    # StringIO copy at once cost more memory than the whole duplicate index.
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
        size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise ConnectorError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        try:
            return _read_csv_rows(path, handle, size, tz, problems)
        except UnicodeDecodeError:
            raise ConnectorError(f"{path}: not UTF-8 text (export the CSV as UTF-8)") from None
        except OSError as exc:
            raise ConnectorError(f"{path}: cannot read: {exc.strerror}") from None


def _read_csv_rows(
    path: Path, handle: TextIO, size: int, tz: tzinfo, problems: list[SkippedItem]
) -> list[Issue]:
    # newline="" lets the csv module own line endings: quoted cells keep their newlines, and U+2028 or form
    # feeds inside cells are not taken for row ends (str.splitlines would).
    # The csv module refuses cells over 128 KiB by default (a long description, a pasted log); no cell
    # can be longer than the file, so that is the limit (a process-wide setting, only ever raised).
    csv.field_size_limit(max(csv.field_size_limit(), size + 1))
    rows = csv.reader(handle)
    try:
        header = next(rows)
    except StopIteration:
        raise ConnectorError(f"{path}: empty file") from None
    columns = [h.strip() for h in header]
    lowered = [c.lower() for c in columns]
    for needed in ("summary", "issue key"):
        if needed not in lowered:
            raise ConnectorError(
                f"{path}: column {needed.title()!r} is missing; is this a Jira CSV export? "
                f"(columns: {', '.join(columns[:12])})"
            )
    layout = _CsvLayout.of(columns)
    issues = []
    # Row numbers as a spreadsheet shows them: the header is row 1.
    for line_no, row in enumerate(rows, start=2):
        # A row of blank cells only (joined: no per-cell strip; isspace copies nothing).
        joined = "".join(row)
        if not joined or joined.isspace():
            continue
        if len(row) != len(columns):
            problems.append(
                SkippedItem(
                    f"{path}: row {line_no}", f"has {len(row)} cells but the header has {len(columns)}"
                )
            )
            continue
        try:
            issues.append(_map_csv_row(layout, row, tz))
        except MappingError as exc:
            problems.append(
                SkippedItem(f"{path}: row {line_no} ({exc.record})", f"field {exc.field!r}: {exc.reason}")
            )
    return issues


def _csv_date(value: str, record: str, column: str, tz: tzinfo) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    # ISO first: one C call, where each failed strptime format costs a regex match (7 s of a 100k
    # export). The two ISO-like formats below read what fromisoformat reads the same way.
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        pass
    else:
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
    for fmt in _CSV_DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=tz)
        except ValueError:
            continue
    raise MappingError(record, column, f"not a date: {value!r}")


_CATEGORY_NAMES = {
    "to do": StatusCategory.TODO,
    "in progress": StatusCategory.IN_PROGRESS,
    "done": StatusCategory.DONE,
}


@functools.lru_cache(maxsize=4096)
def _category(category_name: str, status: str) -> StatusCategory:
    # Memoised: a backlog has a few statuses, and this is one dict lookup instead of two calls a row.
    return _CATEGORY_NAMES.get(category_name.lower()) or StatusCategory.guess_from_status(status)


_issue_type = functools.lru_cache(maxsize=4096)(IssueType.from_name)


@dataclass(frozen=True, slots=True)
class _CsvLayout:
    """Where each field of a row is, worked out once per file from the header (not per row).

    A field is read from the first column of its name (lower-cased); "sprint" and "labels" may repeat
    (one column per value) and are read from every column of theirs. A field the file has no column for
    reads position ``blank``, one past the last column, where ``_map_csv_row`` puts an empty cell. A
    field with several possible columns has them in order of preference (the first non-empty counts).
    """

    blank: int
    key: int
    summary: int
    points: tuple[int, ...]
    status: int
    category: int
    acceptance: tuple[int, int]
    parent: tuple[int, int, int]
    type: int
    project: int
    description: int
    priority: int
    rank: tuple[int, int]
    assignee: int
    reporter: int
    created: int
    updated: int
    sprints: tuple[int, ...]
    labels: tuple[int, ...]
    links: tuple[tuple[int, LinkKind], ...]  # a link column and the kind of its links

    @classmethod
    def of(cls, columns: Sequence[str]) -> _CsvLayout:
        first: dict[str, int] = {}
        every: dict[str, list[int]] = {}
        links: list[tuple[int, LinkKind]] = []
        for position, column in enumerate(columns):
            name = column.lower()
            if name.startswith(("inward issue link (", "outward issue link (")):
                direction = "inward" if name.startswith("inward") else "outward"
                type_name = name[name.index("(") + 1 : name.rindex(")")].strip()
                text = _CSV_LINK_TEXT.get((direction, type_name), "relates to")
                links.append((position, link_kind_from_text(text)))
                continue
            first.setdefault(name, position)
            every.setdefault(name, []).append(position)
        blank = len(columns)

        def at(name: str) -> int:
            return first.get(name, blank)

        return cls(
            blank=blank,
            key=at("issue key"),
            summary=at("summary"),
            points=tuple(first[name] for name in _POINT_COLUMNS if name in first),
            status=at("status"),
            category=at("status category"),
            acceptance=(at("custom field (acceptance criteria)"), at("acceptance criteria")),
            parent=(at("parent key"), at("parent"), at("custom field (epic link)")),
            type=at("issue type"),
            project=at("project key"),
            description=at("description"),
            priority=at("priority"),
            rank=(at("custom field (rank)"), at("rank")),
            assignee=at("assignee"),
            reporter=at("reporter"),
            created=at("created"),
            updated=at("updated"),
            sprints=tuple(every.get("sprint", ())),
            labels=tuple(every.get("labels", ())),
            links=tuple(links),
        )


def _map_csv_row(layout: _CsvLayout, row: list[str], tz: tzinfo) -> Issue:
    """The issue of one row of ``len(columns)`` cells (``row`` gets the layout's blank cell appended)."""
    row.append("")
    key = row[layout.key].strip()
    if not key:
        raise MappingError("<row>", "Issue key", "empty")
    title = row[layout.summary].strip()
    if not title:
        raise MappingError(key, "Summary", "empty")
    points = None
    for position in layout.points:
        if points_raw := row[position].strip():
            points = parse_number(points_raw, key, "Story Points", allow_negative=False)
            break
    status = row[layout.status].strip()
    sprint_values = [value for position in layout.sprints if (value := row[position].strip())]
    sprints = parse_sprints(sprint_values) if sprint_values else []
    first_ac, second_ac = layout.acceptance
    ac = row[first_ac].strip() or row[second_ac].strip()
    first_parent, second_parent, third_parent = layout.parent
    parent = row[first_parent].strip() or row[second_parent].strip() or row[third_parent].strip() or None
    if parent and parent.isdigit():
        parent = None  # "Parent" holds the numeric id in some exports; keys are what links use
    links = [Link(kind, value) for position, kind in layout.links if (value := row[position].strip())]
    if parent:
        links.append(Link(LinkKind.PARENT, parent))
    raw_type = row[layout.type].strip()
    first_rank, second_rank = layout.rank
    created_raw = row[layout.created]
    created = _csv_date(created_raw, key, "Created", tz)
    updated_raw = row[layout.updated]
    # Most rows were never updated: the same cell, read once.
    updated = created if updated_raw == created_raw else _csv_date(updated_raw, key, "Updated", tz)
    return Issue(
        key=key,
        project=row[layout.project].strip() or key.rsplit("-", 1)[0],
        source_kind=SourceKind.FILE,
        type=_issue_type(raw_type),
        raw_type=raw_type,
        title=title,
        description=wiki_to_text(row[layout.description].strip()),
        acceptance_criteria=wiki_to_text(ac) if ac else None,
        story_points=points,
        status=status,
        status_category=_category(row[layout.category].strip(), status),
        priority=row[layout.priority].strip() or None,
        rank=row[first_rank].strip() or row[second_rank].strip() or None,
        labels=tuple([value for position in layout.labels if (value := row[position].strip())]),
        assignee=row[layout.assignee].strip() or None,
        reporter=row[layout.reporter].strip() or None,
        created=created,
        updated=updated,
        sprint=sprints[-1][0] if sprints else None,
        parent=parent,
        links=tuple(links),
    )
