"""How ready a backlog is: which items meet the definition of ready, overall and among the top-ranked."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from refinebot.models import Finding, Issue, IssueType, Severity

BLOCKING_SEVERITIES = frozenset({Severity.ERROR, Severity.WARNING})


def key_number_order(key: str) -> tuple[str, int, str]:
    """Sort key for issue keys by their number: BIG-2 before BIG-10 (Azure DevOps ids are bare numbers)."""
    prefix, _, number = key.rpartition("-")
    if number.isdigit():
        return (prefix, int(number), "")
    return (key, -1, key) if not key.isdigit() else ("", int(key), "")


def backlog_order(issues: Iterable[Issue]) -> list[Issue]:
    """Open, non-epic items in backlog order: ranked items first by rank, then unranked by creation.

    Ties (same rank and creation time, or none) go by key number. The items are sorted on rank and
    creation only, and just the runs that tie re-sorted by key: building the full key of every item
    was 0.4 s of a 200k scan, and creation times rarely tie.
    """
    ranked: list[Issue] = []
    unranked: list[Issue] = []
    for issue in issues:
        if issue.is_open and issue.type is not IssueType.EPIC:
            (ranked if issue.rank else unranked).append(issue)
    return _tie_broken(ranked, [(i.rank, _created(i)) for i in ranked]) + _tie_broken(
        unranked, [_created(i) for i in unranked]
    )


_NEVER = float("inf")


def _created(issue: Issue) -> float:
    return issue.created.timestamp() if issue.created else _NEVER


def _tie_broken(items: list[Issue], keys: Sequence[Any]) -> list[Issue]:
    """``items`` sorted by ``keys`` (one per item), items of equal keys by ``key_number_order``."""
    order = sorted(range(len(items)), key=keys.__getitem__)
    result = [items[index] for index in order]
    start = 0
    for position in range(1, len(order) + 1):
        if position == len(order) or keys[order[position]] != keys[order[start]]:
            if position - start > 1:
                result[start:position] = sorted(
                    result[start:position], key=lambda issue: key_number_order(issue.key)
                )
            start = position
    return result


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
