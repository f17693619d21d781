"""How scan and demo results are printed: a table for people, JSON for scripts, a report JSON for CI."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from rich import box
from rich.style import Style
from rich.table import Table
from rich.text import Text

from refinebot.cli.console import err, out, plural
from refinebot.models import Finding, Issue, Severity, flat_details, json_default
from refinebot.readiness import backlog_order

if TYPE_CHECKING:
    from refinebot.pipeline import ProjectResult  # connectors and their SDKs: loaded by the commands that run

logger = logging.getLogger(__name__)

SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
TTY_LIMIT = 50  # issues shown per project on a terminal unless --limit says otherwise


class OutputFormat(StrEnum):
    """How results are printed."""

    TABLE = "table"
    JSON = "json"
    REPORT_JSON = "report-json"


def display_key(issue: Issue | None, key: str) -> str:
    """An issue key as people read it: Azure DevOps ids as ``Project#1211``, never a bare number."""
    if issue is not None and key.isdigit() and issue.project:
        return f"{issue.project}#{key}"
    return key


def print_results(
    results: Sequence[ProjectResult],
    fmt: OutputFormat,
    *,
    limit: int | None = None,
    rendered: RenderedRows | None = None,
) -> None:
    """Print every project's results in ``fmt``; ``limit`` caps the issues a table shows (0: all);
    ``rendered`` holds JSON rows encoded ahead (``RenderedRows``)."""
    started, cpu = time.perf_counter(), time.process_time()
    if fmt is OutputFormat.JSON:
        write_findings((f for r in results for f in r.findings), rendered)
        logger.debug(
            "phase json-write: %.3f s (cpu %.3f s)", time.perf_counter() - started, time.process_time() - cpu
        )
        return
    if fmt is OutputFormat.REPORT_JSON:
        write_json(report(results))
        logger.debug(
            "phase json-write: %.3f s (cpu %.3f s)", time.perf_counter() - started, time.process_time() - cpu
        )
        return
    shown = limit if limit is not None else (TTY_LIMIT if out.is_terminal else 0)
    for index, result in enumerate(results):
        if result.ok:
            if index:
                out.print()
            print_project(result, limit=shown)


# Encoder pieces joined per write: big enough that writes are few, small enough to stay a few MiB.
_PIECES_PER_WRITE = 65_536
_ITEMS_PER_WRITE = 1_000


def write_json(payload: Any) -> None:
    """JSON on stdout, UTF-8 as is, indented; streamed in chunks.

    ``json.dumps`` of 76k duplicate findings built 14 M pieces and a 286 MiB string, then copied it
    to add the newline: the scan's peak memory. The encoder's pieces are the same, so is the text.
    """
    encoder = json.JSONEncoder(indent=2, ensure_ascii=False)
    pieces: list[str] = []
    for piece in encoder.iterencode(payload):
        pieces.append(piece)
        if len(pieces) >= _PIECES_PER_WRITE:
            sys.stdout.write("".join(pieces))
            pieces.clear()
    pieces.append("\n")
    sys.stdout.write("".join(pieces))


def write_json_list(items: Iterable[Any], *, default: Callable[[Any], Any] | None = None) -> None:
    """A JSON list on stdout, as ``write_json`` would print it, byte for byte, 1,000 items at a time.

    The items are never all held as dicts at once (568k findings of a 200k-item scan). ``default`` is
    the encoders' hook for values they cannot encode themselves.
    """
    writer = _ListWriter(default)
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= _ITEMS_PER_WRITE:
            writer.add(chunk)
            chunk.clear()
    if chunk:
        writer.add(chunk)
    writer.close()


