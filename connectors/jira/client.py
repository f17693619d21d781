"""The connection to one Jira site: serverInfo and deployment, counted and retried requests, clear errors.

This is the only module that touches private parts of the ``jira`` package (``_get_json``,
``_get_url``, ``_session``, ``_options``, ``_version``); ``tests/connectors/jira/test_jira_canary.py``
fails when an upgrade changes them. Everything else in ``connectors.jira`` calls ``JiraClient``.

API v2 exists on Cloud and Data Center alike (v3 only on Cloud), so the probe uses it and the
deployment type decides the version afterwards. The package's own retry loop is switched off
(``max_retries=0``): it waits 10 s and more between tries and retries POSTs blindly, which can post a
comment twice; ``connectors.retry`` decides instead, with ``classify`` below reading the package's errors.
Every request, serverInfo included, is bounded by ``timeout_seconds`` (the package's session passes its
timeout to each one), and a request that got no answer is reported in ``connectors.retry``'s words
("connection refused", "no answer in 5 s") with the attempts it cost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests
from jira import JIRA
from jira.exceptions import JIRAError
from urllib3.util import Retry

from connectors.base import ConnectorError
from connectors.retry import (
    RATE_LIMITED,
    Failure,
    RetryPolicy,
    RetryRunner,
    connection_problem,
    header,
    one_line,
)
from connectors.transport import body_deadline
from refinebot.config import JiraSourceConfig

logger = logging.getLogger(__name__)


class RejectedError(ConnectorError):
    """Jira refused the request as invalid (HTTP 400), e.g. JQL naming an issue that is gone."""


def status_of(exc: BaseException) -> int | None:
    """The HTTP status behind a ``JIRAError``, if any."""
    return exc.status_code if isinstance(exc, JIRAError) else None


def headers_of(exc: BaseException) -> Mapping[str, str]:
    """The response headers behind a ``JIRAError`` (empty when there was no response)."""
    response = getattr(exc, "response", None)
    return response.headers if isinstance(response, requests.Response) else {}


def is_connection_failure(exc: BaseException) -> bool:
    """True for faults where the request may or may not have reached the server."""
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


def classify(exc: BaseException, timeout_seconds: float) -> Failure | None:
    """The retry runner's view of an error from the ``jira`` package or ``requests``; None = not ours."""
    if isinstance(exc, JIRAError):
        return Failure(status=exc.status_code, headers=dict(headers_of(exc)))
    if is_connection_failure(exc):
        return Failure(connection=True, reason=connection_problem(exc, timeout_seconds))
    if isinstance(exc, requests.RequestException):
        return Failure()  # no status, no lost connection: never retried, reported as it is
    return None


def path_segment(segment: str) -> str:
    """One URL path segment; an issue key or id from elsewhere cannot reach another endpoint."""
    return quote(segment, safe="")


