"""Read exported backlogs from disk: Jira REST search JSON, Jira CSV exports and Azure DevOps work-items JSON."""

from __future__ import annotations

import csv
import dataclasses
import functools
import gc
import io
import json
import logging
import multiprocessing
import os
import pickle
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TextIO, cast

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
    if len({issue.key for issue in issues}) == len(issues):
        return issues  # the usual case, found without building and copying a dict
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


# A file from this size on is read by two processes (under it the fork costs more than it saves):
# about 15k rows of a typical export.
PARALLEL_MIN_BYTES = 8 * 1024 * 1024
# The share of the file the main process reads when a worker reads the rest. Measured best on the
# realistic 200k export (0.4 to 0.6 tried): the worker also pickles its values, the main process
# then unpickles them and builds their issues after waiting for them.
MAIN_SHARE = 0.5
# How far past the planned split point a row end is looked for (a longer row: no split).
_SPLIT_SEARCH_BYTES = 4 * 1024 * 1024

# What a row is mapped to: Issue's fields in their order, for ``Issue(*values)`` (a tuple is what a
# worker sends back, and positional arguments cost less than keywords). Checked against Issue below.
_IssueValues = tuple[Any, ...]
_ISSUE_FIELDS = (
    "key",
    "project",
    "source_kind",
    "title",
    "type",
    "raw_type",
    "url",
    "description",
    "acceptance_criteria",
    "story_points",
    "status",
    "status_category",
    "priority",
    "rank",
    "labels",
    "assignee",
    "reporter",
    "created",
    "updated",
    "sprint",
    "in_active_sprint",
    "parent",
    "links",
    "flagged_blocked",
)
if tuple(field.name for field in dataclasses.fields(Issue)) != _ISSUE_FIELDS:
    raise TypeError("connectors.files: Issue's fields changed; update _ISSUE_FIELDS and _csv_row_values")

# A row that could not be mapped: its row number, the record it names (None: none) and the reason.
_RowProblem = tuple[int, str | None, str]


@dataclass(frozen=True, slots=True)
class _MappedRows:
    """What mapping a run of rows gave: the issues (or their values, from a worker), the problems, and
    the next row's number."""

    values: list[Any]  # Issue, or _IssueValues
    problems: list[_RowProblem]
    next_row: int


def _read_jira_csv(path: Path, tz: tzinfo, problems: list[SkippedItem]) -> list[Issue]:
    # Streamed: a 200k-row export is hundreds of MiB, and holding its bytes, its decoded text and a
    # StringIO copy at once cost more memory than the whole duplicate index.
    try:
        handle = path.open("rb")
        size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise ConnectorError(f"{path}: cannot read: {exc.strerror}") from None
    # Reading builds no reference cycles, but its hundreds of thousands of new containers (rows,
    # values, issues) set off collections that traverse every tracked object: a third of the time.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with handle:
            try:
                mapped = _read_csv_rows(path, handle, size, tz)
            except UnicodeDecodeError:
                raise ConnectorError(f"{path}: not UTF-8 text (export the CSV as UTF-8)") from None
            except OSError as exc:
                raise ConnectorError(f"{path}: cannot read: {exc.strerror}") from None
        for line_no, record, reason in mapped.problems:
            key = f"{path}: row {line_no}" if record is None else f"{path}: row {line_no} ({record})"
            problems.append(SkippedItem(key, reason))
        return mapped.values
    finally:
        if collecting:
            gc.enable()


