"""Sync state in the database: the ``SyncStateStore`` port, big collections one row per item written only
when changed, rolled-back saves, damage tolerated, rows of the first release still read."""

from __future__ import annotations

import json
import logging
import zlib
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, delete, event, func, insert, select, update
from sqlalchemy.engine import URL

from benchmarks.store_bench import jira_snapshot, synthetic_texts
from connectors.base import SyncStateStore
from refinebot.store import Store
from refinebot.store.engine import create_store_engine
from refinebot.store.migrate import upgrade
from refinebot.store.schema import sync_items, sync_state


def test_is_a_sync_state_store(store: Store) -> None:
    assert isinstance(store.sync_state, SyncStateStore)


def test_missing_key_loads_none(store: Store) -> None:
    assert store.sync_state.load("jira:nothing") is None


def test_save_replaces_and_keys_stay_apart(store: Store) -> None:
    store.sync_state.save("jira:SHOP", {"cursor": "2026-11-01", "ids": [1, 2]})
    store.sync_state.save("ado:WEB", ["x"])
    store.sync_state.save("jira:SHOP", {"cursor": "2026-11-30", "ids": [3], "text": "Grüße ✓"})
    assert store.sync_state.load("jira:SHOP") == {"cursor": "2026-11-30", "ids": [3], "text": "Grüße ✓"}
    assert store.sync_state.load("ado:WEB") == ["x"]
    assert store.sync_state.keys() == ["ado:WEB", "jira:SHOP"]


def test_state_survives_reopening(store: Store) -> None:
    store.sync_state.save("jira:SHOP", {"n": 1})
    with Store.open(store.engine.url) as again:
        assert again.sync_state.load("jira:SHOP") == {"n": 1}


def test_large_snapshot_round_trips_one_row_per_issue(store: Store) -> None:
    snapshot = jira_snapshot(2_000, synthetic_texts(500))
    store.sync_state.save("jira:SHOP", snapshot)
    with Store.open(store.engine.url) as fresh:  # a new process: nothing remembered
        assert fresh.sync_state.load("jira:SHOP") == snapshot
    with store.engine.connect() as connection:
        head = connection.execute(select(sync_state.c.value, sync_state.c.format)).one()
        items = connection.execute(select(func.count()).select_from(sync_items)).scalar_one()
    assert head.format == 2 and items == 2_000
    assert len(head.value) < 200_000  # cursors and hashes only; the issues are rows of their own


class _ItemWrites:
    """Counts the sync_items rows each INSERT and DELETE statement carries."""

    def __init__(self, engine: Engine) -> None:
        self.inserted = 0
        self.deleted = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        rows = len(params) if many else 1
        if statement.startswith("INSERT INTO sync_items"):
            self.inserted += rows
        elif statement.startswith("DELETE FROM sync_items"):
            self.deleted += rows


def test_the_next_run_writes_only_the_issues_that_changed(store: Store) -> None:
    store.sync_state.save("jira:SHOP", jira_snapshot(300, synthetic_texts(50)))
    with Store.open(store.engine.url) as nextrun:
        writes = _ItemWrites(nextrun.engine)
        loaded = nextrun.sync_state.load("jira:SHOP")
        # What a connector does: three issues re-read (new objects), one gone, the rest passed back.
        keys = list(loaded["issues"])
        issues = {key: loaded["issues"][key] for key in keys[:299]}
        for key in keys[:3]:
            raw = loaded["issues"][key]
            issues[key] = dict(raw, fields=dict(raw["fields"], summary="changed"))
        changed = dict(loaded, issues=issues, synced_at="2026-12-01T09:00:00+00:00")
        nextrun.sync_state.save("jira:SHOP", changed)
        assert (writes.inserted, writes.deleted) == (3, 4)
        assert nextrun.sync_state.load("jira:SHOP") == changed
        writes.inserted = writes.deleted = 0
        nextrun.sync_state.save("jira:SHOP", changed)  # unchanged: no item row written
        assert (writes.inserted, writes.deleted) == (0, 0)
    with Store.open(store.engine.url) as again:
        assert again.sync_state.load("jira:SHOP") == changed


