"""Dependency rules: items blocked by unfinished work, and dependency cycles."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import Field

from refinebot.models import Finding, Issue, LinkKind, Severity, StatusCategory
from rules.base import BacklogRule, RuleContext, RuleOptions


class BlockedOptions(RuleOptions):
    """Options of ``blocked-dependency``."""

    # Off by default: exports (CSV, ADO JSON) carry no status for linked items and usually leave done items
    # out, so an unknown blocker is most often a finished one; live connectors fetch blockers' statuses.
    flag_unknown: bool = Field(
        default=False,
        description="also flag blockers whose status is unknown (outside the fetched backlog)",
    )


class BlockedDependency(BacklogRule):
    """Items blocked by unfinished work are not ready.

    An open item is flagged when an issue it is blocked by is not done (read from either side of a "blocks"
    link), when the source marks it blocked (Azure DevOps Blocked field or tag), or when it sits in a cycle of
    blocking links. Done blockers and plain "relates to" links are never flagged.
    """

    code = "RB401"
    name = "blocked-dependency"
    default_severity = Severity.ERROR
    Options = BlockedOptions

    def check(self, issues: Sequence[Issue], ctx: RuleContext) -> Iterator[Finding]:
        options: BlockedOptions = self.options  # type: ignore[assignment]
        by_key = {issue.key: issue for issue in issues}
        blockers = _blockers(issues)
        cycles = _cycle_members(blockers, by_key)
        for issue in issues:
            if not issue.is_open:
                continue
            open_blockers: list[str] = []
            described: list[str] = []
            for target, category in blockers.get(issue.key, {}).items():
                # The blocker's own record is fresher than the status a link carried when it was synced.
                known = _category_of(by_key.get(target)) or category
                if known is StatusCategory.DONE or (known is None and not options.flag_unknown):
                    continue
                open_blockers.append(target)
                status = by_key[target].status if target in by_key else ""
                if status:
                    described.append(f"{target} ({status})")
                elif known is None:
                    described.append(f"{target} (status unknown)")
                else:
                    described.append(target)
            cycle = cycles.get(issue.key)
            if not (open_blockers or issue.flagged_blocked or cycle):
                continue
            parts = []
            if open_blockers:
                parts.append(f"Blocked by unfinished {', '.join(described)}")
            elif issue.flagged_blocked:
                parts.append("Marked as blocked")
            if cycle:
                parts.append("in a dependency cycle among " + ", ".join(cycle))
            details: dict[str, Any] = {"blocked_by": open_blockers}
            if issue.flagged_blocked:
                details["flagged"] = True
            if cycle:
                details["cycle"] = cycle
            yield self.finding(
                ctx,
                issue,
                "; ".join(parts) + ": resolve or re-plan the dependency before refining it.",
                **details,
            )


def _category_of(issue: Issue | None) -> StatusCategory | None:
    return issue.status_category if issue is not None else None


def _blockers(issues: Sequence[Issue]) -> dict[str, dict[str, StatusCategory | None]]:
    """For each issue key, the keys that block it, with the blocker's status category when a link carries it."""
    result: dict[str, dict[str, StatusCategory | None]] = {}
    for issue in issues:
        for link in issue.links:
            if link.kind is LinkKind.BLOCKED_BY:
                entry = result.setdefault(issue.key, {})
                entry[link.target] = entry.get(link.target) or link.target_status_category
            elif link.kind is LinkKind.BLOCKS:
                # Only one side of a link may be exported (CSV); the reverse side is implied.
                entry = result.setdefault(link.target, {})
                entry.setdefault(issue.key, issue.status_category)
    return result


def _cycle_members(
    blockers: Mapping[str, Mapping[str, StatusCategory | None]], by_key: Mapping[str, Issue]
) -> dict[str, list[str]]:
    """Issues on a cycle of blocked-by edges between open items, each mapped to its cycle (Tarjan's SCC)."""
    graph = {
        key: sorted(t for t in targets if t in by_key and by_key[t].is_open)
        for key, targets in blockers.items()
        if key in by_key and by_key[key].is_open
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: dict[str, list[str]] = {}
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        # Iterative DFS so long chains cannot hit the recursion limit.
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = graph.get(node, [])
            if child < len(successors):
                work.append((node, child + 1))
                nxt = successors[child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, []):
                    ordered = sorted(component)
                    for member in component:
                        result[member] = ordered
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result


RULES = (BlockedDependency,)
