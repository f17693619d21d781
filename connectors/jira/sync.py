"""Sync one project's backlog: a full read, or only what changed since the last successful sync.

State lives in the injected ``SyncStateStore`` as a ``Snapshot`` (``snapshot.py``: raw issue JSON,
never mapped issues), mapped again on every fetch. A changed query or field map, a day without a
sync, or ``full`` reads everything again. The snapshot is saved only after a sync succeeded.

An incremental sync reads what changed (minus a 5-minute overlap), then learns which items left the
query (moved, done, deleted, no longer matching) or entered it unseen from ids-only searches, fetches
the unseen ones by id, and refreshes the status of blockers outside the backlog.

The bot's own comments bump an issue's 'updated' (Jira does that for every comment and edit), so the
changes since the last sync hold every ticket the last digest commented on. On Cloud, when the bot
wrote on tickets of the backlog since the last sync, what changed is first listed with only id, key
and 'updated' (pages as big as ids-only ones), and an issue whose 'updated' is exactly the one the
snapshot holds, or exactly the time the bot's own comment write left (recorded from the write's
answer: ``note_bot_write``), is not read again. Exact times, to the millisecond, not JQL's minutes:
a person's edit just after the bot's comment, in the same minute, makes it read. (A change made
between the sync's read and the bot's write on the same ticket is hidden by the write's bump; the
next full sync, at most a day later, reads it.) Data Center pages hold 1000 full issues: read as before.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from connectors.base import FetchCounters, FetchResult, SyncStateStore
from connectors.jira.client import JiraClient, RejectedError
from connectors.jira.discovery import FieldDiscovery
from connectors.jira.jql import JqlQuery, default_query, jql_string, updated_within
from connectors.jira.search import (
    CLOUD_ID_PAGE_SIZE,
    Page,
    Searcher,
    Stamps,
    ids_of,
    keys_of,
    statuses_of,
)
from connectors.jira.snapshot import Backlog, Snapshot, fingerprint, key_of, project_state_key
from refinebot.models import StatusCategory

logger = logging.getLogger(__name__)

OVERLAP_MINUTES = 5
FULL_SYNC_AFTER = timedelta(hours=24)
# A bot write older than this cannot fall in an incremental sync's window (a day at most, plus the
# overlap): forgotten when the next write is noted.
BOT_WRITES_KEPT = FULL_SYNC_AFTER + timedelta(hours=1)
# After Cloud answered a page of ids and 'updated' no bigger than a full one, stamps are not asked
# for again for this long (each try costs a request).
STAMPS_RETRY_AFTER = timedelta(days=7)


def _when(value: Any) -> datetime | None:
    """A Jira time (``2026-12-02T04:15:03.123+0000``) as an aware datetime; None if it is not one."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else None