class _ListWriter:
    """Prints a JSON list chunk by chunk, each as the indenting encoder prints it within the list.

    The standard library's indenting encoder is pure Python (14 s of a 200k scan); its compact
    encoder is C. So a chunk is encoded compactly by ``json`` (its own number and string spelling),
    in one call (one call per item set up a C encoder per item), and indented by
    ``msgspec.json.format``, which only re-spaces: the text is what the indenting encoder prints. A
    chunk msgspec refuses (``NaN``, a lone surrogate) is encoded the slow way.
    """

    def __init__(self, default: Callable[[Any], Any] | None = None) -> None:
        import msgspec

        self._format = msgspec.json.format
        self._refused = (msgspec.DecodeError, UnicodeEncodeError)
        self._compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=default)
        self._indented = json.JSONEncoder(indent=2, ensure_ascii=False, default=default)
        self._stdout = sys.stdout
        # The UTF-8 bytes msgspec gives go to the binary layer as they are, not decoded and encoded
        # again (190 MB at 200k); only where the text layer would write the very same bytes.
        self._binary: BinaryIO | None = (
            getattr(self._stdout, "buffer", None) if _utf8_as_is(self._stdout) else None
        )
        if self._binary is not None:
            self._stdout.flush()
        self.written = 0

    def compact(self, chunk: Sequence[Any]) -> bytes:
        """``chunk`` as the compact ``json`` encoder spells a list, in UTF-8."""
        return self._compact.encode(chunk).encode()

    def add(self, chunk: Sequence[Any], compact: bytes | None = None) -> None:
        """Print ``chunk``'s items (at least one) after those printed so far; ``compact`` is their list
        spelled compactly already."""
        if compact is None:
            try:
                compact = self.compact(chunk)
            except UnicodeEncodeError:
                compact = None  # a lone surrogate: the slow way says what to do with it
        self.add_compact(compact, len(chunk), lambda: chunk)

    def add_compact(self, compact: bytes | None, count: int, items: Callable[[], Sequence[Any]]) -> None:
        """Print the ``count`` items whose list ``compact`` spells; ``items`` gives them, for the slow
        way when there is no ``compact`` or msgspec refuses to indent it."""
        formatted: bytes | None = None
        if compact is not None:
            try:
                formatted = self._format(compact, indent=2)
            except self._refused:
                formatted = None
        if formatted is None:
            chunk = items()
            body = ",\n".join("  " + self._indented.encode(item).replace("\n", "\n  ") for item in chunk)
            self._stdout.write(("[\n" if not self.written else ",\n") + body)
            self._stdout.flush()  # before any later bytes reach the binary layer
            self.written += len(chunk)
            return
        self.add_formatted(formatted, count)

    def add_formatted(self, formatted: bytes, count: int) -> None:
        """Print ``count`` items given as ``msgspec.json.format(..., indent=2)`` printed their list."""
        # "[\n  item,\n  item\n]": the items at the depth of the whole list's.
        head = b"[\n" if not self.written else b",\n"
        if self._binary is not None:
            self._binary.write(head + formatted[2:-2])
        else:
            self._stdout.write(head.decode() + formatted[2:-2].decode())
        self.written += count

    def close(self) -> None:
        """End the list (``[]`` when nothing was printed) and the line."""
        self._stdout.write("\n]\n" if self.written else "[]\n")


def _utf8_as_is(stream: TextIO) -> bool:
    """Whether text written to ``stream`` reaches its ``buffer`` as its UTF-8 bytes, unchanged."""
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    return isinstance(stream, io.TextIOWrapper) and encoding == "utf8" and os.linesep == "\n"


# What msgspec spells exactly as ``json`` does (it spells floats its own way), as detail values.
_MSGSPEC_SCALARS = frozenset({str, int, bool, type(None)})


def _row(finding: Finding) -> tuple[dict[str, Any], bool]:
    """The finding's output row (the keys of ``to_json``) and whether msgspec may encode it: its
    details passed ``flat_details`` with ``_MSGSPEC_SCALARS`` (else ``json``, with ``json_default``)."""
    details = finding.details
    plain = flat_details(details, _MSGSPEC_SCALARS)
    severity = finding.severity
    row = {
        "project": finding.project,
        "issue": finding.issue,
        "rule": finding.rule,
        "code": finding.code,
        "severity": severity if type(severity) is Severity else severity.value,
        "message": finding.message,
        "details": details if plain is None else plain,
    }
    return row, plain is not None


class _RowEncoder:
    """A row, or a run of rows, as compact UTF-8 JSON: by msgspec when ``simple`` (``_row``) and it
    takes the values, else by ``json`` (its own number spelling, ``json_default`` for the rest)."""

    def __init__(self) -> None:
        import msgspec

        self._msgspec = msgspec.json.Encoder().encode
        self._json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=json_default).encode
        self._refused = (TypeError, ValueError, OverflowError, UnicodeEncodeError, msgspec.EncodeError)

    def __call__(self, value: Any, simple: bool) -> bytes:
        if simple:
            try:
                return self._msgspec(value)
            except self._refused:
                pass  # a type msgspec does not take (a str subclass): json decides
        return self._json(value).encode()


