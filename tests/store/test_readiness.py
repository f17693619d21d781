"""Readiness per project and cycle: a rerun replaces its cycle, ``previous`` is the cycle recorded before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from refinebot.store import ReadinessRecord, Store

START = datetime(2026, 10, 5, 9, tzinfo=UTC)


def record(cycle: str, week: int, ready: int, project: str = "SHOP") -> ReadinessRecord:
    return ReadinessRecord(
        project, cycle, ready, 10, ready / 10, 40, 20 + ready, START + timedelta(weeks=week)
    )


def test_previous_is_the_cycle_recorded_before(store: Store) -> None:
    for week, cycle in enumerate(["2026-W41", "2026-W42", "2026-W43"]):
        store.readiness.record(record(cycle, week, ready=week + 3))
    store.readiness.record(record("2026-W42", 9, ready=1, project="WEB"))
    assert store.readiness.previous("SHOP", "2026-W43") == record("2026-W42", 1, ready=4)
    assert store.readiness.previous("SHOP", "2026-W42") == record("2026-W41", 0, ready=3)
    assert store.readiness.previous("SHOP", "2026-W41") is None
    # A cycle not recorded yet compares with the latest one.
    assert store.readiness.previous("SHOP", "2026-W44") == record("2026-W43", 2, ready=5)
    assert store.readiness.previous("NONE", "2026-W44") is None


def test_a_rerun_of_a_cycle_replaces_its_record(store: Store) -> None:
    store.readiness.record(record("2026-W41", 0, ready=3))
    store.readiness.record(record("2026-W41", 0, ready=6))
    assert store.readiness.get("SHOP", "2026-W41") == record("2026-W41", 0, ready=6)
    assert store.readiness.history("SHOP") == [record("2026-W41", 0, ready=6)]


def test_history_is_the_last_cycles_oldest_first(store: Store) -> None:
    for week in range(15):
        store.readiness.record(record(f"2026-W{41 + week}", week, ready=week % 10))
    history = store.readiness.history("SHOP", limit=12)
    assert [r.cycle for r in history] == [f"2026-W{41 + week}" for week in range(3, 15)]
