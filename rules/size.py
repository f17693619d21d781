"""Size rules: items must be small enough to finish in one sprint."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from refinebot.models import Finding, Issue, IssueType, Severity
from rules.base import ISSUE_TYPES_DESCRIPTION, IssueRule, RuleContext, RuleOptions


class OversizedOptions(RuleOptions):
    """Options of ``oversized-story``."""

    max_points: float = Field(default=8.0, gt=0, description="largest estimate that fits in one sprint")
    issue_types: list[IssueType] = Field(
        default_factory=lambda: [IssueType.STORY, IssueType.BUG, IssueType.TASK, IssueType.OTHER],
        description=ISSUE_TYPES_DESCRIPTION,
    )


class OversizedStory(IssueRule):
    """Stories over the point limit should be split before they enter a sprint.

    Teams split anything larger than ``max_points`` (default 8): big items hide unknowns and rarely finish in
    one sprint. Epics are containers and are not checked.
    """

    code = "RB201"
    name = "oversized-story"
    default_severity = Severity.WARNING
    Options = OversizedOptions

    def check(self, issue: Issue, ctx: RuleContext) -> Iterator[Finding]:
        options: OversizedOptions = self.options  # type: ignore[assignment]
        points = issue.story_points
        if points is None or points <= options.max_points:
            return
        yield self.finding(
            ctx,
            issue,
            f"Estimated at {_fmt(points)} points, over the limit of {_fmt(options.max_points)}: "
            "split it into smaller stories that each fit in a sprint.",
            points=points,
            max_points=options.max_points,
        )


def _fmt(value: float) -> str:
    return f"{value:g}"


RULES = (OversizedStory,)
