"""Suppressions in the store: every kind round-trips to ``Suppression``, lists by activity, lifts, and a
"not a duplicate" pair is stored once whichever way round (and however many times) it is marked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import StatementError

from refinebot.models import Finding, Severity, pair_subject
from refinebot.store import Store
from refinebot.suppressions import (
    DUPLICATE_RULE,
    Suppression,
    SuppressionKind,
    SuppressionSource,
    Verdict,
    decide,
)
from tests.store.threads import run_at_once

NOW = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
LATER = NOW + timedelta(days=20)


def snooze(issue: str = "SHOP-1", **kwargs: object) -> Suppression:
    values: dict[str, object] = {
        "kind": SuppressionKind.SNOOZE,
        "project": "SHOP",
        "issue": issue,
        "created": NOW,
        "by": "maya",
        "source": SuppressionSource.TICKET,
        "until": NOW + timedelta(days=14),
        "reason": "waiting for design",
    }
    values.update(kwargs)
    return Suppression(**values)  # type: ignore[arg-type]


def not_duplicate(issue: str, other: str, by: str = "maya") -> Suppression:
    return Suppression(
        SuppressionKind.NOT_DUPLICATE, "SHOP", issue, NOW, by, SuppressionSource.SLACK, other_issue=other
    )


@pytest.mark.parametrize(
    "made",
    [
        snooze(),
        snooze(rule="missing-estimate"),
        Suppression(
            SuppressionKind.IGNORE,
            "SHOP",
            "SHOP-2",
            NOW,
            "lee",
            SuppressionSource.CLI,
            rule="stale-item",
            reason="parked on purpose",
        ),
        not_duplicate("SHOP-3", "SHOP-4"),
    ],
    ids=["snooze-issue", "snooze-rule", "ignore", "not-duplicate"],
)
def test_every_kind_round_trips(store: Store, made: Suppression) -> None:
    added = store.suppressions.add(made)
    assert added.id is not None
    assert added == Suppression(**{**_fields(made), "id": added.id})
    assert store.suppressions.list_suppressions("SHOP") == [added]
    assert store.suppressions.get(added.id) == added


def _fields(suppression: Suppression) -> dict[str, object]:
    return {name: getattr(suppression, name) for name in Suppression.__slots__}


def test_times_come_back_in_utc_whatever_zone_they_were_given_in(store: Store) -> None:
    berlin = NOW.astimezone(ZoneInfo("Europe/Berlin"))
    added = store.suppressions.add(snooze(created=berlin, until=berlin + timedelta(days=1)))
    (stored,) = store.suppressions.list_suppressions("SHOP")
    assert stored.created == NOW and stored.created.tzinfo is UTC
    assert stored.until == NOW + timedelta(days=1)
    assert added.id == stored.id


def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(StatementError, match="timezone-aware"):
        store.suppressions.add(snooze(created=NOW.replace(tzinfo=None)))


def test_listing_active_ones_leaves_out_expired_snoozes_and_lifted_ones(store: Store) -> None:
    short = store.suppressions.add(snooze("SHOP-1", until=NOW + timedelta(days=3)))
    long = store.suppressions.add(snooze("SHOP-2", until=NOW + timedelta(days=60)))
    pair = store.suppressions.add(not_duplicate("SHOP-3", "SHOP-4"))
    other = store.suppressions.add(snooze("WEB-1", project="WEB"))
    assert store.suppressions.lift(pair.id or 0, NOW + timedelta(days=1))

    assert [s.id for s in store.suppressions.list_suppressions("SHOP", active_at=NOW)] == [
        short.id,
        long.id,
        pair.id,
    ]
    assert [s.id for s in store.suppressions.list_suppressions("SHOP", active_at=LATER)] == [long.id]
    assert [s.id for s in store.suppressions.list_suppressions("SHOP")] == [short.id, long.id, pair.id]
    assert [s.id for s in store.suppressions.list_suppressions()] == [short.id, long.id, pair.id, other.id]


def test_lift_keeps_the_record_and_stops_it_applying(store: Store) -> None:
    added = store.suppressions.add(snooze())
    assert added.id is not None
    lifted_at = NOW + timedelta(hours=2)
    assert store.suppressions.lift(added.id, lifted_at) is True
    assert store.suppressions.lift(added.id, lifted_at) is False  # already lifted
    assert store.suppressions.lift(added.id + 1000, lifted_at) is False  # no such suppression
    stored = store.suppressions.get(added.id)
    assert stored is not None and stored.lifted == lifted_at
    found = Finding("SHOP", "SHOP-1", "missing-estimate", "RB102", Severity.WARNING, "no estimate")
    assert decide(found, store.suppressions.list_suppressions("SHOP"), lifted_at).verdict is Verdict.SHOWN


def test_a_pair_is_stored_once_whichever_way_round(store: Store) -> None:
    first = store.suppressions.add(not_duplicate("SHOP-1", "SHOP-2", by="maya"))
    again = store.suppressions.add(not_duplicate("SHOP-2", "SHOP-1", by="lee"))
    same = store.suppressions.add(not_duplicate("SHOP-1", "SHOP-2", by="kim"))
    assert again == first and same == first
    assert store.suppressions.list_suppressions("SHOP") == [first]
    duplicate = Finding(
        "SHOP",
        "SHOP-2",
        DUPLICATE_RULE,
        "RB501",
        Severity.WARNING,
        "dup",
        subject=pair_subject("SHOP-2", "SHOP-1"),
    )
    assert decide(duplicate, [again], NOW).verdict is Verdict.HIDDEN_NOT_DUPLICATE


def test_a_lifted_pair_can_be_marked_again(store: Store) -> None:
    first = store.suppressions.add(not_duplicate("SHOP-1", "SHOP-2"))
    assert store.suppressions.lift(first.id or 0, NOW)
    second = store.suppressions.add(not_duplicate("SHOP-2", "SHOP-1"))
    assert second.id != first.id
    assert [s.id for s in store.suppressions.list_suppressions("SHOP", active_at=NOW)] == [second.id]


def test_the_same_pair_in_another_project_is_another_suppression(store: Store) -> None:
    shop = store.suppressions.add(not_duplicate("A-1", "A-2"))
    web = store.suppressions.add(
        Suppression(
            SuppressionKind.NOT_DUPLICATE, "WEB", "A-1", NOW, "maya", SuppressionSource.CLI, other_issue="A-2"
        )
    )
    assert shop.id != web.id


def test_a_pair_marked_from_many_threads_at_once_is_stored_once(store: Store) -> None:
    def mark(number: int) -> Suppression:
        order = ("SHOP-8", "SHOP-9") if number % 2 else ("SHOP-9", "SHOP-8")
        return store.suppressions.add(not_duplicate(*order, by=f"user{number}"))

    results = run_at_once(6, mark)
    assert len({s.id for s in results}) == 1
    assert len(store.suppressions.list_suppressions("SHOP")) == 1


def test_adding_inside_a_transaction_that_fails_adds_nothing(store: Store) -> None:
    def step_that_crashes() -> None:
        with store.transaction():
            store.suppressions.add(snooze())
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        step_that_crashes()
    assert store.suppressions.list_suppressions() == []
