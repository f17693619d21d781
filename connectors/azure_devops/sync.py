"""Sync one (project, query): a full read or an incremental one on ``System.ChangedDate``, as named steps.

The snapshot in the sync-state store holds raw vendor JSON (work items, blockers' categories,
``synced_at`` and ``full_synced_at``), never mapped issues: every fetch maps it again, so a mapping
fix or a changed field override takes effect without a full read. A full read happens when asked,
when there is no snapshot, and at least once a day (what incremental reads cannot see is put right).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.ado_json import (
    RELATION_KINDS,
    STATE_CATEGORY_NAMES,
    AdoProcess,
    map_work_item,
    work_item_id_from_url,
)
from connectors.azure_devops.discovery import ProcessDiscovery, ProcessInfo
from connectors.azure_devops.search import WorkItemSearch, backlog_condition, wiql_string
from connectors.base import SkippedItem, SyncStateStore
from connectors.mapping_errors import MappingError
from refinebot.config import AzureDevOpsSourceConfig
from refinebot.models import Issue, LinkKind, StatusCategory

logger = logging.getLogger(__name__)

# Incremental windows overlap by this much (clock skew between us and the service); re-reading an
# item is harmless, missing one is not.
CLOCK_SKEW = timedelta(minutes=5)
# Like the Jira connector: a daily full read puts right what incremental reads miss.
FULL_SYNC_EVERY = timedelta(hours=24)
# Outside blockers named in the incremental query (WIQL text is limited to 32,000 characters).
MAX_TARGETS_IN_WIQL = 2_000
# The dependency rule reads the category of an item's blockers only (a successor's does not matter).
TARGET_KINDS = frozenset({LinkKind.BLOCKED_BY})

RawItems = dict[int, dict[str, Any]]
Targets = dict[int, str]  # outside blocker id -> our StatusCategory value


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The last sync of one (project, query): raw work items and dependency targets' categories."""

    synced_at: datetime
    full_synced_at: datetime  # the last full read; incremental reads build on it
    items: RawItems = field(default_factory=dict)
    targets: Targets = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """What one sync read and what it maps to."""

    issues: list[Issue]
    skipped: list[SkippedItem]
    incremental: bool
    fetched: int
    synced_at: datetime


