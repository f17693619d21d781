"""Backlog rules in a forked child: the same findings, failures and cache as in-process, and a child
that dies or sends what cannot be read costs a second run here, never a lost or doubled result."""

from __future__ import annotations

import logging
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from refinebot import rule_fork
from refinebot.models import Finding, Issue, IssueType, SourceKind
from refinebot.pipeline import RuleFailure, build_rules, evaluate
from rules.base import BacklogRule, IssueRule, MemoryRuleCache, RuleCache, RuleContext
from rules.registry import default_registry

NOW = datetime(2026, 11, 20, tzinfo=UTC)
PARENT = os.getpid()

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods() or (os.cpu_count() or 1) < 2,
    reason="backlog rules fork only where processes can fork and two CPUs are there",
)


def story(key: str) -> Issue:
    return Issue(key=key, project="SHOP", source_kind=SourceKind.FILE, title=key, type=IssueType.STORY)


ISSUES = [story(f"SHOP-{n}") for n in range(1, 7)]


class WhereRan(BacklogRule):
    """Flags the first item, saying which process ran it; counts its runs in the cache."""

    code = "RB911"
    name = "where-ran"

    def check(self, issues: Sequence[Issue], ctx: RuleContext) -> Iterable[Finding]:
        assert ctx.cache is not None
        runs = ctx.cache.get("runs")
        ctx.cache.put("runs", (runs if isinstance(runs, int) else 0) + 1)
        ctx.cache.put("scratch", b"x" * 100_000)  # bigger than a pipe's buffer
        ctx.cache.delete("scratch")
        ctx.cache.put("seen", ctx.cache.get("runs"))  # its own write, read back
        return [self.finding(ctx, issues[0], "ran", pid=os.getpid(), nested={"a": [1, 2]})]


class DiesInChild(BacklogRule):
    """Writes to the cache, then kills its process when it is not the test's (a child hit by the OOM
    killer, say); in the test's process it flags the last item."""

    code = "RB912"
    name = "dies-in-child"

    def check(self, issues: Sequence[Issue], ctx: RuleContext) -> Iterable[Finding]:
        assert ctx.cache is not None
        ctx.cache.put("dying", os.getpid())
        if os.getpid() != PARENT:
            os._exit(3)
        return [self.finding(ctx, issues[-1], "ran here", pid=os.getpid())]


class Unpicklable(BacklogRule):
    """A finding whose details do not pickle (a function in them)."""

    code = "RB913"
    name = "unpicklable"

    def check(self, issues: Sequence[Issue], ctx: RuleContext) -> Iterable[Finding]:
        return [self.finding(ctx, issues[1], "odd details", pid=os.getpid(), how=lambda: None)]


class CrashingBacklog(BacklogRule):
    """Always crashes after a first finding (a buggy plugin)."""

    code = "RB914"
    name = "crashing-backlog-fork"

    def check(self, issues: Sequence[Issue], ctx: RuleContext) -> Iterable[Finding]:
        yield self.finding(ctx, issues[0], "half a result that must not be kept")
        raise RuntimeError("index exploded")


class FlagAll(IssueRule):
    """Flags every item (an issue rule, so that the pipeline has both kinds)."""

    code = "RB915"
    name = "flag-all-fork"

    def check(self, issue: Issue, ctx: RuleContext) -> list[Finding]:
        return [self.finding(ctx, issue, "flagged", pid=os.getpid())]


