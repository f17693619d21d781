"""The digest's buttons as data: their action ids, their small values, and the suppression each one asks for.

One table both renders and parses (so the two cannot drift, the Renovate lesson): a button carries only
a verb and issue keys (``v1|snooze_1w|SHOP-5``, far under Slack's 2,000 characters); which project and
cycle it belongs to comes back from the message it sits on, through the ledger's (channel, ts) record,
never from the value, so an old or forged value cannot reach another project.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from refinebot.agenda import REMOVED_REASON
from refinebot.cycle import DigestRecord
from refinebot.suppressions import Suppression, SuppressionKind, SuppressionSource

VALUE_VERSION = "v1"
ACTION_PREFIX = "refinebot_"
# What bolt matches every digest button with: app.action(ACTION_ID_PATTERN).
ACTION_ID_PATTERN = re.compile(rf"^{ACTION_PREFIX}[a-z0-9_]+$")
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.#-]{0,99}$")


class Verb(StrEnum):
    """What a digest button does."""

    SNOOZE_1W = "snooze_1w"
    SNOOZE_2W = "snooze_2w"
    NOT_DUPLICATE = "not_duplicate"
    REMOVE = "remove"
    ADD_BACK = "add_back"
    OPEN = "open"  # a link button: Slack opens the URL and still sends an action, which is acked and ignored


SNOOZE_DAYS = {Verb.SNOOZE_1W: 7, Verb.SNOOZE_2W: 14}
BUTTON_TEXT = {
    Verb.SNOOZE_1W: "Snooze 1 week",
    Verb.SNOOZE_2W: "Snooze 2 weeks",
    Verb.NOT_DUPLICATE: "Not a duplicate",
    Verb.REMOVE: "Remove from agenda",
    Verb.ADD_BACK: "Add back",
    Verb.OPEN: "Open ticket",
}


class ActionError(ValueError):
    """A button value refinebot did not write (or wrote in a version it no longer reads)."""


@dataclass(frozen=True, slots=True)
class ButtonAction:
    """One button's meaning: a verb on an issue (and, for "not a duplicate", the other issue)."""

    verb: Verb
    issue: str
    other: str | None = None

    def __post_init__(self) -> None:
        for key in (self.issue, self.other):
            if key is not None and not _KEY.fullmatch(key):
                raise ActionError(f"not an issue key: {key[:40]!r}")
        if (self.verb is Verb.NOT_DUPLICATE) != (self.other is not None):
            raise ActionError("only 'not a duplicate' names a second issue, and it must")

    @property
    def action_id(self) -> str:
        """The button's ``action_id`` (unique within its actions block: one button per verb)."""
        return ACTION_PREFIX + self.verb.value

    def encode(self) -> str:
        """The button's ``value``."""
        return "|".join(p for p in (VALUE_VERSION, self.verb.value, self.issue, self.other) if p is not None)


def decode(value: str) -> ButtonAction:
    """The action a button ``value`` stands for; ``ActionError`` for anything refinebot did not write."""
    parts = value.split("|")
    if len(parts) not in (3, 4) or parts[0] != VALUE_VERSION:
        raise ActionError(f"not a refinebot button value: {value[:60]!r}")
    try:
        verb = Verb(parts[1])
    except ValueError:
        raise ActionError(f"unknown button verb {parts[1][:30]!r}") from None
    return ButtonAction(verb, parts[2], parts[3] if len(parts) == 4 else None)


class DigestLookup(Protocol):
    """Which digest a Slack message is: the store's ledger looked up by (channel, ts)."""

    def digest_by_message(self, channel: str, message_ts: str) -> DigestRecord | None:
        """The digest recorded for the message ``message_ts`` in ``channel``, or None."""
        ...


def suppression_for(
    action: ButtonAction, project: str, user: str, now: datetime, cycle_ends: datetime
) -> Suppression | None:
    """The suppression a button asks the store to add (None for verbs that add none: open, add back).

    "Remove from agenda" snoozes the item until the cycle ends, with ``REMOVED_REASON``; "Add back" lifts
    that snooze (the caller finds it by issue and reason, as the store lists them).
    """
    if action.verb in SNOOZE_DAYS:
        return Suppression(
            SuppressionKind.SNOOZE,
            project,
            action.issue,
            now,
            user,
            SuppressionSource.SLACK,
            until=now + timedelta(days=SNOOZE_DAYS[action.verb]),
            reason=f"snoozed from the Slack digest ({BUTTON_TEXT[action.verb].lower()})",
        )
    if action.verb is Verb.REMOVE:
        return Suppression(
            SuppressionKind.SNOOZE,
            project,
            action.issue,
            now,
            user,
            SuppressionSource.SLACK,
            until=max(cycle_ends, now + timedelta(minutes=1)),
            reason=REMOVED_REASON,
        )
    if action.verb is Verb.NOT_DUPLICATE:
        return Suppression(
            SuppressionKind.NOT_DUPLICATE,
            project,
            action.issue,
            now,
            user,
            SuppressionSource.SLACK,
            other_issue=action.other,
            reason="marked not a duplicate in the Slack digest",
        )
    return None


def to_lift(action: ButtonAction, suppressions: list[Suppression], now: datetime) -> list[Suppression]:
    """For "Add back": the active removals of the action's issue (the ones to lift)."""
    if action.verb is not Verb.ADD_BACK:
        return []
    return [
        s
        for s in suppressions
        if s.issue == action.issue
        and s.kind is SuppressionKind.SNOOZE
        and s.reason == REMOVED_REASON
        and s.active(now)
    ]
