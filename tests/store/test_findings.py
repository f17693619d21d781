"""The finding lifecycle: first and last seen, resolved when gone, reopened when back, suppressed kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from refinebot.models import Finding, Severity, pair_subject
from refinebot.store import Store
from refinebot.suppressions import (
    Decision,
    Suppression,
    SuppressionKind,
    SuppressionSource,
    Verdict,
    decide,
)

WEEK1 = datetime(2026, 11, 23, 9, tzinfo=UTC)
WEEK2 = WEEK1 + timedelta(weeks=1)
WEEK3 = WEEK2 + timedelta(weeks=1)


def finding(issue: str, rule: str = "missing-estimate", **kwargs: object) -> Finding:
    values: dict[str, object] = {
        "project": "SHOP",
        "issue": issue,
        "rule": rule,
        "code": "RB102",
        "severity": Severity.WARNING,
        "message": f"{issue} has no estimate",
        "details": {},
        "subject": "",
    }
    values.update(kwargs)
    return Finding(**values)  # type: ignore[arg-type]


def shown(found: list[Finding]) -> list[Decision]:
    return [Decision(Verdict.SHOWN) for _ in found]


def test_new_findings_are_opened_with_their_first_sighting(store: Store) -> None:
    found = [finding("SHOP-1"), finding("SHOP-2", details={"since": WEEK1, "keys": ("A", "B")})]
    run = store.findings.record("SHOP", "2026-W48", found, shown(found), WEEK1)
    assert run.opened == (
        ("SHOP", "SHOP-1", "missing-estimate", ""),
        ("SHOP", "SHOP-2", "missing-estimate", ""),
    )
    assert run.resolved == run.reopened == run.still_open == ()
    stored = store.findings.open("SHOP")
    assert [s.finding for s in stored] == [
        found[0],
        finding("SHOP-2", details={"since": WEEK1.isoformat(), "keys": ["A", "B"]}),  # stored as JSON
    ]
    first = stored[0]
    assert (first.first_seen, first.last_seen, first.resolved_at) == (WEEK1, WEEK1, None)
    assert (first.first_cycle, first.last_cycle) == ("2026-W48", "2026-W48")
    assert first.is_open and not first.suppressed and first.verdict == "shown"


def test_a_finding_seen_again_keeps_its_first_sighting_and_takes_the_new_message(store: Store) -> None:
    store.findings.record("SHOP", "2026-W48", [finding("SHOP-1")], shown([finding("SHOP-1")]), WEEK1)
    changed = finding("SHOP-1", severity=Severity.ERROR, message="still no estimate", details={"n": 2})
    run = store.findings.record("SHOP", "2026-W49", [changed], shown([changed]), WEEK2)
    assert run.still_open == (changed.identity,)
    assert run.opened == ()
    (stored,) = store.findings.open("SHOP")
    assert stored.finding == changed
    assert (stored.first_seen, stored.last_seen) == (WEEK1, WEEK2)
    assert (stored.first_cycle, stored.last_cycle) == ("2026-W48", "2026-W49")


def test_an_unchanged_finding_seen_again_only_moves_its_last_sighting(store: Store) -> None:
    same = [finding("SHOP-1", details={"points": 21.0, "limit": 8})]
    store.findings.record("SHOP", "2026-W48", same, shown(same), WEEK1)
    run = store.findings.record("SHOP", "2026-W49", same, shown(same), WEEK2)
    assert run.still_open == (same[0].identity,)
    (stored,) = store.findings.open("SHOP")
    assert stored.finding == same[0]
    assert (stored.first_seen, stored.last_seen, stored.last_cycle) == (WEEK1, WEEK2, "2026-W49")


def test_a_finding_no_longer_produced_is_resolved_and_comes_back_reopened(store: Store) -> None:
    both = [finding("SHOP-1"), finding("SHOP-2")]
    store.findings.record("SHOP", "2026-W48", both, shown(both), WEEK1)
    run = store.findings.record("SHOP", "2026-W49", both[1:], shown(both[1:]), WEEK2)
    assert run.resolved == (both[0].identity,)
    assert [s.finding.issue for s in store.findings.open("SHOP")] == ["SHOP-2"]
    (gone,) = store.findings.of_issue("SHOP", "SHOP-1", include_resolved=True)
    assert gone.resolved_at == WEEK2 and not gone.is_open
    assert store.findings.of_issue("SHOP", "SHOP-1") == []

    run = store.findings.record("SHOP", "2026-W50", both, shown(both), WEEK3)
    assert run.reopened == (both[0].identity,)
    assert run.still_open == (both[1].identity,)
    (back,) = store.findings.of_issue("SHOP", "SHOP-1")
    assert back.resolved_at is None
    assert (back.first_seen, back.last_seen) == (WEEK1, WEEK3)


def test_a_resolved_finding_stays_resolved_at_its_first_resolution(store: Store) -> None:
    store.findings.record("SHOP", "2026-W48", [finding("SHOP-1")], shown([finding("SHOP-1")]), WEEK1)
    store.findings.record("SHOP", "2026-W49", [], [], WEEK2)
    run = store.findings.record("SHOP", "2026-W50", [], [], WEEK3)
    assert run.resolved == ()
    (gone,) = store.findings.of_issue("SHOP", "SHOP-1", include_resolved=True)
    assert gone.resolved_at == WEEK2


def test_the_subject_is_part_of_the_identity(store: Store) -> None:
    pairs = [
        finding("SHOP-1", "duplicate-candidate", subject=pair_subject("SHOP-1", "SHOP-7")),
        finding("SHOP-1", "duplicate-candidate", subject=pair_subject("SHOP-1", "SHOP-9")),
    ]
    store.findings.record("SHOP", "2026-W48", pairs, shown(pairs), WEEK1)
    run = store.findings.record("SHOP", "2026-W49", pairs[1:], shown(pairs[1:]), WEEK2)
    assert run.resolved == (pairs[0].identity,)
    assert [s.finding.subject for s in store.findings.of_issue("SHOP", "SHOP-1")] == ["SHOP-1|SHOP-9"]


def test_suppressed_findings_are_stored_as_suppressed(store: Store) -> None:
    snooze = store.suppressions.add(
        Suppression(
            SuppressionKind.SNOOZE, "SHOP", "SHOP-1", WEEK1, "maya", SuppressionSource.TICKET, until=WEEK2
        )
    )
    found = [finding("SHOP-1"), finding("SHOP-2")]
    decisions = [decide(f, [snooze], WEEK1) for f in found]
    store.findings.record("SHOP", "2026-W48", found, decisions, WEEK1)
    hidden, visible = store.findings.open("SHOP")
    assert (hidden.suppressed, hidden.verdict, hidden.suppression_id) == (True, "hidden_snoozed", snooze.id)
    assert (visible.suppressed, visible.verdict, visible.suppression_id) == (False, "shown", None)
    assert [s.finding.issue for s in store.findings.open("SHOP", include_suppressed=False)] == ["SHOP-2"]

    # The snooze has run out a week later: the same finding is shown again, and says so.
    decisions = [decide(f, [snooze], WEEK3) for f in found]
    store.findings.record("SHOP", "2026-W50", found, decisions, WEEK3)
    back = store.findings.of_issue("SHOP", "SHOP-1")[0]
    assert (back.suppressed, back.verdict) == (False, "shown_snooze_ended")


def test_other_projects_are_left_alone(store: Store) -> None:
    shop = [finding("SHOP-1")]
    web = [finding("WEB-1", project="WEB")]
    store.findings.record("SHOP", "2026-W48", shop, shown(shop), WEEK1)
    store.findings.record("WEB", "2026-W48", web, shown(web), WEEK1)
    store.findings.record("SHOP", "2026-W49", shop, shown(shop), WEEK2)
    store.findings.record("SHOP", "2026-W50", [], [], WEEK3)
    assert store.findings.open("SHOP") == []
    (other,) = store.findings.open("WEB")
    assert other.finding == web[0]
    assert (other.last_seen, other.last_cycle) == (WEEK1, "2026-W48")


def test_mismatched_arguments_are_refused_before_writing(store: Store) -> None:
    with pytest.raises(ValueError, match="1 findings but 0 decisions"):
        store.findings.record("SHOP", "2026-W48", [finding("SHOP-1")], [], WEEK1)
    web = [finding("WEB-1", project="WEB")]
    with pytest.raises(ValueError, match="finding of project 'WEB' recorded under 'SHOP'"):
        store.findings.record("SHOP", "2026-W48", web, shown(web), WEEK1)
    assert store.findings.open("SHOP") == []


def test_a_failed_cycle_step_leaves_the_previous_state(store: Store) -> None:
    before = [finding("SHOP-1")]
    store.findings.record("SHOP", "2026-W48", before, shown(before), WEEK1)

    def step_that_crashes() -> None:
        with store.transaction():
            store.findings.record("SHOP", "2026-W49", [], [], WEEK2)
            store.sync_state.save("jira:SHOP", {"cursor": "new"})
            assert store.findings.open("SHOP") == []  # inside the step its own writes are seen
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        step_that_crashes()
    assert [s.finding for s in store.findings.open("SHOP")] == before
    assert store.sync_state.load("jira:SHOP") is None


def test_a_cycle_step_commits_as_a_whole(store: Store) -> None:
    with store.transaction():
        found = [finding("SHOP-1")]
        store.findings.record("SHOP", "2026-W48", found, shown(found), WEEK1)
        store.sync_state.save("jira:SHOP", {"cursor": "c1"})
    with Store.open(store.engine.url) as again:
        assert [s.finding for s in again.findings.open("SHOP")] == found
        assert again.sync_state.load("jira:SHOP") == {"cursor": "c1"}