class JiraClient:
    """One site's connection: lazily connected, every HTTP request counted, retries under a policy."""

    def __init__(
        self,
        source: JiraSourceConfig,
        *,
        name: str,
        sleep: Callable[[float], None],
        clock: Callable[[], datetime],
    ) -> None:
        self.source = source
        self.name = name
        self.clock = clock
        self.runner = RetryRunner(
            RetryPolicy(
                attempts=source.retry_attempts,
                base_seconds=source.backoff_base_seconds,
                max_seconds=source.backoff_max_seconds,
            ),
            classify=lambda exc: classify(exc, source.timeout_seconds),
            sleep=sleep,
            clock=clock,
        )
        self._jira: Any = None
        self._cloud = False
        self.requests = 0  # every HTTP request made, retries included

    @property
    def where(self) -> str:
        """How messages name this source (never with a secret)."""
        return f"Jira source {self.name!r} ({self.source.url})"

    @property
    def is_cloud(self) -> bool:
        """True once connected to a Jira Cloud site (connects on first use)."""
        self.connect()
        return self._cloud

    def connect(self) -> None:
        """Connect once: read serverInfo on v2, then speak v3 on Cloud."""
        if self._jira is not None:
            return
        token = self.source.token()
        email = self.source.email
        if token is None:
            what = "API token" if email else "personal access token"
            raise ConnectorError(
                f"{self.where}: environment variable {self.source.token_env} is not set "
                f"(it must hold the {what})"
            )
        client = self._build(email, token.get_secret_value())
        info = self._server_info(client)
        cloud = info.get("deploymentType") == "Cloud"
        if cloud and not email:
            raise ConnectorError(
                f"{self.where}: this is Jira Cloud, which needs email + API token; "
                "set 'email' in the source config"
            )
        if cloud:
            # Cloud: v3 (ADF bodies, search/jql). The package builds every URL from this option,
            # so switching it here saves asking for serverInfo a second time.
            client._options["rest_api_version"] = "3"
        # What the package itself would have recorded with get_server_info=True.
        client.deploymentType = info.get("deploymentType")
        client._version = tuple(info["versionNumbers"])
        self._jira = client
        self._cloud = cloud
        logger.info("%s: connected (%s)", self.where, "Cloud" if cloud else "Data Center/Server")

    def _build(self, email: str | None, secret: str) -> Any:
        """A client on API v2 that has made no request yet (every request it makes is counted)."""
        client = JIRA(
            server=self.source.url,
            options={"rest_api_version": "2"},
            basic_auth=(email, secret) if email else None,
            token_auth=None if email else secret,
            # Asked for below instead: the package's own call retries an empty answer three times
            # and fails with a KeyError on anything that is not serverInfo.
            get_server_info=False,
            max_retries=0,  # retries are ours: bounded, short in tests, never a blind POST
            timeout=self.source.timeout_seconds,
        )

        def count(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            self.requests += 1

        client._session.hooks["response"].append(count)
        client._session.hooks["response"].append(body_deadline(self.source.request_deadline_seconds))
        # No urllib3 retries nested inside ours. requests' adapters default to Retry(0, read=False)
        # already (measured: a closed port costs exactly one TCP attempt per attempt of ours); set
        # here so a change in requests' or the package's defaults cannot multiply the attempts.
        for adapter in client._session.adapters.values():
            if isinstance(adapter, requests.adapters.HTTPAdapter):
                adapter.max_retries = Retry(0, read=False)
        return client

    def _server_info(self, client: Any) -> Mapping[str, Any]:
        """``serverInfo``, or a clear error when the URL answers but is not a Jira server."""
        not_jira = (
            f"{self.where}: the URL does not look like a Jira server (its serverInfo answer is "
            "not Jira's{why}); check the source's url, e.g. for a missing context path or a proxy "
            "login page"
        )
        before = self.runner.attempts_made
        try:
            info = self.runner.call(f"{self.where}: server info", lambda: client._get_json("serverInfo"))
        except (JIRAError, requests.RequestException) as exc:
            if status_of(exc) == 404:
                raise ConnectorError(not_jira.format(why=": HTTP 404")) from None
            if isinstance(exc, requests.JSONDecodeError):
                raise ConnectorError(not_jira.format(why=": not JSON")) from None
            raise self.error(exc, "connecting", attempts=self.runner.attempts_made - before) from None
        except ValueError:  # JSON decoding that is not requests' own
            raise ConnectorError(not_jira.format(why=": not JSON")) from None
        versions = info.get("versionNumbers") if isinstance(info, Mapping) else None
        if not isinstance(versions, list) or not all(isinstance(v, int) for v in versions):
            raise ConnectorError(not_jira.format(why=""))
        return info  # type: ignore[no-any-return]

    def error(self, exc: BaseException, action: str, *, attempts: int | None = None) -> ConnectorError:
        """A clear, secret-free, one-line error (the package's own messages include request headers);
        ``attempts`` is how many requests the failed call made, when known."""
        status = status_of(exc)
        where = self.where
        if status == 401:
            who = f"API token for {self.source.email}" if self.source.email else "personal access token"
            return ConnectorError(
                f"{where}: Jira rejected the credentials (HTTP 401) while {action}; check that "
                f"{self.source.token_env} holds a valid, unexpired {who}"
            )
        if status == 403:
            return ConnectorError(
                f"{where}: access denied (HTTP 403) while {action}; check that the account may "
                "browse the project (and add comments), and that it is not locked out by CAPTCHA"
            )
        if status == 410:
            return ConnectorError(f"{where}: Jira says this API was removed (HTTP 410) while {action}")
        if status in RATE_LIMITED:
            # A 503 without Retry-After is a gateway or a server that is down, not a rate limit.
            asked = status == 429 or header(headers_of(exc), "Retry-After") is not None
            what = "rate limited" if asked else "unavailable"
            return ConnectorError(
                f"{where}: still {what} (HTTP {status}) after "
                f"{attempts or self.source.retry_attempts} attempts while {action}; try again later"
            )
        if status is not None:
            # A proxy's error page is the whole body here: one line, short.
            detail = one_line(str(getattr(exc, "text", "") or ""), 200)
            kind = RejectedError if status == 400 else ConnectorError
            return kind(f"{where}: HTTP {status} while {action}" + (f": {detail}" if detail else ""))
        if isinstance(exc, requests.JSONDecodeError):  # a proxy's login page, say
            return ConnectorError(f"{where}: the answer to {action} is not JSON")
        if is_connection_failure(exc):
            reason = connection_problem(exc, self.source.timeout_seconds)
            tries = f", after {attempts} attempts" if attempts is not None and attempts > 1 else ""
            return ConnectorError(f"{where}: {reason} while {action}{tries}")
        return ConnectorError(f"{where}: request failed while {action} ({type(exc).__name__})")

    def _run(self, action: str, call: Callable[[], Any], *, idempotent: bool = True) -> Any:
        """``call`` under the retry policy, its failures turned into ``ConnectorError``."""
        before = self.runner.attempts_made
        try:
            return self.runner.call(f"{self.where}: {action}", call, idempotent=idempotent)
        except (JIRAError, requests.RequestException) as exc:
            raise self.error(exc, action, attempts=self.runner.attempts_made - before) from None
        except ValueError:  # JSON decoding that is not requests' own
            raise ConnectorError(f"{self.where}: the answer to {action} is not JSON") from None

    def get(self, path: str, params: Mapping[str, Any] | None, action: str, *, agile: bool = False) -> Any:
        """GET ``path`` (REST API, or the Agile API) as JSON, retried; errors as ``ConnectorError``."""
        self.connect()
        client = self._jira
        base = client.AGILE_BASE_URL if agile else client.JIRA_BASE_URL
        # _get_json is the package's own GET + JSON + error parsing. Its search methods would fetch
        # the whole /field list again to translate names we already send as field ids.
        return self._run(action, lambda: client._get_json(path, params=dict(params or {}), base=base))

    def post_read(self, path: str, payload: Mapping[str, Any], action: str) -> Any:
        """A POST that changes nothing on the server (a count): retried like any read."""
        return self._run(action, lambda: self.send("POST", path, payload))

    def send(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """One write, not retried and not translated (callers run it through ``runner``)."""
        self.connect()
        client = self._jira
        url = client._get_url(path)
        response = client._session.request(method, url, params=dict(params or {}), data=json.dumps(payload))
        return response.json() if response.content else None
