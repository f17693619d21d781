"""The app in process: an ``app_uninstalled`` event turns posting off (persisted) with an error log line."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from refinebot.config import load_config
from refinebot.slack.app import build_app
from refinebot.slack.listeners import SlackServices
from refinebot.store import Store
from rules.registry import default_registry
from tests.fakes.slack_server import TOKEN, running

ROOT = Path(__file__).resolve().parents[2]


def test_app_uninstalled_disables_posting(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    loaded = load_config(ROOT / "refinebot" / "demo" / "config.toml", default_registry(), check_env=False)
    with running() as (_fake, base_url), Store.open(f"sqlite:///{tmp_path / 'r.db'}") as store:
        services = SlackServices(loaded, store)
        app = build_app(services, WebClient(token=TOKEN, base_url=base_url), "secret")
        raw = json.dumps({"type": "event_callback", "team_id": "T0FAKE", "event_id": "Ev1",
                          "event": {"type": "app_uninstalled"}})  # fmt: skip
        ts = str(int(time.time()))
        headers = {
            "x-slack-signature": [SignatureVerifier("secret").generate_signature(timestamp=ts, body=raw)],
            "x-slack-request-timestamp": [ts],
            "content-type": ["application/json"],
        }
        with caplog.at_level(logging.ERROR, logger="refinebot.slack.listeners"):
            assert app.dispatch(BoltRequest(body=raw, headers=headers)).status == 200
            deadline = time.monotonic() + 5
            while services.posting_disabled("T0FAKE") is None and time.monotonic() < deadline:
                time.sleep(0.01)
        assert (services.posting_disabled("T0FAKE") or "").startswith("app_uninstalled")
        assert services.posting_disabled("T0OTHER") is None
        assert "posting to Slack is disabled" in caplog.text
