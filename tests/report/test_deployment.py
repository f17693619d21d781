"""The deployment files agree with the code: the Slack manifest asks for the scopes the bot's calls need and
points at serve's events path; the systemd unit runs ``refinebot serve`` as its own user with the secrets in
an EnvironmentFile (and passes ``systemd-analyze verify`` where systemd is installed); the Dockerfile runs it
as a non-root user with a HEALTHCHECK on serve's /healthz at the configured port."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from refinebot.config import SlackConfig
from refinebot.serve import EVENTS_PATH, HEALTH_PATH

ROOT = Path(__file__).resolve().parents[2]
SCOPES = {
    "chat:write",
    "commands",
    "im:write",
    "files:write",
    "channels:history",
    "groups:history",
    "im:history",
}


def unit_entries() -> list[tuple[str, str, str]]:
    """(section, key, value) of docs/refinebot.service, in order (systemd allows repeated keys)."""
    section, out = "", []
    for line in (ROOT / "docs" / "refinebot.service").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key, value))
    return out


def test_the_manifest_asks_for_the_scopes_and_routes_everything_to_serve() -> None:
    manifest = yaml.safe_load((ROOT / "docs" / "slack-app-manifest.yml").read_text())
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == SCOPES
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/refinebot"
    settings = manifest["settings"]
    urls = [
        command["url"],
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    ]
    assert {urlsplit(u).path for u in urls} == {EVENTS_PATH}
    assert settings["interactivity"]["is_enabled"] is True
    assert isinstance(settings["socket_mode_enabled"], bool)
    assert {"app_uninstalled", "tokens_revoked"} <= set(settings["event_subscriptions"]["bot_events"])


def test_the_unit_runs_serve_as_its_own_user_with_an_environment_file() -> None:
    entries = unit_entries()
    service = {key: value for section, key, value in entries if section == "Service"}
    assert service["ExecStart"].endswith("/refinebot serve")
    assert service["User"] not in ("", "root") and service["Group"] == service["User"]
    assert service["EnvironmentFile"].startswith("/etc/refinebot/")
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    env = [value for section, key, value in entries if key == "Environment"]
    assert "REFINEBOT_CONFIG=/etc/refinebot/refinebot.toml" in env
    assert not any(re.search(r"TOKEN|SECRET|PASSWORD", value) for value in env)  # secrets only in the file


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    executable = Path(sys.executable).parent / "refinebot"
    text = (
        (ROOT / "docs" / "refinebot.service")
        .read_text()
        .replace("/opt/refinebot/bin/refinebot", str(executable))
    )
    unit = tmp_path / "refinebot.service"
    unit.write_text(text)
    checked = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stderr
    assert "Unknown key" not in checked.stderr and "Unknown section" not in checked.stderr


def test_the_container_runs_serve_unprivileged_and_checks_healthz() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r'^CMD \["refinebot", "serve"\]$', dockerfile, re.M)
    (probe,) = re.findall(r"^\s+CMD \[\"python\", \"-c\", \"(.*)\"\]$", dockerfile, re.M)
    assert f"http://127.0.0.1:{SlackConfig().port}{HEALTH_PATH}" in probe
    assert "download.pytorch.org/whl/cpu" in dockerfile  # the semantic extra's CPU torch
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "*.db", "*.env"} <= set(ignored)