def test_a_rolled_back_save_leaves_nothing_remembered_that_is_not_stored(store: Store) -> None:
    first = {"items": {str(n): {"n": n} for n in range(100)}}
    store.sync_state.save("ado:WEB", first)
    loaded = store.sync_state.load("ado:WEB")
    second = {"items": {**loaded["items"], "100": {"n": 100}}}

    def failed_cycle() -> None:
        with store.transaction():
            store.sync_state.save("ado:WEB", second)
            raise RuntimeError("the cycle failed after saving")

    with pytest.raises(RuntimeError):
        failed_cycle()
    third = {"items": {**second["items"], "101": {"n": 101}}}
    store.sync_state.save("ado:WEB", third)  # item 100 is remembered, yet not stored: it is written
    with Store.open(store.engine.url) as fresh:
        assert fresh.sync_state.load("ado:WEB") == third


def test_repeated_items_and_small_collections_round_trip(store: Store) -> None:
    same = {"id": "1", "fields": {"summary": "twice"}}
    value = {"issues": [same] * 70 + [{"id": str(n)} for n in range(70)], "few": [{"a": 1}], "n": 3}
    store.sync_state.save("k", value)
    with Store.open(store.engine.url) as fresh:
        loaded = fresh.sync_state.load("k")
        assert loaded == value
        loaded["issues"][0]["fields"] = {"summary": "once"}  # copies, not one shared object
        assert loaded["issues"][1] == same
        fresh.sync_state.save("k", {"n": 4})  # no big collection left: its item rows go
    with store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(sync_items)).scalar_one() == 0
    assert store.sync_state.load("k") == {"n": 4}


def test_a_missing_item_row_loads_none_with_a_warning(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    store.sync_state.save("jira:SHOP", {"issues": [{"n": n} for n in range(80)]})
    with store.engine.begin() as connection:
        victim = connection.execute(select(sync_items.c.hash).limit(1)).scalar_one()
        connection.execute(delete(sync_items).where(sync_items.c.hash == victim))
    with (
        caplog.at_level(logging.WARNING, logger="refinebot.store.sync_state"),
        Store.open(store.engine.url) as fresh,
    ):
        assert fresh.sync_state.load("jira:SHOP") is None
    assert "unreadable sync state 'jira:SHOP'" in caplog.text


def test_state_saved_before_the_item_rows_existed_still_loads(empty_database_url: URL) -> None:
    engine = create_store_engine(empty_database_url)
    old = {"v": 1, "issues": [{"key": f"SHOP-{n}"} for n in range(100)]}
    try:
        upgrade(engine, "0001")
        with engine.begin() as connection:  # a row as the first release wrote it
            text = json.dumps(old).encode()
            connection.execute(
                insert(sync_state).values(
                    key="jira:SHOP",
                    value=zlib.compress(text),
                    raw_bytes=len(text),
                    updated_at=datetime.now(UTC),
                )
            )
    finally:
        engine.dispose()
    with Store.open(empty_database_url) as store:  # migrates to head
        assert store.sync_state.load("jira:SHOP") == old
        store.sync_state.save("jira:SHOP", old)
        assert store.sync_state.load("jira:SHOP") == old


def test_unreadable_state_loads_none_with_a_warning(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    store.sync_state.save("jira:SHOP", {"n": 1})
    with store.engine.begin() as connection:
        connection.execute(update(sync_state).values(value=b"not zlib"))
    with caplog.at_level(logging.WARNING, logger="refinebot.store.sync_state"):
        assert store.sync_state.load("jira:SHOP") is None
    assert "unreadable sync state 'jira:SHOP'" in caplog.text
