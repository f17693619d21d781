"""Sync one project's backlog: a full read, or only what changed since the last successful sync.

State lives in the injected ``SyncStateStore`` as a ``Snapshot`` (``snapshot.py``: raw issue JSON,
never mapped issues), mapped again on every fetch. A changed query or field map, a day without a
sync, or ``full`` reads everything again. The snapshot is saved only after a sync succeeded.

An incremental sync reads what changed (minus a 5-minute overlap), then learns which items left the
query (moved, done, deleted, no longer matching) or entered it unseen from ids-only searches, fetches
the unseen ones by id, and refreshes the status of blockers outside the backlog.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from connectors.base import FetchCounters, FetchResult, SyncStateStore
from connectors.jira.client import JiraClient, RejectedError
from connectors.jira.discovery import FieldDiscovery
from connectors.jira.jql import JqlQuery, default_query, jql_string, updated_within
from connectors.jira.search import CLOUD_ID_PAGE_SIZE, Page, Searcher, ids_of, keys_of, statuses_of
from connectors.jira.snapshot import Backlog, Snapshot, fingerprint, key_of, project_state_key
from refinebot.models import StatusCategory

logger = logging.getLogger(__name__)

OVERLAP_MINUTES = 5
FULL_SYNC_AFTER = timedelta(hours=24)


class JiraSync:
    """Full and incremental syncs of one site's projects, state kept in a ``SyncStateStore``."""

    def __init__(
        self,
        client: JiraClient,
        searcher: Searcher,
        discovery: FieldDiscovery,
        store: SyncStateStore,
        prefix: str,
    ) -> None:
        self.client = client
        self.searcher = searcher
        self.discovery = discovery
        self.store = store
        self.prefix = prefix

    def state_key(self, project: str, query: str | None) -> str:
        """The store key of ``project``'s snapshot for ``query`` (None: the default query)."""
        base = JqlQuery.parse(query) if query else default_query(project)
        return project_state_key(self.prefix, project, base.text())

    def fetch(self, project: str, query: str | None, *, full: bool = False) -> FetchResult:
        """The whole backlog of ``project`` matching ``query``, read incrementally when it can be."""
        started = self.client.clock()
        before = self.client.requests
        self.client.connect()
        field_map = self.discovery.field_map()
        discovery = self.client.requests - before
        base = JqlQuery.parse(query) if query else default_query(project)
        fields = field_map.wanted_fields()
        printed = fingerprint(field_map, fields)
        key = project_state_key(self.prefix, project, base.text())
        # A full sync reads nothing from the snapshot: not loading it spares a store that parses
        # JSON the whole last backlog (10,000 Jira issues: 18 MiB of JSON, 76 MiB of objects).
        saved = None if full else Snapshot.from_json(self.store.load(key))
        if saved is not None and (saved.query != base.text() or saved.fingerprint != printed):
            saved = None
        backlog = Backlog(field_map, self.client.source.url, self.client.where)
        # A daily full sync refreshes what changes cannot show (the statuses links carry, say).
        if saved is not None and started - saved.last_sync < FULL_SYNC_AFTER:
            run = _Incremental(self, backlog, project, base, fields, default=query is None)
            fetched, search_requests = run.sync(saved, started)
            incremental = True
        else:
            fetched, search_requests = self._full(backlog, project, base, fields)
            incremental = False
        issues, skipped = backlog.result()
        snapshot = Snapshot(
            base.text(), printed, started, tuple(backlog.raws.values()), backlog.ids, backlog.blockers
        )
        self.store.save(key, snapshot.to_json())
        requests = self.client.requests - before
        logger.info(
            "%s: %s sync of %s: %d issues, %d skipped, %d requests",
            self.client.where,
            "incremental" if incremental else "full",
            project,
            len(issues),
            len(skipped),
            requests,
        )
        return FetchResult(
            issues=issues,
            skipped=tuple(skipped),
            incremental=incremental,
            synced_at=started,
            counters=FetchCounters(requests, discovery, search_requests, fetched),
        )

    def _full(self, backlog: Backlog, project: str, base: JqlQuery, fields: list[str]) -> tuple[int, int]:
        """Read everything the query matches; returns (issues read, requests)."""
        read = 0

        def keep(page: Page) -> None:
            nonlocal read
            read += backlog.put(page, replace_known=False)

        self.searcher.reordered = False
        used = self.searcher.search(base.text(), fields, f"{project}: full sync", keep)
        if self.searcher.reordered:
            backlog.order_by_rank()
        return read, used


