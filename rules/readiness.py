"""Definition-of-ready content rules: acceptance criteria, description and estimate are present."""

from __future__ import annotations

import re

from pydantic import Field

from refinebot.models import Finding, Issue, IssueType, Severity
from rules.acceptance import acceptance_criteria_or_empty, has_content
from rules.base import ISSUE_TYPES_DESCRIPTION, IssueRule, RuleContext, RuleOptions


class AcceptanceCriteriaOptions(RuleOptions):
    """Options of ``missing-acceptance-criteria``."""

    issue_types: list[IssueType] = Field(
        default_factory=lambda: [IssueType.STORY], description=ISSUE_TYPES_DESCRIPTION
    )


class MissingAcceptanceCriteria(IssueRule):
    """Stories need acceptance criteria before the team can refine them.

    Acceptance criteria count when the item has them in a dedicated field, or when its description has an
    "Acceptance criteria" heading or label (Jira ADF, wiki markup, HTML or Markdown), "AC:", Given/When/Then
    scenarios, a checklist of outcomes (task-list items, with or without "Done when:"), an "Acceptance tests"
    section of steps with expected results, or a sentence "The acceptance criteria for this is that ...". A
    section holding only a placeholder ("TBD", "N/A", "to be defined", "see above", "This is a sub-task") or
    nothing is flagged as empty. A "Definition of done" section is not acceptance criteria, and neither is the
    word "acceptance" used in passing. Epics and bugs are not checked unless listed in ``issue_types``.
    """

    code = "RB101"
    name = "missing-acceptance-criteria"
    default_severity = Severity.ERROR
    Options = AcceptanceCriteriaOptions

    def check(self, issue: Issue, ctx: RuleContext) -> list[Finding]:
        if issue.acceptance_criteria and has_content(issue.acceptance_criteria):
            return []
        found, empty = acceptance_criteria_or_empty(issue.description)
        if found:
            return []
        field_placeholder = bool(issue.acceptance_criteria and issue.acceptance_criteria.strip())
        if field_placeholder or empty:
            where = "field" if field_placeholder else "section"
            return [
                self.finding(
                    ctx,
                    issue,
                    f"{issue.raw_type or 'Item'} has an acceptance criteria {where}, but it is empty (only a "
                    "placeholder such as 'TBD' or 'see above'): write the criteria so the team can agree when it "
                    "is done.",
                    issue_type=issue.type.value,
                    checked=["acceptance_criteria_field", "description"],
                    empty_section=True,
                )
            ]
        return [
            self.finding(
                ctx,
                issue,
                f"{issue.raw_type or 'Item'} has no acceptance criteria: add an 'Acceptance criteria' section "
                "or Given/When/Then scenarios so the team can agree when it is done.",
                issue_type=issue.type.value,
                checked=["acceptance_criteria_field", "description"],
            )
        ]


class DescriptionOptions(RuleOptions):
    """Options of ``missing-description``."""

    min_length: int = Field(
        default=30, ge=1, description="fewest characters a description needs, markup stripped"
    )
    issue_types: list[IssueType] = Field(
        default_factory=lambda: [
            IssueType.STORY,
            IssueType.BUG,
            IssueType.TASK,
            IssueType.EPIC,
            IssueType.OTHER,
        ],
        description=ISSUE_TYPES_DESCRIPTION,
    )


_MARKUP_NOISE = re.compile(r"```|^[ \t]*(?:[-*]|\d+\.|\[[ x]\])(?:[ \t]+|$)|\s+", re.MULTILINE)


class MissingDescription(IssueRule):
    """Items need a description that says what and why.

    The description counts when, with markup, list markers and white space stripped, it has at least
    ``min_length`` characters. A title alone does not tell the team enough to estimate.
    """

    code = "RB102"
    name = "missing-description"
    default_severity = Severity.ERROR
    Options = DescriptionOptions

    def check(self, issue: Issue, ctx: RuleContext) -> list[Finding]:
        options: DescriptionOptions = self.options  # type: ignore[assignment]
        text = issue.description
        if len(text) >= 4 * options.min_length:
            return []  # long enough however much markup it has; skip the strip on the hot path
        length = len(_MARKUP_NOISE.sub(" ", text).replace(" ", ""))
        if length >= options.min_length:
            return []
        what = "is empty" if length == 0 else f"has only {length} characters"
        return [
            self.finding(
                ctx,
                issue,
                f"Description {what} (at least {options.min_length} needed): say what is wanted and why.",
                length=length,
                min_length=options.min_length,
            )
        ]


class EstimateOptions(RuleOptions):
    """Options of ``missing-estimate``."""

    issue_types: list[IssueType] = Field(
        default_factory=lambda: [IssueType.STORY], description=ISSUE_TYPES_DESCRIPTION
    )


class MissingEstimate(IssueRule):
    """Stories need a story-point estimate before they can be planned.

    An item without points cannot be weighed against the team's capacity; estimate it in refinement.
    """

    code = "RB103"
    name = "missing-estimate"
    default_severity = Severity.WARNING
    Options = EstimateOptions

    def check(self, issue: Issue, ctx: RuleContext) -> list[Finding]:
        if issue.story_points is not None:
            return []
        return [
            self.finding(
                ctx,
                issue,
                f"{issue.raw_type or 'Item'} has no story-point estimate: estimate it in refinement.",
                issue_type=issue.type.value,
            )
        ]


RULES = (MissingAcceptanceCriteria, MissingDescription, MissingEstimate)
