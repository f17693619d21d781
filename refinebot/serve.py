"""The ``refinebot serve`` process: the Slack app over HTTP (``POST /slack/events``, ``GET /healthz``) or
Socket Mode (then the HTTP server answers ``/healthz`` only), until SIGTERM or Ctrl-C.

HTTP mode is a small stdlib ``ThreadingHTTPServer`` handing each request to bolt as a ``BoltRequest``
(bolt's own ``App.start`` is a dev server without a health check). Bounded: a request body over
``MAX_BODY`` bytes is refused with 413 before it is read, and each connection times out after
``REQUEST_TIMEOUT`` seconds. Everything lives in a ``Server`` made by ``serve()``: no global state.
Shutdown: the signal handler only sets an event; the main thread then stops the HTTP loop (or the
socket), lets running handlers finish and closes the store, and the process exits 0.

Schedules: a ``CycleScheduler`` (``refinebot.scheduler``) starts once the server listens and runs each
project's digest cycle on its schedule; SIGTERM stops it first (the running cycle gets a bounded wait,
then is abandoned safely). SIGHUP re-reads and validates the config file: a bad one is logged (file,
key, reason) and the old one kept; a good one reschedules the jobs. Like SIGTERM, the handler only sets
an event and the main thread does the work.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr
from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_sdk.errors import SlackApiError

from refinebot.config import ConfigError, LoadedConfig, RuleCatalog, load_config
from refinebot.logs import Redactor, secret_values
from refinebot.scheduler import CycleScheduler, SlackAdminNotifier
from refinebot.slack.app import build_app
from refinebot.slack.digest import build_client
from refinebot.slack.listeners import SlackServices
from refinebot.slack.runs import digest_cycle
from refinebot.store import Store
from rules.registry import RuleRegistry

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"  # bolt's default: events, interactivity and slash commands
HEALTH_PATH = "/healthz"
MAX_BODY = 1_000_000  # Slack's largest payloads (a view submission) are far smaller
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request
DEFAULT_APP_TOKEN_ENV = "SLACK_APP_TOKEN"
DELIVERY_MEMORY = timedelta(days=1)  # Slack retries an event 3 times within about an hour
PRUNE_EVERY = 3600.0  # seconds between prunes of the deliveries table


class ServeError(Exception):
    """``serve`` cannot start (a missing secret, a port in use); the message says what to do."""


@dataclass(frozen=True)
class Secrets:
    """What serve reads from the environment (the names come from ``[slack]``)."""

    bot_token: SecretStr
    signing_secret: SecretStr | None
    app_token: SecretStr | None


def read_secrets(loaded: LoadedConfig, environ: dict[str, str] | os._Environ[str] = os.environ) -> Secrets:
    """The Slack secrets the mode needs, or ``ServeError`` naming every missing variable."""
    slack = loaded.config.slack
    missing = []
    bot = environ.get(slack.bot_token_env)
    if not bot:
        missing.append(f"{slack.bot_token_env} (the bot token, xoxb-...)")
    signing = environ.get(slack.signing_secret_env)
    app_env = slack.app_token_env or DEFAULT_APP_TOKEN_ENV
    app_token = environ.get(app_env)
    if slack.mode == "http" and not signing:
        missing.append(f"{slack.signing_secret_env} (the app's signing secret)")
    if slack.mode == "socket" and not app_token:
        missing.append(f"{app_env} (the app-level token, xapp-..., with connections:write)")
    if missing:
        raise ServeError("set " + " and ".join(missing) + f" for [slack] mode = {slack.mode!r}")
    return Secrets(
        SecretStr(bot or ""),
        SecretStr(signing) if signing else None,
        SecretStr(app_token) if app_token else None,
    )


def health(
    loaded: LoadedConfig, services: SlackServices, scheduler: CycleScheduler | None = None
) -> dict[str, Any]:
    """What ``GET /healthz`` answers; ``schedules`` has each project's next run and last scheduled run."""
    return {
        "ok": True,
        "mode": loaded.config.slack.mode,
        "projects": sorted(loaded.config.projects),
        "slack_posting": "disabled" if services.posting_disabled(None) else "enabled",
        "schedules": scheduler.status() if scheduler is not None else {},
    }