def _read_csv_rows(path: Path, handle: io.BufferedReader, size: int, tz: tzinfo) -> _MappedRows:
    # The csv module refuses cells over 128 KiB by default (a long description, a pasted log); no cell
    # can be longer than the file, so that is the limit (a process-wide setting, only ever raised).
    csv.field_size_limit(max(csv.field_size_limit(), size + 1))
    split = _split_offset(handle, size) if size >= PARALLEL_MIN_BYTES and _workers() > 1 else None
    handle.seek(0)
    text = _text(handle if split is None else _Window(handle, split), "utf-8-sig")
    # Split: whether the main process's part ended at a row end is known from its line requests.
    lines = _Lines(text) if split is not None else None
    rows = csv.reader(text if lines is None else lines)
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
    width = len(columns)
    # Row numbers as a spreadsheet shows them: the header is row 1.
    if split is None:
        return _map_rows(rows, layout, tz, width, first_row=2, issues=True)
    worker = _TailWorker(path, split, layout, tz, width)
    try:
        head = _map_rows(rows, layout, tz, width, first_row=2, issues=True)
        if lines is None or lines.ends != 1:
            # The split fell inside a quoted cell (a quote character the count of quotes took for an
            # opening one): the worker read from the middle of a row. Read the file in one go.
            logger.debug("%s: no row ends at byte %d; read in one process", path, split)
            worker.stop()
            handle.seek(0)
            rows = csv.reader(_text(handle, "utf-8-sig"))
            next(rows)  # the header, read above
            return _map_rows(rows, layout, tz, width, first_row=2, issues=True)
        tail = worker.result()
    finally:
        worker.stop()
    if tail is None:
        # The worker failed (or could not start): read its part here, which raises what it raised.
        handle.seek(split)
        tail = _map_rows(csv.reader(_text(handle, "utf-8")), layout, tz, width, first_row=0, issues=True)
    else:
        tail = dataclasses.replace(tail, values=[Issue(*values) for values in tail.values])
    offset = head.next_row
    head.values.extend(tail.values)
    return _MappedRows(
        head.values,
        head.problems + [(offset + line_no, record, reason) for line_no, record, reason in tail.problems],
        offset + tail.next_row,
    )


def _map_rows(
    rows: Iterator[list[str]],
    layout: _CsvLayout,
    tz: tzinfo,
    width: int,
    *,
    first_row: int,
    issues: bool = False,
) -> _MappedRows:
    """Map rows of ``width`` cells, numbered from ``first_row``, to issues (``issues``) or their values
    (to send); a row that cannot be mapped is a problem."""
    values: list[Any] = []
    problems: list[_RowProblem] = []
    line_no = first_row - 1
    for line_no, row in enumerate(rows, start=first_row):
        # A row of blank cells only (joined: no per-cell strip; isspace copies nothing).
        joined = "".join(row)
        if not joined or joined.isspace():
            continue
        if len(row) != width:
            problems.append((line_no, None, f"has {len(row)} cells but the header has {width}"))
            continue
        try:
            issue = _csv_row_values(layout, row, tz)
        except MappingError as exc:
            problems.append((line_no, exc.record, f"field {exc.field!r}: {exc.reason}"))
            continue
        # Built at once, the values tuple is freed at once (its memory reused by the next row's).
        values.append(Issue(*issue) if issues else issue)
    return _MappedRows(values, problems, line_no + 1)


def _text(raw: io.BufferedReader | io.RawIOBase, encoding: str) -> TextIO:
    # newline="" lets the csv module own line endings: quoted cells keep their newlines, and U+2028 or
    # form feeds inside cells are not taken for row ends (str.splitlines would).
    if isinstance(raw, io.RawIOBase):
        raw = io.BufferedReader(raw)
    # Dropping the wrapper closes ``raw``; the callers' ``with`` on the file closes it in any case.
    return io.TextIOWrapper(raw, encoding=encoding, newline="")


class _Lines:
    """The lines of a text stream, counting the requests made after the last one (``ends``).

    A csv reader asks for a line once more after its last row, or, when the text ends inside a quoted
    cell, once to find that out (it then returns the part-read row) and once more: ``ends`` is 1 when
    the text ended at a row end, 2 when it ended inside a row.
    """

    def __init__(self, text: TextIO) -> None:
        self._text = text
        self.ends = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._text.readline()
        if not line:
            self.ends += 1
            raise StopIteration
        return line


class _Window(io.RawIOBase):
    """The bytes of a binary file from its position up to offset ``stop``, as a raw stream."""

    def __init__(self, handle: io.BufferedReader, stop: int) -> None:
        super().__init__()
        self._handle = handle
        self._left = stop - handle.tell()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = self._handle.readinto(view[: max(0, min(len(view), self._left))])
        self._left -= count
        return count


def _split_offset(handle: io.BufferedReader, size: int) -> int | None:
    """Where the worker's part starts: after a line end near ``MAIN_SHARE`` of the file that an even
    number of quote characters precedes (outside any quoted cell, when every quote is CSV quoting).
    None when no such line end is near."""
    target = int(size * MAIN_SHARE)
    handle.seek(0)
    quotes = 0
    left = target
    while left > 0:
        chunk = handle.read(min(left, 1 << 20))
        if not chunk:
            return None
        quotes += chunk.count(b'"')
        left -= len(chunk)
    window = handle.read(_SPLIT_SEARCH_BYTES)
    at = 0
    while (end := window.find(b"\n", at)) >= 0:
        quotes += window.count(b'"', at, end)
        at = end + 1
        if quotes % 2 == 0:
            return target + at if target + at < size else None
    return None


