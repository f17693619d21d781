"""Socket-level servers for bounded-wait tests of any HTTP connector: one that accepts and never answers,
one that answers a byte at a time.

``SilentServer`` completes the TCP handshake (the kernel's backlog plus an accept loop), reads and
discards whatever the client sends, and never writes a byte, so the client's read timeout is the only
thing that ends a request. It counts accepted connections (each one is a request attempt: a client
that has timed out drops its connection and opens a new one for the next try). ``closed_port()`` gives
a local port nothing listens on, for "connection refused", where no server can count the attempts:
``TcpConnectCounter`` counts them in the client, at urllib3's ``create_connection`` (which requests,
msrest and the jira library all go through). ``TricklingServer`` answers every request with a status
line, headers and a JSON body sent one byte per interval, so no single read ever times out and only a
bound on the whole answer ends the request. Nothing here knows about a vendor.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any


def closed_port(host: str = "127.0.0.1") -> int:
    """A local TCP port nothing listens on (bound, then released: a connect is refused at once)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


class TcpConnectCounter:
    """Counts TCP connection attempts made through urllib3 while installed (``with`` block)."""

    def __init__(self) -> None:
        self.targets: list[tuple[str, int]] = []
        self._original: Callable[..., socket.socket] | None = None

    @property
    def count(self) -> int:
        """Connection attempts so far (successful or not)."""
        return len(self.targets)

    def __enter__(self) -> TcpConnectCounter:
        from urllib3.util import connection

        original = connection.create_connection
        self._original = original

        def counted(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
            self.targets.append((address[0], int(address[1])))
            return original(address, *args, **kwargs)

        connection.create_connection = counted  # urllib3.connection calls it through the module
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        from urllib3.util import connection

        if self._original is not None:
            connection.create_connection = self._original


class SilentServer:
    """Accepts connections on a local port and never answers; counts the connections it accepted."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)  # lets the accept loop notice stop()
        self._open: list[socket.socket] = []
        self._accepted_at: list[float] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="silent-server", daemon=True)

    @property
    def port(self) -> int:
        """The port the server listens on."""
        port: int = self._listener.getsockname()[1]
        return port

    @property
    def base(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        """How many connections were accepted so far."""
        with self._lock:
            return len(self._accepted_at)

    def accepted_at(self) -> list[float]:
        """``time.monotonic()`` of each accepted connection (gaps show the client's timeouts and backoff)."""
        with self._lock:
            return list(self._accepted_at)

    def start(self) -> SilentServer:
        """Start accepting in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting and close every connection (a client still waiting then sees it dropped)."""
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            for conn in self._open:
                conn.close()
            self._open.clear()

    def __enter__(self) -> SilentServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            # Never answered; kept open (not reset) so the client waits for its own timeout.
            conn.setblocking(False)
            with self._lock:
                self._open.append(conn)
                self._accepted_at.append(time.monotonic())
            self._drain()

    def _drain(self) -> None:
        # Read what clients sent so their writes never block on a full socket buffer.
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):  # BlockingIOError: nothing sent yet
                    conn.recv(65536)


class TricklingServer:
    """Answers each connection with HTTP 200 and a body of ``body_bytes`` bytes, one byte per ``interval``."""

    def __init__(self, *, interval: float = 0.05, body_bytes: int = 100_000, host: str = "127.0.0.1") -> None:
        self.host = host
        self.interval = interval
        self.body_bytes = body_bytes
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self._lock = threading.Lock()
        self._accepted = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept_loop, name="trickle-accept", daemon=True)

    @property
    def base(self) -> str:
        """``http://host:port``."""
        port: int = self._listener.getsockname()[1]
        return f"http://{self.host}:{port}"

    @property
    def connections(self) -> int:
        """How many connections were accepted so far (one per request attempt)."""
        with self._lock:
            return self._accepted

    def __enter__(self) -> TricklingServer:
        self._accept_thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._accept_thread.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._accepted += 1
            thread = threading.Thread(target=self._answer, args=(conn,), name="trickle", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _answer(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the client cutting us off ends the answer
            conn.settimeout(1.0)
            conn.recv(65536)  # the request (its headers are all a GET or a small POST sends at once)
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {self.body_bytes}\r\n\r\n"
            )
            conn.sendall(head.encode())
            body = (b'{"padding": "' + b"x" * self.body_bytes)[: self.body_bytes]
            for byte in body:
                if self._stopping.wait(self.interval):
                    return
                conn.sendall(bytes([byte]))
