"""How ready a backlog is: which items meet the definition of ready, overall and among the top-ranked."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from refinebot.models import Finding, Issue, IssueType, Severity

BLOCKING_SEVERITIES = frozenset({Severity.ERROR, Severity.WARNING})


def key_number_order(key: str) -> tuple[str, int, str]:
    """Sort key for issue keys by their number: BIG-2 before BIG-10 (Azure DevOps ids are bare numbers)."""
    prefix, _, number = key.rpartition("-")
    if number.isdigit():
        return (prefix, int(number), "")
    return (key, -1, key) if not key.isdigit() else ("", int(key), "")


def backlog_order(issues: Iterable[Issue]) -> list[Issue]:
    """Open, non-epic items in backlog order: ranked items first by rank, then unranked by creation."""

    def key(issue: Issue) -> tuple[int, str, float, tuple[str, int, str]]:
        created = issue.created.timestamp() if issue.created else float("inf")
        return (0 if issue.rank else 1, issue.rank or "", created, key_number_order(issue.key))

    return sorted((i for i in issues if i.is_open and i.type is not IssueType.EPIC), key=key)


@dataclass(frozen=True, slots=True)
class ReadinessSummary:
    """Counts for one project: ready items overall and among the top N."""

    open_items: int
    ready_items: int
    top_n: int
    ready_in_top: int
    top_keys: tuple[str, ...]
    not_ready_top: tuple[str, ...]
    by_rule: dict[str, int] = field(default_factory=dict)

    @property
    def ready_ratio(self) -> float:
        """Share of the top N that is ready (0 when the backlog is empty)."""
        return self.ready_in_top / self.top_n if self.top_n else 0.0


def not_ready_keys(findings: Iterable[Finding]) -> set[str]:
    """Items that have at least one error or warning finding."""
    return {f.issue for f in findings if f.severity in BLOCKING_SEVERITIES}


def summarize(issues: Sequence[Issue], findings: Sequence[Finding], top_n: int) -> ReadinessSummary:
    """The readiness summary of a backlog given its findings."""
    ordered = backlog_order(issues)
    blocked = not_ready_keys(findings)
    top = ordered[:top_n]
    return ReadinessSummary(
        open_items=len(ordered),
        ready_items=sum(1 for i in ordered if i.key not in blocked),
        top_n=len(top),
        ready_in_top=sum(1 for i in top if i.key not in blocked),
        top_keys=tuple(i.key for i in top),
        not_ready_top=tuple(i.key for i in top if i.key in blocked),
        by_rule=dict(Counter(f.rule for f in findings)),
    )