class NoForkCache:
    """A plugin's cache that says nothing about forks: it may hold a connection, so it is not forked."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def get(self, key: str) -> object | None:
        return self.values.get(key)

    def put(self, key: str, value: object) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def run(
    rules: list[object], cache: RuleCache | None, *, fork_min: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Finding], list[RuleFailure]]:
    monkeypatch.setattr(rule_fork, "FORK_MIN_ISSUES", fork_min)
    failures: list[RuleFailure] = []
    ctx = RuleContext(project="SHOP", now=NOW, cache=cache)
    return evaluate(ISSUES, rules, ctx, failures=failures), failures  # type: ignore[arg-type]


def test_forked_backlog_rules_give_what_in_process_ones_give(monkeypatch: pytest.MonkeyPatch) -> None:
    built = build_rules(default_registry(), {})
    here_cache, forked_cache = MemoryRuleCache(), MemoryRuleCache()
    here, here_failures = run(
        [*built, FlagAll(), WhereRan()], here_cache, fork_min=10**9, monkeypatch=monkeypatch
    )
    forked, forked_failures = run(
        [*built, FlagAll(), WhereRan()], forked_cache, fork_min=1, monkeypatch=monkeypatch
    )

    ran = {f.rule: f for f in forked}["where-ran"]
    assert ran.details["pid"] != PARENT  # it did run in a child
    assert {f.details["pid"] for f in forked if f.rule == "flag-all-fork"} == {PARENT}
    assert ran.details["nested"] == {"a": [1, 2]}

    def comparable(findings: list[Finding]) -> list[tuple[object, ...]]:
        return [
            (
                f.project,
                f.issue,
                f.rule,
                f.code,
                f.severity,
                f.message,
                f.subject,
                sorted((k, repr(v)) for k, v in f.details.items() if k != "pid"),
            )
            for f in findings
        ]

    assert comparable(forked) == comparable(here)  # same findings, same order
    assert forked_failures == here_failures == []
    # The child's writes reached the real cache, in order: the delete after the put stands.
    for cache in (here_cache, forked_cache):
        assert cache.get("runs") == 1
        assert cache.get("seen") == 1
        assert cache.get("scratch") is None
    # A second run reads what the first wrote.
    run([FlagAll(), WhereRan()], forked_cache, fork_min=1, monkeypatch=monkeypatch)
    assert forked_cache.get("runs") == 2


def test_a_rule_crashing_in_the_child_is_reported_as_in_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    findings, failures = run(
        [FlagAll(), CrashingBacklog(), WhereRan()], MemoryRuleCache(), fork_min=1, monkeypatch=monkeypatch
    )
    assert not [f for f in findings if f.rule == "crashing-backlog-fork"]  # no half results
    assert [f.details["pid"] != PARENT for f in findings if f.rule == "where-ran"] == [True]
    assert failures == [RuleFailure("crashing-backlog-fork", None, "RuntimeError: index exploded")]


def test_a_child_that_dies_costs_a_run_here_and_keeps_none_of_its_writes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cache = MemoryRuleCache()
    with caplog.at_level(logging.INFO, logger="refinebot.rule_fork"):
        findings, failures = run(
            [FlagAll(), WhereRan(), DiesInChild()], cache, fork_min=1, monkeypatch=monkeypatch
        )
    assert "backlog rules in a child process failed; running them in this one" in caplog.text
    by_rule = {f.rule: f for f in findings}
    assert by_rule["dies-in-child"].details["pid"] == PARENT
    assert by_rule["where-ran"].details["pid"] == PARENT  # all backlog rules ran again here
    assert len([f for f in findings if f.rule == "where-ran"]) == 1  # once, not twice
    assert cache.get("runs") == 1  # the dead child's writes were never applied
    assert cache.get("dying") == PARENT
    assert failures == []


def test_results_that_do_not_pickle_are_computed_here(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = MemoryRuleCache()
    findings, _ = run([FlagAll(), WhereRan(), Unpicklable()], cache, fork_min=1, monkeypatch=monkeypatch)
    assert {f.rule: f.details["pid"] for f in findings if f.rule in ("unpicklable", "where-ran")} == {
        "unpicklable": PARENT,
        "where-ran": PARENT,
    }
    assert cache.get("runs") == 1


@pytest.mark.parametrize(
    ("threshold", "cache", "forks"),
    [
        (len(ISSUES) + 1, MemoryRuleCache(), False),  # a backlog under the threshold
        (len(ISSUES), MemoryRuleCache(), True),
        (len(ISSUES), None, True),
        (len(ISSUES), NoForkCache(), False),  # a cache that may not be read from a child
    ],
)
def test_which_runs_fork(
    threshold: int, cache: RuleCache | None, forks: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rule_fork, "FORK_MIN_ISSUES", threshold)
    ctx = RuleContext(project="SHOP", now=NOW, cache=cache)
    assert rule_fork.can_fork(ISSUES, [WhereRan()], ctx) is forks
    assert rule_fork.can_fork(ISSUES, [], ctx) is False  # nothing to fork


def test_no_fork_once_torch_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rule_fork, "FORK_MIN_ISSUES", 1)
    monkeypatch.setitem(sys.modules, "torch", object())
    assert not rule_fork.can_fork(ISSUES, [WhereRan()], RuleContext(project="SHOP", now=NOW))


_EXITS_WHILE_CHILD_RUNS = """
import os, sys, time
from datetime import UTC, datetime
from refinebot.rule_fork import ForkedBacklogRules
from refinebot.pipeline import run_backlog_rules
from rules.base import BacklogRule, RuleContext
from tests.test_rule_fork import ISSUES

class Slow(BacklogRule):
    \"\"\"Takes ten minutes.\"\"\"

    code = "RB916"
    name = "slow-backlog"

    def check(self, issues, ctx):
        time.sleep(600)
        return []

ctx = RuleContext(project="SHOP", now=datetime(2026, 11, 20, tzinfo=UTC))
forked = ForkedBacklogRules(ISSUES, [Slow()], ctx, run_backlog_rules)
print(forked._process.pid, flush=True)
sys.exit(0)  # as a run unwinding past result(), or serve giving up on a cycle at shutdown
"""


def test_a_process_that_stops_waiting_still_exits_and_takes_the_child_along() -> None:
    # multiprocessing joins non-daemonic children at exit: without the kill the parent would wait
    # for the 600 s rule (and a child blocked on sending would keep it for ever).
    done = subprocess.run(
        [sys.executable, "-c", _EXITS_WHILE_CHILD_RUNS],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr
    child = int(done.stdout.split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


@pytest.mark.parametrize("fork_min", [1, 10**9], ids=["forked", "in-process"])
def test_the_wait_for_the_child_is_given_the_issue_rules_findings(
    monkeypatch: pytest.MonkeyPatch, fork_min: int
) -> None:
    from refinebot.pipeline import while_waiting

    handed: list[list[Finding]] = []
    with while_waiting(lambda found: handed.append(list(found))):
        findings, _ = run(
            [FlagAll(), WhereRan()], MemoryRuleCache(), fork_min=fork_min, monkeypatch=monkeypatch
        )
    if fork_min > 1:
        assert handed == []  # no child, no wait: nothing to do meanwhile
        return
    (issue_findings,) = handed
    assert [f.rule for f in issue_findings] == ["flag-all-fork"] * len(ISSUES)
    # The very objects of the result (a renderer finds its rows by identity), the child's besides.
    assert [id(f) for f in findings if f.rule == "flag-all-fork"] == [id(f) for f in issue_findings]
    assert [f.rule for f in findings if f not in issue_findings] == ["where-ran"]
    # Outside the block nothing is handed over.
    run([FlagAll(), WhereRan()], MemoryRuleCache(), fork_min=1, monkeypatch=monkeypatch)
    assert len(handed) == 1
