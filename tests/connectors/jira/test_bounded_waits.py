"""Bounded waits (issue 9) for Jira Cloud and Data Center: a silent or unreachable server fails the fetch
within timeout x attempts with one clear reason, permanent errors are not retried, 429/503 still are,
and nothing but the connector's own lines reaches the log.

The real connector, the ``jira`` package and requests over real sockets: ``tests/fakes/silent_server.py``
(accepts, never answers; a closed port), ``tests/fakes/status_server.py`` (a proxy's plain-text status)
and the session's fake Jira (``Site.hang`` leaves a request unanswered mid-fetch). Measured before
(``benchmarks/jira_waits.py``, 2 s timeout, 2 attempts): the waits were already bounded (6.0 s silent,
2.1 s refused, one request for a 501), but the reasons read "cannot reach the server while connecting
(ReadTimeout)" / "(ConnectionError)" and every retry line said "connection failed". Ceilings below are
computed from the config and are generous; the attempt counts and messages carry the assertions.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorError, MemorySyncStateStore
from connectors.jira import JiraConnector
from refinebot.config import JiraSourceConfig
from tests.cli_process import run_cli
from tests.fakes.jira_data import adf, make_issue, para, populate
from tests.fakes.jira_server import FakeJiraServer, Site
from tests.fakes.silent_server import SilentServer, TcpConnectCounter, TricklingServer, closed_port
from tests.fakes.status_server import StatusServer

TIMEOUT = 0.5
ATTEMPTS = 2
TOKEN_ENV = "REFINEBOT_WAITS_JIRA_TOKEN"
EMAIL = "bot@example.com"
# Per attempt: one timed-out request plus process and library overhead.
SLACK_PER_ATTEMPT = 5.0
SEARCH = {True: "/rest/api/3/search/jql", False: "/rest/api/2/search"}


class Sleeps:
    """Records the waits the connector asks for instead of sleeping (a clock seam, not a mock)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def ceiling(attempts: int = ATTEMPTS, timeout: float = TIMEOUT) -> float:
    """The longest a bounded fetch may take: every attempt's timeout plus generous slack."""
    return attempts * (timeout + SLACK_PER_ATTEMPT)


def connector_for(
    url: str,
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
    *,
    cloud: bool = True,
    retry_attempts: int = ATTEMPTS,
    token: str = "token",
    deadline: float | None = None,
) -> JiraConnector:
    """A connector for ``url`` (Cloud: email + API token; Data Center: a PAT) with recorded backoff."""
    values: dict[str, Any] = {
        "kind": "jira",
        "url": url,
        "token_env": TOKEN_ENV,
        "timeout_seconds": TIMEOUT,
        "retry_attempts": retry_attempts,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.05,
    }
    if cloud:
        values["email"] = EMAIL
    if deadline is not None:
        values["request_deadline_seconds"] = deadline
    monkeypatch.setenv(TOKEN_ENV, token)
    source = JiraSourceConfig.model_validate(values)
    return JiraConnector(source, name="waits", state=MemorySyncStateStore(), sleep=sleeps)


def site_connector(
    site: Site, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch, *, retry_attempts: int
) -> JiraConnector:
    """A connector for a fake Jira site, with its valid credentials."""
    token = site.token if site.cloud else site.pat
    return connector_for(
        site.url, sleeps, monkeypatch, cloud=site.cloud, retry_attempts=retry_attempts, token=token
    )


def third_party_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Warnings logged by anything but refinebot's own modules (the jira package's, urllib3's)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and not r.name.startswith(("connectors", "refinebot"))
    ]


