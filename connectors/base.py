"""The ``Connector`` protocol every source implements, and the errors connectors raise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from refinebot.models import Issue


class ConnectorError(Exception):
    """A source that cannot be read (bad credentials, unreachable server, malformed file)."""


@dataclass(frozen=True, slots=True)
class SkippedItem:
    """An item a connector could not map; the sync goes on without it."""

    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one fetch returned: the mapped issues, the items skipped and why."""

    issues: Sequence[Issue]
    skipped: Sequence[SkippedItem] = ()
    full: bool = True
    synced_at: datetime | None = None
    requests: int = 0
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class Connector(Protocol):
    """Fetches a project's issues (and, for live sources, posts comments on them)."""

    def fetch(self, project: str, query: str | None, *, full: bool = False) -> FetchResult:
        """Issues of ``project`` matching ``query`` (default: all open items of the project)."""
        ...


@runtime_checkable
class CommentingConnector(Connector, Protocol):
    """A connector that can also comment on tickets."""

    def add_comment(self, issue_key: str, body: str, *, marker: str) -> str:
        """Post ``body`` on the issue, tagged with ``marker``; return the comment id. Never posts twice."""
        ...

    def update_comment(self, issue_key: str, comment_id: str, body: str, *, marker: str) -> None:
        """Replace a comment's body in place without notifying watchers."""
        ...

    def find_comment(self, issue_key: str, marker: str) -> str | None:
        """The id of the bot comment carrying ``marker``, if one exists."""
        ...
