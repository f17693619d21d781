"""A finding made the fast way (``Finding.owning``, as ``Rule.finding`` does) is the finding the constructor makes,
and its details stay read-only."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from refinebot.models import Finding, Issue, Severity, SourceKind
from rules.base import IssueRule, RuleContext

NOW = datetime(2026, 11, 20, tzinfo=UTC)


class Flags(IssueRule):
    """Flags every item (a rule for the test)."""

    code = "RB990"
    name = "flags-everything"

    def check(self, issue: Issue, ctx: RuleContext) -> list[Finding]:
        return [self.finding(ctx, issue, "flagged", count=3, keys=["a", "b"])]


def _issue() -> Issue:
    return Issue(key="SHOP-1", project="SHOP", source_kind=SourceKind.FILE, title="t")


def test_a_rule_finding_equals_the_one_the_constructor_makes() -> None:
    made = Flags().finding(RuleContext("SHOP", NOW), _issue(), "flagged", subject="x", count=3, keys=["a"])
    assert made == Finding(
        project="SHOP",
        issue="SHOP-1",
        rule="flags-everything",
        code="RB990",
        severity=Severity.WARNING,
        message="flagged",
        details={"count": 3, "keys": ["a"]},
        subject="x",
    )
    assert dataclasses.replace(made) == made
    assert made.identity == ("SHOP", "SHOP-1", "flags-everything", "x")
    assert made.to_json() == {
        "project": "SHOP",
        "issue": "SHOP-1",
        "rule": "flags-everything",
        "code": "RB990",
        "severity": "warning",
        "message": "flagged",
        "details": {"count": 3, "keys": ["a"]},
    }


@pytest.mark.parametrize("fast", [True, False])
def test_details_and_fields_refuse_mutation(fast: bool) -> None:
    details: dict[str, object] = {"count": 3}
    if fast:
        finding = Finding.owning("SHOP", "SHOP-1", "r", "RB990", Severity.INFO, "m", details)
    else:
        finding = Finding("SHOP", "SHOP-1", "r", "RB990", Severity.INFO, "m", details)
    with pytest.raises(TypeError):
        finding.details["count"] = 4  # type: ignore[index]
    with pytest.raises(TypeError):
        del finding.details["count"]  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.details = {}  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.message = "other"  # type: ignore[misc]
    assert dict(finding.details) == {"count": 3}
    if not fast:
        details["count"] = 5  # the public constructor copies what it is given
        assert finding.details["count"] == 3


def test_rule_findings_own_a_fresh_details_dict_each() -> None:
    rule, ctx = Flags(), RuleContext("SHOP", NOW)
    first, second = rule.check(_issue(), ctx)[0], rule.check(_issue(), ctx)[0]
    assert first == second
    assert first.details is not second.details
    with pytest.raises(TypeError):
        first.details["count"] = 1  # type: ignore[index]
