"""Cycle claims: one owner per (project, cycle) while its lease runs, taken over after, never after done."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from refinebot.store import Store
from tests.store.threads import run_at_once

NOW = datetime(2026, 11, 30, 9, tzinfo=UTC)


def test_one_owner_at_a_time(store: Store) -> None:
    assert store.cycles.claim("SHOP", "2026-W49", "replica-a", 300, NOW) is True
    assert store.cycles.claim("SHOP", "2026-W49", "replica-b", 300, NOW + timedelta(seconds=10)) is False
    assert store.cycles.claim("SHOP", "2026-W50", "replica-b", 300, NOW) is True  # another cycle
    assert store.cycles.claim("WEB", "2026-W49", "replica-b", 300, NOW) is True  # another project
    claim = store.cycles.get("SHOP", "2026-W49")
    assert claim is not None
    assert (claim.owner, claim.lease_until, claim.finished_at) == (
        "replica-a",
        NOW + timedelta(seconds=300),
        None,
    )


def test_the_owner_renews_and_an_expired_lease_is_taken_over(store: Store) -> None:
    assert store.cycles.claim("SHOP", "2026-W49", "a", 60, NOW)
    assert store.cycles.claim("SHOP", "2026-W49", "a", 60, NOW + timedelta(seconds=50))  # renewed to 110 s
    assert not store.cycles.claim("SHOP", "2026-W49", "b", 60, NOW + timedelta(seconds=100))
    assert store.cycles.claim("SHOP", "2026-W49", "b", 60, NOW + timedelta(seconds=111))
    claim = store.cycles.get("SHOP", "2026-W49")
    assert claim is not None and (claim.owner, claim.claimed_at) == ("b", NOW + timedelta(seconds=111))
    assert not store.cycles.finish("SHOP", "2026-W49", "a", NOW)  # a lost it


def test_a_finished_cycle_is_never_claimed_again(store: Store) -> None:
    assert store.cycles.claim("SHOP", "2026-W49", "a", 60, NOW)
    assert store.cycles.finish("SHOP", "2026-W49", "a", NOW + timedelta(seconds=30))
    later = NOW + timedelta(hours=5)
    assert not store.cycles.claim("SHOP", "2026-W49", "a", 60, later)
    assert not store.cycles.claim("SHOP", "2026-W49", "b", 60, later)
    claim = store.cycles.get("SHOP", "2026-W49")
    assert claim is not None and claim.finished_at == NOW + timedelta(seconds=30)


def test_replicas_claiming_at_once_get_one_winner(store: Store) -> None:
    won = run_at_once(6, lambda n: store.cycles.claim("SHOP", "2026-W49", f"replica-{n}", 300, NOW))
    assert won.count(True) == 1
    claim = store.cycles.get("SHOP", "2026-W49")
    assert claim is not None and claim.owner.startswith("replica-")