class _Incremental:
    """The steps of one incremental sync, in the order ``sync`` runs them."""

    def __init__(
        self,
        owner: JiraSync,
        backlog: Backlog,
        project: str,
        base: JqlQuery,
        fields: list[str],
        *,
        default: bool,
    ) -> None:
        self.client, self.searcher = owner.client, owner.searcher
        self.backlog = backlog
        self.project = project
        self.base = base
        self.fields = fields
        self.default = default  # the default query: scoped to the project as configured
        self.read = 0
        self.requests = 0
        self.window = ""

    def _search(
        self, jql: str, fields: Sequence[str], step: str, each: Callable[[Page], None], **kw: Any
    ) -> None:
        self.requests += self.searcher.search(jql, fields, f"{self.project}: {step}", each, **kw)

    def sync(self, saved: Snapshot, started: datetime) -> tuple[int, int]:
        """Merge what changed into ``saved``; returns (issues read, requests)."""
        self.backlog.raws = {key_of(raw): raw for raw in saved.issues}
        self.backlog.ids = dict(saved.ids)
        self.backlog.blockers = dict(saved.blockers)
        elapsed = max((started - saved.last_sync).total_seconds(), 0.0)
        self.window = updated_within(math.ceil(elapsed / 60) + OVERLAP_MINUTES)
        matched = self.read_changes()
        # Keys of everything changed anywhere, when known: only those blockers can have a new
        # status (resolving a blocker moves its own 'updated').
        changed_keys: set[str] | None = None
        if self.client.is_cloud and len(self.backlog.ids) < CLOUD_ID_PAGE_SIZE:
            # Listing the ids the query matches now settles every leaver and unseen entry; it costs
            # one request per 5000 issues on Cloud, so it is done directly when one page holds them.
            current, used = self.searcher.matching_ids(self.base, f"{self.project}: membership")
            self.requests += used
        else:
            current, changed_keys = self.membership_by_changes(matched)
        self.fetch_missed(current)
        self.backlog.keep_only(current)
        self.backlog.order_by_rank()
        if changed_keys is None:
            self.scan_blocker_changes()
        else:
            self.refresh_blockers(changed_keys)
        return self.read, self.requests

    def read_changes(self) -> set[str]:
        """Merge the issues the query matches that changed in the window; returns their ids."""
        matched: set[str] = set()

        def changed(page: Page) -> None:
            self.read += self.backlog.put(page, replace_known=True, fresh_blockers=True)
            matched.update(ids_of(page))

        self._search(self.base.and_(self.window).text(), self.fields, "changes", changed)
        return matched

    def membership_by_changes(self, matched: set[str]) -> tuple[set[str], set[str]]:
        """The ids the query matches now, learnt from what changed where the query looks.

        What changed in the projects the query covers (and those of outside blockers) but no longer
        matches has left. Only when the query's count still disagrees with what is known (a move to
        another project, a deletion, an unseen entry) are its ids listed. Returns the ids and the
        keys of everything that changed.
        """
        changed_ids: set[str] = set()
        changed_keys: set[str] = set()

        def scope(page: Page) -> None:
            changed_ids.update(ids_of(page))
            changed_keys.update(keys_of(page))

        projects = self.scope_projects()
        if projects:
            scoped = f"project in ({', '.join(jql_string(p) for p in projects)}) AND {self.window}"
            try:
                self._search(scoped, ["id", "key"], "scope", scope, ids_only=True)
            except RejectedError as exc:
                # A project gone (or renamed) since its issues were read: scan by time alone.
                logger.warning("%s: %s: scanning all changes: %s", self.client.where, self.project, exc)
                changed_ids.clear()
                changed_keys.clear()
                self._search(self.window, ["id", "key"], "scope", scope, ids_only=True)
        known = set(self.backlog.ids)
        current = known - {i for i in changed_ids & known if i not in matched}
        before = self.client.requests
        count = self.searcher.count(self.base)
        if count is not None and count < len(current):
            # Fewer match than known: items left, most often moved to another project (out of the
            # scanned ones). What changed anywhere shows moves, and is read when that takes fewer
            # requests than listing the query's ids would.
            current = self.drop_moved(current, matched)
        self.requests += self.client.requests - before
        if count != len(current):
            logger.info(
                "%s: %s: %s issues match, %d known; listing their ids",
                self.client.where,
                self.project,
                count if count is not None else "?",
                len(current),
            )
            current, used = self.searcher.matching_ids(self.base, f"{self.project}: membership")
            self.requests += used
        return current, changed_keys

    def scope_projects(self) -> list[str]:
        """The projects whose changes the scan covers (not the whole site).

        The default query's own project (as configured), else the projects of the issues the query
        matched, plus the projects of blockers outside the synced set (their changes decide which
        blocker statuses are asked for again).
        """
        found: list[str] = [self.project] if self.default else []
        for key in [*self.backlog.ids.values(), *self.backlog.outside_blockers()]:
            owner = key.rpartition("-")[0]
            same = self.default and owner.upper() == self.project.upper()
            if owner and owner not in found and not same:
                found.append(owner)
        return found

    def drop_moved(self, current: set[str], matched: set[str]) -> set[str]:
        """``current`` without the ids that changed anywhere in the window and no longer match.

        Gives up (returns ``current`` unchanged) once the scan would take as many requests as
        listing the known ids does, so it never costs more than what it saves.
        """
        budget = self.searcher.scan_budget(len(current))
        if budget < 1:
            return current
        per_page = self.searcher.id_page_size()
        changed: set[str] = set()
        for pages, (issues, total) in enumerate(self.searcher.pages(self.window, ["id"], ids_only=True)):
            if pages >= budget or (total is not None and math.ceil(total / per_page) > budget):
                return current
            changed.update(ids_of(issues))
        return current - {i for i in changed if i not in matched}

    def fetch_missed(self, current: set[str]) -> None:
        """Fetch by id, 100 per request, what the query matches but was never seen.

        Ids of skipped items are known too, so they are not asked for again until they change. An
        id deleted since it was listed makes Jira refuse its group: the rest are asked again.
        """
        missing = sorted(current - set(self.backlog.ids), key=lambda i: (len(i), i))

        def add(page: Page) -> None:
            self.read += self.backlog.put(page, replace_known=True, fresh_blockers=True)

        self.requests += self.searcher.search_each(
            missing,
            lambda chunk: self.base.and_(f"id in ({', '.join(chunk)})").text(),
            self.fields,
            f"{self.project}: missed",
            add,
        )

    def scan_blocker_changes(self) -> None:
        """Statuses of outside blockers that changed in the window, from one scan of their projects.

        A blocker's status changes only with its own 'updated', so the changes in its project since
        the last sync hold every new status (a reopened blocker known done included): one search
        (100 a page) instead of every outside blocker's status on every sync. Falls back to asking
        every outside blocker when a project is refused (gone, renamed).
        """
        outside = set(self.backlog.outside_blockers())
        if not outside:
            return
        projects = sorted({key.rpartition("-")[0] for key in outside if "-" in key})

        def read(page: Page) -> None:
            self.backlog.blockers.update((k, v) for k, v in statuses_of(page).items() if k in outside)

        scan = f"project in ({', '.join(jql_string(p) for p in projects)}) AND {self.window}"
        try:
            self._search(scan, ["status"], "blocker changes", read)
        except RejectedError as exc:
            logger.warning("%s: %s: blocker changes not scanned: %s", self.client.where, self.project, exc)
            self.refresh_blockers(None)

    def refresh_blockers(self, changed: set[str] | None) -> None:
        """Bring the statuses of blockers outside the backlog up to date.

        A link carries its target's status as of the last time the *blocked* issue was fetched;
        resolving the blocker does not touch the blocked issue's 'updated'. Blockers in the backlog
        are current already; the rest get their status read in one ``key in (...)`` search per 100
        keys: those in ``changed`` when the sync knows what changed (known-done ones included: a
        reopening falls in this sync's window too), else all not known done.
        """
        stale = sorted(
            key
            for key, known in self.backlog.outside_blockers().items()
            if (key in changed if changed is not None else known is not StatusCategory.DONE)
        )

        def read(page: Page) -> None:
            self.backlog.blockers.update(statuses_of(page))

        self.requests += self.searcher.search_each(
            stale,
            lambda chunk: f"key in ({', '.join(jql_string(key) for key in chunk)})",
            ["status"],
            f"{self.project}: blocker statuses",
            read,
        )
