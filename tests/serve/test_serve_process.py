"""``refinebot serve`` as a real subprocess in http mode, against the fake Slack Web API and a SQLite store.

Requests are signed as Slack signs them (``slack_sdk.signature``); the store is filled by a real
``refinebot digest`` run over the demo backlog, and the digest message is planted in the fake channel.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier

from refinebot.config import load_config
from refinebot.serve import MAX_BODY
from refinebot.slack.actions import ButtonAction, Verb
from refinebot.slack.listeners import SlackServices, current_agenda
from refinebot.store import Store
from rules.registry import default_registry
from tests.cli_process import ROOT, run_cli
from tests.fakes.slack_server import TOKEN, FakeSlack, Message, running

SECRET = "test-signing-secret"
CHANNEL = "C0SHOP"
MESSAGE_TS = "1760000000.000100"
DEMO = ROOT / "refinebot" / "demo"
DEADLINE = 20.0


def wait_for(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        threading.Event().wait(0.02)  # a poll interval, not a timing assumption
    pytest.fail(f"timed out waiting for {what}")


@dataclass
class Served:
    """A running ``refinebot serve`` and what it talks to."""

    proc: subprocess.Popen[str]
    url: str
    fake: FakeSlack
    config: Path
    project_issue: str

    def post(self, body: str, *, content_type: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        request = urllib.request.Request(
            self.url + "/slack/events",
            data=body.encode(),
            headers={"Content-Type": content_type, **(headers or {})},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def signed(
        self,
        body: str,
        *,
        content_type: str,
        timestamp: int | None = None,
        extra: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        signature = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
        headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature, **(extra or {})}
        return self.post(body, content_type=content_type, headers=headers)


def _config(tmp: Path, base_url: str) -> Path:
    shutil.copy(DEMO / "backlog.json", tmp / "backlog.json")
    text = (DEMO / "config.toml").read_text()
    text = text.replace(
        'timezone = "Europe/Berlin"', 'timezone = "Europe/Berlin"\ndatabase_url = "sqlite:///refinebot.db"'
    )
    text += f'\nslack_channel = "{CHANNEL}"\n'
    text += f'\n[slack]\nmode = "http"\nbase_url = "{base_url}"\nhost = "127.0.0.1"\nport = 3000\n'
    path = tmp / "refinebot.toml"
    path.write_text(text)
    return path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with running() as (fake, base_url):
        config = _config(tmp_path, base_url)
        digest = run_cli(["digest", "--config", str(config)])
        assert digest.code == 0, digest.stderr
        loaded = load_config(config, default_registry())
        with Store.from_config(loaded) as store:
            agenda = current_agenda(SlackServices(loaded, store), "SHOP")
            assert agenda is not None and agenda.items
            store.ledger.save_digest("SHOP", agenda.cycle, CHANNEL, MESSAGE_TS, "seed", agenda_now())
        fake.messages.append(Message(CHANNEL, MESSAGE_TS, "seed", [], None))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REFINEBOT_", "SLACK_"))}
        env.update({"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET})
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
        url = None
        while url is None:
            try:
                line = lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                proc.kill()
                pytest.fail("serve did not start listening: " + "".join(log))
            if "listening on http://" in line:
                url = line.split("listening on ")[1].split("/slack/events")[0]
        try:
            yield Served(proc, url, fake, config, agenda.items[0].issue)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def agenda_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def button_payload(value: str, trigger: str) -> str:
    payload = {
        "type": "block_actions",
        "team": {"id": "T0FAKE", "domain": "fake"},
        "user": {"id": "U0PM", "username": "pm"},
        "api_app_id": "A0FAKE",
        "token": "legacy",
        "trigger_id": trigger,
        "container": {"type": "message", "message_ts": MESSAGE_TS, "channel_id": CHANNEL},
        "channel": {"id": CHANNEL, "name": "shop-refinement"},
        "message": {"ts": MESSAGE_TS, "text": "seed"},
        "actions": [
            {"type": "button", "action_id": "refinebot_snooze_1w", "block_id": "b1", "value": value,
             "action_ts": "1760000001.000200"}
        ],
    }  # fmt: skip
    return urlencode({"payload": json.dumps(payload)})


def command_body(text: str, trigger: str) -> str:
    return urlencode(
        {
            "command": "/refinebot", "text": text, "team_id": "T0FAKE", "channel_id": CHANNEL,
            "channel_name": "shop-refinement", "user_id": "U0PM", "user_name": "pm",
            "response_url": "https://hooks.slack.invalid/x", "trigger_id": trigger, "api_app_id": "A0FAKE",
        }
    )  # fmt: skip


FORM = "application/x-www-form-urlencoded"


def test_unsigned_wrongly_signed_and_stale_requests_get_401(served: Served) -> None:
    body = command_body("help", "t-401")
    assert served.post(body, content_type=FORM)[0] == 401
    wrong = {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64}
    assert served.post(body, content_type=FORM, headers=wrong)[0] == 401
    assert served.signed(body, content_type=FORM, timestamp=int(time.time()) - 301)[0] == 401
    status, text = served.signed(command_body("help", "t-ok"), content_type=FORM)
    assert status == 200
    assert "/refinebot agenda" in json.loads(text)["text"]


def test_healthz_lists_the_projects_and_an_oversized_body_is_refused_unread(served: Served) -> None:
    with urllib.request.urlopen(served.url + "/healthz", timeout=10) as response:
        assert response.status == 200
        assert json.loads(response.read())["projects"] == ["SHOP"]
    # Refused on its Content-Length alone: the server never reads (or waits for) the body.
    host, port = served.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", "/slack/events")
    connection.putheader("Content-Type", FORM)
    connection.putheader("Content-Length", str(MAX_BODY + 1))
    connection.endheaders(b"payload=")
    assert connection.getresponse().status == 413
    connection.close()


def test_a_snooze_button_is_stored_and_edits_the_message_once_even_when_retried(served: Served) -> None:
    key = served.project_issue
    body = button_payload(ButtonAction(Verb.SNOOZE_1W, key).encode(), "trigger-1")
    assert served.signed(body, content_type=FORM)[0] == 200
    message = served.fake.in_channel(CHANNEL)[0]
    wait_for(lambda: message.edits == 1, "chat.update on the fake")
    loaded = load_config(served.config, default_registry())
    with Store.from_config(loaded) as store:
        made = [s for s in store.suppressions.list_suppressions("SHOP") if s.issue == key]
    assert [(s.kind.value, s.by, s.source.value) for s in made] == [("snooze", "U0PM", "slack")]
    values = [e.get("value") for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert values and ButtonAction(Verb.SNOOZE_1W, key).encode() not in values
    sections = " ".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")
    assert f"`{key}`" not in sections  # gone from the items
    assert f"1 snoozed: {key}" in json.dumps(message.blocks)  # and said so in the note

    retry = served.signed(
        body, content_type=FORM, extra={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "timeout"}
    )
    assert retry == (200, "")
    # The retry answered; a later, new command proves the server has gone on past it.
    assert served.signed(command_body("help", "t-after"), content_type=FORM)[0] == 200
    with Store.from_config(loaded) as store:
        assert len([s for s in store.suppressions.list_suppressions("SHOP") if s.issue == key]) == 1
    assert served.fake.methods().count("chat.update") == 1


def test_a_retried_slash_command_is_answered_once(served: Served) -> None:
    body = command_body("agenda", "trigger-cmd")
    status, text = served.signed(body, content_type=FORM)
    assert status == 200
    assert "Refinement agenda" in json.dumps(json.loads(text))
    assert served.signed(body, content_type=FORM, extra={"X-Slack-Retry-Num": "1"}) == (200, "")


def test_sigterm_stops_serve_with_exit_0(served: Served) -> None:
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=15) == 0


def _serve(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REFINEBOT_", "SLACK_"))}
    return subprocess.run(
        [sys.executable, "-m", "refinebot", "serve", "--config", str(config), *args],
        cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_missing_secrets_port_in_use_and_a_refused_socket_are_one_clear_line(tmp_path: Path) -> None:
    import socket

    with running() as (_fake, base_url):
        config = _config(tmp_path, base_url)
        missing = _serve(config, {}, "--port", "0")
        assert missing.returncode == 1
        assert "SLACK_BOT_TOKEN" in missing.stderr and "SLACK_SIGNING_SECRET" in missing.stderr
        assert "Traceback" not in missing.stderr

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = str(taken.getsockname()[1])
            busy = _serve(config, {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET}, "--port", port)
        assert busy.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr and "Traceback" not in busy.stderr

        config.write_text(config.read_text().replace('mode = "http"', 'mode = "socket"'))
        no_app_token = _serve(config, {"SLACK_BOT_TOKEN": TOKEN}, "--port", "0")
        assert no_app_token.returncode == 1 and "SLACK_APP_TOKEN" in no_app_token.stderr
        # Not the app-level token the fake knows: apps.connections.open is refused, and serve says what to check.
        refused = _serve(config, {"SLACK_BOT_TOKEN": TOKEN, "SLACK_APP_TOKEN": "xapp-fake"}, "--port", "0")
        assert refused.returncode == 1
        assert "apps.connections.open failed" in refused.stderr and "Traceback" not in refused.stderr
        assert "xapp-fake" not in refused.stderr and TOKEN not in refused.stderr


def _health(served: Served) -> dict[str, Any]:
    with urllib.request.urlopen(served.url + "/healthz", timeout=10) as response:
        return dict(json.loads(response.read()))


def test_app_uninstalled_stops_the_next_digest_until_slack_is_enabled_again(served: Served) -> None:
    event = json.dumps({"type": "event_callback", "team_id": "T0FAKE", "api_app_id": "A0FAKE", "event_id": "Ev-gone",
                        "event_time": int(time.time()), "event": {"type": "app_uninstalled"}})  # fmt: skip
    assert served.signed(event, content_type="application/json")[0] == 200
    wait_for(lambda: _health(served)["slack_posting"] == "disabled", "posting switched off")

    mark = len(served.fake.calls)
    skipped = run_cli(["digest", "--config", str(served.config)], env={"SLACK_BOT_TOKEN": TOKEN})
    assert skipped.code == 0, skipped.stdout + skipped.stderr  # skipping is not a failure
    said = " ".join(skipped.stdout.split())
    assert "slack: skipped: Slack posting is disabled for workspace T0FAKE (app_uninstalled at " in said
    assert "--enable-slack" in skipped.stderr  # the one warning says how to turn it back on
    assert served.fake.methods()[mark:] == ["auth.test"]  # which workspace; nothing posted or edited

    mark = len(served.fake.calls)
    enabled = run_cli(
        ["digest", "--config", str(served.config), "--enable-slack"], env={"SLACK_BOT_TOKEN": TOKEN}
    )
    assert enabled.code == 0, enabled.stdout + enabled.stderr
    assert "Slack posting re-enabled for workspace T0FAKE" in enabled.stdout
    assert [m for m in served.fake.methods()[mark:] if m.startswith("chat.")] == ["chat.update"]
    assert _health(served)["slack_posting"] == "enabled"
