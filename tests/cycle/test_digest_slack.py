"""``refinebot digest`` posts the agenda to Slack: the real CLI in a subprocess, the fake Jira Cloud and the
fake Slack Web API over HTTP, SQLite. One post per cycle, then edits in place (or nothing when unchanged);
hostile ticket titles are escaped and mention nobody; ``--dry-run`` sends Slack nothing; the PM's DM copy; a
Slack press made while a run is going is in that run's post."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from refinebot.config import load_config
from refinebot.digest import DigestCycle
from refinebot.document import Document
from refinebot.faults import CRASH_ENV
from refinebot.slack.blocks import digest_payload
from refinebot.slack.digest import SlackDigestPoster, build_client
from refinebot.store import Store
from refinebot.suppressions import Suppression, SuppressionKind, SuppressionSource
from rules.registry import default_registry
from tests.cli_process import CliResult, run_cli
from tests.fakes.jira_data import adf, make_issue, para
from tests.fakes.jira_server import FakeJiraServer, Site
from tests.fakes.slack_server import TOKEN, FakeSlack, Message, running

TOKEN_ENV = "REFINEBOT_FAKE_JIRA_SLACK_TOKEN"
SLACK_ENV = "REFINEBOT_FAKE_SLACK_BOT_TOKEN"
HOSTILE = "Fix <b> & <!channel>"
SLACK_WRITES = ("chat.postMessage", "chat.update")
# What would notify people: a special mention or a user/group mention.
MENTION = re.compile(r"<!(channel|here|everyone|subteam)|<@[UW]")


@pytest.fixture
def slack() -> Iterator[tuple[FakeSlack, str]]:
    with running() as served:
        yield served


def _backlog(site: Site) -> None:
    make_issue(site, 1)  # ready
    make_issue(site, 2, summary=HOSTILE, description=adf(para("Make it faster.")))  # no acceptance criteria
    make_issue(site, 3, points=21.0)  # oversized


def _config(tmp_path: Path, site: Site, base_url: str) -> Path:
    path = tmp_path / "refinebot.toml"
    path.write_text(
        f"""
[slack]
bot_token_env = "{SLACK_ENV}"
base_url = "{base_url}"

[sources.jira]
kind = "jira"
url = "{site.url}"
email = "{site.email}"
token_env = "{TOKEN_ENV}"
backoff_base_seconds = 0.01

[rules.stale-item]
enabled = false

