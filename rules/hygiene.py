"""Backlog hygiene rules: items that nobody has touched in a long time."""

from __future__ import annotations

from datetime import UTC

from pydantic import Field

from refinebot.models import Finding, Issue, Severity
from rules.base import IssueRule, RuleContext, RuleOptions


class StaleOptions(RuleOptions):
    """Options of ``stale-item``."""

    days: int = Field(default=90, ge=1, description="days without an update before an item is stale")


class StaleItem(IssueRule):
    """Items not updated for a long time should be re-confirmed or removed.

    An open item whose last update is more than ``days`` days old (default 90) is probably out of date: keep it
    (and refresh it) or close it. Items in an active sprint are being worked on and are not checked.
    """

    code = "RB301"
    name = "stale-item"
    default_severity = Severity.INFO
    Options = StaleOptions

    def applies_to(self, issue: Issue) -> bool:
        return issue.is_open and not issue.in_active_sprint

    def check(self, issue: Issue, ctx: RuleContext) -> list[Finding]:
        options: StaleOptions = self.options  # type: ignore[assignment]
        last = issue.updated or issue.created
        if last is None:
            return []
        if last.tzinfo is None:
            last = last.replace(tzinfo=UTC)  # sources without zones (CSV) are read as UTC
        age = (ctx.now - last).days
        if age <= options.days:
            return []
        return [
            self.finding(
                ctx,
                issue,
                f"Not updated for {age} days (limit {options.days}): confirm it is still wanted, or close it.",
                days_since_update=age,
                days=options.days,
                last_updated=last.isoformat(),
            )
        ]


RULES = (StaleItem,)