def _workers() -> int:
    """Processes to read a big file: two where processes can fork and two CPUs are there (a spawned
    worker would re-import everything)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return min(2, os.cpu_count() or 1)


def _read_tail(
    sender: Connection, path: Path, start: int, layout: _CsvLayout, tz: tzinfo, width: int
) -> None:
    """In the forked worker: map the rows from ``start`` to the end and send them pickled, then the
    CPU time spent mapping and pickling; an empty message when anything fails (the main process then
    reads the part itself and reports what went wrong)."""
    try:
        cpu = time.process_time()
        with path.open("rb") as handle:
            handle.seek(start)
            mapped = _map_rows(csv.reader(_text(handle, "utf-8")), layout, tz, width, first_row=0)
        mapping = time.process_time() - cpu
        payload = pickle.dumps(mapped, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # reported by the main process, which reads the part again
        sender.send_bytes(b"")
        return
    pickling = time.process_time() - cpu - mapping
    sender.send_bytes(payload)
    sender.send((mapping, pickling))


class _TailWorker:
    """A forked process mapping the rows of a file from ``start`` (at a row end) to its end.

    Forked, not spawned: it starts with the layout and the imported modules in its memory. Only the
    issues' values come back (a tuple of each issue's fields; the issues are built here).
    """

    def __init__(self, path: Path, start: int, layout: _CsvLayout, tz: tzinfo, width: int) -> None:
        self._process: BaseProcess | None = None
        self._receiver: Connection | None = None
        context = multiprocessing.get_context("fork")
        try:
            receiver, sender = context.Pipe(duplex=False)
        except OSError as exc:
            logger.debug("%s: no pipe to a worker (%s); read in one process", path, exc)
            return
        try:
            process = context.Process(
                target=_read_tail, args=(sender, path, start, layout, tz, width), daemon=True, name="csv-read"
            )
            process.start()
        except (OSError, AssertionError) as exc:
            # No process (limits), or this is a daemonic process, which multiprocessing does not let
            # have children (it asserts that).
            logger.debug("%s: no worker process (%r); read in one process", path, exc)
            receiver.close()
            return
        finally:
            sender.close()  # the worker's end; here only the worker holds it open
        self._process, self._receiver = process, receiver

    def result(self) -> _MappedRows | None:
        """The worker's rows (numbered from 0), or None when it failed."""
        if self._receiver is None:
            return None
        try:
            payload = self._receiver.recv_bytes()
            if payload:
                mapped = cast(_MappedRows, pickle.loads(payload))
                del payload
                mapping, pickling = self._receiver.recv()
                logger.debug(
                    "csv-read worker: %d rows (cpu %.3f s mapping, %.3f s pickling)",
                    len(mapped.values),
                    mapping,
                    pickling,
                )
                return mapped
        except (EOFError, OSError):
            pass  # the worker died before sending
        logger.debug("csv-read worker failed; its part is read in the main process")
        return None

    def stop(self) -> None:
        """End the worker (if it still runs) and release it; safe to call twice."""
        if self._receiver is not None:
            self._receiver.close()
            self._receiver = None
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join()
            self._process.close()
            self._process = None


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
        # combine() is replace(tzinfo=tz) (the same fields and fold) in a sixth of the time.
        return parsed if parsed.tzinfo else datetime.combine(parsed, parsed.time(), tz)
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
    reads position ``blank``, one past the last column, where ``_csv_row_values`` puts an empty cell. A
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


def _csv_row_values(layout: _CsvLayout, row: list[str], tz: tzinfo) -> _IssueValues:
    """The issue of one row of ``len(columns)`` cells as ``_ISSUE_FIELDS`` (``row`` gets the layout's
    blank cell appended)."""
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
    return (
        key,
        row[layout.project].strip() or key.rsplit("-", 1)[0],
        SourceKind.FILE,
        title,
        _issue_type(raw_type),
        raw_type,
        None,  # url: an export has no links to its items
        wiki_to_text(row[layout.description].strip()),
        wiki_to_text(ac) if ac else None,
        points,
        status,
        _category(row[layout.category].strip(), status),
        row[layout.priority].strip() or None,
        row[first_rank].strip() or row[second_rank].strip() or None,
        tuple([value for position in layout.labels if (value := row[position].strip())]),
        row[layout.assignee].strip() or None,
        row[layout.reporter].strip() or None,
        created,
        updated,
        sprints[-1][0] if sprints else None,
        False,  # in_active_sprint: not in an export
        parent,
        tuple(links),
        False,  # flagged_blocked: not in an export
    )
