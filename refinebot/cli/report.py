"""How scan and demo results are printed: a table for people, JSON for scripts, a report JSON for CI."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from rich import box
from rich.style import Style
from rich.table import Table
from rich.text import Text

from refinebot.cli.console import err, out, plural
from refinebot.models import Finding, Issue, Severity
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


def print_results(results: Sequence[ProjectResult], fmt: OutputFormat, *, limit: int | None = None) -> None:
    """Print every project's results in ``fmt``; ``limit`` caps the issues a table shows (0: all)."""
    started, cpu = time.perf_counter(), time.process_time()
    if fmt is OutputFormat.JSON:
        write_json_list(f.to_json() for r in results for f in r.findings)
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


def write_json_list(items: Iterable[Any]) -> None:
    """A JSON list on stdout, as ``write_json`` would print it, byte for byte, 1,000 items at a time.

    The items are never all held as dicts at once (568k findings of a 200k-item scan). The standard
    library's indenting encoder is pure Python (14 s of a 200k scan); its compact encoder is C. So
    each chunk is encoded compactly by ``json`` (its own number and string spelling) and indented by
    ``msgspec.json.format``, which only re-spaces: the text is what the indenting encoder prints.
    A chunk msgspec refuses (``NaN``, a lone surrogate) is encoded the slow way.
    """
    import msgspec

    compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    indented = json.JSONEncoder(indent=2, ensure_ascii=False)
    chunk: list[Any] = []
    written = 0

    def flush() -> None:
        nonlocal written
        try:
            text = msgspec.json.format(
                ("[" + ",".join(compact.encode(item) for item in chunk) + "]").encode(), indent=2
            ).decode()
            # "[\n  item,\n  item\n]": the items at the depth of the whole list's.
            body = text[2:-2]
        except (msgspec.DecodeError, UnicodeEncodeError):
            body = ",\n".join("  " + indented.encode(item).replace("\n", "\n  ") for item in chunk)
        sys.stdout.write(("[\n" if not written else ",\n") + body)
        written += len(chunk)
        chunk.clear()

    for item in items:
        chunk.append(item)
        if len(chunk) >= _ITEMS_PER_WRITE:
            flush()
    if chunk:
        flush()
    sys.stdout.write("\n]\n" if written else "[]\n")


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
