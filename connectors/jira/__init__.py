"""Read a Jira Cloud or Data Center backlog through the official ``jira`` package, and comment on it.

``JiraConnector`` is a small facade over the parts, one module each: ``client`` (connection,
deployment, counted and retried requests, errors), ``search`` (Cloud token / Data Center offset and
key-range paging), ``sync`` (full and incremental syncs through the injected ``SyncStateStore``),
``discovery`` (which custom fields hold story points, sprint, rank, acceptance criteria), ``comments``
(the bot's own comments, found by marker) and ``render`` (``Document`` -> ADF or wiki markup).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from connectors.base import (
    FetchResult,
    MemorySyncStateStore,
    ProgressCallback,
    SyncStateStore,
    TicketComment,
    no_progress,
)
from connectors.jira.client import JiraClient
from connectors.jira.comments import Commenter
from connectors.jira.discovery import FieldDiscovery
from connectors.jira.search import CLOUD_PAGE_SIZE, DC_PAGE_SIZE, Searcher
from connectors.jira.sync import JiraSync
from connectors.jira_json import JiraFieldMap
from refinebot.config import JiraSourceConfig
from refinebot.document import Document

__all__ = ["CLOUD_PAGE_SIZE", "DC_PAGE_SIZE", "JiraConnector"]


class JiraConnector:
    """A ``CommentingConnector`` for one Jira Cloud site or Data Center server."""

    def __init__(
        self,
        source: JiraSourceConfig,
        *,
        name: str = "jira",
        state: SyncStateStore | None = None,
        progress: ProgressCallback = no_progress,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.source = source
        self.name = name
        self.state: SyncStateStore = state if state is not None else MemorySyncStateStore()
        prefix = f"jira:{name}:{source.url}"
        self._client = JiraClient(source, name=name, sleep=sleep, clock=clock)
        self._discovery = FieldDiscovery(self._client, source, self.state, f"{prefix}:fields")
        searcher = Searcher(self._client, source, progress)
        self._sync = JiraSync(self._client, searcher, self._discovery, self.state, prefix)
        self._comments = Commenter(self._client, on_write=self._sync.note_bot_write)

    @property
    def is_cloud(self) -> bool:
        """True when the site is Jira Cloud (connects on first use)."""
        return self._client.is_cloud

    @property
    def http_requests(self) -> int:
        """Every HTTP request this connector made so far, retries included."""
        return self._client.requests

    def field_map(self) -> JiraFieldMap:
        """Where story points, sprint, rank and acceptance criteria live (cached in the state store)."""
        return self._discovery.field_map()

    def state_key(self, project: str, query: str | None) -> str:
        """The state-store key of ``project``'s sync snapshot for ``query``."""
        return self._sync.state_key(project, query)

    def fetch(self, project: str, query: str | None, *, full: bool = False) -> FetchResult:
        """Issues of ``project`` matching ``query`` (default: its open items in rank order).

        After one successful sync, later calls fetch only items updated since then (less a 5-minute
        overlap) and merge them into the saved snapshot, unless ``full`` is set.
        """
        return self._sync.fetch(project, query, full=full)

    def add_comment(self, issue_key: str, document: Document, *, marker: str) -> str:
        """Post ``document`` on the issue tagged with ``marker``; return the comment id. Never posts twice."""
        return self._comments.add(issue_key, document, marker=marker)

    def update_comment(
        self, issue_key: str, comment_id: str, document: Document, *, marker: str, known_ours: bool = False
    ) -> None:
        """Replace the bot's own comment's body in place (refuses a comment the bot did not write)."""
        self._comments.update(issue_key, comment_id, document, marker=marker, known_ours=known_ours)

    def find_comment(self, issue_key: str, marker: str) -> str | None:
        """The id of the bot's own comment carrying ``marker``, if one exists."""
        return self._comments.find(issue_key, marker)

    def comments_since(self, issue_key: str, since: datetime | None) -> list[TicketComment]:
        """The issue's comments created or edited after ``since`` (all when None), oldest first."""
        return self._comments.since(issue_key, since)
