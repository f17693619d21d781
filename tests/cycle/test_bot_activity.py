"""The bot's own comment bumps of ``updated`` are taken out before the rules see the issues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from refinebot.digest import BotTouch, without_bot_activity
from refinebot.models import Issue, SourceKind

TEAM = datetime(2026, 6, 1, tzinfo=UTC)
BOT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _issue(updated: datetime) -> Issue:
    return Issue(
        key="PAY-1", project="PAY", source_kind=SourceKind.JIRA, title="t", updated=updated, created=TEAM
    )


def test_an_update_caused_by_the_bots_comment_gives_way_to_the_teams_own() -> None:
    (seen,) = without_bot_activity([_issue(BOT + timedelta(seconds=1))], {"PAY-1": BotTouch(BOT, TEAM)})
    assert seen.updated == TEAM  # stale-item keeps counting from the team's last change


def test_a_later_update_is_the_teams_and_counts() -> None:
    later = BOT + timedelta(hours=3)
    (seen,) = without_bot_activity([_issue(later)], {"PAY-1": BotTouch(BOT, TEAM)})
    assert seen.updated == later
