"""A fake Slack Web API on 127.0.0.1 (real HTTP, for ``WebClient(base_url=...)``) that checks what Slack checks.

Answers ``auth.test``, ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral``, ``conversations.open``,
``conversations.list``, ``conversations.history`` (newest first, each with the poster's ``bot_id`` and
``user``, ``metadata`` only with ``include_all_metadata``) and, for the app-level token only,
``apps.connections.open`` (the ``ws://`` URL of a ``tests.fakes.slack_socket`` server when one is attached). A payload over the Block Kit limits gets ``invalid_blocks`` with JSON-pointer
errors, as Slack answers (HTTP 200, ``ok: false``); the limits are written out here on their own, not
imported from refinebot, so the renderer is checked against an independent reading of Slack's docs.
``fail_next`` injects a 429 with ``Retry-After`` (or any status) for the next call of a method; ``ephemerals``
keeps what ``chat.postEphemeral`` was asked to show (to whom, where).

File uploads follow Slack's external upload flow, as ``files_upload_v2`` drives it:
``files.getUploadURLExternal`` (``filename``, ``length``) answers an ``upload_url`` on this server and a
``file_id``; a POST of the bytes to that URL (no token, as Slack's) answers 200 ``OK - <length>``;
``files.completeUploadExternal`` (``files`` as JSON ``[{"id", "title"}]``, ``channel_id``, ``thread_ts``)
shares the file as a reply in the thread, refusing a file whose bytes never arrived or whose size
differs from ``length``. Thread replies are kept apart from ``messages`` (``conversations.history``
lists no replies, as Slack's does) and are listed by ``conversations.replies``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

TOKEN = "xoxb-fake-token"
APP_TOKEN = "xapp-1-fake-app-token"
BOT_ID = "BFAKE"  # auth.test's bot_id and bot user for TOKEN: what our own messages carry
BOT_USER = "U0BOT"
UPLOAD_PATH = "/upload/v1/"


@dataclass
class Message:
    """A message as the fake keeps it."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None
    bot_id: str = BOT_ID
    edits: int = 0
    user: str = BOT_USER
    thread_ts: str | None = None  # a reply in this message's thread
    files: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Upload:
    """A file between ``files.getUploadURLExternal`` and ``files.completeUploadExternal``."""

    file_id: str
    filename: str
    length: int
    alt_txt: str
    data: bytes | None = None
    title: str = ""
    shared_in: tuple[str, str | None] | None = None  # (channel, thread_ts) once completed


@dataclass
class Fault:
    """A canned failure for the next call of one method."""

    status: int
    error: str
    retry_after: int | None = None


def _text_len(obj: Any) -> int:
    return len(str(obj.get("text", ""))) if isinstance(obj, Mapping) else 0


def block_errors(blocks: Any) -> list[dict[str, str]]:
    """Slack's Block Kit limits for a message (docs.slack.dev/reference/block-kit), as pointer errors."""
    errors: list[dict[str, str]] = []

    def bad(pointer: str, message: str) -> None:
        errors.append({"pointer": pointer, "code": "failed_constraint", "message": message})

    if not isinstance(blocks, list):
        return [{"pointer": "", "code": "invalid_type", "message": "blocks must be an array"}]
    if len(blocks) > 50:
        bad("", "must contain at most 50 blocks")
    for index, block in enumerate(blocks):
        kind = block.get("type")
        at = f"/{index}"
        if kind == "header":
            if block.get("text", {}).get("type") != "plain_text":
                bad(f"{at}/text/type", "header text must be plain_text")
            if _text_len(block.get("text")) > 150:
                bad(f"{at}/text/text", "must be at most 150 characters")
        elif kind == "section":
            if _text_len(block.get("text")) > 3000:
                bad(f"{at}/text/text", "must be at most 3000 characters")
        elif kind == "context":
            if len(block.get("elements", [])) > 10:
                bad(f"{at}/elements", "must contain at most 10 elements")
        elif kind == "actions":
            elements = block.get("elements", [])
            if len(elements) > 25:
                bad(f"{at}/elements", "must contain at most 25 elements")
            ids = [e.get("action_id") for e in elements]
            if len(ids) != len(set(ids)):
                bad(f"{at}/elements", "action_id must be unique within the block")
            for position, element in enumerate(elements):
                here = f"{at}/elements/{position}"
                if _text_len(element.get("text")) > 75:
                    bad(f"{here}/text/text", "must be at most 75 characters")
                if len(str(element.get("value", ""))) > 2000:
                    bad(f"{here}/value", "must be at most 2000 characters")
                if len(str(element.get("url", ""))) > 3000:
                    bad(f"{here}/url", "must be at most 3000 characters")
        elif kind != "divider":
            bad(f"{at}/type", f"unexpected block type {kind!r} for this fake")
    return errors


