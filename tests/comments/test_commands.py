"""The verb table: every usage example it renders parses back to its verb; answers parse as people write them."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from refinebot.comments.commands import (
    VERBS,
    Ignore,
    Malformed,
    NotDuplicate,
    ParseContext,
    Recheck,
    Snooze,
    parse_comment,
    usage_line,
)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CTX = ParseContext("PAY-7", frozenset({"stale-item", "oversized-story"}), NOW, ZoneInfo("Europe/Berlin"))


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v.name)
def test_every_rendered_example_parses_back_to_its_verb(verb: object) -> None:
    (parsed,) = parse_comment(verb.example_line(), CTX)  # type: ignore[attr-defined]
    assert not isinstance(parsed, Malformed), parsed
    assert verb.name in usage_line()  # type: ignore[attr-defined]


def test_commands_are_lines_of_their_own_anywhere_and_case_insensitive() -> None:
    text = "Thanks!\n  REFINEBOT Snooze 2w\nsee refinebot ignore x y inline\nrefinebot not-duplicate pay-112\nrefinebot recheck"
    assert parse_comment(text, CTX) == [
        Snooze(datetime(2026, 12, 15, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))),
        NotDuplicate("PAY-112"),
        Recheck(),
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("refinebot snoze 2w", "unknown command 'snoze'"),
        ("refinebot snooze soon", "snooze needs 2w"),
        ("refinebot snooze 2026-01-01", "already begun"),
        ("refinebot snooze 30m", "at most"),
        ("refinebot ignore no-such-rule because", "there is no rule"),
        ("refinebot ignore stale-item", "needs a reason"),
        ("refinebot not-duplicate PAY-7", "itself"),
        ("refinebot not-duplicate", "other ticket's key"),
        ("refinebot recheck now", "no arguments"),
    ],
)
def test_malformed_commands_say_why(line: str, problem: str) -> None:
    (parsed,) = parse_comment(line, CTX)
    assert isinstance(parsed, Malformed) and problem in parsed.problem


def test_ignore_keeps_the_reason_and_a_date_snooze_ends_at_that_local_midnight() -> None:
    assert parse_comment("refinebot ignore Stale-Item kept for the  audit", CTX) == [
        Ignore("stale-item", "kept for the audit")
    ]
    (snooze,) = parse_comment("refinebot snooze 2026-12-24", CTX)
    assert snooze == Snooze(datetime(2026, 12, 24, 0, 0, tzinfo=ZoneInfo("Europe/Berlin")))
