"""The digest poster against the fake Slack Web API over real HTTP: once per cycle, edits, crash safety, 429s."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from slack_sdk import WebClient

from refinebot.agenda import Agenda, AgendaItem, AgendaReadiness
from refinebot.config import SlackConfig
from refinebot.cycle import DigestAction
from refinebot.slack import posting
from refinebot.slack.blocks import digest_payload
from refinebot.slack.digest import DigestError, Pacer, SlackDigestPoster, build_client, open_dm, post_digest
from tests.fakes.slack_ledger import MemoryLedger
from tests.fakes.slack_server import TOKEN, FakeSlack, Message, running

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class Clock:
    """A monotonic clock that only moves when the code sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def agenda(cycle: str = "2026-W49", title: str = "Fix <b> & <!channel>", ready: int = 3) -> Agenda:
    item = AgendaItem(
        "SHOP-5", "SHOP-5", title, "https://t.example/browse/SHOP-5", 5.0, 5,
        ("no acceptance criteria",), ("draft acceptance criteria",), ("missing-acceptance-criteria",),
    )  # fmt: skip
    return Agenda("SHOP", cycle, AgendaReadiness(ready, 10, None), (item,), more=0)


@pytest.fixture
def slack() -> Iterator[tuple[FakeSlack, WebClient, Clock]]:
    clock = Clock()
    with running() as (fake, base_url):
        config = SlackConfig(base_url=base_url)
        yield fake, build_client(config, SecretStr(TOKEN), sleep=clock.sleep), clock


def post(
    client: WebClient, ledger: MemoryLedger, clock: Clock, made: Agenda, channel: str = "C0SHOP"
) -> DigestAction:
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    return post_digest(
        made, digest_payload(made), channel, ledger, client, pacer=pacer, now=lambda: NOW
    ).action


def test_first_post_then_edit_in_place_then_no_request_when_unchanged(
    slack: tuple[FakeSlack, WebClient, Clock],
) -> None:
    fake, client, clock = slack
    ledger = MemoryLedger()
    assert post(client, ledger, clock, agenda()) is DigestAction.POSTED
    assert post(client, ledger, clock, agenda(ready=4)) is DigestAction.UPDATED
    calls_before = len(fake.calls)
    assert post(client, ledger, clock, agenda(ready=4)) is DigestAction.UNCHANGED
    assert len(fake.calls) == calls_before  # unchanged content: not a single request
    (message,) = fake.in_channel("C0SHOP")
    assert message.edits == 1
    assert "4 of the top 10 ready" in message.text
    assert message.metadata == {
        "event_type": "refinebot_digest",
        "event_payload": {"project": "SHOP", "cycle": "2026-W49"},
    }
    assert ledger.digest("SHOP", "2026-W49", "C0SHOP") is not None


def test_the_next_cycle_posts_a_new_message(slack: tuple[FakeSlack, WebClient, Clock]) -> None:
    fake, client, clock = slack
    ledger = MemoryLedger()
    post(client, ledger, clock, agenda("2026-W49"))
    assert post(client, ledger, clock, agenda("2026-W50")) is DigestAction.POSTED
    assert len(fake.in_channel("C0SHOP")) == 2
    assert fake.methods().count("chat.postMessage") == 2


def test_a_crash_after_the_post_does_not_post_twice(slack: tuple[FakeSlack, WebClient, Clock]) -> None:
    fake, client, clock = slack
    crashed = MemoryLedger(fail_saves=True)
    with pytest.raises(RuntimeError, match="killed"):
        post(client, crashed, clock, agenda())
    fresh = MemoryLedger()  # the rerun: the ledger never heard of the message
    assert post(client, fresh, clock, agenda(ready=4)) is DigestAction.RECOVERED
    (message,) = fake.in_channel("C0SHOP")
    assert "4 of the top 10 ready" in message.text
    assert fresh.entries[("SHOP", "2026-W49", "C0SHOP")].message_ts == message.ts
    assert fake.methods().count("chat.postMessage") == 1


def test_another_projects_tagged_message_is_not_taken(slack: tuple[FakeSlack, WebClient, Clock]) -> None:
    fake, client, clock = slack
    post(client, MemoryLedger(), clock, agenda("2026-W48"))
    assert post(client, MemoryLedger(), clock, agenda("2026-W49")) is DigestAction.POSTED
    assert len(fake.in_channel("C0SHOP")) == 2


def test_a_deleted_message_is_posted_anew(slack: tuple[FakeSlack, WebClient, Clock]) -> None:
    fake, client, clock = slack
    ledger = MemoryLedger()
    post(client, ledger, clock, agenda())
    fake.messages.clear()
    assert post(client, ledger, clock, agenda(ready=5)) is DigestAction.POSTED
    assert len(fake.in_channel("C0SHOP")) == 1


