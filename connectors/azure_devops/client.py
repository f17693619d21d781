"""The SDK connection and the one guard every Azure DevOps call goes through.

The guard owns retries (``connectors.retry``'s policy: ``Retry-After`` honoured, else exponential
backoff with equal jitter): the SDK neither retries POSTs nor keeps the HTTP status on its errors,
so a response hook records status and ``Retry-After`` for the guard to act on, and counts requests
by purpose (discovery, search, other). Errors become ``ConnectorError``s that name the source and
never the token.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from connectors.base import CommentGoneError, ConnectorError
from connectors.retry import RetryPolicy, connection_problem, one_line, retry_after_seconds
from refinebot.config import AzureDevOpsSourceConfig

logger = logging.getLogger(__name__)

T = TypeVar("T")

# What a request is for, so a fetch can say what learning the process cost apart from reading items.
Purpose = Literal["discovery", "search", "other"]
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class NotFoundError(ConnectorError):
    """A 404 the caller handles (an unknown work item type)."""


class ResultCapError(ConnectorError):
    """VS402337: the WIQL matched more than 20,000 items."""


class FormatUnsupportedError(ConnectorError):
    """The server does not take the comment ``format`` parameter (older servers)."""


@dataclass(frozen=True, slots=True)
class Clients:
    """The SDK clients the connector uses, configured for the guard."""

    wit: Any  # WorkItemTrackingClient (v7_1)
    work: Any  # WorkClient (v7_1): process configuration
    location: Any  # LocationClient (v7_1): who the token belongs to


@dataclass(frozen=True, slots=True)
class RequestCount:
    """Requests made so far, by purpose (a snapshot; subtract two to get one fetch's cost)."""

    total: int = 0
    discovery: int = 0
    search: int = 0


class _ResponseLog(threading.local):
    """The last HTTP response on this thread (the SDK's exceptions do not keep the status)."""

    status: int | None = None
    retry_after: str | None = None
    purpose: Purpose = "other"


class AdoClient:
    """One organisation's SDK clients, the call guard and the request counters."""

    def __init__(
        self,
        source: AzureDevOpsSourceConfig,
        name: str,
        *,
        sleep: Callable[[float], None],
        jitter: Callable[[], float],
    ) -> None:
        self.source = source
        self.name = name
        self._sleep = sleep
        self._jitter = jitter
        # ADO's "equal jitter": the backoff is spread over the upper half of its ceiling, never zero.
        self.policy = RetryPolicy(
            attempts=source.retry_attempts,
            base_seconds=source.backoff_base_seconds,
            max_seconds=source.backoff_max_seconds,
            jitter=(0.5, 1.0),
        )
        self._log = _ResponseLog()
        self._lock = threading.Lock()
        self._counts = {"total": 0, "discovery": 0, "search": 0}
        self._pending_delay = 0.0
        self._clients: Clients | None = None

    def where(self) -> str:
        """How errors name this source."""
        return f"source {self.name!r} ({self.source.url})"

    def count(self) -> RequestCount:
        """The requests made so far by this connector's clients."""
        with self._lock:
            return RequestCount(self._counts["total"], self._counts["discovery"], self._counts["search"])

    # ----- connection -----------------------------------------------------------------------------
    def clients(self) -> Clients:
        """The configured SDK clients (connecting on first use)."""
        if self._clients is not None:
            return self._clients
        token = self.source.token()
        if token is None:
            raise ConnectorError(
                f"{self.where()}: environment variable {self.source.token_env} is not set "
                "(it must hold a personal access token)"
            )
        if self.source.cache_dir is not None:
            # The SDK reads this once, at import, for its 12-hour cache of resource locations.
            os.environ.setdefault("AZURE_DEVOPS_CACHE_DIR", str(self.source.cache_dir / "azure-devops-sdk"))
        from azure.devops.connection import Connection
        from azure.devops.v7_1.location.location_client import LocationClient
        from msrest.authentication import BasicAuthentication

        creds = BasicAuthentication("", token.get_secret_value())
        connection = Connection(base_url=self.source.url, creds=creds)
        # The Connection makes its own clients for the connect step (a LocationClient for OPTIONS and
        # ResourceAreas, another for the deployment-level lookup) with msrest's defaults: 3 urllib3
        # retries with 0.8 s backoff and a 100 s timeout, nested inside the guard's attempts and
        # untouched by timeout_seconds. Measured before this: a closed port cost 20 TCP attempts,
        # 40 s and 20 lines of urllib3 warnings; a silent server 4 x 100 s per attempt (about half an
        # hour with 5 attempts). Its one per-client hook is the Fiddler set-up, called on every
        # client it makes when use_fiddler is on (azure-devops 7.1.0b4 connection.py): pointed at
        # _configure_sdk_client, every request it sends obeys timeout_seconds and the guard alone.
        connection.use_fiddler = True
        connection._configure_client_for_fiddler = self._configure_sdk_client
        factory = connection.clients_v7_1
        wit = self.call("connect (resource areas)", factory.get_work_item_tracking_client, project=None)
        work = self.call("connect (resource areas)", factory.get_work_client, project=None)
        location = LocationClient(self.source.url, creds)
        self._configure(location, counted=True)
        self._clients = Clients(wit, work, location)
        return self._clients

    def _configure_sdk_client(self, client: Any) -> None:
        """Configure a client the SDK's Connection made (its connect-step location clients go uncounted)."""
        from azure.devops.v7_1.location.location_client import LocationClient

        self._configure(client, counted=not isinstance(client, LocationClient))

    def _configure(self, client: Any, *, counted: bool) -> None:
        """Make the guard the only retry layer and timeout_seconds every request's bound; let the guard
        see statuses and Retry-After. ``counted`` clients' requests add to the request counters."""
        from connectors.transport import body_deadline  # requests: loaded only when a client is made

        policy = client.config.retry_policy.policy
        policy.total = policy.connect = policy.read = policy.status = policy.other = 0
        policy.status_forcelist = frozenset()
        policy.respect_retry_after_header = False
        client.config.connection.timeout = self.source.timeout_seconds
        client.config.hooks.append(self._on_response if counted else self._record_response)
        client.config.hooks.append(body_deadline(self.source.request_deadline_seconds))

    def _on_response(self, response: Any, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self._counts["total"] += 1
            if self._log.purpose != "other":
                self._counts[self._log.purpose] += 1
        self._record_response(response)

    def _record_response(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self._log.status = int(response.status_code)
        self._log.retry_after = response.headers.get("Retry-After")
        remaining = response.headers.get("X-RateLimit-Remaining")
        if remaining is not None:
            logger.debug(
                "%s: X-RateLimit-Remaining=%s resource=%s",
                self.name,
                remaining,
                response.headers.get("X-RateLimit-Resource"),
            )

    # ----- the guard ------------------------------------------------------------------------------
    def call(
        self,
        what: str,
        operation: Callable[[], T],
        *,
        project: str | None,
        purpose: Purpose = "other",
        recover: Callable[[], Any] | None = None,
    ) -> T:
        """Run one SDK call with bounded retries; ``recover`` checks whether a failed write happened."""
        from azure.core.exceptions import DeserializationError
        from azure.devops.exceptions import AzureDevOpsAuthenticationError, AzureDevOpsServiceError
        from msrest.exceptions import AuthenticationError, ClientRequestError

        attempts = self.policy.attempts
        last_problem = ""
        for attempt in range(1, attempts + 1):
            if self._pending_delay > 0:
                delay, self._pending_delay = self._pending_delay, 0.0
                logger.info("%s: server asked to slow down; waiting %.2f s", self.name, delay)
                self._sleep(delay)
            self._log.status = None
            self._log.retry_after = None
            self._log.purpose = purpose
            try:
                result = operation()
            except (DeserializationError, TypeError, KeyError, ValueError) as exc:
                # A 200 that is not Azure DevOps JSON: a login page, a proxy, a wrong URL.
                raise ConnectorError(
                    f"{self.where()}: {what}: the server's answer is not Azure DevOps JSON "
                    f"({type(exc).__name__}); check that url is the organisation or collection URL"
                ) from None
            except (AzureDevOpsAuthenticationError, AuthenticationError):
                raise ConnectorError(
                    f"{self.where()}: authentication failed (HTTP 401) for {what}; "
                    f"check the personal access token in {self.source.token_env} "
                    "(it may be expired or revoked)"
                ) from None
            except ClientRequestError as exc:
                status = self._log.status
                if status is not None and status < 400:
                    # A success seen earlier in this call (a discovery request): not this failure.
                    status = None
                message = _error_message(exc)
                if isinstance(exc, AzureDevOpsServiceError) or status is not None:
                    self._raise_for_status(what, project, status, message)
                    last_problem = f"HTTP {status}: {message}"
                else:
                    last_problem = connection_problem(exc, self.source.timeout_seconds)
                retry_after = self._log.retry_after
                if recover is not None:
                    # The write may have reached the server before failing: look before repeating it.
                    done = recover()
                    if done is not None:
                        logger.info("%s: %s succeeded before the failure; not repeating it", self.name, what)
                        return done  # type: ignore[no-any-return]
                if attempt == attempts:
                    break
                delay = self._delay(attempt, retry_after, what)
                logger.warning(
                    "%s: %s: %s; retry %d/%d in %.2f s",
                    self.name,
                    what,
                    last_problem,
                    attempt,
                    attempts - 1,
                    delay,
                )
                self._sleep(delay)
                continue
            finally:
                self._log.purpose = "other"
            asked = self._server_wait(self._log.retry_after)
            if asked:
                # A delayed 200: the service is throttling us softly; pause before the next request.
                self._pending_delay = asked
            return result
        plural = "" if attempts == 1 else "s"
        raise ConnectorError(
            f"{self.where()}: {what} failed after {attempts} attempt{plural}; last error: {last_problem}"
        )

    @staticmethod
    def _server_wait(retry_after: str | None) -> float | None:
        if retry_after is None or not retry_after.strip():
            return None
        return retry_after_seconds(retry_after.strip(), datetime.now(UTC))

    def _delay(self, attempt: int, retry_after: str | None, what: str) -> float:
        asked = self._server_wait(retry_after)
        if asked is None:
            return self.policy.backoff(attempt, float(self._jitter()))
        if asked > self.policy.max_server_wait_seconds:
            raise ConnectorError(
                f"{self.where()}: {what}: the server asks to wait {asked:.0f} s "
                f"(more than {self.policy.max_server_wait_seconds:.0f} s); try again later"
            )
        return asked

    def _raise_for_status(self, what: str, project: str | None, status: int | None, message: str) -> None:
        """Raise a clear ``ConnectorError`` unless the failure is worth retrying."""
        if status in _TRANSIENT_STATUSES:
            return
        if status == 403:
            raise ConnectorError(
                f"{self.where()}: access denied (HTTP 403) for {what}; "
                f"the token in {self.source.token_env} "
                f"needs the Work Items scope (read, and write for comments): {message}"
            )
        if status == 404 and ("TF200016" in message or "project" in message.lower()) and project is not None:
            raise ConnectorError(f"{self.where()}: project {project!r} not found (HTTP 404): {message}")
        if status == 404 and "VS402323" in message:
            raise NotFoundError(message)
        if status == 404 and what.startswith("update comment"):  # the comment was deleted meanwhile
            raise CommentGoneError(f"{self.where()}: {what}: {message}")
        if status == 400 and "VS402337" in message:
            raise ResultCapError(message)
        if status == 400 and "format" in message.lower() and "comment" in what:
            raise FormatUnsupportedError(message)
        shown = f"HTTP {status}" if status is not None else "error"
        hint = ""
        if status == 404 and what.startswith("connect"):
            # The connect step's routes exist on every organisation: a 404 there means a wrong url.
            hint = "; check that url is the organisation or collection URL"
        raise ConnectorError(f"{self.where()}: {what} failed ({shown}): {message}{hint}")


def _error_message(exc: BaseException) -> str:
    return one_line(str(getattr(exc, "message", None) or exc))
