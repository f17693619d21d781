"""A fake Slack Socket Mode endpoint: a real WebSocket server on 127.0.0.1 speaking Slack's envelope protocol.

What https://docs.slack.dev/apis/events-api/using-socket-mode describes: the app asks the Web API for a URL
(``apps.connections.open`` with the app-level token; ``attach`` makes the fake Web API answer with this
server's ``ws://`` URL), connects, and gets ``{"type": "hello", ...}``. Then every delivery is an envelope
``{"envelope_id", "type": "events_api" | "interactive" | "slash_commands", "payload", "accepts_response_payload",
"retry_attempt", "retry_reason"}`` that the app must acknowledge by sending back ``{"envelope_id": ...}``
(a slash command's answer rides in the ack's ``payload``). The server side is the ``websockets`` library
(its threaded server); the app side in tests is slack_sdk's own builtin Socket Mode client, as ``serve``
runs it.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from tests.fakes.slack_server import FakeSlack

APP_ID = "A0FAKE"
KINDS = ("events_api", "interactive", "slash_commands")


@dataclass
class FakeSocketMode:
    """The endpoint's state: open connections, envelopes sent and the acks that came back."""

    connections: list[ServerConnection] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)  # in the order they came
    other: list[Any] = field(default_factory=list)  # anything the app sent that is not an ack
    changed: threading.Condition = field(default_factory=threading.Condition)

    def handle(self, connection: ServerConnection) -> None:
        """One app connection: hello, then record what it sends until it goes away."""
        with self.changed:
            self.connections.append(connection)
            self.changed.notify_all()
        connection.send(json.dumps({
            "type": "hello", "num_connections": len(self.connections),
            "debug_info": {"host": "applink-fake", "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP_ID},
        }))  # fmt: skip
        try:
            for raw in connection:
                message = json.loads(raw)
                with self.changed:
                    if isinstance(message, dict) and message.get("envelope_id"):
                        self.acks.append(message)
                    else:
                        self.other.append(message)
                    self.changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self.changed:
                self.connections.remove(connection)
                self.changed.notify_all()

    def wait_connected(self, timeout: float = 10.0) -> None:
        """Block until an app holds a connection (or fail after ``timeout`` seconds)."""
        with self.changed:
            if not self.changed.wait_for(lambda: bool(self.connections), timeout):
                raise AssertionError("no Socket Mode connection was opened")

    def deliver(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        envelope_id: str | None = None,
    ) -> str:
        """Send one envelope to the newest connection; its ``envelope_id``."""
        assert kind in KINDS, kind
        envelope = {
            "envelope_id": envelope_id or str(uuid.uuid4()),
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind == "slash_commands",
        }
        if kind == "events_api":
            envelope |= {"retry_attempt": retry_attempt, "retry_reason": retry_reason}
        with self.changed:
            if not self.connections:
                raise AssertionError("no Socket Mode connection to deliver to")
            connection = self.connections[-1]
            self.sent.append(envelope)
        connection.send(json.dumps(envelope))
        return str(envelope["envelope_id"])

    def wait_ack(self, envelope_id: str, nth: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        """The app's ``nth`` ack of ``envelope_id`` (an envelope sent again is acked again); fail if it did
        not come within ``timeout`` seconds."""

        def acked() -> list[dict[str, Any]]:
            return [a for a in self.acks if a.get("envelope_id") == envelope_id]

        with self.changed:
            if not self.changed.wait_for(lambda: len(acked()) >= nth, timeout):
                raise AssertionError(f"envelope {envelope_id} was not acknowledged {nth} time(s)")
            return acked()[nth - 1]


@contextmanager
def attach(slack: FakeSlack) -> Iterator[FakeSocketMode]:
    """Run a Socket Mode endpoint on a free port and make ``slack``'s apps.connections.open hand it out."""
    fake = FakeSocketMode()
    server = serve(fake.handle, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.socket.getsockname()[1]
    slack.socket_url = f"ws://127.0.0.1:{port}/link/?ticket={uuid.uuid4()}&app_id={APP_ID}"
    try:
        yield fake
    finally:
        slack.socket_url = None
        server.shutdown()
        thread.join(timeout=10)
