"""When and how long a connector waits before trying a failed request again (vendor-neutral).

Honours ``Retry-After`` (seconds or an HTTP date) and ``X-RateLimit-Reset`` (ISO-8601 or epoch
seconds) when the server names its wait, otherwise backs off exponentially with jitter, within a
bounded number of attempts. Each connector tells the runner how to read its client library's
exceptions (a ``classify`` function returning a ``Failure``); the runner decides the rest the same
way for every vendor.

``connection_problem`` words a request that got no HTTP answer the same way for every back end
("connection refused", "no answer in 5 s"), from the requests / urllib3 exceptions both vendor SDKs
raise.

Only a 429 is known to come before the server acted on a request. A 503 may come from a gateway that
timed out after the server committed a write, and a dropped connection leaves the outcome unknown:
those are repeated only for idempotent requests; a caller posting a comment checks first.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Rate limiting and "try later".
RATE_LIMITED = frozenset({429, 503})
# What a non-idempotent request (a POST) may repeat without first checking whether it took effect.
SAFE_TO_REPEAT_BLINDLY = frozenset({429})
# Transient server faults; safe to repeat only for idempotent requests.
TRANSIENT = frozenset({408, 500, 502, 504})


@dataclass(frozen=True, slots=True)
class Failure:
    """What a connector's client library said went wrong, in the runner's terms."""

    status: int | None = None  # the HTTP status, when there was a response
    headers: Mapping[str, str] = field(default_factory=dict)
    connection: bool = False  # no answer (refused, dropped, timed out): the outcome is unknown
    reason: str = ""  # for a connection failure, ``connection_problem``'s words for it

    @property
    def outcome_unknown(self) -> bool:
        """True when a write may or may not have taken effect (connection lost or any 5xx)."""
        return self.connection or (self.status is not None and self.status >= 500)

    def describe(self) -> str:
        """A short reason for a log line: ``HTTP 503``, ``connection refused``, ``connection failed``."""
        if self.status is not None:
            return f"HTTP {self.status}"
        return self.reason or "connection failed"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter."""

    attempts: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 30.0
    # The backoff is scaled by a factor drawn uniformly from this range.
    jitter: tuple[float, float] = (0.7, 1.3)
    # A server asking for a longer pause than this ends the call instead of hanging it.
    max_server_wait_seconds: float = 300.0

    def backoff(self, retry: int, draw: float | None = None) -> float:
        """The delay before retry number ``retry`` (1-based) when the server named none.

        ``draw`` in [0, 1) picks the point in the jitter range (random when None).
        """
        raw = min(self.base_seconds * 2.0 ** (retry - 1), self.max_seconds)
        low, high = self.jitter
        u = random.random() if draw is None else draw
        return raw * (low + (high - low) * u)

    def server_delay(self, headers: Mapping[str, str], now: datetime) -> float | None:
        """The wait the server asked for (``Retry-After`` or ``X-RateLimit-Reset``), else None."""
        retry_after = header(headers, "Retry-After")
        if retry_after:
            seconds = retry_after_seconds(retry_after, now)
            if seconds is not None:
                # Never earlier than asked: reissuing before it expires earns a longer wait.
                return seconds * random.uniform(1.0, max(self.jitter[1], 1.0))
        reset = header(headers, "X-RateLimit-Reset")
        if reset:
            when = reset_time(reset)
            if when is not None:
                return max((when - now).total_seconds(), 0.0)
        return None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, case-insensitively, stripped; None when absent."""
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return str(value).strip()
    return None


def retry_after_seconds(value: str, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or an HTTP date); None if unreadable."""
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        logger.warning("ignoring unreadable Retry-After header %r", value)
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def reset_time(value: str) -> datetime | None:
    """The moment an ``X-RateLimit-Reset`` names (ISO-8601, or epoch seconds); None if unreadable."""
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        logger.warning("ignoring unreadable X-RateLimit-Reset header %r", value)
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(slots=True)
class RetryRunner:
    """Runs calls under a ``RetryPolicy``; counts attempts so callers can report requests made."""

    policy: RetryPolicy
    classify: Callable[[BaseException], Failure | None]
    sleep: Callable[[float], None]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    attempts_made: int = 0

    def delay_for(self, failure: Failure, retry: int) -> float:
        """How long to wait before retry ``retry`` after ``failure`` (the server's wish, else backoff)."""
        if failure.status in RATE_LIMITED:
            asked = self.policy.server_delay(failure.headers, self.clock())
            if asked is not None:
                return asked
        return self.policy.backoff(retry)

    def call(self, what: str, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run ``fn`` until it succeeds, a non-retryable error occurs or the attempts are used up.

        A 429 is retried for every request, since the server did not act on it. A 503, other
        transient faults (408/500/502/504) and lost connections are retried only when
        ``idempotent``. Exceptions ``classify`` does not recognise propagate at once.
        """
        retry = 0
        while True:
            self.attempts_made += 1
            try:
                return fn()
            except Exception as exc:
                failure = self.classify(exc)
                if failure is None:
                    raise
                if idempotent:
                    retryable = (
                        failure.status in RATE_LIMITED or failure.status in TRANSIENT or failure.connection
                    )
                else:
                    retryable = failure.status in SAFE_TO_REPEAT_BLINDLY
                retry += 1
                if not retryable or retry >= self.policy.attempts:
                    raise
                delay = self.delay_for(failure, retry)
                if delay > self.policy.max_server_wait_seconds:
                    logger.warning(
                        "%s: %s; the server asks to wait %.0f s; giving up", what, failure.describe(), delay
                    )
                    raise
                logger.warning(
                    "%s: %s; retry %d of %d in %.2f s",
                    what,
                    failure.describe(),
                    retry,
                    self.policy.attempts - 1,
                    delay,
                )
                self.sleep(delay)


def one_line(message: str, limit: int = 500) -> str:
    """``message`` on one line, at most ``limit`` characters: a proxy's HTML or a multi-line text
    body would otherwise spread over the output."""
    return " ".join(message.split())[:limit]


def _message(exc: BaseException) -> str:
    """An error's own message on one line (an SDK error's ``message``, e.g. msrest's, else ``str``)."""
    return one_line(str(getattr(exc, "message", None) or exc))


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: an SDK chains the requests error (msrest) or raises it as it is
    (jira), requests wraps urllib3's ``MaxRetryError`` in ``args``, whose ``reason`` is the
    socket-level error, itself ``from`` the OSError."""
    found: list[BaseException] = []
    pending: list[object] = [exc]
    while pending and len(found) < 20:
        item = pending.pop(0)
        if not isinstance(item, BaseException) or any(item is seen for seen in found):
            continue
        found.append(item)
        pending.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args])
    return found


def connection_problem(exc: BaseException, timeout_seconds: float) -> str:
    """One short reason for a request that got no HTTP answer: "connection refused", "no answer in 5 s"."""
    from requests.exceptions import SSLError
    from urllib3.exceptions import (
        ConnectTimeoutError,
        NameResolutionError,
        NewConnectionError,
        ProtocolError,
        ReadTimeoutError,
    )

    from connectors.transport import SlowAnswer

    causes = _causes(exc)
    slow = next((c for c in causes if isinstance(c, SlowAnswer)), None)
    if slow is not None:
        return str(slow)

    def seen(*kinds: type[BaseException]) -> BaseException | None:
        return next((c for c in causes if isinstance(c, kinds)), None)

    if seen(ConnectionRefusedError):
        return "connection refused"
    resolution = seen(NameResolutionError)
    if resolution is not None:
        return f"cannot resolve host {getattr(resolution, 'host', '')}".rstrip()
    if seen(ReadTimeoutError, TimeoutError) and not seen(NewConnectionError):
        return f"no answer in {timeout_seconds:g} s"
    if seen(ConnectTimeoutError):
        # NewConnectionError subclasses ConnectTimeoutError in urllib3 2.x: other OSErrors land here.
        os_error = seen(OSError)
        if isinstance(os_error, OSError) and not isinstance(os_error, TimeoutError) and os_error.strerror:
            return f"cannot connect: {os_error.strerror.lower()}"
        return f"no connection in {timeout_seconds:g} s"
    if seen(SSLError):
        return f"TLS error: {_message(seen(SSLError) or exc)}"
    if seen(ProtocolError, ConnectionResetError):
        return "connection dropped before an answer"
    return f"connection failed: {_message(exc)}"