@pytest.mark.parametrize("cloud", [True, False], ids=["cloud", "dc"])
def test_a_server_that_never_answers_fails_with_no_answer_in_timeout(
    cloud: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sleeps = Sleeps()
    with SilentServer() as silent:
        connector = connector_for(silent.base, sleeps, monkeypatch, cloud=cloud)
        started = time.monotonic()
        with pytest.raises(ConnectorError) as raised:
            connector.fetch("SHOP", None)
        elapsed = time.monotonic() - started
        connections = silent.connections

    message = str(raised.value)
    assert message.endswith(f"no answer in 0.5 s while connecting, after {ATTEMPTS} attempts")
    assert connections == ATTEMPTS  # serverInfo once per attempt: nothing nested inside ours
    assert len(sleeps.calls) == ATTEMPTS - 1
    assert elapsed < ceiling()
    assert third_party_warnings(caplog) == []
    assert "\n" not in message
    assert "ReadTimeout" not in message and "HTTPConnectionPool" not in message


@pytest.mark.parametrize("cloud", [True, False], ids=["cloud", "dc"])
def test_a_server_that_trickles_its_answer_is_cut_off_at_the_request_deadline(
    cloud: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # One byte every 0.05 s: no read ever waits the 0.5 s timeout, so only the whole-answer bound ends it
    # (the 100 kB body would otherwise take more than an hour per attempt).
    caplog.set_level(logging.DEBUG)
    sleeps = Sleeps()
    with TricklingServer(interval=0.05) as trickle:
        connector = connector_for(trickle.base, sleeps, monkeypatch, cloud=cloud, deadline=1.0)
        started = time.monotonic()
        with pytest.raises(ConnectorError) as raised:
            connector.fetch("SHOP", None)
        elapsed = time.monotonic() - started
        connections = trickle.connections

    message = str(raised.value)
    assert message.endswith(f"the answer did not finish in 1 s while connecting, after {ATTEMPTS} attempts")
    assert connections == ATTEMPTS
    assert len(sleeps.calls) == ATTEMPTS - 1
    assert elapsed < ceiling(timeout=1.0)
    assert third_party_warnings(caplog) == []
    assert "\n" not in message


@pytest.mark.parametrize("cloud", [True, False], ids=["cloud", "dc"])
def test_a_server_that_stops_answering_mid_fetch_is_bounded_too(
    cloud: bool, fake_jira: FakeJiraServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = fake_jira.new_site(cloud=cloud)
    populate(site, 2)
    sleeps = Sleeps()
    connector = site_connector(site, sleeps, monkeypatch, retry_attempts=3)
    connector.fetch("SHOP", None, full=True)  # connected; the next search meets a silent server
    site.hang("GET", SEARCH[cloud], 3.0, times=3)
    mark = len(site.log)

    started = time.monotonic()
    with pytest.raises(ConnectorError) as raised:
        connector.fetch("SHOP", None, full=True)

    assert time.monotonic() - started < ceiling(attempts=3)
    assert str(raised.value).endswith("no answer in 0.5 s while searching issues, after 3 attempts")
    # Three unanswered searches, nothing else.
    assert [(e.path, e.status) for e in site.log[mark:]] == [(SEARCH[cloud], None)] * 3


@pytest.mark.parametrize("cloud", [True, False], ids=["cloud", "dc"])
def test_a_closed_port_is_connection_refused_once_per_attempt(
    cloud: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sleeps = Sleeps()
    connector = connector_for(
        f"http://127.0.0.1:{closed_port()}", sleeps, monkeypatch, cloud=cloud, retry_attempts=3
    )

    started = time.monotonic()
    with TcpConnectCounter() as tcp, pytest.raises(ConnectorError) as raised:
        connector.fetch("SHOP", None)

    assert str(raised.value).endswith("connection refused while connecting, after 3 attempts")
    assert tcp.count == 3
    assert time.monotonic() - started < ceiling(attempts=3)
    assert third_party_warnings(caplog) == []
    retries = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("connectors") and "retry" in r.getMessage()
    ]
    assert len(retries) == 2
    assert all("server info: connection refused; retry" in line for line in retries)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, r"HTTP 400 while connecting: status 400$"),
        (404, r"does not look like a Jira server .*HTTP 404"),
        (501, r"HTTP 501 while connecting: status 501$"),
    ],
)
def test_permanent_errors_at_connect_are_not_retried(
    status: int, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy's or gateway's plain-text answer, before any Jira JSON.
    sleeps = Sleeps()
    with StatusServer(status) as plain:
        connector = connector_for(plain.base, sleeps, monkeypatch, retry_attempts=5)
        with pytest.raises(ConnectorError, match=expected):
            connector.fetch("SHOP", None)
        assert plain.count == 1
    assert sleeps.calls == []


@pytest.mark.parametrize("status", [400, 404, 501])
@pytest.mark.parametrize("cloud", [True, False], ids=["cloud", "dc"])
def test_permanent_errors_during_the_fetch_are_not_retried(
    status: int, cloud: bool, fake_jira: FakeJiraServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = fake_jira.new_site(cloud=cloud)
    populate(site, 1)
    sleeps = Sleeps()
    connector = site_connector(site, sleeps, monkeypatch, retry_attempts=5)
    connector.fetch("SHOP", None, full=True)
    site.fail("GET", SEARCH[cloud], status, times=5)
    mark = len(site.log)

    with pytest.raises(ConnectorError, match=rf"HTTP {status} while searching issues"):
        connector.fetch("SHOP", None, full=True)

    assert [e.status for e in site.log[mark:]] == [status]
    assert sleeps.calls == []


def test_a_proxy_error_page_is_reported_on_one_short_line(monkeypatch: pytest.MonkeyPatch) -> None:
    page = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n" + "x " * 500 + "\n</body></html>"
    with StatusServer(400, body=page) as plain:
        connector = connector_for(plain.base, Sleeps(), monkeypatch)
        with pytest.raises(ConnectorError) as raised:
            connector.fetch("SHOP", None)

    message = str(raised.value)
    assert "\n" not in message
    assert "HTTP 400 while connecting: <html> <head><title>502 Bad Gateway</title>" in message
    assert len(message) < 300


@pytest.mark.parametrize(
    ("status", "headers", "reason"),
    [(503, {}, "still unavailable"), (429, {"Retry-After": "2"}, "still rate limited")],
)
def test_rate_limits_and_unavailability_at_connect_are_still_retried(
    status: int, headers: dict[str, str], reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps = Sleeps()
    with StatusServer(status, headers=headers) as plain:
        connector = connector_for(plain.base, sleeps, monkeypatch, retry_attempts=3)
        with pytest.raises(
            ConnectorError, match=rf"{reason} \(HTTP {status}\) after 3 attempts while connecting"
        ):
            connector.fetch("SHOP", None)
        assert plain.count == 3
    assert len(sleeps.calls) == 2
    if headers:
        assert all(2.0 <= d <= 2.6 for d in sleeps.calls)  # Retry-After honoured, never earlier


def test_scan_with_a_silent_server_reports_one_clear_line_and_the_other_project(
    fake_jira: FakeJiraServer, tmp_path: Path
) -> None:
    site = fake_jira.new_site(cloud=True)
    make_issue(site, 1, description=adf(para("Make it faster.")))  # no acceptance criteria
    with SilentServer() as silent:
        config = tmp_path / "refinebot.toml"
        config.write_text(
            f"""
[sources.silent]
kind = "jira"
url = "{silent.base}"
email = "{EMAIL}"
token_env = "{TOKEN_ENV}_SILENT"
timeout_seconds = {TIMEOUT}
retry_attempts = {ATTEMPTS}
backoff_base_seconds = 0.01

[sources.jira]
kind = "jira"
url = "{site.url}"
email = "{site.email}"
token_env = "{TOKEN_ENV}"
backoff_base_seconds = 0.01

[projects.Silent]
source = "silent"

[projects.SHOP]
source = "jira"
""",
            encoding="utf-8",
        )
        started = time.monotonic()
        done = run_cli(
            ["scan", "-c", str(config), "--format", "json"],
            env={TOKEN_ENV: site.token, f"{TOKEN_ENV}_SILENT": "token"},
        )
        elapsed = time.monotonic() - started
        connections = silent.connections

    assert done.code == 2, done.stderr
    failed = [line for line in done.stderr.splitlines() if line.startswith("project Silent failed")]
    assert len(failed) == 1
    assert failed[0].endswith(f"no answer in 0.5 s while connecting, after {ATTEMPTS} attempts")
    for internal in ("urllib3", "HTTPConnectionPool", "ReadTimeout", "Traceback", "jira.", "ERROR"):
        assert internal not in done.stderr
    assert connections == ATTEMPTS
    # The other project of the config still reports its findings.
    assert ("SHOP-1", "missing-acceptance-criteria") in {
        (f["issue"], f["rule"]) for f in json.loads(done.stdout)
    }
    # Both projects plus the CLI's start-up: generous.
    assert elapsed < ceiling() + 60
