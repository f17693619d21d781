"""The app in process (``build_app`` + signed ``BoltRequest``s, fake Slack Web API, SQLite store): every
button, the slash command's answers, retries, and token revocation."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt import App, BoltResponse
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from refinebot.config import LoadedConfig, load_config
from refinebot.cycle import cycle_of, project_zone
from refinebot.models import Finding, Issue, IssueType, Severity, SourceKind
from refinebot.slack.actions import ButtonAction, Verb
from refinebot.slack.app import build_app
from refinebot.slack.listeners import SlackServices
from refinebot.store import Store
from refinebot.suppressions import SuppressionKind, decide
from rules.registry import default_registry
from tests.fakes.slack_server import TOKEN, FakeSlack, Message, running

ROOT = Path(__file__).resolve().parents[2]
SECRET = "secret"
CHANNEL = "C0SHOP"
TS = "1760000000.000100"
NOW = datetime(2026, 12, 2, 9, tzinfo=UTC)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 5.0) -> Any:
    """Poll ``check`` (bolt runs a listener on after its ack) until truthy, failing after ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        time.sleep(0.01)  # a poll interval within a bounded deadline
    pytest.fail(f"timed out waiting for {what}")


def _issue(key: str, rank: str, title: str) -> Issue:
    return Issue(key, "SHOP", SourceKind.JIRA, title, type=IssueType.STORY, rank=rank,
                 url=f"https://shop-demo.atlassian.net/browse/{key}", story_points=3.0)  # fmt: skip


def _finding(key: str, rule: str = "missing-acceptance-criteria", **details: Any) -> Finding:
    subject = "|".join(sorted((key, str(details["duplicate_of"])))) if "duplicate_of" in details else ""
    return Finding("SHOP", key, rule, "X1", Severity.ERROR, f"{key} needs work", details, subject)


