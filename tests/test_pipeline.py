"""The pipeline keeps going when a rule crashes: the crash is named, every other finding is kept."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from refinebot import pipeline
from refinebot.cli import demo_config_path
from refinebot.config import load_config
from refinebot.models import Finding, Issue, IssueType, SourceKind, StatusCategory
from refinebot.pipeline import RuleFailure, build_rules, evaluate, run_project
from refinebot.readiness import backlog_order, key_number_order
from rules.base import BacklogRule, IssueRule, RuleContext
from rules.registry import RuleRegistry, default_registry

NOW = datetime(2026, 11, 20, tzinfo=UTC)


class CrashOnSecond(IssueRule):
    """Flags every story, but crashes on the item keyed SHOP-2 (a buggy plugin)."""

    code = "RB901"
    name = "crash-on-second"

    def check(self, issue: Issue, ctx: RuleContext) -> Iterable[Finding]:
        if issue.key in ("SHOP-2", "SHOP-3"):
            raise ValueError(f"cannot read {issue.key}")
        yield self.finding(ctx, issue, "flagged")


class CrashingBacklog(BacklogRule):
    """Always crashes (a buggy backlog plugin)."""

    code = "RB902"
    name = "crashing-backlog"

    def check(self, issues: Sequence[Issue], ctx: RuleContext) -> Iterable[Finding]:
        yield self.finding(ctx, issues[0], "half a result that must not be kept")
        raise RuntimeError("index exploded")


def story(key: str) -> Issue:
    return Issue(key=key, project="SHOP", source_kind=SourceKind.FILE, title=key, type=IssueType.STORY)


def test_a_crashing_rule_is_named_and_the_other_findings_are_kept(caplog: pytest.LogCaptureFixture) -> None:
    issues = [story("SHOP-1"), story("SHOP-2"), story("SHOP-3"), story("SHOP-4")]
    registry = default_registry()
    rules = [*build_rules(registry, {}), CrashOnSecond(), CrashingBacklog()]
    failures: list[RuleFailure] = []
    with caplog.at_level(logging.ERROR):
        findings = evaluate(issues, rules, RuleContext(project="SHOP", now=NOW), failures=failures)
    crash_flags = sorted(f.issue for f in findings if f.rule == "crash-on-second")
    assert crash_flags == ["SHOP-1", "SHOP-4"]  # the crashing rule still ran on the other issues
    assert not [f for f in findings if f.rule == "crashing-backlog"]  # no half results
    assert {f.rule for f in findings} >= {"missing-description", "missing-estimate"}  # built-ins kept
    by_rule = {f.rule: f for f in failures}
    assert by_rule["crash-on-second"].issue == "SHOP-2"
    assert by_rule["crash-on-second"].count == 2
    assert "ValueError: cannot read SHOP-2" in by_rule["crash-on-second"].describe()
    assert "(and 1 more)" in by_rule["crash-on-second"].describe()
    assert by_rule["crashing-backlog"].issue is None
    assert "crash-on-second crashed on SHOP-2" in caplog.text
    assert "crashing-backlog crashed on the backlog" in caplog.text


def test_run_project_reports_rule_failures_and_keeps_the_project() -> None:
    registry = RuleRegistry()
    registry.register_all([*default_registry(), CrashingBacklog])
    loaded = load_config(demo_config_path(), registry)
    result = run_project(loaded, "SHOP", registry=registry, now=NOW)
    assert result.ok
    assert result.findings
    assert [f.rule for f in result.rule_failures] == ["crashing-backlog"]
    assert result.summary is not None


def test_unranked_items_are_ordered_by_key_number() -> None:
    issues = [story(f"BIG-{n}") for n in (100, 10, 2, 1)] + [story("12"), story("7")]
    assert [i.key for i in backlog_order(issues)] == ["7", "12", "BIG-1", "BIG-2", "BIG-10", "BIG-100"]


class SameCodeBacklog(BacklogRule):
    """Flags every item with RB901, the code of ``CrashOnSecond`` (two rules, one sort key)."""

    code = "RB903"
    name = "same-code-backlog"

    def check(self, issues: Sequence[Issue], ctx: RuleContext) -> Iterable[Finding]:
        self.frozen_while_checking = gc.get_freeze_count()
        for issue in issues:
            yield replace(self.finding(ctx, issue, "backlog"), code="RB901")


def test_findings_keep_their_order_and_failures_theirs_though_backlog_rules_run_first() -> None:
    # Backlog rules run first (their index is the memory peak), yet on one issue and code the issue
    # rule's finding still comes first, and issue rules' failures before the backlog rules'.
    issues = [story("SHOP-1"), story("SHOP-2"), story("SHOP-4")]
    backlog = SameCodeBacklog()
    failures: list[RuleFailure] = []
    rules = [CrashingBacklog(), CrashOnSecond(), backlog]
    findings = evaluate(issues, rules, RuleContext(project="SHOP", now=NOW), failures=failures)
    assert [(f.issue, f.message) for f in findings] == [
        ("SHOP-1", "flagged"),
        ("SHOP-1", "backlog"),
        ("SHOP-2", "backlog"),
        ("SHOP-4", "flagged"),
        ("SHOP-4", "backlog"),
    ]
    assert [f.rule for f in failures] == ["crash-on-second", "crashing-backlog"]
    # The objects alive were left out of the collector's passes meanwhile, and are back in them after.
    assert backlog.frozen_while_checking > 0
    assert gc.get_freeze_count() == 0


def test_backlog_order_is_rank_then_creation_then_key_number() -> None:
    # Sorted on rank and creation alone, then only tying runs by key number: the order the full
    # (ranked?, rank, created, key number) key gives, ties included.
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    made = [
        ("BIG-10", "b", late),
        ("BIG-9", "b", late),
        ("BIG-100", "a", None),
        ("BIG-8", "a", None),
        ("BIG-7", None, late),
        ("BIG-20", None, early),
        ("BIG-3", None, early),
        ("BIG-1", None, None),
        ("BIG-11", "a", early),
        ("DONE-1", None, early),
    ]
    issues = [
        replace(story(key), rank=rank, created=created, status_category=StatusCategory.DONE)
        if key.startswith("DONE")
        else replace(story(key), rank=rank, created=created)
        for key, rank, created in made
    ]

    def full_key(issue: Issue) -> tuple[int, str, float, tuple[str, int, str]]:
        created = issue.created.timestamp() if issue.created else float("inf")
        return (0 if issue.rank else 1, issue.rank or "", created, key_number_order(issue.key))

    ordered = [i.key for i in backlog_order(issues)]
    assert ordered == [i.key for i in sorted(issues[:-1], key=full_key)]
    assert ordered == ["BIG-11", "BIG-8", "BIG-100", "BIG-9", "BIG-10", "BIG-3", "BIG-20", "BIG-7", "BIG-1"]


class ReturnsList(IssueRule):
    """Flags every item with a list (no generator), and records whether the heap was settled."""

    code = "RB904"
    name = "returns-list"

    def __init__(self) -> None:
        super().__init__()
        self.frozen: list[int] = []

    def check(self, issue: Issue, ctx: RuleContext) -> list[Finding]:
        self.frozen.append(gc.get_freeze_count())
        return [self.finding(ctx, issue, "listed")]


def test_issue_rules_may_return_lists_and_findings_are_settled_as_they_grow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pipeline, "_SETTLE_EVERY", 2)
    rule = ReturnsList()
    issues = [story(f"SHOP-{n}") for n in range(1, 6)]
    findings = evaluate(issues, [rule, CrashOnSecond()], RuleContext(project="SHOP", now=NOW))
    assert [(f.issue, f.rule) for f in findings if f.rule == "returns-list"] == [
        (f"SHOP-{n}", "returns-list") for n in range(1, 6)
    ]
    # CrashOnSecond's generator crashed on SHOP-2 and SHOP-3: none of its findings there are kept.
    assert [f.issue for f in findings if f.rule == "crash-on-second"] == ["SHOP-1", "SHOP-4", "SHOP-5"]
    # Every second issue the findings so far were frozen too: the freeze count grew during the run.
    assert rule.frozen[2] > rule.frozen[1] and rule.frozen[4] > rule.frozen[3]
    assert gc.get_freeze_count() == 0
