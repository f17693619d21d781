"""The ledger: bot comments by (project, issue, marker), digests by (project, cycle, channel), Slack
deliveries recorded once however often they are retried."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from refinebot.slack.actions import DigestLookup
from refinebot.store import BotComment, Store
from tests.store.threads import run_at_once

NOW = datetime(2026, 11, 30, 9, tzinfo=UTC)


def test_bot_comment_is_recorded_replaced_and_its_cursor_moved(store: Store) -> None:
    assert store.ledger.comment("SHOP", "SHOP-1", "refinebot:findings") is None
    first = BotComment("SHOP", "SHOP-1", "refinebot:findings", "10001", "sha256:aa", NOW)
    store.ledger.save_comment(first)
    assert store.ledger.comment("SHOP", "SHOP-1", "refinebot:findings") == first

    edited = BotComment("SHOP", "SHOP-1", "refinebot:findings", "10001", "sha256:bb", NOW + timedelta(days=7))
    store.ledger.save_comment(edited)
    read_at = NOW + timedelta(days=8)
    assert store.ledger.mark_replies_read("SHOP", "SHOP-1", "refinebot:findings", read_at)
    assert store.ledger.comment("SHOP", "SHOP-1", "refinebot:findings") == BotComment(
        "SHOP", "SHOP-1", "refinebot:findings", "10001", "sha256:bb", NOW + timedelta(days=7), read_at
    )
    assert not store.ledger.mark_replies_read("SHOP", "SHOP-2", "refinebot:findings", read_at)


def test_comments_are_kept_apart_by_issue_marker_and_project(store: Store) -> None:
    comments = [
        BotComment("SHOP", "SHOP-2", "refinebot:findings", "2", "h", NOW),
        BotComment("SHOP", "SHOP-1", "refinebot:findings", "1", "h", NOW),
        BotComment("SHOP", "SHOP-1", "refinebot:other", "3", "h", NOW),
        BotComment("WEB", "SHOP-1", "refinebot:findings", "4", "h", NOW),
    ]
    for comment in comments:
        store.ledger.save_comment(comment)
    assert [c.comment_id for c in store.ledger.comments("SHOP")] == ["1", "3", "2"]
    assert [c.comment_id for c in store.ledger.comments("WEB")] == ["4"]


def test_a_digest_is_unique_per_project_cycle_and_channel_and_keeps_its_post_time(store: Store) -> None:
    posted = store.ledger.save_digest("SHOP", "2026-W49", "C01", "1732957200.000100", "h1", NOW)
    assert (posted.posted_at, posted.updated_at, posted.message_ts) == (NOW, NOW, "1732957200.000100")
    later = NOW + timedelta(hours=3)
    edited = store.ledger.save_digest("SHOP", "2026-W49", "C01", "1732957200.000100", "h2", later)
    assert (edited.posted_at, edited.updated_at, edited.content_hash) == (NOW, later, "h2")
    assert store.ledger.digest("SHOP", "2026-W49", "C01") == edited
    other_channel = store.ledger.save_digest("SHOP", "2026-W49", "C02", "1.2", "h1", later)
    assert other_channel.posted_at == later
    assert store.ledger.digest("SHOP", "2026-W50", "C01") is None


def test_a_retried_delivery_is_seen(store: Store) -> None:
    assert store.ledger.seen_delivery("Ev01", NOW) is False
    assert store.ledger.seen_delivery("Ev01", NOW) is True
    assert store.ledger.seen_delivery("Ev02", NOW) is False


def test_a_duplicate_delivery_does_not_spoil_the_callers_transaction(store: Store) -> None:
    store.ledger.seen_delivery("Ev01", NOW)
    with store.transaction():
        assert store.ledger.seen_delivery("Ev01", NOW) is True
        store.sync_state.save("after", 1)  # PostgreSQL would refuse this after an unguarded error
    assert store.sync_state.load("after") == 1


def test_concurrent_retries_are_let_through_once(store: Store) -> None:
    seen = run_at_once(8, lambda _: store.ledger.seen_delivery("Ev-retried", NOW))
    assert sorted(seen) == [False] + [True] * 7


def test_old_deliveries_are_forgotten(store: Store) -> None:
    store.ledger.seen_delivery("old", NOW - timedelta(days=2))
    store.ledger.seen_delivery("new", NOW)
    assert store.ledger.forget_deliveries(NOW - timedelta(days=1)) == 1
    assert store.ledger.seen_delivery("old", NOW) is False
    assert store.ledger.seen_delivery("new", NOW) is True


def test_a_digest_is_found_by_its_message(store: Store) -> None:
    lookup: DigestLookup = store.ledger  # the Slack actions' port, satisfied without an import of the store
    store.ledger.save_digest("SHOP", "2026-W49", "C01", "1.1", "h1", NOW)
    store.ledger.save_digest("PAY", "2026-W49", "C02", "1.1", "h2", NOW)  # same ts, other channel
    store.ledger.save_digest("SHOP", "2026-W50", "C01", "2.1", "h3", NOW + timedelta(days=7))
    found = lookup.digest_by_message("C01", "1.1")
    assert found is not None and (found.project, found.cycle, found.content_hash) == (
        "SHOP",
        "2026-W49",
        "h1",
    )
    other = lookup.digest_by_message("C02", "1.1")
    assert other is not None and other.project == "PAY"
    assert lookup.digest_by_message("C01", "2.1") == store.ledger.digest("SHOP", "2026-W50", "C01")
    assert lookup.digest_by_message("C01", "9.9") is None
    assert lookup.digest_by_message("C03", "1.1") is None
