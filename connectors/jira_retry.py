"""When and how long the Jira connector waits before trying a failed request again.

Follows Atlassian's rate-limit guidance: honour ``Retry-After`` (seconds or an HTTP date) and
``X-RateLimit-Reset`` (ISO-8601) on 429/503, otherwise back off exponentially with jitter, within a
bounded number of attempts. The ``jira`` package's own retry loop is switched off
(``max_retries=0``): it waits 10 s and more between tries and retries POSTs blindly, which can post
a comment twice.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import requests
from jira.exceptions import JIRAError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Rate limiting and "try later". Only a 429 is known to come before the server acted on the
# request; a 503 may come from a gateway that timed out after the server committed a write.
RATE_LIMITED = frozenset({429, 503})
# What a non-idempotent request (a POST) may repeat without first checking whether it took effect.
SAFE_TO_REPEAT_BLINDLY = frozenset({429})
# Transient server faults; safe to repeat only for idempotent requests.
TRANSIENT = frozenset({500, 502, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter."""

    attempts: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 30.0
    jitter: tuple[float, float] = (0.7, 1.3)
    # A server asking for a longer pause than this ends the sync instead of hanging it.
    max_server_wait_seconds: float = 300.0

    def backoff(self, retry: int) -> float:
        """The delay before retry number ``retry`` (1-based) when the server named none."""
        raw = min(self.base_seconds * 2.0 ** (retry - 1), self.max_seconds)
        return raw * random.uniform(*self.jitter)

    def server_delay(self, headers: Mapping[str, str], now: datetime) -> float | None:
        """The wait the server asked for (``Retry-After`` or ``X-RateLimit-Reset``), else None."""
        retry_after = _header(headers, "Retry-After")
        if retry_after:
            seconds = _retry_after_seconds(retry_after, now)
            if seconds is not None:
                # Never earlier than asked: reissuing before it expires earns a longer wait.
                return seconds * random.uniform(1.0, max(self.jitter[1], 1.0))
        reset = _header(headers, "X-RateLimit-Reset")
        if reset:
            when = _iso_time(reset)
            if when is not None:
                return max((when - now).total_seconds(), 0.0)
        return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value.strip()
    return None


def _retry_after_seconds(value: str, now: datetime) -> float | None:
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


def _iso_time(value: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        logger.warning("ignoring unreadable X-RateLimit-Reset header %r", value)
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status behind a ``JIRAError``, if any."""
    if isinstance(exc, JIRAError):
        return exc.status_code
    return None


def headers_of(exc: BaseException) -> Mapping[str, str]:
    """The response headers behind a ``JIRAError`` (empty when there was no response)."""
    response = getattr(exc, "response", None)
    if isinstance(response, requests.Response):
        return response.headers
    return {}


def is_connection_failure(exc: BaseException) -> bool:
    """True for faults where the request may or may not have reached the server."""
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


@dataclass(slots=True)
class RetryRunner:
    """Runs calls under a ``RetryPolicy``; counts attempts so callers can report requests made."""

    policy: RetryPolicy
    sleep: Callable[[float], None]
    clock: Callable[[], datetime]
    attempts_made: int = 0

    def call(self, what: str, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run ``fn`` until it succeeds, a non-retryable error occurs or the attempts are used up.

        A 429 is retried for every request, since the server did not act on it. A 503, other
        transient faults (500/502/504) and dropped connections or timeouts are retried only when
        ``idempotent``: a 503 can come from a gateway after the server already committed a POST, so
        the caller must check before posting again (see ``JiraConnector.add_comment``).
        """
        retry = 0
        while True:
            self.attempts_made += 1
            try:
                return fn()
            except (JIRAError, requests.RequestException) as exc:
                status = status_of(exc)
                if idempotent:
                    retryable = status in RATE_LIMITED or status in TRANSIENT or is_connection_failure(exc)
                else:
                    retryable = status in SAFE_TO_REPEAT_BLINDLY
                retry += 1
                if not retryable or retry >= self.policy.attempts:
                    raise
                delay = None
                if status in RATE_LIMITED:
                    delay = self.policy.server_delay(headers_of(exc), self.clock())
                if delay is not None and delay > self.policy.max_server_wait_seconds:
                    logger.warning(
                        "%s: HTTP %s; the server asks to wait %.0f s; giving up",
                        what,
                        status,
                        delay,
                    )
                    raise
                if delay is None:
                    delay = self.policy.backoff(retry)
                reason = f"HTTP {status}" if status else type(exc).__name__
                logger.warning(
                    "%s: %s; retry %d of %d in %.2f s",
                    what,
                    reason,
                    retry,
                    self.policy.attempts - 1,
                    delay,
                )
                self.sleep(delay)