class SnapshotStore:
    """Snapshots in the sync-state store, with the last one of each key kept in memory."""

    def __init__(self, store: SyncStateStore, name: str) -> None:
        self.store = store
        self.name = name
        self._memory: dict[str, Snapshot] = {}  # saves re-parsing megabytes of JSON in one process

    def load(self, key: str) -> Snapshot | None:
        """The saved snapshot, or None when there is none or it cannot be read (logged)."""
        if key in self._memory:
            return self._memory[key]
        data = self.store.load(key)
        if data is None:
            return None
        try:
            synced_at = datetime.fromisoformat(data["synced_at"])
            snapshot = Snapshot(
                synced_at,
                datetime.fromisoformat(data.get("full_synced_at") or data["synced_at"]),
                {int(k): v for k, v in data["items"].items()},
                {int(k): str(v) for k, v in data["targets"].items()},
            )
        except (KeyError, ValueError, TypeError, AttributeError):
            logger.warning("%s: ignoring unreadable sync state %s; doing a full sync", self.name, key)
            return None
        self._memory[key] = snapshot
        return snapshot

    def save(self, key: str, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` in memory and in the store."""
        self._memory[key] = snapshot
        self.store.save(
            key,
            {
                "synced_at": snapshot.synced_at.isoformat(),
                "full_synced_at": snapshot.full_synced_at.isoformat(),
                "items": {str(k): v for k, v in snapshot.items.items()},
                "targets": {str(k): v for k, v in snapshot.targets.items()},
            },
        )


class BacklogSync:
    """Full and incremental reads of a project's backlog, mapped to issues."""

    def __init__(
        self,
        source: AzureDevOpsSourceConfig,
        search: WorkItemSearch,
        discovery: ProcessDiscovery,
        snapshots: SnapshotStore,
        key_prefix: str,
    ) -> None:
        self.source = source
        self.search = search
        self.discovery = discovery
        self.snapshots = snapshots
        self.key_prefix = key_prefix
        self.name = search.client.name
        self.project_of: dict[str, str] = {}  # work item id -> project, for comments

    def effective(self, info: ProcessInfo) -> ProcessInfo:
        """The process with the configured effort/order fields in place of the discovered ones."""
        return ProcessInfo(
            effort_field=self.source.effort_field or info.effort_field,
            order_field=self.source.order_field or info.order_field,
            backlog_types=info.backlog_types,
            state_categories=info.state_categories,
        )

    def snapshot_key(self, project: str, condition: str) -> str:
        """Where one (project, condition)'s snapshot is kept."""
        digest = hashlib.sha256(f"{project}\n{condition}".encode()).hexdigest()[:16]
        return f"{self.key_prefix}:sync:{digest}"

    def sync(self, project: str, query: str | None, *, full: bool) -> SyncOutcome:
        """Read the backlog (incrementally when a recent snapshot allows), save it, map it."""
        started = datetime.now(UTC)
        process = self.discovery.process(project)
        condition = backlog_condition(self.source, project, query, process.done_states())
        key = self.snapshot_key(project, condition)
        snapshot = None if full else self.snapshots.load(key)
        if snapshot is not None and started - snapshot.full_synced_at > FULL_SYNC_EVERY:
            logger.info(
                "%s: project %s: last full sync over %s ago; reading everything",
                self.name,
                project,
                FULL_SYNC_EVERY,
            )
            snapshot = None
        if snapshot is None:
            items, targets = self.full_read(project, condition)
            fetched, incremental, full_synced_at = len(items), False, started
        else:
            items, targets, fetched = self.incremental_read(project, condition, snapshot)
            incremental, full_synced_at = True, snapshot.full_synced_at
        self.snapshots.save(key, Snapshot(started, full_synced_at, items, targets))
        issues, skipped = self.map(project, items, targets)
        return SyncOutcome(issues, skipped, incremental, fetched, started)

    # ----- the steps ------------------------------------------------------------------------------
    def full_read(self, project: str, condition: str) -> tuple[RawItems, Targets]:
        """Every matching item, then the categories of its blockers outside the result."""
        items = self.search.items(project, self.search.ids(project, condition))
        return items, self.target_categories(project, items, {})

    def incremental_read(
        self, project: str, condition: str, snapshot: Snapshot
    ) -> tuple[RawItems, Targets, int]:
        """Current members, then only what changed since the snapshot (and new members) re-read."""
        members = self.search.ids(project, condition)
        changed = set(
            self.search.ids(project, self.changed_condition(project, snapshot), time_precision=True)
        )
        member_set = set(members)
        refetch = [i for i in members if i in changed or i not in snapshot.items]
        stale_targets = [i for i in snapshot.targets if i in changed and i not in member_set]
        # Without the project segment when an outside blocker changed: it may belong to another project.
        fetched = self.search.items(project, [*refetch, *stale_targets], scoped=not stale_targets)
        items = {
            i: fetched.get(i) or snapshot.items[i] for i in members if i in fetched or i in snapshot.items
        }
        targets = {i: c for i, c in snapshot.targets.items() if i not in stale_targets}
        for target_id in stale_targets:
            raw = fetched.get(target_id)
            if raw is not None:
                targets[target_id] = self.discovery.category_of(project, raw).value
        logger.debug(
            "%s: %s: %d members, %d changed, %d refetched",
            self.name,
            project,
            len(members),
            len(changed),
            len(refetch),
        )
        return items, self.target_categories(project, items, targets), len(fetched)

    def changed_condition(self, project: str, snapshot: Snapshot) -> str:
        """Items of the project, and the outside blockers, changed since the snapshot (with overlap)."""
        since = snapshot.synced_at - CLOCK_SKEW
        scope = f"[System.TeamProject] = {wiql_string(project)}"
        outside = sorted(snapshot.targets)
        if outside and len(outside) <= MAX_TARGETS_IN_WIQL:
            # Blockers may live in other projects; their changes matter too.
            scope = f"({scope} OR [System.Id] IN ({', '.join(str(i) for i in outside)}))"
        elif outside:
            logger.info(
                "%s: %d blockers outside %s; their changes are picked up by the next full sync",
                self.name,
                len(outside),
                project,
            )
        return f"{scope} AND [System.ChangedDate] >= {wiql_string(since.strftime('%Y-%m-%dT%H:%M:%SZ'))}"

    def target_categories(
        self, project: str, items: Mapping[int, Mapping[str, Any]], known: Targets
    ) -> Targets:
        """Categories of blockers outside the result: known ones kept, missing ones read in batches."""
        wanted: set[int] = set()
        for raw in items.values():
            for relation in raw.get("relations") or []:
                kind = RELATION_KINDS.get(str(relation.get("rel", "")))
                if kind in TARGET_KINDS and isinstance(relation.get("url"), str):
                    target = work_item_id_from_url(relation["url"])
                    if target.isdigit() and int(target) not in items:
                        wanted.add(int(target))
        categories = {i: c for i, c in known.items() if i in wanted}
        missing = sorted(wanted - set(categories))
        for raw in self.search.states(project, missing) if missing else []:
            categories[int(raw["id"])] = self.discovery.category_of(project, raw).value
        return categories

    def map(
        self, project: str, raw_items: Mapping[int, Mapping[str, Any]], targets: Mapping[int, str]
    ) -> tuple[list[Issue], list[SkippedItem]]:
        """Issues from raw work items; an item that cannot be mapped is skipped with a reason."""
        # Types in the result but not on the process's backlog (tasks...): learn their states.
        for raw in raw_items.values():
            work_type = str((raw.get("fields") or {}).get("System.WorkItemType") or "")
            if work_type:
                self.discovery.states_for(project, work_type)
        process = self.effective(self.discovery.process(project))
        categories: dict[tuple[str, str], StatusCategory] = {
            (work_type, state): STATE_CATEGORY_NAMES[category]
            for work_type, states in process.state_categories.items()
            for state, category in states.items()
            if category in STATE_CATEGORY_NAMES
        }
        ado_process = AdoProcess(
            effort_fields=(process.effort_field,) if process.effort_field else AdoProcess().effort_fields,
            order_fields=(process.order_field,) if process.order_field else AdoProcess().order_fields,
            state_categories=categories,
            blocked_tag=self.source.blocked_tag,
        )
        target_categories = {str(i): StatusCategory(c) for i, c in targets.items()}
        for raw in raw_items.values():
            fields = raw.get("fields") or {}
            pair = (str(fields.get("System.WorkItemType") or ""), str(fields.get("System.State") or ""))
            if pair in categories:
                target_categories[str(raw["id"])] = categories[pair]
        issues: list[Issue] = []
        skipped: list[SkippedItem] = []
        for item_id, raw in raw_items.items():
            try:
                issue = map_work_item(raw, ado_process, target_categories=target_categories)
            except MappingError as exc:
                reason = (
                    f"{self.search.client.where()}: project {project!r}: work item {exc.record}: "
                    f"field {exc.field!r}: {exc.reason}"
                )
                skipped.append(SkippedItem(str(item_id), reason))
                continue
            self.project_of[issue.key] = issue.project or project
            issues.append(issue)
        return issues, skipped
