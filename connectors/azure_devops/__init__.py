"""The Azure DevOps connector: a small facade composing the package's parts.

``client`` (SDK connection, call guard, errors), ``search`` (WIQL paged by id, batches of 200),
``discovery`` (process fields and state categories), ``sync`` (full and incremental reads, the
snapshot), ``comments`` (the bot's own comments) and ``render`` (``Document`` -> Markdown / HTML).
The Jira connector uses the same module names, so a reader who knows one finds the other's parts.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from connectors.azure_devops.client import AdoClient
from connectors.azure_devops.comments import WorkItemComments
from connectors.azure_devops.discovery import ProcessDiscovery, ProcessInfo
from connectors.azure_devops.render import render_html, render_markdown
from connectors.azure_devops.search import WorkItemSearch, wiql_condition, wiql_string
from connectors.azure_devops.sync import BacklogSync, SnapshotStore
from connectors.base import (
    FetchCounters,
    FetchResult,
    MemorySyncStateStore,
    Progress,
    ProgressCallback,
    SyncStateStore,
    TicketComment,
    no_progress,
)
from refinebot.config import AzureDevOpsSourceConfig
from refinebot.document import Document

__all__ = [
    "AzureDevOpsConnector",
    "ProcessInfo",
    "render_html",
    "render_markdown",
    "wiql_condition",
    "wiql_string",
]

logger = logging.getLogger(__name__)


class AzureDevOpsConnector:
    """A ``CommentingConnector`` for one Azure DevOps organisation (or on-premises collection)."""

    def __init__(
        self,
        source: AzureDevOpsSourceConfig,
        *,
        name: str = "azure_devops",
        state: SyncStateStore | None = None,
        progress: ProgressCallback = no_progress,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.source = source
        self.name = name
        self.state: SyncStateStore = state if state is not None else MemorySyncStateStore()
        self._progress = progress
        self._client = AdoClient(source, name, sleep=sleep, jitter=jitter)
        # Keys are namespaced by connector and organisation: one store can serve every source.
        prefix = f"ado:{name}:{source.url}"
        self._search = WorkItemSearch(self._client, progress)
        discovery = ProcessDiscovery(self._client, self.state, prefix)
        self._sync = BacklogSync(source, self._search, discovery, SnapshotStore(self.state, name), prefix)
        self._comments = WorkItemComments(self._client, self._sync.project_of)

    @property
    def requests(self) -> int:
        """Requests made by this connector's clients (not the SDK's OPTIONS/ResourceAreas calls)."""
        return self._client.count().total

    def fetch(self, project: str, query: str | None, *, full: bool = False) -> FetchResult:
        """Work items matching ``query`` (default: open backlog), incrementally if possible."""
        before = self._client.count()
        outcome = self._sync.sync(project, query, full=full)
        after = self._client.count()
        counters = FetchCounters(
            requests=after.total - before.total,
            discovery_requests=after.discovery - before.discovery,
            search_requests=after.search - before.search,
            fetched=outcome.fetched,
        )
        self._progress(Progress("work items", outcome.fetched, outcome.fetched, finished=True))
        logger.info(
            "%s: project %s: %d items (%s), %d skipped, %d requests",
            self.name,
            project,
            len(outcome.issues),
            "incremental" if outcome.incremental else "full",
            len(outcome.skipped),
            counters.requests,
        )
        return FetchResult(
            issues=outcome.issues,
            skipped=outcome.skipped,
            incremental=outcome.incremental,
            synced_at=outcome.synced_at,
            counters=counters,
        )

    def find_comment(self, issue_key: str, marker: str) -> str | None:
        """The id of the bot's own comment carrying ``marker`` on the work item, if one exists."""
        return self._comments.find(issue_key, marker)

    def add_comment(self, issue_key: str, document: Document, *, marker: str) -> str:
        """Post ``document`` (as Markdown) tagged with ``marker``; a retried POST never posts twice."""
        return self._comments.add(issue_key, document, marker=marker)

    def update_comment(
        self, issue_key: str, comment_id: str, document: Document, *, marker: str, known_ours: bool = False
    ) -> None:
        """Replace the bot's own comment in place (the comments API has no notification switch)."""
        self._comments.update(issue_key, comment_id, document, marker=marker, known_ours=known_ours)

    def comments_since(self, issue_key: str, since: datetime | None) -> Sequence[TicketComment]:
        """The work item's comments created or edited after ``since`` (all when None), oldest first."""
        return self._comments.since(issue_key, since)
