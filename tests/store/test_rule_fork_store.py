"""Backlog rules forked beside the store, on SQLite and PostgreSQL: the child reads the stored cache
through connections of its own, and its writes land through the parent's, so a dry run's rollback
and scan's read-through cache keep their meaning."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import URL

from refinebot import rule_fork
from refinebot.digest import ReadThroughRuleCache, rehearsal
from refinebot.pipeline import evaluate
from refinebot.store import Store
from rules.base import RuleCache, RuleContext
from tests.test_rule_fork import ISSUES, PARENT, FlagAll, WhereRan
from tests.test_rule_fork import pytestmark as needs_fork

pytestmark = needs_fork
NOW = datetime(2026, 11, 20, tzinfo=UTC)


def forked_run(cache: RuleCache, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run a forked backlog rule on ``cache``; the pid it ran in."""
    monkeypatch.setattr(rule_fork, "FORK_MIN_ISSUES", 1)
    findings = evaluate(ISSUES, [FlagAll(), WhereRan()], RuleContext(project="SHOP", now=NOW, cache=cache))
    pid: int = {f.rule: f for f in findings}["where-ran"].details["pid"]
    return pid


def stored_runs(database_url: URL) -> object:
    reopened = Store.open(database_url)
    try:
        return reopened.rule_cache("SHOP").get("runs")
    finally:
        reopened.close()


def test_the_child_reads_the_store_and_its_writes_are_saved(
    store: Store, database_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.rule_cache("SHOP").put("runs", 5)
    assert forked_run(store.rule_cache("SHOP"), monkeypatch) != PARENT
    assert stored_runs(database_url) == 6
    assert store.rule_cache("SHOP").get("seen") == 6
    # The parent's own connections still work after the child dropped its copy of the pool.
    assert forked_run(store.rule_cache("SHOP"), monkeypatch) != PARENT
    assert stored_runs(database_url) == 7


def test_a_dry_run_rolls_the_childs_writes_back(
    store: Store, database_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.rule_cache("SHOP").put("runs", 5)
    with rehearsal(store):
        assert forked_run(store.rule_cache("SHOP"), monkeypatch) != PARENT
        assert store.rule_cache("SHOP").get("runs") == 6  # seen inside the dry run's transaction
    assert stored_runs(database_url) == 5


def test_scans_read_through_cache_keeps_the_childs_writes_in_memory(
    store: Store, database_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.rule_cache("SHOP").put("runs", 5)
    cache = ReadThroughRuleCache(store.rule_cache("SHOP"))
    assert forked_run(cache, monkeypatch) != PARENT
    assert cache.get("runs") == 6
    assert stored_runs(database_url) == 5
