"""Bound the whole of each HTTP answer, not only each socket read, so a server that trickles bytes ends too.

requests and urllib3 bound every single ``recv`` by the source's ``timeout_seconds``; a server (or a
broken proxy) that sends one byte every few seconds therefore keeps a request alive for ever. Both
vendor SDKs we use (``jira`` and msrest under ``azure-devops``) build their own ``requests`` sessions,
but both let us add a response hook, and requests calls the hooks after the status line and headers
arrived and before it reads the body. The hook returned by :func:`body_deadline` reads the body itself
under a watchdog: when the answer has not finished ``deadline_seconds`` after the request was sent,
the watchdog shuts the socket down, the blocked read returns at once, and the request fails with
:class:`SlowAnswer` (a ``requests.ConnectionError``, so the retry runner treats it as a dropped
connection and the message says what happened). Headers are read by http.client before any hook
runs; they are bounded only by its limits (100 lines of 64 KiB).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import requests

logger = logging.getLogger(__name__)

Hook = Callable[..., requests.Response]


class SlowAnswer(requests.ConnectionError):
    """An answer whose body did not arrive in full within the source's ``request_deadline_seconds``."""

    def __init__(self, deadline_seconds: float) -> None:
        super().__init__(f"the answer did not finish in {deadline_seconds:g} s")
        self.deadline_seconds = deadline_seconds


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket the body is read from (urllib3 2.x keeps it on the response's connection)."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def body_deadline(deadline_seconds: float) -> Hook:
    """A requests response hook that reads the body within ``deadline_seconds`` of sending the request."""

    def read_within(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        if getattr(
            response, "_content_consumed", False
        ):  # already read (a hook before us, or a redirect's body)
            return response
        remaining = deadline_seconds - response.elapsed.total_seconds()
        sock = _socket_of(response)
        cut = threading.Event()

        def shut() -> None:
            cut.set()
            try:
                assert sock is not None
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # closed meanwhile: the read has ended anyway
                pass

        timer = threading.Timer(max(remaining, 0.0), shut) if sock is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            response.content  # noqa: B018 - reads and keeps the body (requests caches it)
        except requests.RequestException as exc:
            if cut.is_set():
                response.close()
                raise SlowAnswer(deadline_seconds) from exc
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if cut.is_set():
            # The watchdog fired as the last byte arrived; the body may be cut short: never trust it.
            response.close()
            raise SlowAnswer(deadline_seconds)
        return response

    return read_within