def test_429_is_retried_once_after_retry_after(slack: tuple[FakeSlack, WebClient, Clock]) -> None:
    fake, client, clock = slack
    fake.fail_next("chat.postMessage", 429, retry_after=7)
    assert post(client, MemoryLedger(), clock, agenda()) is DigestAction.POSTED
    assert fake.methods().count("chat.postMessage") == 2
    assert len(fake.in_channel("C0SHOP")) == 1
    assert any(7 <= s < 8 for s in clock.sleeps)  # Retry-After plus under a second of jitter


def test_a_second_429_gives_up_with_a_clear_error(slack: tuple[FakeSlack, WebClient, Clock]) -> None:
    fake, client, clock = slack
    fake.fail_next("chat.postMessage", 429, retry_after=1)
    fake.fail_next("chat.postMessage", 429, retry_after=1)
    with pytest.raises(DigestError, match=r"chat\.postMessage failed: ratelimited"):
        post(client, MemoryLedger(), clock, agenda())


def test_posts_to_one_channel_are_paced_to_one_a_second(slack: tuple[FakeSlack, WebClient, Clock]) -> None:
    _, client, clock = slack
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    poster = SlackDigestPoster(client, MemoryLedger(), pacer=pacer)
    for cycle in ("2026-W48", "2026-W49", "2026-W50"):
        made = agenda(cycle)
        poster.post(made, digest_payload(made), "C0SHOP")
    assert clock.sleeps == [1.0, 1.0]


def test_a_channel_name_is_resolved_to_its_id(slack: tuple[FakeSlack, WebClient, Clock]) -> None:
    _, client, clock = slack
    ledger = MemoryLedger()
    post(client, ledger, clock, agenda(), channel="#shop-refinement")
    assert post(client, ledger, clock, agenda(ready=6), channel="#shop-refinement") is DigestAction.UPDATED
    assert list(ledger.entries) == [("SHOP", "2026-W49", "C0SHOP")]
    with pytest.raises(DigestError, match="#nowhere not found"):
        post(client, ledger, clock, agenda(), channel="#nowhere")


def test_hostile_titles_reach_slack_escaped(slack: tuple[FakeSlack, WebClient, Clock]) -> None:
    fake, client, clock = slack
    post(client, MemoryLedger(), clock, agenda(title="Fix <b> & <!channel> <@U123> @here"))
    (message,) = fake.in_channel("C0SHOP")
    section = message.blocks[4]["text"]["text"]
    assert "Fix &lt;b&gt; &amp; &lt;!channel&gt; &lt;@U123&gt; @\u2060here" in section
    assert "<!channel>" not in str(message.blocks) and "<@U123>" not in str(message.blocks)


def test_the_pm_gets_a_dm_copy(slack: tuple[FakeSlack, WebClient, Clock]) -> None:
    fake, client, clock = slack
    dm = open_dm(client, "U0PM")
    assert post(client, MemoryLedger(), clock, agenda(), channel=dm) is DigestAction.POSTED
    assert [m.channel for m in fake.messages] == ["D0PM"]