@dataclass
class Harness:
    app: App
    fake: FakeSlack
    store: Store
    services: SlackServices
    loaded: LoadedConfig

    def dispatch(self, raw: str, content_type: str, retry: str | None = None) -> BoltResponse:
        ts = str(int(time.time()))
        headers = {
            "x-slack-signature": [SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=raw)],
            "x-slack-request-timestamp": [ts],
            "content-type": [content_type],
        }
        if retry is not None:
            headers["x-slack-retry-num"] = [retry]
        return self.app.dispatch(BoltRequest(body=raw, headers=headers))

    def press(self, value: str | None, action_id: str, trigger: str) -> BoltResponse:
        element: dict[str, Any] = {"type": "button", "action_id": action_id, "block_id": "b"}
        if value is not None:
            element["value"] = value
        payload = {"type": "block_actions", "team": {"id": "T0FAKE"}, "user": {"id": "U0PM"},
                   "trigger_id": trigger, "container": {"type": "message", "message_ts": TS, "channel_id": CHANNEL},
                   "actions": [element]}  # fmt: skip
        return self.dispatch(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def command(self, text: str, trigger: str, retry: str | None = None) -> BoltResponse:
        body = urlencode({"command": "/refinebot", "text": text, "team_id": "T0FAKE", "channel_id": CHANNEL,
                          "channel_name": "shop-refinement", "user_id": "U0PM", "trigger_id": trigger})  # fmt: skip
        return self.dispatch(body, "application/x-www-form-urlencoded", retry)

    def message(self) -> Message:
        return self.fake.in_channel(CHANNEL)[0]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    loaded = load_config(ROOT / "refinebot" / "demo" / "config.toml", default_registry(), check_env=False)
    issues = [
        _issue("SHOP-1", "0|a", "Checkout"),
        _issue("SHOP-2", "0|b", "Pay"),
        _issue("SHOP-3", "0|c", "Pay!"),
    ]
    found = [
        _finding("SHOP-1"),
        _finding("SHOP-2"),
        _finding("SHOP-3", "duplicate-candidate", duplicate_of="SHOP-2"),
    ]
    with running() as (fake, base_url), Store.open(f"sqlite:///{tmp_path / 'r.db'}") as store:
        cycle = cycle_of(NOW, project_zone(loaded.config, "SHOP"))
        store.findings.record("SHOP", cycle, found, [decide(f, [], NOW) for f in found], NOW)
        store.issues.save("SHOP", issues)
        store.ledger.save_digest("SHOP", cycle, CHANNEL, TS, "seed", NOW)
        fake.messages.append(Message(CHANNEL, TS, "seed", [], None))
        services = SlackServices(loaded, store, now=lambda: NOW)
        app = build_app(services, WebClient(token=TOKEN, base_url=base_url), SECRET)
        yield Harness(app, fake, store, services, loaded)


def _values(message: Message) -> list[str]:
    return [e.get("value", "") for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


def test_remove_then_add_back_takes_the_item_off_and_puts_it_back(harness: Harness) -> None:
    remove = ButtonAction(Verb.REMOVE, "SHOP-1")
    assert harness.press(remove.encode(), remove.action_id, "t1").status == 200
    wait_for(lambda: harness.message().edits == 1, "the first chat.update")
    assert remove.encode() not in _values(harness.message())
    add_back = ButtonAction(Verb.ADD_BACK, "SHOP-1")
    assert add_back.encode() in _values(harness.message())
    assert "1 removed from this agenda: SHOP-1" in json.dumps(harness.message().blocks)

    assert harness.press(add_back.encode(), add_back.action_id + "_0", "t2").status == 200
    wait_for(lambda: harness.message().edits == 2, "the second chat.update")
    assert remove.encode() in _values(harness.message())
    assert harness.store.suppressions.list_suppressions("SHOP", active_at=NOW) == []


def test_not_a_duplicate_is_stored_as_a_pair_by_the_slack_user(harness: Harness) -> None:
    action = ButtonAction(Verb.NOT_DUPLICATE, "SHOP-3", "SHOP-2")
    assert action.encode() in _values(_rendered(harness))
    assert harness.press(action.encode(), action.action_id, "t3").status == 200
    wait_for(lambda: harness.message().edits == 1, "chat.update")
    (made,) = [
        s
        for s in harness.store.suppressions.list_suppressions("SHOP")
        if s.kind is SuppressionKind.NOT_DUPLICATE
    ]
    assert (made.kind, made.issue, made.other_issue, made.by) == (
        SuppressionKind.NOT_DUPLICATE, "SHOP-3", "SHOP-2", "U0PM",
    )  # fmt: skip
    assert action.encode() not in _values(harness.message())


def _rendered(harness: Harness) -> Message:
    """The message as a first button press leaves it (a snooze of an item the test does not look at)."""
    snooze = ButtonAction(Verb.SNOOZE_2W, "SHOP-1")
    harness.press(snooze.encode(), snooze.action_id, "t-render")
    wait_for(lambda: harness.message().edits >= 1, "chat.update")
    harness.message().edits = 0
    return harness.message()


def test_open_ticket_is_only_acknowledged(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    assert harness.press(None, "refinebot_open", "t4").status == 200
    with caplog.at_level(logging.WARNING, logger="refinebot.slack.listeners"):
        assert harness.press("v1|explode|SHOP-1", "refinebot_snooze_1w", "t5").status == 200
        # The listener goes on after its ack: wait for its verdict before looking (and before teardown).
        wait_for(
            lambda: "ignoring a button refinebot did not make" in caplog.text, "the foreign value ignored"
        )
    assert "chat.update" not in harness.fake.methods()
    assert harness.store.suppressions.list_suppressions("SHOP") == []


def test_slash_commands_answer_ephemerally_and_a_retry_is_not_answered(harness: Harness) -> None:
    agenda = harness.command("agenda SHOP", "c1")
    answer = json.loads(agenda.body)
    assert answer["response_type"] == "ephemeral"
    assert "Refinement agenda · SHOP" in json.dumps(answer["blocks"], ensure_ascii=False)
    assert not [b for b in answer["blocks"] if b["type"] == "actions"]  # buttons only on the real digest
    assert harness.command("agenda SHOP", "c1", retry="1").body == ""

    check = json.loads(harness.command("check shop-3", "c2").body)["text"]
    assert "*SHOP-3*" in check and "duplicate-candidate" in check
    assert "no open findings" in json.loads(harness.command("check SHOP-9", "c3").body)["text"]
    assert "No project NOPE" in json.loads(harness.command("agenda NOPE", "c4").body)["text"]
    unknown = json.loads(harness.command("frobnicate", "c5").body)["text"]
    assert "Unknown `frobnicate`" in unknown and "/refinebot check KEY" in unknown


def test_a_retried_event_is_dropped_and_app_uninstalled_disables_posting(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    raw = json.dumps({"type": "event_callback", "team_id": "T0FAKE", "event_id": "Ev1",
                      "event": {"type": "app_uninstalled"}})  # fmt: skip
    with caplog.at_level(logging.INFO, logger="refinebot.slack.listeners"):
        assert harness.dispatch(raw, "application/json").status == 200
        wait_for(lambda: harness.services.posting_disabled("T0FAKE"), "posting disabled")
        assert harness.dispatch(raw, "application/json", retry="1").status == 200
    assert caplog.text.count("posting to Slack is disabled") == 1
    assert (harness.services.posting_disabled("T0FAKE") or "").startswith("app_uninstalled")
    assert harness.services.posting_disabled("T0OTHER") is None

    snooze = ButtonAction(Verb.SNOOZE_1W, "SHOP-1")
    with caplog.at_level(logging.INFO, logger="refinebot.slack.listeners"):
        assert harness.press(snooze.encode(), snooze.action_id, "t6").status == 200
        wait_for(lambda: "not editing the digest" in caplog.text, "the listener to give up on posting")
    assert harness.store.suppressions.list_suppressions("SHOP")  # the press itself was applied
    assert "chat.update" not in harness.fake.methods()


def _press_on(harness: Harness, ts: str, value: str, action_id: str, trigger: str, channel: str = CHANNEL,
              message: dict[str, Any] | None = None) -> BoltResponse:  # fmt: skip
    payload = {"type": "block_actions", "team": {"id": "T0FAKE"}, "user": {"id": "U0PM"}, "trigger_id": trigger,
               "container": {"type": "message", "message_ts": ts, "channel_id": channel},
               "message": {"ts": ts, **(message or {})},
               "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value}]}  # fmt: skip
    return harness.dispatch(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")


@pytest.fixture
def channel_harness(tmp_path: Path) -> Iterator[Harness]:
    """The harness with SHOP's digest going to CHANNEL and, as a DM, to the PM U0PM (no ledger row yet)."""
    demo = ROOT / "refinebot" / "demo"
    (tmp_path / "backlog.json").write_text((demo / "backlog.json").read_text())
    config = tmp_path / "refinebot.toml"
    config.write_text(
        (demo / "config.toml").read_text() + f'slack_channel = "{CHANNEL}"\npm_slack_user = "U0PM"\n'
    )
    loaded = load_config(config, default_registry(), check_env=False)
    issues = [_issue("SHOP-1", "0|a", "Checkout"), _issue("SHOP-2", "0|b", "Pay")]
    found = [_finding("SHOP-1"), _finding("SHOP-2")]
    with running() as (fake, base_url), Store.open(f"sqlite:///{tmp_path / 'r.db'}") as store:
        cycle = cycle_of(NOW, project_zone(loaded.config, "SHOP"))
        store.findings.record("SHOP", cycle, found, [decide(f, [], NOW) for f in found], NOW)
        store.issues.save("SHOP", issues)
        services = SlackServices(loaded, store, now=lambda: NOW)
        app = build_app(services, WebClient(token=TOKEN, base_url=base_url), SECRET)
        yield Harness(app, fake, store, services, loaded)


def test_a_press_before_the_run_recorded_its_message_is_stored_and_edits_it(channel_harness: Harness) -> None:
    harness = channel_harness
    harness.fake.messages.append(
        Message(CHANNEL, TS, "just posted", [], None)
    )  # the ledger commit is pending
    snooze = ButtonAction(Verb.SNOOZE_1W, "SHOP-1")
    assert _press_on(harness, TS, snooze.encode(), snooze.action_id, "race-1").status == 200
    wait_for(lambda: harness.message().edits == 1, "chat.update of the unrecorded message")
    (made,) = harness.store.suppressions.list_suppressions("SHOP")
    assert (made.kind, made.issue, made.by) == (SuppressionKind.SNOOZE, "SHOP-1", "U0PM")
    assert snooze.encode() not in _values(harness.message())
    assert "1 snoozed: SHOP-1" in json.dumps(harness.message().blocks)
    cycle = cycle_of(NOW, project_zone(harness.loaded.config, "SHOP"))
    # The listener records the message after its edit, so the next press goes the usual way.
    recorded = wait_for(lambda: harness.store.ledger.digest_by_message(CHANNEL, TS), "the ledger row")
    assert (recorded.project, recorded.cycle) == ("SHOP", cycle)
    assert harness.fake.ephemerals == []
    # Then it looks for the PM's DM copy (none recorded: nothing more to edit).
    wait_for(lambda: "conversations.open" in harness.fake.methods(), "the look for the DM copy")
    assert harness.fake.methods().count("chat.update") == 1


def test_a_press_on_a_ticket_the_store_has_not_saved_yet_is_stored_and_said_so(
    channel_harness: Harness,
) -> None:
    harness = channel_harness
    cycle = cycle_of(NOW, project_zone(harness.loaded.config, "SHOP"))
    harness.store.ledger.save_digest("SHOP", cycle, CHANNEL, TS, "seed", NOW)
    harness.fake.messages.append(Message(CHANNEL, TS, "seed", [], None))
    # The digest run has posted SHOP-9 but not saved its issue snapshot yet.
    late = ButtonAction(Verb.SNOOZE_2W, "SHOP-9")
    assert _press_on(harness, TS, late.encode(), late.action_id, "race-2").status == 200
    (note,) = wait_for(lambda: harness.fake.ephemerals, "the ephemeral note")
    assert (note["channel"], note["user"]) == (CHANNEL, "U0PM")
    assert (
        "Saved: SHOP-9 is snoozed for 2 weeks" in note["text"]
        and "once the refinebot run now going" in note["text"]
    )
    (made,) = harness.store.suppressions.list_suppressions("SHOP")
    assert (made.issue, made.by, made.until) == ("SHOP-9", "U0PM", NOW + timedelta(days=14))
    assert "chat.update" not in harness.fake.methods()  # a rebuilt message would have lost SHOP-9


def test_a_press_in_the_pms_dm_edits_the_channel_copy_too(channel_harness: Harness) -> None:
    harness = channel_harness
    cycle = cycle_of(NOW, project_zone(harness.loaded.config, "SHOP"))
    for channel in (CHANNEL, "D0PM"):
        harness.store.ledger.save_digest("SHOP", cycle, channel, TS, "seed", NOW)
        harness.fake.messages.append(Message(channel, TS, "seed", [], None))
    remove = ButtonAction(Verb.REMOVE, "SHOP-2")
    assert _press_on(harness, TS, remove.encode(), remove.action_id, "dm-1", channel="D0PM").status == 200
    dm, shared = harness.fake.in_channel("D0PM")[0], harness.fake.in_channel(CHANNEL)[0]
    wait_for(lambda: dm.edits == 1 and shared.edits == 1, "both copies edited")
    assert dm.blocks == shared.blocks and remove.encode() not in _values(shared)
    assert harness.fake.methods().count("chat.update") == 2


def test_a_press_on_a_message_of_no_configured_project_changes_nothing(channel_harness: Harness) -> None:
    harness = channel_harness
    snooze = ButtonAction(Verb.SNOOZE_1W, "SHOP-1")
    assert (
        _press_on(harness, TS, snooze.encode(), snooze.action_id, "stray", channel="C0ELSEWHERE").status
        == 200
    )
    assert _press_on(harness, TS, snooze.encode(), snooze.action_id, "stray-dm", channel="D0SOMEONE",
                     message={"metadata": {"event_type": "refinebot_digest",
                                           "event_payload": {"project": "NOPE", "cycle": "2026-W49"}}}).status == 200  # fmt: skip
    assert harness.store.suppressions.list_suppressions("SHOP") == []
    assert "chat.update" not in harness.fake.methods()
