"""Bounded waits (issue 9): a silent or unreachable server fails the fetch within timeout x attempts with one
clear reason, permanent errors are not retried, 429/503 still are, and urllib3 prints nothing.

The real connector and SDK over real sockets: ``tests/fakes/silent_server.py`` (accepts, never answers;
closed port), ``tests/fakes/status_server.py`` (a proxy's plain-text status) and the session's fake
organisation. Before the fix the SDK's connect step used msrest's 100 s timeout and 3 urllib3 retries
under each of our attempts: a silent server cost 4 x 100 s per attempt, a closed port 4 TCP attempts
and about 5 s of backoff per attempt, and a plain 501 was retried as a "connection failed".
Ceilings below are computed from the config and are generous (seconds, where the old code took
minutes); the attempt counts and messages carry the assertions.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.azure_devops import AzureDevOpsConnector
from connectors.base import ConnectorError
from refinebot.config import AzureDevOpsSourceConfig
from tests.cli_process import run_cli
from tests.connectors.azure_devops.conftest import ConnectorFactory, Sleeps
from tests.connectors.azure_devops.fake_org import PAT, TOKEN_ENV
from tests.fakes.ado_server import FakeAzureDevOps, Fault
from tests.fakes.silent_server import SilentServer, TcpConnectCounter, TricklingServer, closed_port
from tests.fakes.status_server import StatusServer

TIMEOUT = 0.5
ATTEMPTS = 2
# Per attempt: one timed-out request plus process and SDK overhead; far below the old 100 s per try.
SLACK_PER_ATTEMPT = 5.0


def ceiling(attempts: int = ATTEMPTS, timeout: float = TIMEOUT) -> float:
    """The longest a bounded fetch may take: every attempt's timeout plus generous slack."""
    return attempts * (timeout + SLACK_PER_ATTEMPT)


def connector_for(url: str, sleeps: Sleeps, *, retry_attempts: int = ATTEMPTS) -> AzureDevOpsConnector:
    """A connector for ``url`` with small waits (recorded backoff, no real sleeping)."""
    source = AzureDevOpsSourceConfig(
        kind="azure_devops",
        url=url,
        token_env=TOKEN_ENV,
        timeout_seconds=TIMEOUT,
        retry_attempts=retry_attempts,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.05,
    )
    return AzureDevOpsConnector(source, name="waits", sleep=sleeps, jitter=lambda: 0.5)


def third_party_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Warnings logged by anything but refinebot's own modules (urllib3's retry lines, for one)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and not r.name.startswith(("connectors", "refinebot"))
    ]


