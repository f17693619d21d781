"""The HTTP front without an app (Socket Mode): health answers, Slack's path does not."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

from refinebot.serve import _handler, _HttpServer


def _status(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_socket_mode_front_serves_health_only() -> None:
    httpd = _HttpServer(("127.0.0.1", 0), _handler(None, lambda: {"ok": True, "projects": []}))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        assert _status(urllib.request.Request(base + "/healthz")) == 200
        post = urllib.request.Request(base + "/slack/events", data=b"payload=%7B%7D", method="POST")
        assert _status(post) == 404  # no app behind it: Socket Mode requests are never taken over HTTP
        assert _status(urllib.request.Request(base + "/other")) == 404
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
