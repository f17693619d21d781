"""``refinebot serve`` in Socket Mode as a real subprocess: slack_sdk's builtin Socket Mode client (what serve
runs) against the fake Web API (``apps.connections.open`` with the app-level token) and the fake Socket Mode
endpoint (``tests.fakes.slack_socket``: hello, envelopes, acks by ``envelope_id``), SQLite store.

A slash command is answered in its ack; a button press is applied and the digest edited once even when the
same delivery comes twice; a retried event is applied once; SIGTERM closes the socket and exits 0.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from refinebot.config import load_config
from refinebot.slack.actions import ButtonAction, Verb
from refinebot.slack.listeners import SlackServices, current_agenda
from refinebot.store import Store
from rules.registry import default_registry
from tests.cli_process import ROOT, run_cli
from tests.fakes.slack_server import APP_TOKEN, TOKEN, FakeSlack, Message, running
from tests.fakes.slack_socket import FakeSocketMode, attach
from tests.serve.test_serve_process import CHANNEL, DEADLINE, MESSAGE_TS, _config, agenda_now, wait_for


@dataclass
class SocketServed:
    """A ``refinebot serve`` holding a Socket Mode connection to the fake."""

    proc: subprocess.Popen[str]
    fake: FakeSlack
    socket: FakeSocketMode
    config: Path
    issue: str
    log: list[str]


@pytest.fixture
def socket_served(tmp_path: Path) -> Iterator[SocketServed]:
    with running() as (fake, base_url), attach(fake) as socket:
        config = _config(tmp_path, base_url)
        config.write_text(config.read_text().replace('mode = "http"', 'mode = "socket"'))
        digest = run_cli(["digest", "--config", str(config)])  # fills the store; no bot token: no post
        assert digest.code == 0, digest.stderr
        loaded = load_config(config, default_registry())
        with Store.from_config(loaded) as store:
            agenda = current_agenda(SlackServices(loaded, store), "SHOP")
            assert agenda is not None and agenda.items
            store.ledger.save_digest("SHOP", agenda.cycle, CHANNEL, MESSAGE_TS, "seed", agenda_now())
        fake.messages.append(Message(CHANNEL, MESSAGE_TS, "seed", [], None))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REFINEBOT_", "SLACK_"))}
        env.update({"SLACK_BOT_TOKEN": TOKEN, "SLACK_APP_TOKEN": APP_TOKEN})  # no signing secret: none needed
        proc = subprocess.Popen(
            [sys.executable, "-m", "refinebot", "serve", "--config", str(config), "--port", "0"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        lines: queue.Queue[str] = queue.Queue()
        log: list[str] = []

        def read() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                log.append(line)
                lines.put(line)

        threading.Thread(target=read, daemon=True).start()
        end = time.monotonic() + DEADLINE
        while True:
            try:
                line = lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                proc.kill()
                pytest.fail("serve did not connect in Socket Mode: " + "".join(log))
            if "connected to Slack in Socket Mode" in line:
                break
        socket.wait_connected()
        try:
            yield SocketServed(proc, fake, socket, config, agenda.items[0].issue, log)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def _command(text: str, trigger: str) -> dict[str, Any]:
    return {"token": "legacy", "team_id": "T0FAKE", "team_domain": "fake", "channel_id": CHANNEL,
            "channel_name": "shop-refinement", "user_id": "U0PM", "user_name": "pm", "command": "/refinebot",
            "text": text, "api_app_id": "A0FAKE", "is_enterprise_install": "false",
            "response_url": "https://hooks.slack.invalid/commands/x", "trigger_id": trigger}  # fmt: skip


def _button(value: str, trigger: str) -> dict[str, Any]:
    return {
        "type": "block_actions", "team": {"id": "T0FAKE", "domain": "fake"},
        "user": {"id": "U0PM", "username": "pm", "team_id": "T0FAKE"}, "api_app_id": "A0FAKE",
        "token": "legacy", "trigger_id": trigger,
        "container": {"type": "message", "message_ts": MESSAGE_TS, "channel_id": CHANNEL, "is_ephemeral": False},
        "channel": {"id": CHANNEL, "name": "shop-refinement"}, "message": {"ts": MESSAGE_TS, "text": "seed"},
        "actions": [{"type": "button", "action_id": "refinebot_snooze_1w", "block_id": "b1", "value": value,
                     "action_ts": "1760000001.000200"}],
    }  # fmt: skip


def test_a_slash_command_through_the_socket_is_answered_in_its_ack_once(socket_served: SocketServed) -> None:
    socket = socket_served.socket
    first = socket.deliver("slash_commands", _command("help", "trig-help"))
    answer = socket.wait_ack(first)["payload"]
    assert answer["response_type"] == "ephemeral" and "/refinebot agenda" in answer["text"]
    again = socket.deliver("slash_commands", _command("help", "trig-help"))  # the same command, redelivered
    assert socket.wait_ack(again) == {"envelope_id": again}  # acked, not answered a second time


def test_a_button_through_the_socket_is_applied_and_edits_the_digest_once(
    socket_served: SocketServed,
) -> None:
    served = socket_served
    value = ButtonAction(Verb.SNOOZE_1W, served.issue).encode()
    first = served.socket.deliver("interactive", _button(value, "trig-press"))
    assert served.socket.wait_ack(first) == {"envelope_id": first}
    message = served.fake.in_channel(CHANNEL)[0]
    wait_for(lambda: message.edits == 1, "chat.update after the press")
    assert f"1 snoozed: {served.issue}" in json.dumps(message.blocks)

    # The very same envelope delivered again (as after a reconnect), then the press in a new envelope.
    served.socket.deliver("interactive", _button(value, "trig-press"), envelope_id=first)
    assert served.socket.wait_ack(first, nth=2) == {"envelope_id": first}
    retry = served.socket.deliver("interactive", _button(value, "trig-press"))
    assert served.socket.wait_ack(retry) == {"envelope_id": retry}
    # A later, new delivery answered proves serve has gone on past the retry.
    later = served.socket.deliver("slash_commands", _command("help", "trig-after"))
    assert "payload" in served.socket.wait_ack(later)
    loaded = load_config(served.config, default_registry())
    with Store.from_config(loaded) as store:
        made = [s for s in store.suppressions.list_suppressions("SHOP") if s.issue == served.issue]
    assert [(s.kind.value, s.by, s.source.value) for s in made] == [("snooze", "U0PM", "slack")]
    assert served.fake.methods().count("chat.update") == 1


def test_a_retried_event_is_applied_once_and_sigterm_closes_the_socket(socket_served: SocketServed) -> None:
    served = socket_served
    event = {"token": "legacy", "team_id": "T0FAKE", "api_app_id": "A0FAKE", "type": "event_callback",
             "event_id": "Ev-socket", "event_time": int(time.time()), "event": {"type": "app_uninstalled"}}  # fmt: skip
    first = served.socket.deliver("events_api", event)
    served.socket.wait_ack(first)
    wait_for(lambda: "posting to Slack is disabled" in "".join(served.log), "the event applied")
    # The retry is dropped before its ack (bolt's middleware runs first), so once acked it is settled.
    retry = served.socket.deliver("events_api", event, retry_attempt=1, retry_reason="timeout")
    served.socket.wait_ack(retry)
    later = served.socket.deliver("slash_commands", _command("help", "trig-after-event"))
    served.socket.wait_ack(later)
    assert "".join(served.log).count("posting to Slack is disabled") == 1
    assert "seen before (retry 1)" in "".join(served.log)

    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=15) == 0
    with served.socket.changed:
        assert served.socket.changed.wait_for(lambda: not served.socket.connections, 10)