def _updated_of(raw: Any) -> datetime | None:
    fields = raw.get("fields") if isinstance(raw, Mapping) else None
    return _when(fields.get("updated")) if isinstance(fields, Mapping) else None


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
        self._bot_writes: dict[str, str] | None = None  # issue key -> 'updated' the bot's write left

    @property
    def bot_writes_key(self) -> str:
        return f"{self.prefix}:bot-writes"

    @property
    def stamps_key(self) -> str:
        return f"{self.prefix}:stamp-pages"

    def bot_writes(self) -> dict[str, datetime]:
        """When the bot's own comment writes left each issue's 'updated' (kept in the state store)."""
        if self._bot_writes is None:
            raw = self.store.load(self.bot_writes_key)
            self._bot_writes = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}
        found = {key: _when(value) for key, value in self._bot_writes.items()}
        return {key: when for key, when in found.items() if when is not None}

    def note_bot_write(self, issue_key: str, comment: Mapping[str, Any]) -> None:
        """The bot posted or edited a comment on ``issue_key``; ``comment`` is Jira's answer.

        Jira sets the issue's 'updated' to the comment's own 'updated' (the fake does as well), so
        that time is kept: an issue still showing it changed by the bot alone. Were Jira ever to
        stamp the issue differently, the times would differ and the issue would just be read again.
        """
        stamp = comment.get("updated") or comment.get("created")
        written = _when(stamp)
        if written is None or not self.client.is_cloud:
            return  # Data Center syncs read changes 1000 full issues a page: the times are not used
        self.bot_writes()  # loaded
        assert self._bot_writes is not None
        oldest = written - BOT_WRITES_KEPT
        kept = {k: v for k, v in self._bot_writes.items() if (t := _when(v)) is not None and t >= oldest}
        kept[issue_key] = str(stamp)
        self._bot_writes = kept
        # Saved at once (a new dict each time: the port's values are never changed after saving),
        # so a run that dies after its writes still leaves them noted.
        self.store.save(self.bot_writes_key, dict(kept))

    def stamps_allowed(self, now: datetime) -> bool:
        """Whether the site may be asked for pages of ids and 'updated' (not refused lately)."""
        value = self.store.load(self.stamps_key)
        capped = _when(value.get("capped")) if isinstance(value, Mapping) else None
        return capped is None or now - capped >= STAMPS_RETRY_AFTER

    def note_stamps_capped(self, now: datetime) -> None:
        logger.warning(
            "%s: Cloud pages of ids and 'updated' are no bigger than full ones here; changes are read "
            "in full (the bot's own comments make them re-read) for the next %d days",
            self.client.where,
            STAMPS_RETRY_AFTER.days,
        )
        self.store.save(self.stamps_key, {"capped": now.isoformat()})

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
        self.owner = owner
        self.read = 0
        self.requests = 0
        self.window = ""
        self.bot: dict[str, datetime] = {}  # issue key -> 'updated' the bot's last write left

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
        stamped = self.stamps_worth_asking(saved, started)
        # Keys of everything changed anywhere, when known: only those blockers can have a new
        # status (resolving a blocker moves its own 'updated').
        changed_keys: set[str] | None = None
        small = self.client.is_cloud and len(self.backlog.ids) < CLOUD_ID_PAGE_SIZE
        listed = self.list_with_stamps(started) if small and stamped else None
        if listed is not None:
            # The ids and times of all the query matches: the changed ones read by id.
            current = set(listed)
            self.read_by_id(
                sorted(i for i, (key, stamp) in listed.items() if not self.unchanged(i, key, stamp))
            )
        elif small:
            self.read_changes()
            # Listing the ids the query matches now settles every leaver and unseen entry; it costs
            # one request per 5000 issues on Cloud, so it is done directly when one page holds them.
            current, used = self.searcher.matching_ids(self.base, f"{self.project}: membership")
            self.requests += used
        else:
            scoped = self.scope_with_stamps(started) if stamped else None
            skip: set[str] = set()
            if scoped is not None:
                skip = {i for i, (key, stamp) in scoped[2].items() if self.unchanged(i, key, stamp)}
            matched = self.read_changes(skip)
            current, changed_keys = self.membership_by_changes(matched, scoped)
        self.fetch_missed(current)
        self.backlog.keep_only(current)
        self.backlog.order_by_rank()
        if changed_keys is None:
            self.scan_blocker_changes()
        else:
            self.refresh_blockers(changed_keys)
        return self.read, self.requests

    # --- the bot's own bumps, told apart by exact times (Cloud) -----------------------------------

    def stamps_worth_asking(self, saved: Snapshot, started: datetime) -> bool:
        """Whether the bot wrote on issues of the backlog since the last sync (so the changes hold
        issues only the bot touched) and the site gives big pages of ids and times."""
        if not self.client.is_cloud:
            return False
        since = saved.last_sync - timedelta(minutes=OVERLAP_MINUTES)
        self.bot = self.owner.bot_writes()
        if not any(key in self.backlog.raws and when >= since for key, when in self.bot.items()):
            return False
        return self.owner.stamps_allowed(started)

    def unchanged(self, issue_id: str, key: str, stamp: str) -> bool:
        """Whether ``stamp`` (the issue's 'updated' now) shows no change since the snapshot but the
        bot's own comment: exactly the snapshot's time, or exactly the time the bot's write left."""
        if self.backlog.ids.get(issue_id) != key or key not in self.backlog.raws:
            return False  # unseen, or moved (a new key): read it
        now = _when(stamp)
        if now is None:
            return False
        return now == _updated_of(self.backlog.raws[key]) or now == self.bot.get(key)

    def list_with_stamps(self, started: datetime) -> Stamps | None:
        """Id, key and time of every issue the query matches (one page holds them), or None."""
        found, used = self.searcher.stamps(self.base.text(), f"{self.project}: membership")
        self.requests += used
        if found is None:
            self.owner.note_stamps_capped(started)
        return found

    def read_by_id(self, ids: list[str]) -> None:
        """Read ``ids`` in full (100 a request) where the query still matches them."""

        def add(page: Page) -> None:
            self.read += self.backlog.put(page, replace_known=True, fresh_blockers=True)

        self.requests += self.searcher.search_each(
            ids,
            lambda chunk: self.base.and_(f"id in ({', '.join(chunk)})").text(),
            self.fields,
            f"{self.project}: changes",
            add,
        )

    def read_changes(self, skip: set[str] | None = None) -> set[str]:
        """Merge the issues the query matches that changed in the window, but ``skip`` (known ids
        unchanged but for the bot's own comments); returns the ids matched, ``skip`` included."""
        matched: set[str] = set()

        def changed(page: Page) -> None:
            self.read += self.backlog.put(page, replace_known=True, fresh_blockers=True)
            matched.update(ids_of(page))

        changes = self.base.and_(self.window)
        if skip:
            ordered = sorted(skip, key=lambda i: (len(i), i))
            try:
                self._search(
                    changes.and_(f"id not in ({', '.join(ordered)})").text(), self.fields, "changes", changed
                )
                return matched | skip
            except RejectedError as exc:
                # An issue deleted since it was listed: read the changes whole.
                logger.info("%s: %s: reading every change: %s", self.client.where, self.project, exc)
                matched.clear()
        self._search(changes.text(), self.fields, "changes", changed)
        return matched

    def membership_by_changes(
        self, matched: set[str], scoped: tuple[set[str], set[str], Stamps] | None = None
    ) -> tuple[set[str], set[str]]:
        """The ids the query matches now, learnt from what changed where the query looks.

        What changed in the projects the query covers (and those of outside blockers) but no longer
        matches has left. Only when the query's count still disagrees with what is known (a move to
        another project, a deletion, an unseen entry) are its ids listed. Returns the ids and the
        keys of everything that changed. ``scoped``: what ``scope_with_stamps`` listed already.
        """
        if scoped is not None:
            changed_ids, changed_keys = scoped[0], scoped[1]
        else:
            changed_ids, changed_keys = self.scope_changes()
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

    def scope_changes(self) -> tuple[set[str], set[str]]:
        """Ids and keys of what changed in the window where the query looks (ids-only pages)."""
        changed_ids: set[str] = set()
        changed_keys: set[str] = set()

        def scope(page: Page) -> None:
            changed_ids.update(ids_of(page))
            changed_keys.update(keys_of(page))

        projects = self.scope_projects()
        if projects:
            try:
                self._search(self.scope_jql(projects), ["id", "key"], "scope", scope, ids_only=True)
            except RejectedError as exc:
                # A project gone (or renamed) since its issues were read: scan by time alone.
                logger.warning("%s: %s: scanning all changes: %s", self.client.where, self.project, exc)
                changed_ids.clear()
                changed_keys.clear()
                self._search(self.window, ["id", "key"], "scope", scope, ids_only=True)
        return changed_ids, changed_keys

    def scope_jql(self, projects: list[str]) -> str:
        return f"project in ({', '.join(jql_string(p) for p in projects)}) AND {self.window}"

    def scope_with_stamps(self, started: datetime) -> tuple[set[str], set[str], Stamps] | None:
        """``scope_changes`` with each issue's 'updated' in the same pages; None when the site's
        pages of times are small (noted, so later syncs do not ask) or a project is refused."""
        projects = self.scope_projects()
        if not projects:
            return None
        before = self.client.requests
        try:
            found, _ = self.searcher.stamps(self.scope_jql(projects), f"{self.project}: scope")
        except RejectedError:
            return None  # scope_changes meets the refusal again and scans by time alone
        finally:
            self.requests += self.client.requests - before
        if found is None:
            self.owner.note_stamps_capped(started)
            return None
        return set(found), {key for key, _ in found.values()}, found

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