def test_the_token_never_reaches_the_logs(
    slack: tuple[FakeSlack, WebClient, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    _, client, clock = slack
    caplog.set_level("DEBUG")
    post(client, MemoryLedger(), clock, agenda())
    assert caplog.records  # the poster does log
    assert TOKEN not in caplog.text


def _tag(cycle: str = "2026-W49") -> dict[str, object]:
    return {"event_type": "refinebot_digest", "event_payload": {"project": "SHOP", "cycle": cycle}}


def test_another_apps_look_alike_message_is_never_taken_for_ours(
    slack: tuple[FakeSlack, WebClient, Clock],
) -> None:
    fake, client, clock = slack
    crashed = MemoryLedger(fail_saves=True)
    with pytest.raises(RuntimeError, match="killed"):
        post(client, crashed, clock, agenda())  # ours, posted; the ledger never heard
    (ours,) = fake.in_channel("C0SHOP")
    # Another app then posts a newer message carrying our exact tag (newest first in the history).
    fake.messages.append(
        Message("C0SHOP", "1770000000.000100", "look-alike", [], _tag(), "BOTHER", 0, "U0OTHER")
    )
    assert post(client, MemoryLedger(), clock, agenda(ready=4)) is DigestAction.RECOVERED
    other = fake.in_channel("C0SHOP")[1]
    assert (ours.edits, other.edits, other.text) == (1, 0, "look-alike")
    assert fake.methods().count("auth.test") == 2  # who we are: once per run, for the lookup only


def test_only_another_apps_tagged_message_means_we_post(slack: tuple[FakeSlack, WebClient, Clock]) -> None:
    fake, client, clock = slack
    fake.messages.append(
        Message("C0SHOP", "1750000000.000100", "look-alike", [], _tag(), "BOTHER", 0, "U0OTHER")
    )
    assert post(client, MemoryLedger(), clock, agenda()) is DigestAction.POSTED
    assert [m.bot_id for m in fake.in_channel("C0SHOP")] == ["BOTHER", "BFAKE"]
    assert fake.in_channel("C0SHOP")[0].edits == 0


@dataclass
class MemoryState:
    """The sync-state half the posting switch uses, in a dict."""

    values: dict[str, object] = field(default_factory=dict)

    def load(self, key: str) -> object | None:
        return self.values.get(key)

    def save(self, key: str, value: object) -> None:
        self.values[key] = value


def _poster(client: WebClient, clock: Clock, state: MemoryState) -> SlackDigestPoster:
    return SlackDigestPoster(client, MemoryLedger(), pacer=Pacer(clock=clock, sleep=clock.sleep), state=state)


def test_switched_off_posting_skips_the_digest_with_one_warning(
    slack: tuple[FakeSlack, WebClient, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    fake, client, clock = slack
    state = MemoryState()
    posting.disable(state, "T0FAKE", "app_uninstalled", NOW)
    poster = _poster(client, clock, state)
    made = agenda()
    with caplog.at_level("WARNING", logger="refinebot.slack.digest"):
        first = poster.post(made, digest_payload(made), "C0SHOP")
        second = poster.post(made, digest_payload(made), "U0PM")
    assert first.action is DigestAction.SKIPPED and second.action is DigestAction.SKIPPED
    assert first.note.startswith(
        "Slack posting is disabled for workspace T0FAKE (app_uninstalled at 2026-12-02"
    )
    assert fake.methods() == ["auth.test"]  # which workspace the token is for; nothing posted
    assert caplog.text.count("the digest is not posted") == 1
    assert "--enable-slack" in caplog.text

    assert posting.enable(state) == {"T0FAKE": "app_uninstalled at 2026-12-02T09:00:00+00:00"}
    assert (
        _poster(client, clock, state).post(made, digest_payload(made), "C0SHOP").action is DigestAction.POSTED
    )


def test_the_switch_of_another_workspace_does_not_stop_ours(
    slack: tuple[FakeSlack, WebClient, Clock],
) -> None:
    fake, client, clock = slack
    state = MemoryState()
    posting.disable(state, "T0OTHER", "tokens_revoked", NOW)
    made = agenda()
    assert (
        _poster(client, clock, state).post(made, digest_payload(made), "C0SHOP").action is DigestAction.POSTED
    )
    assert len(fake.in_channel("C0SHOP")) == 1


def test_a_dead_token_with_the_switch_off_is_a_skip_and_without_it_a_failure(
    slack: tuple[FakeSlack, WebClient, Clock],
) -> None:
    fake, client, clock = slack
    fake.token = "xoxb-reissued"  # Slack revoked ours with the uninstall: auth.test answers invalid_auth
    made = agenda()
    with pytest.raises(DigestError, match="invalid_auth"):
        _poster(client, clock, MemoryState()).post(made, digest_payload(made), "C0SHOP")
    state = MemoryState()
    posting.disable(state, "T0FAKE", "tokens_revoked", NOW)
    outcome = _poster(client, clock, state).post(made, digest_payload(made), "C0SHOP")
    assert outcome.action is DigestAction.SKIPPED
    assert "answers invalid_auth" in outcome.note
    assert fake.messages == []


def test_a_user_id_is_their_dm_edited_in_place_on_a_rerun(slack: tuple[FakeSlack, WebClient, Clock]) -> None:
    fake, client, clock = slack
    ledger = MemoryLedger()
    assert post(client, ledger, clock, agenda(), channel="U0PM") is DigestAction.POSTED
    assert post(client, ledger, clock, agenda(ready=5), channel="U0PM") is DigestAction.UPDATED
    (message,) = fake.in_channel("D0PM")
    assert message.edits == 1 and list(ledger.entries) == [("SHOP", "2026-W49", "D0PM")]
    assert fake.methods().count("conversations.open") == 2


def test_a_dm_slack_refuses_to_open_is_a_clear_error(slack: tuple[FakeSlack, WebClient, Clock]) -> None:
    fake, client, clock = slack
    fake.fail_next("conversations.open", 200, retry_after=None, error="user_disabled")
    with pytest.raises(DigestError, match=r"Slack conversations\.open failed: user_disabled"):
        post(client, MemoryLedger(), clock, agenda(), channel="U0GONE")
    assert fake.messages == []
