"""What every source implements and what it is given: the ``Connector`` protocols, the sync-state port,
progress reporting, and the errors connectors raise.

Connectors import only the core's floor (models, config, markup, document). What they need from the
layers above (somewhere to keep sync state, someone to show progress) they state here as protocols;
``refinebot/sources.py`` injects the implementations, and the store satisfies ``SyncStateStore``
later without being imported.

Sync state holds *raw vendor JSON* (what Jira or Azure DevOps answered, plus cursors), never mapped
``Issue`` objects: each fetch maps the snapshot again, so a mapping fix, a new ``Issue`` field or a
changed field override takes effect on the next run without a full re-read, and nothing stored has
to follow the model's shape.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from refinebot.document import Document
from refinebot.models import Issue

logger = logging.getLogger(__name__)


class ConnectorError(Exception):
    """A source that cannot be read (bad credentials, unreachable server, malformed file)."""


class CommentGoneError(ConnectorError):
    """The comment to update is not there any more (someone deleted it): the tracker answered 404."""


@dataclass(frozen=True, slots=True)
class SkippedItem:
    """An item a connector could not map; the sync goes on without it."""

    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class FetchCounters:
    """What one fetch cost, counted the same way by every connector."""

    requests: int = 0  # every HTTP request the connector made, retries included
    discovery_requests: int = 0  # learning the source's shape: fields, process, states
    search_requests: int = 0  # requests that read items or their ids (search, WIQL, batches)
    fetched: int = 0  # items read from the source this time (all on a full read, the changed ones otherwise)


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One fetch: always the whole backlog, however it was read.

    ``incremental`` says the source was asked only for what changed since the last sync (merged into
    the saved snapshot); the issues are the complete current backlog either way.
    """

    issues: Sequence[Issue]
    skipped: Sequence[SkippedItem] = ()
    incremental: bool = False
    synced_at: datetime | None = None
    counters: FetchCounters = FetchCounters()


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress report: ``done`` items of ``total`` (None while unknown) for ``label``."""

    label: str
    done: int
    total: int | None = None
    finished: bool = False


ProgressCallback = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    """The default progress callback: report nothing."""


@dataclass(frozen=True, slots=True)
class TicketComment:
    """A comment on a ticket, as ``comments_since`` returns it."""

    id: str
    issue_key: str
    author: str  # display name
    author_id: str  # Jira accountId (Cloud) or key/name (DC); Azure DevOps identity id
    created: datetime
    updated: datetime | None
    text: str  # the comment's text with markup stripped
    by_bot: bool  # written by the account refinebot uses


@runtime_checkable
class SyncStateStore(Protocol):
    """Somewhere to keep JSON-able sync state between runs, by key (a connector chooses its keys)."""

    def load(self, key: str) -> Any | None:
        """The value saved under ``key``, or None when there is none (or it cannot be read)."""
        ...

    def save(self, key: str, value: Any) -> None:
        """Keep ``value`` (JSON-able) under ``key``, replacing what was there."""
        ...


class MemorySyncStateStore:
    """Sync state for the life of one process: the values themselves, not JSON copies.

    A real store serialises; this one keeps the object it is given and hands the same object back,
    because copying through JSON was most of a full sync's cost here (10,000 Jira issues: an 18 MiB
    string plus as much again in encoder chunks on every save, 76 MiB of new objects on every load;
    ``benchmarks/jira_sync.py``). So a value saved is the store's: callers build a new one for each
    save and never change a value after saving it or after loading it (every connector does).
    ``JsonDirSyncStateStore`` and the database store keep the JSON round trip honest.
    """

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._lock = threading.Lock()

    def load(self, key: str) -> Any | None:
        """The value saved under ``key`` (the same object), or None."""
        with self._lock:
            return self._values.get(key)

    def save(self, key: str, value: Any) -> None:
        """Keep ``value`` under ``key`` (not a copy: do not change it afterwards)."""
        with self._lock:
            self._values[key] = value

    def keys(self) -> list[str]:
        """The keys saved so far (for tests and diagnostics)."""
        with self._lock:
            return sorted(self._values)


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class JsonDirSyncStateStore:
    """Sync state as one JSON file per key in a directory, written atomically (temp file + rename)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, key: str) -> Path:
        """The file that holds ``key``: readable prefix plus a digest, so distinct keys never collide."""
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        readable = _UNSAFE.sub("_", key)[:80].strip("_") or "state"
        return self.directory / f"{readable}-{digest}.json"

    def load(self, key: str) -> Any | None:
        """The value saved under ``key``, or None when absent or unreadable (logged)."""
        path = self.path_for(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("cannot read sync state %s: %s; starting over", path, exc.strerror)
            return None
        try:
            return json.loads(text)
        except ValueError:
            logger.warning("ignoring unreadable sync state %s; starting over", path)
            return None

    def save(self, key: str, value: Any) -> None:
        """Write ``value`` under ``key``; a failure is logged (the next run does a full sync), not raised."""
        path = self.path_for(key)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(value), encoding="utf-8")
            temporary.replace(path)
        except OSError as exc:
            logger.warning("cannot write sync state %s: %s", path, exc.strerror)
            temporary.unlink(missing_ok=True)


@runtime_checkable
class Connector(Protocol):
    """Fetches a project's issues (and, for live sources, posts comments on them)."""

    def fetch(self, project: str, query: str | None, *, full: bool = False) -> FetchResult:
        """Issues of ``project`` matching ``query`` (default: all open items of the project)."""
        ...


@runtime_checkable
class CommentingConnector(Connector, Protocol):
    """A connector that can also comment on tickets.

    The bot's comments carry ``marker`` (a short ``[A-Za-z0-9:_-]`` tag) so they can be found again;
    only comments *written by the bot's own account* count as its comments: a person quoting the
    marker is never found, updated or overwritten.
    """

    def add_comment(self, issue_key: str, document: Document, *, marker: str) -> str:
        """Post ``document`` on the issue, tagged with ``marker``; return the comment id. Never posts twice."""
        ...

    def update_comment(
        self, issue_key: str, comment_id: str, document: Document, *, marker: str, known_ours: bool = False
    ) -> None:
        """Replace the bot's own comment's body in place (refuses a comment the bot did not write).

        ``known_ours``: the caller's records say the bot wrote ``comment_id`` (the id came from
        ``add_comment`` or ``find_comment``), so the author is not read first. A comment that is gone
        raises ``CommentGoneError``.
        """
        ...

    def find_comment(self, issue_key: str, marker: str) -> str | None:
        """The id of the bot's own comment carrying ``marker``, if one exists."""
        ...

    def comments_since(self, issue_key: str, since: datetime | None) -> Sequence[TicketComment]:
        """The issue's comments created or edited after ``since`` (all when None), oldest first."""
        ...
