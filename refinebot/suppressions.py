"""Whether a finding is shown or hidden, and why: one pure decision every part that hides findings uses.

People hide findings three ways: *snooze* an issue (all its findings, or one rule's) until a date,
*ignore* one rule on one issue for a reason, or mark a pair *not a duplicate* (both directions). Each
suppression records who, when, why and where from. ``decide`` is the only place that turns
suppressions into a verdict (the shape of flake8's ``DecisionEngine``): the scan, the digest, the
agenda and the store all ask it, so they can never disagree about what is hidden.

Precedence when several apply: the permanent kinds (not a duplicate, ignore) before a snooze, a
rule's own snooze before an issue-wide one, then the one that hides longest. A snooze that has run
out stops applying by itself; the decision says so, so a digest can mention that it came back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from refinebot.models import Finding, pair_subject

DUPLICATE_RULE = "duplicate-candidate"


class SuppressionKind(StrEnum):
    """How a finding was hidden."""

    SNOOZE = "snooze"  # an issue (or one rule on it) until a date
    IGNORE = "ignore"  # one rule on one issue, with a reason, until lifted
    NOT_DUPLICATE = "not_duplicate"  # a pair of issues, both directions, until lifted


class SuppressionSource(StrEnum):
    """Where a suppression was made."""

    CLI = "cli"
    TICKET = "ticket"
    SLACK = "slack"


@dataclass(frozen=True, slots=True)
class Suppression:
    """One person's decision to hide findings."""

    kind: SuppressionKind
    project: str
    issue: str
    created: datetime
    by: str
    source: SuppressionSource
    rule: str | None = None  # SNOOZE: None hides every rule; IGNORE: required
    other_issue: str | None = None  # NOT_DUPLICATE: the other item of the pair
    until: datetime | None = None  # SNOOZE: required; others: None (until lifted)
    reason: str = ""
    lifted: datetime | None = None  # lifted suppressions are kept for the record and never apply
    id: int | None = None  # the store's id, once stored

    def __post_init__(self) -> None:
        if self.kind is SuppressionKind.SNOOZE and self.until is None:
            raise ValueError("a snooze needs an end date (until)")
        if self.kind is SuppressionKind.IGNORE and not self.rule:
            raise ValueError("ignore needs the rule it ignores")
        if self.kind is SuppressionKind.NOT_DUPLICATE and not self.other_issue:
            raise ValueError("not a duplicate needs the other issue of the pair")
        if self.kind is SuppressionKind.NOT_DUPLICATE and self.other_issue == self.issue:
            raise ValueError("not a duplicate needs two different issues")

    @property
    def pair(self) -> frozenset[str] | None:
        """The two keys of a "not a duplicate" suppression, else None."""
        if self.kind is SuppressionKind.NOT_DUPLICATE and self.other_issue:
            return frozenset((self.issue, self.other_issue))
        return None

    def active(self, now: datetime) -> bool:
        """True while the suppression applies at ``now`` (not lifted, snooze not run out)."""
        if self.lifted is not None and self.lifted <= now:
            return False
        return self.until is None or now < self.until

    def covers(self, finding: Finding) -> bool:
        """True when this suppression is about ``finding`` (whether or not it is active)."""
        if finding.project != self.project:
            return False
        if self.kind is SuppressionKind.NOT_DUPLICATE:
            assert self.other_issue is not None
            return finding.rule == DUPLICATE_RULE and finding.subject == pair_subject(
                self.issue, self.other_issue
            )
        if finding.issue != self.issue:
            return False
        return self.rule is None or self.rule == finding.rule


class Verdict(StrEnum):
    """Why a finding is shown or hidden."""

    SHOWN = "shown"  # nothing applies
    SHOWN_SNOOZE_ENDED = "shown_snooze_ended"  # a snooze covered it and has run out
    HIDDEN_NOT_DUPLICATE = "hidden_not_duplicate"
    HIDDEN_IGNORED = "hidden_ignored"
    HIDDEN_SNOOZED = "hidden_snoozed"


_HIDDEN_BY = {
    SuppressionKind.NOT_DUPLICATE: Verdict.HIDDEN_NOT_DUPLICATE,
    SuppressionKind.IGNORE: Verdict.HIDDEN_IGNORED,
    SuppressionKind.SNOOZE: Verdict.HIDDEN_SNOOZED,
}


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one finding and the suppression behind it (None when nothing applies)."""

    verdict: Verdict
    suppression: Suppression | None = None

    @property
    def shown(self) -> bool:
        """True when the finding is to be shown."""
        return self.verdict in (Verdict.SHOWN, Verdict.SHOWN_SNOOZE_ENDED)


def _precedence(suppression: Suppression) -> tuple[int, int, float, float]:
    kind_rank = {SuppressionKind.NOT_DUPLICATE: 3, SuppressionKind.IGNORE: 2, SuppressionKind.SNOOZE: 1}
    specific = 1 if suppression.rule is not None else 0
    until = suppression.until.timestamp() if suppression.until is not None else float("inf")
    return (kind_rank[suppression.kind], specific, until, suppression.created.timestamp())


def decide(finding: Finding, suppressions: Iterable[Suppression], now: datetime) -> Decision:
    """Whether ``finding`` is shown at ``now`` given ``suppressions``, and why."""
    covering = [s for s in suppressions if s.covers(finding) and (s.lifted is None or s.lifted > now)]
    active = [s for s in covering if s.active(now)]
    if active:
        winner = max(active, key=_precedence)
        return Decision(_HIDDEN_BY[winner.kind], winner)
    ended = [s for s in covering if s.kind is SuppressionKind.SNOOZE]
    if ended:
        return Decision(Verdict.SHOWN_SNOOZE_ENDED, max(ended, key=_precedence))
    return Decision(Verdict.SHOWN)


def suppressed_pairs(suppressions: Iterable[Suppression], now: datetime) -> frozenset[frozenset[str]]:
    """The pairs marked "not a duplicate" that apply at ``now`` (what ``RuleContext.suppressed_pairs`` holds)."""
    return frozenset(pair for s in suppressions if s.active(now) and (pair := s.pair) is not None)


def unused(
    suppressions: Sequence[Suppression], findings: Iterable[Finding], now: datetime
) -> list[Suppression]:
    """Active suppressions that cover no current finding (the issue was fixed, or the pair is gone)."""
    found = list(findings)
    return [s for s in suppressions if s.active(now) and not any(s.covers(f) for f in found)]