@dataclass
class FakeSlack:
    """The fake's state: channels, messages, calls seen and faults to inject."""

    token: str = TOKEN
    app_token: str = APP_TOKEN
    socket_url: str | None = None  # what apps.connections.open answers (None: Socket Mode is off)
    ephemerals: list[dict[str, Any]] = field(default_factory=list)
    channels: dict[str, str] = field(
        default_factory=lambda: {"shop-refinement": "C0SHOP", "payments": "C0PAY"}
    )
    messages: list[Message] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    replies: list[Message] = field(default_factory=list)  # thread replies (the file shares)
    uploads: dict[str, Upload] = field(default_factory=dict)
    upload_base: str = ""  # set by ``running``: where upload URLs point (this server)
    _next_ts: int = 1_760_000_000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(
        self, method: str, status: int = 429, *, retry_after: int | None = 1, error: str = "ratelimited"
    ) -> None:
        """Answer the next call of ``method`` with ``status`` (and ``Retry-After`` for a 429)."""
        self.faults.setdefault(method, []).append(Fault(status, error, retry_after))

    def methods(self) -> list[str]:
        """The methods called, in order."""
        return [method for method, _ in self.calls]

    def in_channel(self, channel: str) -> list[Message]:
        """The messages of ``channel``, oldest first."""
        return [m for m in self.messages if m.channel == channel]

    def thread(self, channel: str, ts: str) -> list[Message]:
        """The replies in the thread of message ``ts`` in ``channel``, oldest first."""
        return [m for m in self.replies if m.channel == channel and m.thread_ts == ts]

    def upload_bytes(self, upload_id: str, data: bytes) -> tuple[int, str]:
        """Step 2 of an upload: the POST of the file's bytes to its upload URL."""
        with self.lock:
            self.calls.append(("upload", {"upload_id": upload_id, "bytes": len(data)}))
            upload = self.uploads.get(upload_id)
            if upload is None or upload.shared_in is not None:
                return 404, "upload url not found"
            upload.data = data
            return 200, f"OK - {len(data)}"

    def _ts(self) -> str:
        self._next_ts += 1
        return f"{self._next_ts}.000100"

    def _channel_id(self, channel: str) -> str | None:
        if channel.startswith("#"):
            return self.channels.get(channel[1:])
        if channel in self.channels.values() or channel.startswith("D"):
            return channel
        return None

    def handle(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """One Web API call: (HTTP status, JSON body, extra headers)."""
        with self.lock:
            self.calls.append((method, params))
            queued = self.faults.get(method)
            if queued:
                fault = queued.pop(0)
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                return fault.status, {"ok": False, "error": fault.error}, headers
            answer = getattr(self, "_" + method.replace(".", "_").lower(), None)
            if answer is None:
                return 200, {"ok": False, "error": "unknown_method"}, {}
            return 200, answer(params), {}

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://fake.slack.com/", "team": "Fake", "user": "refinebot",
                "team_id": "T0FAKE", "user_id": BOT_USER, "bot_id": BOT_ID}  # fmt: skip

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.socket_url is None:
            return {"ok": False, "error": "not_allowed_token_type"}  # Socket Mode off for this app
        return {"ok": True, "url": self.socket_url}

    def _message_problems(self, params: dict[str, Any]) -> dict[str, Any] | None:
        blocks = params.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if blocks is not None:
            errors = block_errors(blocks)
            if errors:
                return {"ok": False, "error": "invalid_blocks", "errors": errors}
        if not params.get("text") and not blocks:
            return {"ok": False, "error": "no_text"}
        return None

    def _chat_postmessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(str(params.get("channel", "")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        problem = self._message_problems(params)
        if problem:
            return problem
        message = Message(channel, self._ts(), str(params.get("text", "")), list(params.get("blocks") or []),
                          params.get("metadata"))  # fmt: skip
        self.messages.append(message)
        return {"ok": True, "channel": channel, "ts": message.ts, "message": {"text": message.text}}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        if channel.startswith("#") or self._channel_id(channel) is None:
            return {"ok": False, "error": "channel_not_found"}
        found = [m for m in self.messages if m.channel == channel and m.ts == params.get("ts")]
        if not found:
            return {"ok": False, "error": "message_not_found"}
        problem = self._message_problems(params)
        if problem:
            return problem
        message = found[0]
        message.text = str(params.get("text", ""))
        message.blocks = list(params.get("blocks") or [])
        if "metadata" in params:
            message.metadata = params["metadata"]
        message.edits += 1
        return {"ok": True, "channel": channel, "ts": message.ts, "text": message.text}

    def _chat_postephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        if self._channel_id(str(params.get("channel", ""))) is None:
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        problem = self._message_problems(params)
        if problem:
            return problem
        self.ephemerals.append(dict(params))
        return {"ok": True, "message_ts": self._ts()}

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(params.get("users", "")).split(",") if u]
        if not users:
            return {"ok": False, "error": "not_enough_users"}
        return {"ok": True, "channel": {"id": "D" + users[0][1:]}}

    def _conversations_list(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "channels": [{"id": cid, "name": name} for name, cid in self.channels.items()],
                "response_metadata": {"next_cursor": ""}}  # fmt: skip

    def _files_getuploadurlexternal(self, params: dict[str, Any]) -> dict[str, Any]:
        filename = str(params.get("filename") or "")
        try:
            length = int(params.get("length", ""))
        except ValueError:
            length = 0
        if not filename or length <= 0:
            return {"ok": False, "error": "invalid_arguments"}
        if len(str(params.get("alt_txt") or "")) > 1000:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F0FAKE{len(self.uploads) + 1:04d}"
        self.uploads[file_id] = Upload(file_id, filename, length, str(params.get("alt_txt") or ""))
        return {"ok": True, "upload_url": f"{self.upload_base}{file_id}", "file_id": file_id}

    def _files_completeuploadexternal(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = params.get("files")
        try:
            wanted = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            wanted = None
        if not isinstance(wanted, list) or not wanted or not all(isinstance(f, dict) for f in wanted):
            return {"ok": False, "error": "invalid_arguments"}
        uploads = [self.uploads.get(str(f.get("id"))) for f in wanted]
        if any(u is None or u.data is None or len(u.data) != u.length for u in uploads):
            return {"ok": False, "error": "file_not_found"}
        channel = str(params.get("channel_id") or "")
        thread_ts = params.get("thread_ts") or None
        if channel and (self._channel_id(channel) is None or channel.startswith("#")):
            return {"ok": False, "error": "channel_not_found"}
        if thread_ts and not any(m.channel == channel and m.ts == thread_ts for m in self.messages):
            return {"ok": False, "error": "invalid_thread_ts"}
        shown: list[dict[str, Any]] = []
        for upload, entry in zip(uploads, wanted, strict=True):
            assert upload is not None
            upload.title = str(entry.get("title") or upload.filename)
            upload.shared_in = (channel, thread_ts) if channel else None
            shown.append({"id": upload.file_id, "name": upload.filename, "title": upload.title,
                          "size": upload.length, "alt_txt": upload.alt_txt})  # fmt: skip
        if channel:
            reply = Message(channel, self._ts(), str(params.get("initial_comment") or ""), [], None,
                            thread_ts=thread_ts, files=shown)  # fmt: skip
            (self.replies if thread_ts else self.messages).append(reply)
        return {"ok": True, "files": [{"id": f["id"], "title": f["title"]} for f in shown]}

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        ts = str(params.get("ts", ""))
        if self._channel_id(channel) is None or channel.startswith("#"):
            return {"ok": False, "error": "channel_not_found"}
        parent = next((m for m in self.messages if m.channel == channel and m.ts == ts), None)
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        limit = int(params.get("limit", 100))
        start = int(params.get("cursor") or 0)
        thread = [parent, *self.thread(channel, ts)]
        page = thread[start : start + limit]
        out = []
        for m in page:
            entry: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text, "bot_id": m.bot_id,
                                     "thread_ts": ts}  # fmt: skip
            if m.files:
                entry["files"] = m.files
                entry["upload"] = True
            out.append(entry)
        more = start + limit < len(thread)
        return {"ok": True, "messages": out, "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}  # fmt: skip

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        if self._channel_id(channel) is None or channel.startswith("#"):
            return {"ok": False, "error": "channel_not_found"}
        limit = int(params.get("limit", 100))
        start = int(params.get("cursor") or 0)
        newest_first = list(reversed(self.in_channel(channel)))
        page = newest_first[start : start + limit]
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        out = []
        for m in page:
            entry: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text, "bot_id": m.bot_id,
                                     "user": m.user}  # fmt: skip
            if with_metadata and m.metadata:
                entry["metadata"] = m.metadata
            out.append(entry)
        more = start + limit < len(newest_first)
        return {"ok": True, "messages": out, "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    def _answer(self, params: dict[str, Any]) -> None:
        fake = self.server.fake
        method = urlsplit(self.path).path.rsplit("/", 1)[-1]
        # The app-level token opens Socket Mode connections and nothing else, as on Slack.
        token = fake.app_token if method == "apps.connections.open" else fake.token
        if self.headers.get("Authorization") != f"Bearer {token}":
            status, body, headers = 200, {"ok": False, "error": "invalid_auth"}, dict[str, str]()
        else:
            status, body, headers = fake.handle(method, params)
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self._answer(dict(parse_qsl(urlsplit(self.path).query)))

    def do_POST(self) -> None:
        if self.path.startswith(UPLOAD_PATH):  # step 2 of an upload: raw bytes, no token (as Slack's)
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, text = self.server.fake.upload_bytes(self.path[len(UPLOAD_PATH) :], data)
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            params = json.loads(raw or "{}")
        else:
            params = dict(parse_qsl(raw))
            for key in ("blocks", "metadata"):
                if isinstance(params.get(key), str):
                    params[key] = json.loads(params[key])
        params.update(dict(parse_qsl(urlsplit(self.path).query)))
        self._answer(params)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeSlack) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


@contextmanager
def running(fake: FakeSlack | None = None) -> Iterator[tuple[FakeSlack, str]]:
    """Serve ``fake`` on a free port; yields it and the ``base_url`` for ``WebClient``."""
    fake = fake or FakeSlack()
    server = _Server(fake)
    fake.upload_base = f"http://127.0.0.1:{server.server_address[1]}{UPLOAD_PATH}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}/api/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
