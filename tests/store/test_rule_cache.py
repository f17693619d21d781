"""The rule cache: pickled values per project survive reopening; an unreadable one is dropped, not fatal."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from sqlalchemy import update

from refinebot.store import Store
from refinebot.store.schema import rule_cache


@dataclass(frozen=True)
class DuplicateIndex:
    """A stand-in for the duplicate rule's index: keys, fingerprints and a sparse matrix."""

    keys: tuple[str, ...]
    fingerprints: dict[str, str]
    vectors: csr_matrix


def test_pickled_object_round_trips_across_reopening(store: Store) -> None:
    vectors = csr_matrix(np.array([[0.0, 0.5, 0.0], [0.25, 0.0, 1.0]]))
    index = DuplicateIndex(("SHOP-1", "SHOP-2"), {"SHOP-1": "ab", "SHOP-2": "cd"}, vectors)
    store.rule_cache("SHOP").put("duplicate-candidate:index", index)
    with Store.open(store.engine.url) as again:
        loaded = again.rule_cache("SHOP").get("duplicate-candidate:index")
    assert isinstance(loaded, DuplicateIndex)
    assert loaded.keys == index.keys
    assert loaded.fingerprints == index.fingerprints
    assert (loaded.vectors != vectors).nnz == 0


def test_values_are_per_project_and_replaced(store: Store) -> None:
    store.rule_cache("SHOP").put("k", 1)
    store.rule_cache("WEB").put("k", 2)
    store.rule_cache("SHOP").put("k", 3)
    assert store.rule_cache("SHOP").get("k") == 3
    assert store.rule_cache("WEB").get("k") == 2
    assert store.rule_cache("SHOP").get("other") is None


def test_unreadable_value_is_dropped(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    store.rule_cache("SHOP").put("k", [1, 2])
    with store.engine.begin() as connection:
        connection.execute(update(rule_cache).values(value=b"garbage"))
    with caplog.at_level(logging.WARNING, logger="refinebot.store.rule_cache"):
        assert store.rule_cache("SHOP").get("k") is None
    assert "unreadable rule cache 'k' of SHOP" in caplog.text


def test_bytes_are_kept_as_they_are_and_a_value_can_be_deleted(store: Store) -> None:
    blob = bytes(range(256)) * 10
    cache = store.rule_cache("SHOP")
    cache.put("raw", blob)
    cache.put("other", {"kept": True})
    with Store.open(store.engine.url) as again:
        assert again.rule_cache("SHOP").get("raw") == blob
        again.rule_cache("SHOP").delete("raw")
        again.rule_cache("SHOP").delete("never-there")
    assert cache.get("raw") is None
    assert cache.get("other") == {"kept": True}
