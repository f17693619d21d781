"""The one suppression decision, table-tested: which suppression wins, and when a finding comes back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from refinebot.models import Finding, Severity, pair_subject
from refinebot.suppressions import (
    Decision,
    Suppression,
    SuppressionKind,
    SuppressionSource,
    Verdict,
    decide,
    suppressed_pairs,
    unused,
)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def finding(issue: str = "PAY-1", rule: str = "missing-acceptance-criteria", subject: str = "") -> Finding:
    return Finding("PAY", issue, rule, "RB101", Severity.ERROR, "no AC", subject=subject)


DUP = finding("PAY-9", "duplicate-candidate", pair_subject("PAY-9", "PAY-2"))


def snooze(
    rule: str | None = None, until: datetime = NOW + DAY, issue: str = "PAY-1", **kw: object
) -> Suppression:
    return Suppression(
        SuppressionKind.SNOOZE,
        "PAY",
        issue,
        NOW - DAY,
        "maya",
        SuppressionSource.TICKET,
        rule=rule,
        until=until,
        **kw,  # type: ignore[arg-type]
    )


def ignore(rule: str = "missing-acceptance-criteria", issue: str = "PAY-1", **kw: object) -> Suppression:
    return Suppression(
        SuppressionKind.IGNORE,
        "PAY",
        issue,
        NOW - DAY,
        "li",
        SuppressionSource.CLI,
        rule=rule,
        reason="AC in Confluence",
        **kw,  # type: ignore[arg-type]
    )


def not_dup(a: str = "PAY-2", b: str = "PAY-9", **kw: object) -> Suppression:
    return Suppression(
        SuppressionKind.NOT_DUPLICATE,
        "PAY",
        a,
        NOW - DAY,
        "sam",
        SuppressionSource.SLACK,
        other_issue=b,
        **kw,  # type: ignore[arg-type]
    )


CASES: list[tuple[str, Finding, list[Suppression], Verdict, int | None]] = [
    # (name, finding, suppressions, verdict, index of the winning suppression)
    ("nothing applies", finding(), [], Verdict.SHOWN, None),
    ("issue-wide snooze hides every rule", finding(), [snooze()], Verdict.HIDDEN_SNOOZED, 0),
    (
        "rule snooze hides its rule",
        finding(),
        [snooze("missing-acceptance-criteria")],
        Verdict.HIDDEN_SNOOZED,
        0,
    ),
    (
        "rule snooze leaves other rules",
        finding(rule="missing-estimate"),
        [snooze("missing-acceptance-criteria")],
        Verdict.SHOWN,
        None,
    ),
    ("snooze of another issue", finding(), [snooze(issue="PAY-3")], Verdict.SHOWN, None),
    ("snooze ended: shown, and says so", finding(), [snooze(until=NOW)], Verdict.SHOWN_SNOOZE_ENDED, 0),
    (
        "ended snooze beside a live one",
        finding(),
        [snooze(until=NOW - DAY), snooze(until=NOW + DAY)],
        Verdict.HIDDEN_SNOOZED,
        1,
    ),
    (
        "longest snooze wins",
        finding(),
        [snooze(until=NOW + DAY), snooze(until=NOW + 9 * DAY)],
        Verdict.HIDDEN_SNOOZED,
        1,
    ),
    (
        "rule snooze beats issue-wide",
        finding(),
        [snooze(until=NOW + 9 * DAY), snooze("missing-acceptance-criteria")],
        Verdict.HIDDEN_SNOOZED,
        1,
    ),
    ("ignore hides its rule", finding(), [ignore()], Verdict.HIDDEN_IGNORED, 0),
    ("ignore beats a snooze", finding(), [snooze(), ignore()], Verdict.HIDDEN_IGNORED, 1),
    ("ignore of another rule", finding(rule="missing-estimate"), [ignore()], Verdict.SHOWN, None),
    ("lifted ignore no longer applies", finding(), [ignore(lifted=NOW - DAY)], Verdict.SHOWN, None),
    ("lift in the future still applies", finding(), [ignore(lifted=NOW + DAY)], Verdict.HIDDEN_IGNORED, 0),
    ("not-duplicate hides the pair", DUP, [not_dup()], Verdict.HIDDEN_NOT_DUPLICATE, 0),
    ("not-duplicate either direction", DUP, [not_dup("PAY-9", "PAY-2")], Verdict.HIDDEN_NOT_DUPLICATE, 0),
    ("not-duplicate of another pair", DUP, [not_dup("PAY-9", "PAY-3")], Verdict.SHOWN, None),
    ("not-duplicate only hides duplicates", finding("PAY-9", subject=""), [not_dup()], Verdict.SHOWN, None),
    (
        "not-duplicate beats ignore and snooze",
        DUP,
        [snooze(issue="PAY-9"), ignore("duplicate-candidate", issue="PAY-9"), not_dup()],
        Verdict.HIDDEN_NOT_DUPLICATE,
        2,
    ),
    (
        "other project",
        Finding("SHOP", "PAY-1", "missing-acceptance-criteria", "RB101", Severity.ERROR, "x"),
        [snooze()],
        Verdict.SHOWN,
        None,
    ),
]


@pytest.mark.parametrize(
    ("name", "item", "suppressions", "verdict", "winner"), CASES, ids=[c[0] for c in CASES]
)
def test_decide(
    name: str, item: Finding, suppressions: list[Suppression], verdict: Verdict, winner: int | None
) -> None:
    decision = decide(item, suppressions, NOW)
    assert decision.verdict is verdict
    assert decision.suppression is (suppressions[winner] if winner is not None else None)
    assert decision.shown == (verdict in (Verdict.SHOWN, Verdict.SHOWN_SNOOZE_ENDED))


def test_decision_is_shown_by_default() -> None:
    assert Decision(Verdict.SHOWN).shown


def test_invalid_suppressions_are_refused() -> None:
    with pytest.raises(ValueError, match="end date"):
        Suppression(SuppressionKind.SNOOZE, "PAY", "PAY-1", NOW, "m", SuppressionSource.CLI)
    with pytest.raises(ValueError, match="rule"):
        Suppression(SuppressionKind.IGNORE, "PAY", "PAY-1", NOW, "m", SuppressionSource.CLI)
    with pytest.raises(ValueError, match="two different"):
        not_dup("PAY-2", "PAY-2")


def test_suppressed_pairs_for_the_rules() -> None:
    pairs = suppressed_pairs([not_dup(), not_dup("PAY-4", "PAY-5", lifted=NOW - DAY), snooze()], NOW)
    assert pairs == frozenset({frozenset({"PAY-2", "PAY-9"})})


def test_unused_lists_active_suppressions_matching_nothing() -> None:
    stale = ignore(issue="PAY-77")
    assert unused([ignore(), stale, snooze(until=NOW - DAY, issue="PAY-88")], [finding()], NOW) == [stale]
