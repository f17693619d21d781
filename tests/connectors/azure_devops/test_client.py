"""The call guard: Retry-After on 429 and delayed 200s, bounded backoff, and clear errors that never show the token.

The real connector and the real ``azure-devops`` SDK over HTTP against the session's fake organisation
(each test in its own project); request counts come from the fake's log of what crossed the wire.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connectors.azure_devops import AzureDevOpsConnector
from connectors.base import ConnectorError
from refinebot.config import AzureDevOpsSourceConfig
from tests.connectors.azure_devops.conftest import ConnectorFactory, Sleeps
from tests.connectors.azure_devops.fake_org import PAT, TOKEN_ENV
from tests.fakes.ado_server import FakeAzureDevOps, Fault

DEP_REVERSE = "System.LinkTypes.Dependency-Reverse"
DEP_FORWARD = "System.LinkTypes.Dependency-Forward"


def test_throttling_honours_retry_after_on_429_and_on_delayed_200(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
) -> None:
    project = unique_name("Throttle")
    ado.add_project(project)
    for n in range(3):
        ado.add_item(project, f"Story {n}")
    connector = make_connector()
    connector.fetch(project, None, full=True)  # discovery done; only the read is measured
    ado.faults.append(Fault(f"/{project}/_apis/wit/wiql", status=None, headers={"Retry-After": "7"}))
    ado.faults.append(Fault(f"/{project}/_apis/wit/workItemsBatch", status=429, headers={"Retry-After": "3"}))
    mark = len(ado.requests)

    result = connector.fetch(project, None, full=True)

    assert len(result.issues) == 3
    assert sleeps.calls == [7.0, 3.0]  # the delayed 200's pause, then the 429's
    statuses = [(r.path.rsplit("/", 1)[-1], r.status) for r in ado.requests_since(mark)]
    assert statuses == [("wiql", 200), ("workItemsBatch", 429), ("workItemsBatch", 200)]


def test_503_backs_off_with_jitter_and_gives_up_after_bounded_attempts(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
) -> None:
    project = unique_name("Unavailable")
    ado.add_project(project)
    ado.add_item(project, "Story")
    connector = make_connector(retry_attempts=4, backoff_base_seconds=0.01, backoff_max_seconds=0.03)
    connector.fetch(project, None, full=True)
    ado.faults.append(Fault(f"/{project}/_apis/wit/wiql", status=503, times=2))

    assert len(connector.fetch(project, None, full=True).issues) == 1
    assert sleeps.calls == [0.0075, 0.015]  # equal jitter with jitter()=0.5: 3/4 of 0.01, 0.02

    sleeps.calls.clear()
    ado.faults.append(Fault(f"/{project}/_apis/wit/wiql", status=503, times=10))
    with pytest.raises(ConnectorError, match=r"failed after 4 attempts.*HTTP 503.*TF400324"):
        connector.fetch(project, None, full=True)
    assert sleeps.calls == [0.0075, 0.015, 0.0225]  # capped at backoff_max_seconds=0.03
    ado.faults.clear()


def test_bad_pat_is_a_clear_error_that_never_shows_the_token(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    project = unique_name("Auth")
    ado.add_project(project)
    wrong = "wrong-pat-9876543210"
    monkeypatch.setenv(TOKEN_ENV, wrong)
    caplog.set_level(logging.DEBUG)
    connector = make_connector()

    with pytest.raises(ConnectorError) as raised:
        connector.fetch(project, None)

    message = str(raised.value)
    assert "authentication failed (HTTP 401)" in message
    assert TOKEN_ENV in message
    assert wrong not in message
    assert PAT not in message
    assert wrong not in caplog.text
    assert sleeps.calls == []  # a 401 is not retried


def test_missing_token_variable_is_named(
    make_connector: ConnectorFactory, ado: FakeAzureDevOps, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ADO_TEST_UNSET_PAT", raising=False)
    connector = make_connector(token_env="ADO_TEST_UNSET_PAT")

    with pytest.raises(ConnectorError, match="ADO_TEST_UNSET_PAT is not set"):
        connector.fetch("Anything", None)


def test_unknown_project_and_forbidden_are_clear_errors(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
) -> None:
    connector = make_connector()
    with pytest.raises(ConnectorError, match=r"project 'NoSuchProject' not found \(HTTP 404\).*TF200016"):
        connector.fetch("NoSuchProject", None)

    project = unique_name("Forbidden")
    ado.add_project(project)
    ado.faults.append(
        Fault(
            f"/{project}/_apis/work/processconfiguration",
            status=403,
            message="TF400813: not authorized",
        )
    )
    with pytest.raises(ConnectorError, match=r"access denied \(HTTP 403\).*Work Items scope"):
        connector.fetch(project, None)
    assert sleeps.calls == []


class _NotAzureDevOps(BaseHTTPRequestHandler):
    """Answers every request with 200 and a body that is not Azure DevOps JSON (a login page or a proxy)."""

    body = b"<html><body>Sign in</body></html>"
    content_type = "text/html"

    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = do_OPTIONS = _answer  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("body", "content_type"), [(b"<html>Sign in</html>", "text/html"), (b"{}", "application/json")]
)
def test_a_server_that_is_not_azure_devops_gives_a_clear_error(
    pat_env: str, sleeps: Sleeps, body: bytes, content_type: str
) -> None:
    handler = type("Handler", (_NotAzureDevOps,), {"body": body, "content_type": content_type})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        source = AzureDevOpsSourceConfig(
            kind="azure_devops",
            url=f"http://127.0.0.1:{server.server_port}/org",
            token_env=TOKEN_ENV,
            retry_attempts=1,
        )
        connector = AzureDevOpsConnector(source, name="wrong-url", sleep=sleeps, jitter=lambda: 0.5)
        with pytest.raises(ConnectorError) as caught:
            connector.fetch("Project", None, full=True)
    finally:
        server.shutdown()
        server.server_close()
    message = str(caught.value)
    assert "wrong-url" in message
    assert "url" in message.lower()
    assert PAT not in message
