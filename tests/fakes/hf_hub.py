"""A fake Hugging Face Hub: serves one model repository at one revision, over real HTTP, as
``huggingface_hub`` asks for it.

What the client (huggingface_hub 2.x, read from its ``file_download.py``, ``hf_api.py`` and
``utils/_detect_agent.py``) sends for a file at a pinned commit, and what this answers:

- ``GET /api/agent-harnesses`` (once a day, for its user agent): an empty list.
- ``GET /api/models/{repo}/revision/{rev}`` (``HfApi.model_info``): the model's JSON with ``sha`` and
  ``siblings``.
- ``HEAD /{repo}/resolve/{rev}/{file}`` (``get_hf_file_metadata``): ``X-Repo-Commit`` always; a small
  file answers 200 with its git blob id as ``ETag`` and ``Content-Length``; a large (LFS) file
  answers 302 to the CDN with ``X-Linked-Etag`` (its SHA-256), ``X-Linked-Size`` and ``Location``, as
  the real Hub does. The CDN is a second server on another port, so another origin: the client does
  not follow that redirect on HEAD and downloads from ``Location``.
- ``GET`` of the same resolve URL (small files) or of the CDN URL: the bytes.

No ``X-Xet-*`` headers are sent, so the client uses plain HTTP. Unknown repositories, revisions and
files answer 404 with the ``X-Error-Code`` the client maps to its errors. ``tamper`` names files whose
served bytes have one byte changed (same size, headers computed from the changed bytes, so only a
content hash can tell). Every request is recorded as (method, path) for the test to assert on.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

# huggingface_hub 2.x builds its user agent from a list it reads from the Hub at most once a day (3 s
# timeout; not when offline): answered with an empty list.
AGENT_REGISTRY = "/api/agent-harnesses"
# Files from this size up are stored in LFS on the Hub, so their resolve URL redirects to the CDN.
LFS_FROM = 1 << 20
_CHUNK = 1 << 20


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


class FakeHub:
    """Serves the files under ``folder`` (relative paths as repository paths) as ``repo`` at ``revision``."""

    def __init__(self, repo: str, revision: str, folder: Path, tamper: Iterable[str] = ()) -> None:
        self.repo, self.revision = repo, revision
        self.files = {
            path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*")) if path.is_file()
        }
        self.tamper = set(tamper)
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._meta: dict[str, tuple[int, str, str]] = {}  # file -> (size, git blob id, sha256)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner._answer(self, body=True)

            def do_HEAD(self) -> None:
                owner._answer(self, body=False)

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                return

        self._hub = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._threads = []
        for name, server in (("fake-hub", self._hub), ("fake-hub-cdn", self._cdn)):
            server.daemon_threads = True
            self._threads.append(threading.Thread(target=server.serve_forever, name=name, daemon=True))

    @property
    def base(self) -> str:
        """The Hub endpoint (``HF_ENDPOINT``): ``http://127.0.0.1:port``."""
        return f"http://127.0.0.1:{self._hub.server_port}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_port}"

    @property
    def count(self) -> int:
        """Requests answered so far, on the Hub and the CDN."""
        with self._lock:
            return len(self.requests)

    def _bytes(self, name: str) -> bytes:
        data = self.files[name].read_bytes()
        if name in self.tamper:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        return data

    def _metadata(self, name: str) -> tuple[int, str, str]:
        with self._lock:
            known = self._meta.get(name)
        if known is None:
            data = self._bytes(name)
            known = (len(data), _git_blob_id(data), hashlib.sha256(data).hexdigest())
            with self._lock:
                self._meta[name] = known
        return known

    def _answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        path = urlsplit(handler.path).path
        with self._lock:
            self.requests.append((handler.command, path))
        on_cdn = handler.server is self._cdn
        info = f"/api/models/{self.repo}/revision/"
        resolve = f"/{self.repo}/resolve/"
        if on_cdn and path.startswith("/blobs/"):
            name = unquote(path[len("/blobs/") :])
            if name in self.files:
                self._send_file(handler, name, body, {})
                return
        elif not on_cdn and path == AGENT_REGISTRY and handler.command == "GET":
            self._send_json(handler, 200, {"standardEnvVars": [], "harnesses": {}})
            return
        elif not on_cdn and path.startswith(info) and handler.command == "GET":
            if unquote(path[len(info) :]) == self.revision:
                self._send_json(handler, 200, self._model_info())
                return
            self._send_error(handler, "RevisionNotFound", "Invalid rev id")
            return
        elif not on_cdn and path.startswith(resolve):
            revision, _, name = unquote(path[len(resolve) :]).partition("/")
            if revision != self.revision:
                self._send_error(handler, "RevisionNotFound", "Invalid rev id")
                return
            if name in self.files:
                self._resolve(handler, name, body)
                return
            self._send_error(handler, "EntryNotFound", "Entry not found")
            return
        self._send_error(handler, "RepoNotFound", "Repository not found")

    def _model_info(self) -> dict[str, Any]:
        return {
            "_id": "0" * 24,
            "id": self.repo,
            "modelId": self.repo,
            "author": self.repo.split("/")[0],
            "sha": self.revision,
            "private": False,
            "disabled": False,
            "gated": False,
            "library_name": "sentence-transformers",
            "tags": ["sentence-transformers"],
            "siblings": [{"rfilename": name} for name in self.files],
        }

    def _resolve(self, handler: BaseHTTPRequestHandler, name: str, body: bool) -> None:
        size, blob_id, sha256 = self._metadata(name)
        common = {"X-Repo-Commit": self.revision}
        if size < LFS_FROM:
            self._send_file(handler, name, body, {**common, "ETag": f'"{blob_id}"'})
            return
        handler.send_response(302)
        for key, value in {
            **common,
            "X-Linked-Etag": f'"{sha256}"',
            "X-Linked-Size": str(size),
            "ETag": f'"{blob_id}"',
            "Location": f"{self.cdn}/blobs/{name}",
            "Content-Length": "0",
        }.items():
            handler.send_header(key, value)
        handler.end_headers()

    def _send_file(
        self, handler: BaseHTTPRequestHandler, name: str, body: bool, headers: dict[str, str]
    ) -> None:
        size, _, sha256 = self._metadata(name)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(size))
        headers.setdefault("ETag", f'"{sha256}"')
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        if body:
            data = self._bytes(name)
            for start in range(0, len(data), _CHUNK):
                handler.wfile.write(data[start : start + _CHUNK])

    @staticmethod
    def _send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)

    def _send_error(self, handler: BaseHTTPRequestHandler, code: str, message: str) -> None:
        data = json.dumps({"error": message}).encode()
        handler.send_response(404)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("X-Error-Code", code)
        handler.send_header("X-Error-Message", message)
        if code == "EntryNotFound":  # the client caches the file's absence under this commit
            handler.send_header("X-Repo-Commit", self.revision)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)

    def start(self) -> FakeHub:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
