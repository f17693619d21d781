"""``refinebot serve`` as a real subprocess with a schedule due now, against the fake Jira Cloud and the fake
Slack Web API over HTTP, SQLite: the due run is caught up at start and shows in ``/healthz``; SIGHUP with a
bad config keeps the jobs and logs file, key and reason; SIGHUP with a new schedule reschedules; SIGTERM
exits 0; every log line is JSON (stderr is a pipe). Then ``refinebot -vv digest`` on the same config.
The token values are known, and neither the whole output nor the database file contains any of them.

``config check`` names the file and ``projects.KEY.schedule`` for a bad schedule.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import ROOT, run_cli
from tests.fakes.jira_data import adf, make_issue, para
from tests.fakes.jira_server import FakeJiraServer
from tests.fakes.slack_server import FakeSlack, running

JIRA_TOKEN = "jira-api-token-5e1d7a9c3b"
SLACK_TOKEN = "xoxb-slack-bot-token-8f2c4e6a"
SIGNING = "slack-signing-secret-0c4f1e2d"
SECRETS = (JIRA_TOKEN, SLACK_TOKEN, SIGNING)
CHANNEL = "C0SHOP"
DEADLINE = 60.0  # seconds for any one step on a loaded machine (a bound, not an expectation)


def _config(path: Path, site_url: str, slack_url: str, schedule: str) -> None:
    path.write_text(
        f"""
timezone = "UTC"
database_url = "sqlite:///refinebot.db"

[slack]
mode = "http"
base_url = "{slack_url}"
host = "127.0.0.1"
bot_token_env = "REFINEBOT_TEST_SLACK_TOKEN"
signing_secret_env = "REFINEBOT_TEST_SIGNING_SECRET"

[sources.jira]
kind = "jira"
url = "{site_url}"
email = "bot@example.com"
token_env = "REFINEBOT_TEST_JIRA_TOKEN"
backoff_base_seconds = 0.01

[rules.stale-item]
enabled = false

[projects.SHOP]
source = "jira"
comment_on_tickets = true
slack_channel = "{CHANNEL}"
schedule = "{schedule}"
""",
        encoding="utf-8",
    )


class Serving:
    """A running ``refinebot serve`` subprocess and the lines it wrote."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "refinebot", "-vv", "serve", "--config", str(config), "--port", "0"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        self.stdout = ""
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_line(lambda text: "listening on http://" in text, "the listening line")
        self.url = json.loads(line)["message"].split("listening on ")[1].split("/slack/events")[0]

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            self._new.put(line)

    def wait_line(self, match: Callable[[str], bool], what: str) -> str:
        end = time.monotonic() + DEADLINE
        for line in self.lines:
            if match(line):
                return line
        while (left := end - time.monotonic()) > 0:
            try:
                line = self._new.get(timeout=left)
            except queue.Empty:
                break
            if match(line):
                return line
        self.proc.kill()
        pytest.fail(f"timed out waiting for {what}: " + "".join(self.lines))

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/healthz", timeout=10) as response:
            assert response.status == 200
            body: dict[str, Any] = json.loads(response.read())
            return body

    def wait_health(self, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            body = self.health()
            if check(body):
                return body
            threading.Event().wait(0.05)  # a poll interval, not a timing assumption
        self.proc.kill()
        pytest.fail(f"timed out waiting for {what}: " + "".join(self.lines))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout.read()
        return code


def test_serve_runs_the_due_schedule_reloads_on_sighup_stops_on_sigterm_and_never_leaks_a_secret(
    tmp_path: Path, jira: FakeJiraServer
) -> None:
    site = jira.new_site(cloud=True, token=JIRA_TOKEN)
    make_issue(site, 1)
    make_issue(site, 2, description=adf(para("Make it faster.")))  # no acceptance criteria
    make_issue(site, 3, points=21.0)  # oversized
    now = datetime.now(UTC)
    due_now = f"{now.minute} {now.hour} * * *"  # its latest time is this minute: caught up at start
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REFINEBOT_", "SLACK_"))}
    env |= {
        "REFINEBOT_TEST_JIRA_TOKEN": JIRA_TOKEN,
        "REFINEBOT_TEST_SLACK_TOKEN": SLACK_TOKEN,
        "REFINEBOT_TEST_SIGNING_SECRET": SIGNING,
    }
    with running(FakeSlack(token=SLACK_TOKEN)) as (slack, slack_url):
        config = tmp_path / "refinebot.toml"
        _config(config, site.url, slack_url, due_now)
        served = Serving(config, env)
        try:
            body = served.wait_health(
                lambda b: b["schedules"]["SHOP"]["last_outcome"] is not None, "the caught-up run"
            )
            shop = body["schedules"]["SHOP"]
            assert shop["last_outcome"] == "ok", shop
            assert shop["schedule"] == due_now and shop["timezone"] == "UTC"
            assert datetime.fromisoformat(shop["next_run"]) > now
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d\+00:00", shop["last_cycle"]), shop  # the due time
            assert len(slack.in_channel(CHANNEL)) == 1

            _config(config, site.url, slack_url, "someday 25:00")
            served.proc.send_signal(signal.SIGHUP)
            line = served.wait_line(
                lambda text: "config reload:" in text and "schedule" in text, "the reload error"
            )
            assert f"{config}: projects.SHOP.schedule:" in json.loads(line)["message"]
            assert served.health()["schedules"]["SHOP"]["schedule"] == due_now

            _config(config, site.url, slack_url, "0 6 * * tue")
            served.proc.send_signal(signal.SIGHUP)
            body = served.wait_health(
                lambda b: b["schedules"]["SHOP"]["schedule"] == "0 6 * * tue", "the new schedule"
            )
            next_run = datetime.fromisoformat(body["schedules"]["SHOP"]["next_run"])
            assert (next_run.weekday(), next_run.hour, next_run.minute) == (1, 6, 0)
            assert body["schedules"]["SHOP"]["last_outcome"] == "ok"  # the last run is still shown
        finally:
            code = served.stop()
        assert code == 0, "".join(served.lines)
        assert len(slack.in_channel(CHANNEL)) == 1  # the reloads did not run the cycle again
        for line in served.lines:
            assert isinstance(json.loads(line), dict), line  # structured: every line is one JSON object
        assert any('"logger": "refinebot.scheduler"' in line for line in served.lines)

        digest = run_cli(["-vv", "digest", "--config", str(config)], env=env)
        assert digest.code == 0, digest.stderr
    assert site.all_comments("SHOP-2"), "the cycle commented on a flagged ticket"
    output = served.stdout + "".join(served.lines) + digest.stdout + digest.stderr
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("refinebot.db*"))
    assert stored, "the database file exists"
    for secret in SECRETS:
        assert secret not in output
        assert secret.encode() not in stored


def test_config_check_names_the_file_and_key_of_a_bad_schedule(tmp_path: Path) -> None:
    config = tmp_path / "refinebot.toml"
    _config(config, "https://example.atlassian.net", "https://slack.com/api/", "mon 25:00")
    with config.open("a", encoding="utf-8") as extra:
        extra.write("\n[scheduler]\nmisfire_grace_minutes = 0\n")
    result = run_cli(["config", "check", "--config", str(config)])
    assert result.code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"error: {config}: projects.SHOP.schedule: 25:00 is not a time of day (00:00-23:59)" in errors
    assert any(line.startswith(f"error: {config}: scheduler.misfire_grace_minutes: ") for line in errors), (
        errors
    )