[projects.SHOP]
source = "jira"
slack_channel = "C0SHOP"
comment_on_tickets = true
""",
        encoding="utf-8",
    )
    return path


def _digest(site: Site, config: Path, *args: str, env: dict[str, str] | None = None) -> CliResult:
    return run_cli(
        ["digest", "--config", str(config), *args],
        env={TOKEN_ENV: site.token, SLACK_ENV: TOKEN, **(env or {})},
    )


def _writes(fake: FakeSlack, mark: int = 0) -> list[str]:
    return [method for method in fake.methods()[mark:] if method in SLACK_WRITES]


def _shown(message: Message) -> str:
    return json.dumps({"text": message.text, "blocks": message.blocks})


def test_digest_posts_once_then_edits_in_place_and_escapes_titles(
    jira: FakeJiraServer, slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    fake, base_url = slack
    site = jira.new_site(cloud=True)
    _backlog(site)
    config = _config(tmp_path, site, base_url)

    first = _digest(site, config, "--format", "json")
    assert first.code == 0, first.stderr
    assert _writes(fake) == ["chat.postMessage"]
    (message,) = fake.in_channel("C0SHOP")
    assert message.metadata is not None and message.metadata["event_payload"]["project"] == "SHOP"
    shown = _shown(message)
    assert "SHOP-2" in shown and "SHOP-3" in shown and "21 points" in shown and "SHOP-1>" not in shown
    assert "Fix &lt;b&gt; &amp; &lt;!channel&gt;" in shown  # escaped as Slack asks
    assert not MENTION.search(shown)  # the title pings nobody
    (report,) = json.loads(first.stdout)
    assert report["slack"].startswith("posted in C0SHOP")
    assert {i["issue"] for i in report["agenda"]["items"]} == {"SHOP-2", "SHOP-3"}
    assert report["agenda"]["readiness"]["previous_share"] is None

    # Same cycle, nothing changed: no Slack write at all (the ledger's content hash).
    mark = len(fake.calls)
    again = _digest(site, config)
    assert again.code == 0, again.stderr
    assert _writes(fake, mark) == []
    assert "slack: unchanged" in again.stdout

    # The team estimates SHOP-3 again: the same message is edited, no second post.
    site.touch("SHOP-3", datetime.now(UTC), **{site.field_ids.story_points: 3.0})
    mark = len(fake.calls)
    edited = _digest(site, config)
    assert edited.code == 0, edited.stderr
    assert _writes(fake, mark) == ["chat.update"]
    (message,) = fake.in_channel("C0SHOP")
    assert message.edits == 1
    assert "21 points" not in _shown(message) and not MENTION.search(_shown(message))
    assert "slack: updated in C0SHOP" in edited.stdout

    # Next week is a new cycle: a new message, and readiness compared with last week's last run (1 of 3
    # ready: SHOP-3 is still a possible duplicate of SHOP-1).
    week_later = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    mark = len(fake.calls)
    later = _digest(site, config, "--now", week_later, "--format", "json")
    assert later.code == 0, later.stderr
    assert _writes(fake, mark) == ["chat.postMessage"]
    assert len(fake.in_channel("C0SHOP")) == 2
    (report,) = json.loads(later.stdout)
    assert report["agenda"]["readiness"]["previous_share"] == pytest.approx(1 / 3, abs=1e-4)
    assert TOKEN not in first.stdout + again.stdout + edited.stdout + edited.stderr
    assert TOKEN.encode() not in (tmp_path / "refinebot.db").read_bytes()


def test_dry_run_posts_nothing_to_slack(
    jira: FakeJiraServer, slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    fake, base_url = slack
    site = jira.new_site(cloud=True)
    _backlog(site)
    config = _config(tmp_path, site, base_url)

    dry = _digest(site, config, "--dry-run")
    assert dry.code == 0, dry.stderr
    assert fake.calls == []  # not even a read: the dry run never builds a Slack client
    assert "slack: would post 2 agenda items to C0SHOP" in dry.stdout

    assert _digest(site, config).code == 0
    site.touch("SHOP-3", datetime.now(UTC), **{site.field_ids.story_points: 3.0})
    mark = len(fake.calls)
    assert _digest(site, config, "--dry-run").code == 0
    assert fake.calls[mark:] == []
    assert len(fake.in_channel("C0SHOP")) == 1


def test_a_slack_failure_fails_the_project_after_its_comments(
    jira: FakeJiraServer, slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    fake, base_url = slack
    site = jira.new_site(cloud=True)
    _backlog(site)
    config = _config(tmp_path, site, base_url)
    config.write_text(config.read_text().replace('"C0SHOP"', '"#no-such-channel"'))

    failed = _digest(site, config)
    assert failed.code == 2
    assert "project SHOP failed: Slack digest" in failed.stdout and "not found" in failed.stdout
    assert len(site.all_comments("SHOP-2")) == 1  # the ticket comment was still made
    assert _writes(fake) == []


def test_killed_after_the_post_then_rerun_edits_that_message(
    jira: FakeJiraServer, slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    fake, base_url = slack
    site = jira.new_site(cloud=True)
    _backlog(site)
    config = _config(tmp_path, site, base_url)

    killed = _digest(site, config, env={CRASH_ENV: "digest-post"})
    assert killed.code == -signal.SIGKILL
    assert _writes(fake) == ["chat.postMessage"]  # Slack has it; the ledger never heard

    mark = len(fake.calls)
    rerun = _digest(site, config)
    assert rerun.code == 0, rerun.stderr
    assert "conversations.history" in fake.methods()[mark:]  # looked for its tagged message first
    assert _writes(fake, mark) == ["chat.update"]
    assert len(fake.in_channel("C0SHOP")) == 1
    assert "slack: recovered in C0SHOP" in rerun.stdout


def test_the_pm_gets_the_digest_as_a_dm_once_per_cycle_even_after_a_crash(
    jira: FakeJiraServer, slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    fake, base_url = slack
    site = jira.new_site(cloud=True)
    _backlog(site)
    config = _config(tmp_path, site, base_url)
    config.write_text(config.read_text() + 'pm_slack_user = "U0PM"\n')

    # Killed right after Slack took the DM: the channel's digest is recorded, the DM's is not.
    killed = _digest(site, config, env={CRASH_ENV: "digest-dm-post"})
    assert killed.code == -signal.SIGKILL
    assert _writes(fake) == ["chat.postMessage", "chat.postMessage"]
    assert [m.channel for m in fake.messages] == ["C0SHOP", "D0PM"]  # conversations.open gave the DM

    mark = len(fake.calls)
    rerun = _digest(site, config, "--format", "json")
    assert rerun.code == 0, rerun.stderr
    assert {"conversations.open", "conversations.history"} <= set(fake.methods()[mark:])
    assert _writes(fake, mark) == ["chat.update"]  # the DM found by its tag and edited; the channel unchanged
    (report,) = json.loads(rerun.stdout)
    assert report["slack"] == (
        "unchanged in C0SHOP (2 agenda items); DM to U0PM: recovered in D0PM (2 agenda items)"
    )

    # A change in the same cycle edits both copies; neither is posted again.
    site.touch("SHOP-3", datetime.now(UTC), **{site.field_ids.story_points: 3.0})
    mark = len(fake.calls)
    edited = _digest(site, config)
    assert edited.code == 0, edited.stderr
    assert _writes(fake, mark) == ["chat.update", "chat.update"]
    (channel_copy,), (dm,) = fake.in_channel("C0SHOP"), fake.in_channel("D0PM")
    assert channel_copy.blocks == dm.blocks and "21 points" not in _shown(dm)
    assert "DM to U0PM: updated in D0PM" in " ".join(edited.stdout.split())  # rich wraps at 200 columns

    # Next week: one new message in each.
    mark = len(fake.calls)
    later = _digest(site, config, "--now", (datetime.now(UTC) + timedelta(days=7)).isoformat())
    assert later.code == 0, later.stderr
    assert _writes(fake, mark) == ["chat.postMessage", "chat.postMessage"]
    assert (len(fake.in_channel("C0SHOP")), len(fake.in_channel("D0PM"))) == (2, 2)


def test_a_slack_press_during_the_run_is_not_undone_by_the_runs_post(
    jira: FakeJiraServer, slack: tuple[FakeSlack, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, base_url = slack
    site = jira.new_site(cloud=True)
    _backlog(site)
    monkeypatch.setenv(TOKEN_ENV, site.token)
    loaded = load_config(_config(tmp_path, site, base_url), default_registry())
    now = datetime.now(UTC)

    with Store.from_config(loaded) as store:

        class PressWhileCommenting:
            """The tracker writer, plus a PM snoozing SHOP-2 in Slack while the run comments on tickets."""

            def __init__(self, connector: object) -> None:
                self.connector = connector

            def add_comment(self, issue_key: str, document: Document, *, marker: str) -> str:
                if not store.suppressions.list_suppressions("SHOP"):
                    store.suppressions.add(Suppression(
                        SuppressionKind.SNOOZE, "SHOP", "SHOP-2", now, "U0PM", SuppressionSource.SLACK,
                        until=now + timedelta(days=7), reason="snoozed from the Slack digest (snooze 1 week)",
                    ))  # fmt: skip
                return str(self.connector.add_comment(issue_key, document, marker=marker))  # type: ignore[attr-defined]

            def update_comment(
                self, issue_key: str, comment_id: str, document: Document, *, marker: str
            ) -> None:
                self.connector.update_comment(issue_key, comment_id, document, marker=marker)  # type: ignore[attr-defined]

        poster = SlackDigestPoster(build_client(loaded.config.slack, SecretStr(TOKEN)), store.ledger)
        cycle = DigestCycle(
            loaded, store, default_registry(), writer_for=PressWhileCommenting,
            poster_for=lambda _project: poster, render=digest_payload,
        )  # fmt: skip
        report = cycle.run("SHOP", now)
    assert report.ok, report.error
    (message,) = fake.in_channel("C0SHOP")
    shown = _shown(message)
    assert "1 snoozed: SHOP-2" in shown and "|SHOP-2>" not in shown  # the run posted with the press applied
    assert report.agenda is not None and [i.issue for i in report.agenda.items] == ["SHOP-3"]


def _cycle_of(message: Message) -> str:
    assert message.metadata is not None
    return str(message.metadata["event_payload"]["cycle"])


def test_a_schedule_makes_each_due_time_a_cycle_and_a_week_begun_before_goes_on_to_its_period_end(
    jira: FakeJiraServer, slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    fake, base_url = slack
    site = jira.new_site(cloud=True)
    _backlog(site)
    config = _config(tmp_path, site, base_url)
    points = site.field_ids.story_points

    def run(now: str) -> CliResult:
        result = _digest(site, config, "--now", now)
        assert result.code == 0, result.stdout + result.stderr
        return result

    # No schedule in the file: the cycle is the ISO week, as every cycle was before schedules named them.
    assert "posted in C0SHOP" in run("2026-12-07T09:30:00+00:00").stdout
    (monday,) = fake.in_channel("C0SHOP")
    assert _cycle_of(monday) == "2026-W50"

    # The project gets "mon,thu 09:00". Tuesday is still in the period Monday's run began (under its week's
    # name): the rerun edits Monday's message instead of posting a second one this week.
    config.write_text(config.read_text() + 'schedule = "mon,thu 09:00"\n')
    site.touch("SHOP-3", datetime.now(UTC), **{points: 3.0})
    assert "updated in C0SHOP" in run("2026-12-08T10:00:00+00:00").stdout
    (monday,) = fake.in_channel("C0SHOP")
    assert monday.edits == 1 and _cycle_of(monday) == "2026-W50"
    agenda = run_cli(
        ["agenda", "--config", str(config), "--format", "json", "--now", "2026-12-08T11:00:00+00:00"],
        env={TOKEN_ENV: site.token},
    )
    assert json.loads(agenda.stdout)[0]["cycle"] == "2026-W50", agenda.stdout + agenda.stderr

    # Thursday's due time starts a cycle of its own: a new message, named by its due time.
    assert "posted in C0SHOP" in run("2026-12-10T09:30:00+00:00").stdout
    monday, thursday = fake.in_channel("C0SHOP")
    assert monday.edits == 1 and _cycle_of(thursday) == "2026-12-10T09:00+00:00"
    assert "Thu 10 Dec 2026 09:00" in thursday.text

    # A rerun on Thursday edits Thursday's message; Monday's stays as it was.
    site.touch("SHOP-3", datetime.now(UTC), **{points: 21.0})
    assert "updated in C0SHOP" in run("2026-12-10T11:00:00+00:00").stdout
    monday, thursday = fake.in_channel("C0SHOP")
    assert (monday.edits, thursday.edits) == (1, 1)

    # Next Monday: the next cycle, one more message.
    run("2026-12-14T09:30:00+00:00")
    assert [_cycle_of(m) for m in fake.in_channel("C0SHOP")] == [
        "2026-W50",
        "2026-12-10T09:00+00:00",
        "2026-12-14T09:00+00:00",
    ]
    assert fake.methods().count("chat.postMessage") == 3
