"""Sync state in the database: the ``SyncStateStore`` port, a large snapshot round trip, damage tolerated."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select, update

from benchmarks.store_bench import jira_snapshot, synthetic_texts
from connectors.base import SyncStateStore
from refinebot.store import Store
from refinebot.store.schema import sync_state


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


def test_large_snapshot_round_trips_compressed(store: Store) -> None:
    snapshot = jira_snapshot(10_000, synthetic_texts(500))
    store.sync_state.save("jira:SHOP", snapshot)
    assert store.sync_state.load("jira:SHOP") == snapshot
    with store.engine.connect() as connection:
        row = connection.execute(select(sync_state.c.value, sync_state.c.raw_bytes)).one()
    assert row.raw_bytes > 20_000_000
    assert len(row.value) < row.raw_bytes / 5


def test_unreadable_state_loads_none_with_a_warning(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    store.sync_state.save("jira:SHOP", {"n": 1})
    with store.engine.begin() as connection:
        connection.execute(update(sync_state).values(value=b"not zlib"))
    with caplog.at_level(logging.WARNING, logger="refinebot.store.sync_state"):
        assert store.sync_state.load("jira:SHOP") is None
    assert "unreadable sync state 'jira:SHOP'" in caplog.text