class RenderedRows:
    """Rows of findings encoded ahead of ``write_findings``, each as it would encode them.

    A scan whose backlog rules run in a forked child (``refinebot.pipeline.while_waiting``) hands
    its issue rules' findings here while it waits: that core was idle for 3-4 s of a second 200k
    scan, and their rows were most of the 2 s that printing took afterwards. A row is the compact
    UTF-8 JSON of one finding; ``write_findings`` joins runs of them with commas, as encoding the
    run in one call spells it. Rows that cannot be encoded now are left to ``write_findings``.
    """

    def __init__(self) -> None:
        self._encode = _RowEncoder()
        # The findings are held, so no id here can be reused by another object meanwhile.
        self._findings: list[Finding] = []
        self._rows: list[bytes] = []
        self._position: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, findings: Sequence[Finding]) -> None:
        """Encode the rows of ``findings``."""
        started, cpu = time.perf_counter(), time.process_time()
        encode = self._encode
        for finding in findings:
            try:
                encoded = encode(*_row(finding))
            except Exception:
                # A lone surrogate, details nested too deep, ...: this is only a head start, so the
                # row is left to write_findings, which prints it or fails on it as it did before.
                continue
            self._position[id(finding)] = len(self._rows)
            self._findings.append(finding)
            self._rows.append(encoded)
        logger.debug(
            "phase json-rows-ahead: %.3f s (cpu %.3f s)",
            time.perf_counter() - started,
            time.process_time() - cpu,
        )

    def position(self, finding: Finding) -> int | None:
        """Where ``finding``'s row is (None: not encoded here)."""
        at = self._position.get(id(finding))
        return at if at is not None and self._findings[at] is finding else None

    def joined(self, first: int, last: int) -> bytes:
        """The rows ``first`` to ``last`` (inclusive) joined with commas."""
        return b",".join(self._rows[first : last + 1])


def write_findings(findings: Iterable[Finding], rendered: RenderedRows | None = None) -> None:
    """The findings as a JSON list on stdout: ``write_json_list`` of their ``to_json()``, byte for byte.

    Each finding becomes a row of the same keys (``to_json``, its ``_plain`` walk and ``json``'s
    encoder were 4.7 s of a 200k scan's 507k findings). Runs of rows whose details passed
    ``flat_details`` (with ``_MSGSPEC_SCALARS``) are encoded by msgspec (three times faster than
    ``json``), the other runs (the duplicate rule's scores are floats) by ``json``, their details
    handed over by ``json_default`` as ``to_json`` would, and runs of rows ``rendered`` holds are
    taken from it; a chunk's runs are then indented together.
    """
    encode = _RowEncoder()
    writer = _ListWriter(json_default)
    chunk: list[Finding] = []
    rows: list[dict[str, Any] | None] = []  # None: the row is in ``rendered``
    # Each run of rows of one kind: where it starts, and its kind: msgspec may encode it (True),
    # json must (False), or the rows from that position on in ``rendered`` (an int).
    runs: list[tuple[int, bool | int]] = []

    def flush() -> None:
        parts: list[bytes] = []
        try:
            for (start, kind), (end, _) in zip(runs, [*runs[1:], (len(rows), True)], strict=True):
                if isinstance(kind, bool):
                    parts.append(encode(rows[start:end], kind)[1:-1])
                else:
                    assert rendered is not None
                    parts.append(rendered.joined(kind, kind + end - start - 1))
        except UnicodeEncodeError:
            parts = []  # a lone surrogate: the slow way says what to do with it

        def items() -> list[dict[str, Any]]:
            return [row if row is not None else _row(f)[0] for f, row in zip(chunk, rows, strict=True)]

        if parts:
            writer.add_compact(b"[" + b",".join(parts) + b"]", len(rows), items)
        else:
            writer.add(items())
        chunk.clear()
        rows.clear()
        runs.clear()

    last = -2  # the position in ``rendered`` of the row before, when it came from there
    for finding in findings:
        at = rendered.position(finding) if rendered is not None else None
        if at is not None:
            if not runs or at != last + 1:
                runs.append((len(rows), at))
            last = at
            row: dict[str, Any] | None = None
        else:
            row, simple = _row(finding)
            if not runs or runs[-1][1] is not simple:
                runs.append((len(rows), simple))
            last = -2
        chunk.append(finding)
        rows.append(row)
        if len(rows) >= _ITEMS_PER_WRITE:
            flush()
    if rows:
        flush()
    writer.close()


def report(results: Sequence[ProjectResult]) -> dict[str, Any]:
    """The ``report-json`` object: findings with their ticket's title and URL, and every project's outcome."""
    findings: list[dict[str, Any]] = []
    projects: list[dict[str, Any]] = []
    for result in results:
        issues = {issue.key: issue for issue in result.issues}
        for finding in result.findings:
            issue = issues.get(finding.issue)
            findings.append(
                {
                    **finding.to_json(),
                    "title": issue.title if issue else None,
                    "url": issue.url if issue else None,
                }
            )
        summary = result.summary
        projects.append(
            {
                "project": result.project,
                "ok": result.ok,
                "error": result.error,
                "issues": len(result.issues),
                "ready": summary.ready_items if summary else None,
                "top_n": summary.top_n if summary else None,
                "ready_in_top_n": summary.ready_in_top if summary else None,
                "skipped": list(result.skipped),
                "rule_failures": [f.describe() for f in result.rule_failures],
            }
        )
    return {"findings": findings, "projects": projects}


