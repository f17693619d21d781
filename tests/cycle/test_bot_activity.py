"""The bot's own comment bumps of ``updated`` are taken out before the rules see the issues; a person's
comment is activity. Pure cases, then end to end through the real CLI on the fake Jira, which bumps an
issue's ``updated`` when a comment is added or edited, as Jira does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from refinebot.digest import BotTouch, without_bot_activity
from refinebot.models import Issue, SourceKind
from tests.cli_process import run_cli
from tests.cycle.test_digest_jira import TOKEN_ENV, _bot_comments, _config, _digest, _text, _writes_since
from tests.fakes.jira_data import adf, bullets, heading, make_issue, para
from tests.fakes.jira_server import FakeJiraServer, Site

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


def _ready(thing: str, result: str) -> object:
    return adf(
        para(f"As an accountant I want the {thing} option so that the {result} is right."),
        heading("Acceptance criteria"),
        bullets(f"Given a {thing}, when I confirm, then the {result} shows it"),
    )


def _stale_keys(site: Site, config: Path) -> set[str]:
    scan = run_cli(["scan", "--config", str(config), "--format", "json"], env={TOKEN_ENV: site.token})
    assert scan.code == 0, scan.stderr
    return {f["issue"] for f in json.loads(scan.stdout) if f["rule"] == "stale-item"}


def _updated(site: Site, key: str) -> str:
    return str(site.issues[key]["fields"]["updated"])


def test_the_bots_comment_is_not_activity_but_a_persons_is(server: FakeJiraServer, tmp_path: Path) -> None:
    site = server.new_site(cloud=True)
    # Ready but last touched in January 2025: stale.
    make_issue(site, 1, summary="Gift wrapping at checkout", description=_ready("wrap", "parcel"))
    make_issue(site, 2, summary="Invoice download as PDF", description=_ready("invoice", "download"))
    config = _config(tmp_path, site, stale_days=30)
    before = _updated(site, "SHOP-1")

    first = _digest(site, config)

    assert first.code == 0, first.stderr
    assert [len(_bot_comments(site, key)) for key in ("SHOP-1", "SHOP-2")] == [1, 1]
    assert "stale-item" in _text(site, _bot_comments(site, "SHOP-1")[0])
    assert _updated(site, "SHOP-1") != before  # the fake bumped 'updated', as Jira does
    # The next digest still sees both as stale: the bot's own comment is not the team's activity.
    mark = len(site.log)
    again = _digest(site, config)
    assert again.code == 0, again.stderr
    assert _writes_since(site, mark) == []  # same findings, same comment: nothing to write
    assert _stale_keys(site, config) == {"SHOP-1", "SHOP-2"}

    # A person answers on SHOP-2 (no command, just words): that is activity, SHOP-2 is no longer stale.
    site.add_person_comment(
        "SHOP-2",
        adf(para("Still wanted, planned for January.")),
        when=datetime.now(UTC) + timedelta(minutes=5),
    )
    mark = len(site.log)
    answered = _digest(site, config)
    assert answered.code == 0, answered.stderr
    assert [w.split()[0] for w in _writes_since(site, mark)] == ["PUT"]  # SHOP-2's comment, edited
    assert "stale-item" not in _text(site, _bot_comments(site, "SHOP-2")[0])
    assert "stale-item" in _text(site, _bot_comments(site, "SHOP-1")[0])
    assert _stale_keys(site, config) == {"SHOP-1"}