def test_a_server_that_never_answers_fails_with_no_answer_in_timeout(
    pat_env: str, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with SilentServer() as silent:
        connector = connector_for(f"{silent.base}/org", sleeps)
        started = time.monotonic()
        with pytest.raises(ConnectorError) as raised:
            connector.fetch("Web", None)
        elapsed = time.monotonic() - started
        connections = silent.connections

    message = str(raised.value)
    assert f"failed after {ATTEMPTS} attempts; last error: no answer in 0.5 s" in message
    assert "connect" in message  # the SDK's connect step (OPTIONS / ResourceAreas) is bounded too
    assert connections == ATTEMPTS  # one request per attempt: no SDK retries nested inside ours
    assert len(sleeps.calls) == ATTEMPTS - 1
    assert elapsed < ceiling()
    assert third_party_warnings(caplog) == []
    assert "\n" not in message


def test_a_server_that_trickles_its_answer_is_cut_off_at_the_request_deadline(
    pat_env: str, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    # One byte every 0.05 s: no read ever waits the 0.5 s timeout, so only the whole-answer bound ends it
    # (the 100 kB body would otherwise take more than an hour per attempt).
    caplog.set_level(logging.DEBUG)
    deadline = 1.0
    with TricklingServer(interval=0.05) as trickle:
        source = AzureDevOpsSourceConfig(
            kind="azure_devops",
            url=f"{trickle.base}/org",
            token_env=TOKEN_ENV,
            timeout_seconds=TIMEOUT,
            request_deadline_seconds=deadline,
            retry_attempts=ATTEMPTS,
            backoff_base_seconds=0.01,
            backoff_max_seconds=0.05,
        )
        connector = AzureDevOpsConnector(source, name="waits", sleep=sleeps, jitter=lambda: 0.5)
        started = time.monotonic()
        with pytest.raises(ConnectorError) as raised:
            connector.fetch("Web", None)
        elapsed = time.monotonic() - started
        connections = trickle.connections

    message = str(raised.value)
    assert f"failed after {ATTEMPTS} attempts; last error: the answer did not finish in 1 s" in message
    assert connections == ATTEMPTS
    assert elapsed < ceiling(timeout=deadline)
    assert third_party_warnings(caplog) == []
    assert "\n" not in message


def test_a_server_that_stops_answering_mid_fetch_is_bounded_too(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
) -> None:
    project = unique_name("Silent")
    ado.add_project(project)
    ado.add_item(project, "Story")
    connector = make_connector(timeout_seconds=TIMEOUT, retry_attempts=3)
    connector.fetch(project, None, full=True)  # connected; the next WIQL meets a silent server
    ado.faults.append(Fault(f"/{project}/_apis/wit/wiql", hang_seconds=3.0, times=3))
    mark = len(ado.requests)

    started = time.monotonic()
    with pytest.raises(ConnectorError, match=r"failed after 3 attempts; last error: no answer in 0\.5 s"):
        connector.fetch(project, None, full=True)

    assert time.monotonic() - started < ceiling(attempts=3)
    assert [r.status for r in ado.requests_since(mark)] == [0, 0, 0]  # three unanswered WIQLs, nothing else


def test_a_closed_port_is_connection_refused_once_per_attempt(
    pat_env: str, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    connector = connector_for(f"http://127.0.0.1:{closed_port()}/org", sleeps, retry_attempts=3)

    started = time.monotonic()
    with TcpConnectCounter() as tcp, pytest.raises(ConnectorError) as raised:
        connector.fetch("Web", None)

    assert str(raised.value).endswith("failed after 3 attempts; last error: connection refused")
    assert tcp.count == 3  # was 4 per attempt (urllib3's 3 retries under each of ours)
    assert time.monotonic() - started < ceiling(attempts=3)
    assert third_party_warnings(caplog) == []
    retries = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("connectors") and "retry" in r.getMessage()
    ]
    assert len(retries) == 2
    assert all("connection refused; retry" in line for line in retries)


@pytest.mark.parametrize("status", [400, 404, 501])
def test_permanent_errors_at_connect_are_not_retried(status: int, pat_env: str, sleeps: Sleeps) -> None:
    # A proxy's or gateway's plain-text answer (no Azure DevOps JSON) used to read as "connection failed".
    with StatusServer(status) as plain:
        connector = connector_for(f"{plain.base}/org", sleeps, retry_attempts=5)
        with pytest.raises(ConnectorError, match=rf"connect \(resource areas\) failed \(HTTP {status}\)"):
            connector.fetch("Web", None)
        assert plain.count == 1
    assert sleeps.calls == []


@pytest.mark.parametrize("status", [400, 404, 501])
def test_permanent_errors_during_the_fetch_are_not_retried(
    status: int,
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
) -> None:
    project = unique_name("Permanent")
    ado.add_project(project)
    ado.add_item(project, "Story")
    connector = make_connector(retry_attempts=5)
    connector.fetch(project, None, full=True)
    ado.faults.append(
        Fault(f"/{project}/_apis/wit/wiql", status=status, times=5, message=f"refused {status}")
    )
    mark = len(ado.requests)

    with pytest.raises(ConnectorError, match=rf"HTTP {status}"):
        connector.fetch(project, None, full=True)

    assert [r.status for r in ado.requests_since(mark)] == [status]
    assert sleeps.calls == []
    ado.faults.clear()


@pytest.mark.parametrize(("status", "headers"), [(503, {}), (429, {"Retry-After": "2"})])
def test_rate_limits_and_unavailability_at_connect_are_still_retried(
    status: int, headers: dict[str, str], pat_env: str, sleeps: Sleeps
) -> None:
    with StatusServer(status, headers=headers) as plain:
        connector = connector_for(f"{plain.base}/org", sleeps, retry_attempts=3)
        with pytest.raises(ConnectorError, match=rf"failed after 3 attempts; last error: HTTP {status}"):
            connector.fetch("Web", None)
        assert plain.count == 3  # ours only: urllib3 used to add 3 of its own per attempt for a 503
    if headers:
        assert sleeps.calls == [2.0, 2.0]  # Retry-After honoured
    else:
        assert len(sleeps.calls) == 2


def test_scan_with_a_silent_server_reports_one_clear_line_and_the_other_project(
    ado: FakeAzureDevOps, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    reachable = unique_name("Reachable")
    ado.add_project(reachable)
    bare = ado.add_item(reachable, "Improve search")
    with SilentServer() as silent:
        config = tmp_path / "refinebot.toml"
        config.write_text(
            f"""
[sources.silent]
kind = "azure_devops"
url = "{silent.base}/org"
token_env = "{TOKEN_ENV}"
timeout_seconds = {TIMEOUT}
retry_attempts = {ATTEMPTS}
backoff_base_seconds = 0.01

[sources.ado]
kind = "azure_devops"
url = "{ado.url}"
token_env = "{TOKEN_ENV}"

[projects.Silent]
source = "silent"

[projects."{reachable}"]
source = "ado"
""",
            encoding="utf-8",
        )
        started = time.monotonic()
        done = run_cli(
            ["scan", "-c", str(config), "--format", "json"],
            env={TOKEN_ENV: PAT, "AZURE_DEVOPS_CACHE_DIR": str(tmp_path / "sdk")},
        )
        elapsed = time.monotonic() - started
        connections = silent.connections

    assert done.code == 2, done.stderr
    failed = [line for line in done.stderr.splitlines() if line.startswith("project Silent failed")]
    assert len(failed) == 1
    assert failed[0].endswith(f"failed after {ATTEMPTS} attempts; last error: no answer in 0.5 s")
    assert "urllib3" not in done.stderr
    assert "HTTPConnectionPool" not in done.stderr
    assert "Traceback" not in done.stderr
    assert connections == ATTEMPTS
    # The other project of the config still reports its findings.
    assert (str(bare), "RB101") in {(f["issue"], f["code"]) for f in json.loads(done.stdout)}
    # Both projects, the CLI's start-up and the reachable scan: generous, and far below 2 x 4 x 100 s.
    assert elapsed < ceiling() + 60