def _handler(app: App | None, health_body: Callable[[], dict[str, Any]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT
        server_version = "refinebot"

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("http %s", format % args)

        def _send(self, status: int, body: bytes, headers: dict[str, Any] | None = None) -> None:
            self.send_response(status)
            for name, values in (headers or {}).items():
                for value in values if isinstance(values, list | tuple) else [values]:
                    if name.lower() != "content-length":
                        self.send_header(name, str(value))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if urlsplit(self.path).path == HEALTH_PATH:
                body = json.dumps(health_body()).encode()
                self._send(200, body, {"Content-Type": "application/json"})
            else:
                self._send(404, b"not found\n", {"Content-Type": "text/plain"})

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            if app is None or parts.path != EVENTS_PATH:
                self._send(404, b"not found\n", {"Content-Type": "text/plain"})
                return
            try:
                length = int(self.headers.get("Content-Length") or "0")
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self._send(413 if length > 0 else 400, b"bad request size\n", {"Content-Type": "text/plain"})
                return
            raw = self.rfile.read(length).decode("utf-8", errors="replace")
            headers: dict[str, str | Sequence[str]] = {}
            for name in set(self.headers.keys()):
                headers[name.lower()] = self.headers.get_all(name) or []
            response = app.dispatch(BoltRequest(body=raw, query=parts.query, headers=headers))
            self._send(response.status, response.body.encode("utf-8"), response.headers)

    return Handler


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = False  # shutdown waits for requests in flight
    block_on_close = True


@dataclass
class Server:
    """One running ``serve``: the app and how it is reached; ``run`` blocks until ``stop``."""

    loaded: LoadedConfig
    store: Store
    app: App
    services: SlackServices
    secrets: Secrets
    port: int
    host: str
    stopping: threading.Event
    scheduler: CycleScheduler | None = None
    catalog: RuleCatalog | None = None  # what a reload validates rule tables against
    wake: threading.Event = field(default_factory=threading.Event)
    reload_requested: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """Serve until ``stop()``; then shut down cleanly.

        HTTP mode takes Slack's requests on ``/slack/events``; Socket Mode holds the WebSocket and the
        HTTP server answers ``/healthz`` only (bolt skips signature checks for Socket Mode, so its app must
        never be reachable over HTTP).
        """
        socket = self.loaded.config.slack.mode == "socket"
        try:
            httpd = _HttpServer(
                (self.host, self.port),
                _handler(
                    None if socket else self.app, lambda: health(self.loaded, self.services, self.scheduler)
                ),
            )
        except OSError as exc:
            raise ServeError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        thread.start()
        host, port = httpd.server_address[:2]
        handler = None
        try:
            if socket:
                from slack_bolt.adapter.socket_mode import SocketModeHandler

                assert self.secrets.app_token is not None
                handler = SocketModeHandler(self.app, self.secrets.app_token.get_secret_value())
                try:
                    handler.connect()  # type: ignore[no-untyped-call]
                except SlackApiError as exc:
                    error = exc.response.get("error", "unknown") if exc.response is not None else "unknown"
                    raise ServeError(
                        f"Socket Mode: Slack apps.connections.open failed: {error} (the app-level token needs "
                        "connections:write, and Socket Mode must be on in the app's settings)"
                    ) from None
                logger.info("refinebot serve: connected to Slack in Socket Mode; health on http://%s:%s%s",
                            host, port, HEALTH_PATH)  # fmt: skip
            else:
                # The line tests and operators wait for: the port is open from here on.
                logger.info("refinebot serve: listening on http://%s:%s%s (health: %s)",
                            host, port, EVENTS_PATH, HEALTH_PATH)  # fmt: skip
            if self.scheduler is not None:
                self.scheduler.start()
            self._prune()
            next_prune = time.monotonic() + PRUNE_EVERY
            while not self.stopping.is_set():
                self.wake.wait(max(0.0, next_prune - time.monotonic()))
                self.wake.clear()
                if self.stopping.is_set():
                    break
                if self.reload_requested.is_set():
                    self.reload_requested.clear()
                    self.reload()
                if time.monotonic() >= next_prune:
                    self._prune()
                    next_prune = time.monotonic() + PRUNE_EVERY
        finally:
            logger.info("refinebot serve: stopping")
            if self.scheduler is not None:
                self.scheduler.stop()
            if handler is not None:
                handler.close()  # type: ignore[no-untyped-call]
            httpd.shutdown()
            httpd.server_close()
            thread.join()

    def stop(self) -> None:
        """Ask the server to stop (safe from a signal handler)."""
        self.stopping.set()
        self.wake.set()

    def request_reload(self) -> None:
        """Ask the main loop to re-read the config file (safe from a signal handler)."""
        self.reload_requested.set()
        self.wake.set()

    def reload(self) -> bool:
        """Re-read and validate the config file; on success reschedule, else keep the old config."""
        path = self.loaded.path
        if self.catalog is None:
            return False
        try:
            fresh = load_config(path, self.catalog, check_env=False)
        except ConfigError as exc:
            for problem in exc.problems:
                logger.error("config reload: %s: %s: %s; keeping the running config", problem.file,
                             problem.key or "<top level>", problem.reason)  # fmt: skip
            return False
        old = self.loaded.config
        for part in ("database_url", "slack"):
            if getattr(old, part) != getattr(fresh.config, part):
                logger.warning("config reload: %s changed in %s; it takes effect after a restart", part, path)
        self.loaded = fresh
        if self.scheduler is not None:
            self.scheduler.reload(fresh)
        logger.info("config reload: %s loaded (%d projects)", path, len(fresh.config.projects))
        return True

    def _prune(self) -> None:
        """Forget deliveries older than Slack retries (minutes), so the ledger's table stays small."""
        before = self.services.now() - DELIVERY_MEMORY
        gone = self.store.ledger.forget_deliveries(before)
        if gone:
            logger.debug("forgot %d Slack deliveries received before %s", gone, before.isoformat())


@contextmanager
def serve(
    loaded: LoadedConfig,
    *,
    port: int | None = None,
    environ: Any = os.environ,
    registry: RuleRegistry | None = None,
) -> Iterator[Server]:
    """Build the store, client, services, app and scheduler for ``loaded``; close the store when done.

    With a ``registry`` the projects' schedules run (and SIGHUP can reload); without, Slack only."""
    secrets = read_secrets(loaded, environ)
    slack = loaded.config.slack
    store = Store.from_config(loaded)
    try:
        services = SlackServices(loaded, store)
        client = build_client(slack, secrets.bot_token)
        signing = secrets.signing_secret.get_secret_value() if secrets.signing_secret else None
        app = build_app(services, client, signing if slack.mode == "http" else None)
        scheduler = None
        if registry is not None:
            rules = registry
            redactor = Redactor(secret_values(loaded.config, environ))
            scheduler = CycleScheduler(
                loaded,
                store,
                lambda current, project, now: digest_cycle(current, store, rules).run(project, now),
                notifier=SlackAdminNotifier(client, slack.admin_channel) if slack.admin_channel else None,
                redact=redactor.redact,
            )
        yield Server(
            loaded, store, app, services, secrets, port if port is not None else slack.port, slack.host,
            threading.Event(), scheduler, registry,
        )  # fmt: skip
    finally:
        store.close()


def run_until_signalled(server: Server) -> None:
    """Run ``server`` until SIGTERM or SIGINT (main thread only)."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("refinebot serve: got %s", signal.Signals(signum).name)
        server.stop()

    def reload(_signum: int, _frame: FrameType | None) -> None:
        logger.info("refinebot serve: got SIGHUP: reloading %s", server.loaded.path)
        server.request_reload()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, reload)
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