def _percent(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)}%" if whole else "n/a"


def print_readiness(result: ProjectResult) -> None:
    """The readiness lines: how many items are ready, overall and among the top-ranked."""
    summary = result.summary
    if summary is None:
        return
    issues = {issue.key: issue for issue in result.issues}
    out.print(
        Text.assemble(
            (f"{result.project} readiness: ", "bold"),
            (f"{summary.ready_in_top} of the top {summary.top_n} ready ", "bold"),
            f"({_percent(summary.ready_in_top, summary.top_n)}); ",
            f"{summary.ready_items} of {plural(summary.open_items, 'open item')} ready overall "
            f"({_percent(summary.ready_items, summary.open_items)})",
        )
    )
    if summary.not_ready_top:
        keys = ", ".join(display_key(issues.get(k), k) for k in summary.not_ready_top)
        out.print(Text(f"Not ready in the top {summary.top_n}: {keys}"))
    counts = ", ".join(f"{rule} {count}" for rule, count in sorted(summary.by_rule.items()))
    if counts:
        out.print(Text(f"Findings by rule: {counts}"))


def _short(message: str) -> str:
    """A message without its advice (the part after the first ': '), for a rule's later findings."""
    head, sep, _ = message.partition(": ")
    return f"{head} (as above)" if sep and len(head) >= 12 else message


def _ordered_groups(result: ProjectResult) -> list[tuple[str, list[Finding]]]:
    """Findings grouped by issue, issues in backlog order (top-ranked first), the rest after."""
    by_issue: dict[str, list[Finding]] = {}
    for finding in result.findings:
        by_issue.setdefault(finding.issue, []).append(finding)
    position = {issue.key: index for index, issue in enumerate(backlog_order(result.issues))}
    return sorted(by_issue.items(), key=lambda kv: position.get(kv[0], len(position)))


def print_project(result: ProjectResult, *, limit: int = 0) -> None:
    """One project: readiness first, then findings by issue (at most ``limit`` issues; 0 shows all)."""
    print_readiness(result)
    issues: Mapping[str, Issue] = {issue.key: issue for issue in result.issues}
    groups = _ordered_groups(result)
    if not groups:
        out.print(Text(f"{result.project}: no findings."))
    shown = groups if not limit else groups[:limit]
    table = Table(box=box.SIMPLE_HEAD, expand=False, show_edge=False, pad_edge=False)
    table.add_column("Issue", style="bold", no_wrap=True)
    table.add_column("Severity", no_wrap=True)
    table.add_column("Rule", no_wrap=True)
    table.add_column("Why", overflow="fold", ratio=1)
    explained: set[str] = set()
    for index, (key, findings) in enumerate(shown):
        issue = issues.get(key)
        label = Text(display_key(issue, key))
        if issue is not None and issue.url:
            label.stylize(Style(link=issue.url))
        # The title heads the group in the wide column, so narrow terminals still show it whole.
        table.add_row(label, "", "", Text(issue.title if issue else "", style="bold"))
        for position, finding in enumerate(findings):
            message = finding.message if finding.rule not in explained else _short(finding.message)
            explained.add(finding.rule)
            table.add_row(
                "",
                Text(finding.severity.value, style=SEVERITY_STYLE[finding.severity]),
                Text(finding.rule),
                Text(message),
                end_section=position == len(findings) - 1 and index < len(shown) - 1,
            )
    if shown:
        out.print(table)
    if len(shown) < len(groups):
        more = len(groups) - len(shown)
        out.print(Text(f"... and {plural(more, 'more issue')} with findings: use --format json or --limit 0"))
    for skipped in result.skipped:
        err.print(Text.assemble(("skipped ", "yellow"), skipped))


def report_failures(results: Sequence[ProjectResult]) -> int:
    """Print each failed project (and crashed rule) once; 2 when a project failed, else 0."""
    for result in results:
        for failure in result.rule_failures:
            err.print(Text.assemble((f"project {result.project}: ", "yellow"), failure.describe()))
    failed = [r for r in results if not r.ok]
    for result in failed:
        err.print(Text.assemble((f"project {result.project} failed: ", "bold red"), result.error or ""))
    return 2 if failed else 0


def worst_at_least(results: Sequence[ProjectResult], threshold: Severity) -> bool:
    """True when some finding is at ``threshold`` or worse."""
    order = [Severity.INFO, Severity.WARNING, Severity.ERROR]
    return any(order.index(f.severity) >= order.index(threshold) for r in results for f in r.findings)
