"""Button values: small, round-tripping, refusing what refinebot did not write; the suppression each asks for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from refinebot.agenda import REMOVED_REASON
from refinebot.slack.actions import (
    ACTION_ID_PATTERN,
    ActionError,
    ButtonAction,
    Verb,
    decode,
    suppression_for,
    to_lift,
)
from refinebot.suppressions import SuppressionKind, SuppressionSource
from tests.fakes.slack_ledger import MemoryLedger

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
CYCLE_ENDS = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "action",
    [
        ButtonAction(Verb.SNOOZE_1W, "SHOP-5"),
        ButtonAction(Verb.NOT_DUPLICATE, "SHOP-41", "SHOP-2"),
        ButtonAction(Verb.ADD_BACK, "1211"),
        ButtonAction(Verb.REMOVE, "Fabrikam#1211"),
    ],
)
def test_values_round_trip_and_stay_small(action: ButtonAction) -> None:
    assert decode(action.encode()) == action
    assert len(action.encode()) < 250
    assert ACTION_ID_PATTERN.fullmatch(action.action_id)


@pytest.mark.parametrize(
    "value",
    ["", "snooze_1w|SHOP-5", "v2|snooze_1w|SHOP-5", "v1|explode|SHOP-5", "v1|snooze_1w|<!channel>",
     "v1|not_duplicate|SHOP-5", "v1|snooze_1w|SHOP-5|SHOP-6", "v1|a|b|c|d"],
)  # fmt: skip
def test_values_refinebot_did_not_write_are_refused(value: str) -> None:
    with pytest.raises(ActionError):
        decode(value)


def test_snooze_buttons_snooze_for_one_or_two_weeks() -> None:
    for verb, days in ((Verb.SNOOZE_1W, 7), (Verb.SNOOZE_2W, 14)):
        made = suppression_for(ButtonAction(verb, "SHOP-5"), "SHOP", "U0MAYA", NOW, CYCLE_ENDS)
        assert made is not None
        assert (made.kind, made.issue, made.until, made.by, made.source) == (
            SuppressionKind.SNOOZE, "SHOP-5", NOW + timedelta(days=days), "U0MAYA", SuppressionSource.SLACK,
        )  # fmt: skip


def test_remove_snoozes_until_the_cycle_ends_and_add_back_lifts_it() -> None:
    removed = suppression_for(ButtonAction(Verb.REMOVE, "SHOP-5"), "SHOP", "U0MAYA", NOW, CYCLE_ENDS)
    assert removed is not None
    assert (removed.until, removed.reason) == (CYCLE_ENDS, REMOVED_REASON)
    snoozed = suppression_for(ButtonAction(Verb.SNOOZE_1W, "SHOP-5"), "SHOP", "U0MAYA", NOW, CYCLE_ENDS)
    assert snoozed is not None
    assert to_lift(ButtonAction(Verb.ADD_BACK, "SHOP-5"), [removed, snoozed], NOW) == [removed]
    assert to_lift(ButtonAction(Verb.ADD_BACK, "SHOP-6"), [removed], NOW) == []


def test_not_a_duplicate_marks_the_pair() -> None:
    made = suppression_for(
        ButtonAction(Verb.NOT_DUPLICATE, "SHOP-41", "SHOP-2"), "SHOP", "U0MAYA", NOW, CYCLE_ENDS
    )
    assert made is not None
    assert made.pair == frozenset({"SHOP-41", "SHOP-2"})
    assert suppression_for(ButtonAction(Verb.OPEN, "SHOP-41"), "SHOP", "U0MAYA", NOW, CYCLE_ENDS) is None


def test_a_button_maps_back_to_its_project_and_cycle_through_the_message() -> None:
    ledger = MemoryLedger()
    ledger.save_digest("SHOP", "2026-W49", "C0SHOP", "1760000001.000100", "h", NOW)
    found = ledger.digest_by_message("C0SHOP", "1760000001.000100")
    assert found is not None and (found.project, found.cycle) == ("SHOP", "2026-W49")
    assert ledger.digest_by_message("C0OTHER", "1760000001.000100") is None
