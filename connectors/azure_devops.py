"""Read an Azure DevOps backlog and comment on work items through the official ``azure-devops`` SDK.

Reads in two steps (WIQL for ids, paged by id so the 20,000-result cap never bites; then
``workitemsbatch`` in chunks of 200 with relations), learns the project's process (effort and order
fields, state categories) once per project, fetches the states of dependency targets outside the
query, and syncs incrementally on ``System.ChangedDate``. Every SDK call goes through one guard that
owns retries: the SDK neither retries POSTs nor keeps the HTTP status on its errors, so a response
hook records status and ``Retry-After`` for the guard to act on.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from html import escape
from pathlib import Path
from typing import Any, TypeVar

from connectors.ado_json import (
    STATE_CATEGORY_NAMES,
    AdoProcess,
    map_work_item,
    work_item_id_from_url,
)
from connectors.base import ConnectorError, FetchResult, SkippedItem
from connectors.mapping_errors import MappingError
from refinebot.config import AzureDevOpsSourceConfig
from refinebot.models import Issue, LinkKind, StatusCategory

logger = logging.getLogger(__name__)

T = TypeVar("T")

BATCH_SIZE = 200  # VS403474 above this
# Incremental windows overlap by this much (clock skew between us and the service); re-reading an
# item is harmless, missing one is not.
CLOCK_SKEW = timedelta(minutes=5)
# Like the Jira connector: a daily full read puts right what incremental reads miss.
FULL_SYNC_EVERY = timedelta(hours=24)
PROCESS_CACHE_MAX_AGE = timedelta(hours=12)  # as long as the SDK caches its resource locations
MAX_RETRY_AFTER = 300.0
# Outside blockers named in the incremental query (WIQL text is limited to 32,000 characters).
MAX_TARGETS_IN_WIQL = 2_000
DONE_CATEGORIES = frozenset({"Completed", "Removed"})  # left out of the default backlog query
# The dependency rule reads the category of an item's blockers only (a successor's does not matter).
TARGET_KINDS = frozenset({LinkKind.BLOCKED_BY})
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_STATE_FIELDS = ["System.Id", "System.WorkItemType", "System.State", "System.TeamProject"]


def wiql_string(value: str) -> str:
    """A WIQL string literal, quotes doubled: a name with quotes cannot change the query."""
    if any(ch in value for ch in "\r\n\x00"):
        raise ConnectorError(f"WIQL value {value!r} contains a line break or NUL")
    return "'" + value.replace("'", "''") + "'"


_WIQL_TOKENS = re.compile(
    r"'(?:[^']|'')*'|\[[^\]]*\]|\b(?:where|order\s+by|asof|from)\b|[^'\[]", re.IGNORECASE
)


def wiql_condition(query: str) -> str:
    """A configured query's condition: a bare condition as is, or the WHERE clause of a WIQL."""
    text = query.strip()
    if not re.match(r"select\b", text, re.IGNORECASE):
        return text
    marks: dict[str, tuple[int, int]] = {}
    for match in _WIQL_TOKENS.finditer(text):
        word = re.sub(r"\s+", " ", match.group(0).lower())
        if word in ("where", "order by", "asof", "from") and word not in marks:
            marks[word] = (match.start(), match.end())
    if "from" in marks:
        source = text[marks["from"][1] :].split(None, 1)[0] if text[marks["from"][1] :].strip() else ""
        if source.lower() != "workitems":
            raise ConnectorError(
                f"query must select FROM WorkItems (link queries are not supported): {query!r}"
            )
    if "where" not in marks:
        return ""
    end = min(
        (marks[k][0] for k in ("order by", "asof") if k in marks and marks[k][0] > marks["where"][0]),
        default=len(text),
    )
    return text[marks["where"][1] : end].strip()


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What the connector learned about a project's process; cached per project."""

    effort_field: str | None
    order_field: str | None
    backlog_types: tuple[str, ...]
    state_categories: Mapping[str, Mapping[str, str]]  # type -> state -> ADO category name

    def to_json(self) -> dict[str, Any]:
        return {
            "effort_field": self.effort_field,
            "order_field": self.order_field,
            "backlog_types": list(self.backlog_types),
            "state_categories": {t: dict(s) for t, s in self.state_categories.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessInfo:
        return cls(
            effort_field=data.get("effort_field"),
            order_field=data.get("order_field"),
            backlog_types=tuple(data.get("backlog_types") or ()),
            state_categories={str(t): dict(s) for t, s in (data.get("state_categories") or {}).items()},
        )

    def done_states(self) -> list[str]:
        """State names in the Completed/Removed categories of the backlog types."""
        names = {
            state
            for work_type in self.backlog_types
            for state, category in self.state_categories.get(work_type, {}).items()
            if category in DONE_CATEGORIES
        }
        return sorted(names)


@dataclass
class _Snapshot:
    """The last sync of one (project, query): raw work items and dependency targets' categories."""

    key: str
    synced_at: datetime
    items: dict[int, dict[str, Any]] = field(default_factory=dict)
    targets: dict[int, str] = field(default_factory=dict)  # id -> our StatusCategory value
    full_synced_at: datetime | None = None  # the last full read; incremental reads build on it


class _ResponseLog(threading.local):
    """The last HTTP response on this thread (the SDK's exceptions do not keep the status)."""

    status: int | None = None
    retry_after: str | None = None


class AzureDevOpsConnector:
    """A ``CommentingConnector`` for one Azure DevOps organisation (or on-premises collection)."""

    def __init__(
        self,
        source: AzureDevOpsSourceConfig,
        *,
        name: str = "azure_devops",
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.source = source
        self.name = name
        self._sleep = sleep
        self._jitter = jitter
        self._log = _ResponseLog()
        self._requests = 0
        self._count_lock = threading.Lock()
        self._formats: dict[str, dict[str, str]] = {}  # work item id -> multilineFieldsFormat, per response
        self._pending_delay = 0.0
        self._clients: tuple[Any, Any] | None = None
        self._processes: dict[str, ProcessInfo] = {}
        self._snapshots: dict[str, _Snapshot] = {}
        self._project_of: dict[str, str] = {}
        self._type_states: dict[tuple[str, str], Mapping[str, str]] = {}
        self._markdown = True

    # ----- public API -----------------------------------------------------------------------------
    @property
    def requests(self) -> int:
        """Requests made by this connector's clients (not the SDK's OPTIONS/ResourceAreas calls)."""
        return self._requests

    def fetch(self, project: str, query: str | None, *, full: bool = False) -> FetchResult:
        """Work items matching ``query`` (default: open backlog), incrementally if possible."""
        started_requests = self._requests
        started = datetime.now(UTC)
        process = self._process(project)
        condition = self._condition(project, query, process)
        key = self._snapshot_key(project, condition)
        snapshot = None if full else self._load_snapshot(key)
        if (
            snapshot is not None
            and started - (snapshot.full_synced_at or snapshot.synced_at) > FULL_SYNC_EVERY
        ):
            # What incremental reads cannot see (deletions' side effects, blockers' states beyond the refresh
            # limit) is put right by a full read at least once a day.
            logger.info(
                "%s: project %s: last full sync over %s ago; reading everything",
                self.name,
                project,
                FULL_SYNC_EVERY,
            )
            snapshot = None
        full_synced_at = snapshot.full_synced_at if snapshot is not None else started
        if snapshot is None:
            raw_items, targets = self._full_read(project, condition, process)
            incremental, fetched = False, len(raw_items)
        else:
            raw_items, targets, fetched = self._incremental_read(project, condition, process, snapshot)
            incremental = True
        snapshot = _Snapshot(key, started, raw_items, targets, full_synced_at or started)
        self._save_snapshot(snapshot)
        issues, skipped = self._map(project, raw_items, targets, process)
        logger.info(
            "%s: project %s: %d items (%s), %d skipped, %d requests",
            self.name,
            project,
            len(issues),
            "incremental" if incremental else "full",
            len(skipped),
            self._requests - started_requests,
        )
        # The issues are the whole backlog either way (an incremental read is merged into the last
        # snapshot), so ``full`` is True; ``extra`` says how it was read.
        return FetchResult(
            issues=issues,
            skipped=skipped,
            full=True,
            synced_at=started,
            requests=self._requests - started_requests,
            extra={"incremental": incremental, "fetched": fetched},
        )

    def find_comment(self, issue_key: str, marker: str) -> str | None:
        """The id of the comment carrying ``marker`` on the work item, if one exists."""
        project, item_id = self._comment_target(issue_key)
        wit = self._wit()
        token: str | None = None
        needle = _marker_text(marker)
        while True:
            page = self._call(
                f"comments of work item {item_id}",
                partial(wit.get_comments, project, item_id, top=200, continuation_token=token),
                project=project,
            )
            for comment in page.comments or []:
                if needle in (comment.text or "") or needle in (comment.rendered_text or ""):
                    return str(comment.id)
            token = page.continuation_token
            if not token:
                return None

    def add_comment(self, issue_key: str, body: str, *, marker: str) -> str:
        """Post ``body`` (Markdown) with a hidden marker; a retried POST never posts twice."""
        project, item_id = self._comment_target(issue_key)
        text = f"{body}\n\n{_marker_text(marker)}"
        html = f"{markdown_to_html(body)}{_marker_text(marker)}"
        from azure.devops.v7_1.work_item_tracking.models import CommentCreate

        wit = self._wit()

        def post() -> Any:
            if self._markdown:
                return wit.add_work_item_comment(
                    CommentCreate(text=text), project, item_id, format="markdown"
                )
            return wit.add_comment(CommentCreate(text=html), project, item_id)

        def already_posted() -> Any:
            return self.find_comment(issue_key, marker)

        try:
            comment = self._call(
                f"comment on work item {item_id}", post, project=project, recover=already_posted
            )
        except _FormatUnsupportedError:
            logger.info("%s: server rejects markdown comments; posting HTML", self.name)
            self._markdown = False
            comment = self._call(
                f"comment on work item {item_id}", post, project=project, recover=already_posted
            )
        return comment if isinstance(comment, str) else str(comment.id)

    def update_comment(self, issue_key: str, comment_id: str, body: str, *, marker: str) -> None:
        """Replace a comment's text in place (the comments API has no notification switch)."""
        project, item_id = self._comment_target(issue_key)
        from azure.devops.v7_1.work_item_tracking.models import CommentUpdate

        wit = self._wit()
        if self._markdown:
            request = CommentUpdate(text=f"{body}\n\n{_marker_text(marker)}")

            def patch() -> Any:
                return wit.update_work_item_comment(
                    request, project, item_id, int(comment_id), format="markdown"
                )
        else:
            request = CommentUpdate(text=f"{markdown_to_html(body)}{_marker_text(marker)}")

            def patch() -> Any:
                return wit.update_comment(request, project, item_id, int(comment_id))

        # A PATCH of the same text is idempotent, so retrying it is safe.
        what = f"update comment {comment_id} on work item {item_id}"
        try:
            self._call(what, patch, project=project)
        except _FormatUnsupportedError:
            logger.info("%s: server rejects markdown comments; updating as HTML", self.name)
            self._markdown = False
            self.update_comment(issue_key, comment_id, body, marker=marker)

    def _comment_target(self, issue_key: str) -> tuple[str, int]:
        """(project, id) of a work item key; the project is from the last fetch or one lookup."""
        if not issue_key.strip().isdigit():
            raise ConnectorError(f"{self._where()}: {issue_key!r} is not a work item id")
        item_id = int(issue_key)
        project = self._project_of.get(str(item_id))
        if project is None:
            from azure.devops.v7_1.work_item_tracking.models import WorkItemBatchGetRequest

            wit = self._wit()
            request = WorkItemBatchGetRequest(ids=[item_id], fields=_STATE_FIELDS, error_policy="Omit")
            found = [
                item
                for item in self._call(
                    f"project of work item {item_id}",
                    lambda: wit.get_work_items_batch(request),
                    project=None,
                )
                or []
                if item is not None
            ]
            if not found:
                raise ConnectorError(f"{self._where()}: work item {item_id} not found")
            project = str((found[0].fields or {}).get("System.TeamProject") or "")
            self._project_of[str(item_id)] = project
        return project, item_id

    # ----- reading --------------------------------------------------------------------------------
    def _full_read(
        self, project: str, condition: str, process: ProcessInfo
    ) -> tuple[dict[int, dict[str, Any]], dict[int, str]]:
        ids = self._wiql_ids(project, condition)
        items = self._batch(project, ids)
        targets = self._target_categories(project, items, {}, process)
        return items, targets

    def _incremental_read(
        self, project: str, condition: str, process: ProcessInfo, snapshot: _Snapshot
    ) -> tuple[dict[int, dict[str, Any]], dict[int, str], int]:
        members = self._wiql_ids(project, condition)
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
        changed_condition = (
            f"{scope} AND [System.ChangedDate] >= {wiql_string(since.strftime('%Y-%m-%dT%H:%M:%SZ'))}"
        )
        changed = set(self._wiql_ids(project, changed_condition, time_precision=True))
        member_set = set(members)
        refetch = [i for i in members if i in changed or i not in snapshot.items]
        stale_targets = [i for i in snapshot.targets if i in changed and i not in member_set]
        # Without the project segment: an outside blocker may belong to another project.
        fetched = self._batch(project, [*refetch, *stale_targets], scoped=not stale_targets)
        items = {
            i: fetched.get(i) or snapshot.items[i] for i in members if i in fetched or i in snapshot.items
        }
        targets = {i: c for i, c in snapshot.targets.items() if i not in stale_targets}
        for target_id in stale_targets:
            raw = fetched.get(target_id)
            if raw is not None:
                targets[target_id] = self._category_of(project, raw, process).value
        targets = self._target_categories(project, items, targets, process)
        logger.debug(
            "%s: %s: %d members, %d changed, %d refetched",
            self.name,
            project,
            len(members),
            len(changed),
            len(refetch),
        )
        return items, targets, len(fetched)

    def _wiql_ids(self, project: str, condition: str, *, time_precision: bool = False) -> list[int]:
        """Every id matching ``condition`` in id order, paged by id so no query passes the cap."""
        from azure.devops.v7_1.work_item_tracking.models import TeamContext, Wiql

        wit = self._wit()
        page_size = self.source.wiql_page_size
        ids: list[int] = []
        last = 0
        while True:
            text = (
                "SELECT [System.Id] FROM WorkItems WHERE "
                f"({condition}) AND [System.Id] > {last} ORDER BY [System.Id]"
            )
            try:
                result = self._call(
                    f"WIQL query of project {project!r}",
                    partial(
                        wit.query_by_wiql,
                        Wiql(query=text),
                        team_context=TeamContext(project=project),
                        time_precision=time_precision or None,
                        top=page_size,
                    ),
                    project=project,
                )
            except _ResultCapError:
                if page_size <= 1:
                    raise ConnectorError(f"{self._where()}: WIQL result cap hit even for one item") from None
                page_size = max(1, page_size // 2)  # a server that ignores $top: smaller windows
                logger.warning(
                    "%s: VS402337 from %s; retrying with pages of %d", self.name, project, page_size
                )
                continue
            page = [int(ref.id) for ref in (result.work_items or [])]
            ids.extend(page)
            if len(page) < page_size or not page:
                return ids
            last = page[-1]

    def _batch(self, project: str, ids: Sequence[int], *, scoped: bool = True) -> dict[int, dict[str, Any]]:
        """Work items with relations, 200 per request; ids the server omits are dropped."""
        from azure.devops.v7_1.work_item_tracking.models import WorkItemBatchGetRequest

        wit = self._wit()
        found: dict[int, dict[str, Any]] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), BATCH_SIZE):
            request = WorkItemBatchGetRequest(ids=chunk, expand="Relations", error_policy="Omit")
            items = self._call(
                f"work items batch of project {project!r}",
                partial(wit.get_work_items_batch, request, project=project if scoped else None),
                project=project,
            )
            for item in items or []:
                if item is None:
                    continue
                raw = _raw_work_item(item)
                formats = self._formats.pop(str(raw["id"]), None)
                if formats:
                    raw["multilineFieldsFormat"] = formats
                found[int(raw["id"])] = raw
        return found

    def _target_categories(
        self,
        project: str,
        items: Mapping[int, Mapping[str, Any]],
        known: Mapping[int, str],
        process: ProcessInfo,
    ) -> dict[int, str]:
        """Categories of dependency targets outside the result, read 200 per request if missing."""
        wanted: set[int] = set()
        for raw in items.values():
            for relation in raw.get("relations") or []:
                if _relation_kind(relation) in TARGET_KINDS and isinstance(relation.get("url"), str):
                    target = work_item_id_from_url(relation["url"])
                    if target.isdigit() and int(target) not in items:
                        wanted.add(int(target))
        categories = {i: c for i, c in known.items() if i in wanted}
        missing = sorted(wanted - set(categories))
        if not missing:
            return categories
        from azure.devops.v7_1.work_item_tracking.models import WorkItemBatchGetRequest

        wit = self._wit()
        for chunk in _chunks(missing, BATCH_SIZE):
            # The project segment is left out: a predecessor may live in another project.
            request = WorkItemBatchGetRequest(ids=chunk, fields=_STATE_FIELDS, error_policy="Omit")
            targets = self._call(
                "states of linked work items",
                partial(wit.get_work_items_batch, request),
                project=project,
            )
            for item in targets or []:
                if item is not None:
                    raw = _raw_work_item(item)
                    categories[int(raw["id"])] = self._category_of(project, raw, process).value
        return categories

    def _category_of(self, project: str, raw: Mapping[str, Any], process: ProcessInfo) -> StatusCategory:
        fields = raw.get("fields") or {}
        work_type = str(fields.get("System.WorkItemType") or "")
        state = str(fields.get("System.State") or "")
        owner = str(fields.get("System.TeamProject") or project)
        known = self._states_for(owner, work_type)
        category = known.get(state)
        if category is not None and category in STATE_CATEGORY_NAMES:
            return STATE_CATEGORY_NAMES[category]
        return StatusCategory.guess_from_status(state)

    def _map(
        self,
        project: str,
        raw_items: Mapping[int, Mapping[str, Any]],
        targets: Mapping[int, str],
        process: ProcessInfo,
    ) -> tuple[list[Issue], list[SkippedItem]]:
        # Types in the result but not on the process's backlog (tasks...): fetch their states.
        for raw in raw_items.values():
            work_type = str((raw.get("fields") or {}).get("System.WorkItemType") or "")
            if work_type:
                self._states_for(project, work_type)
        process = self._effective(self._processes.get(project, process))
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
            work_type = str((raw.get("fields") or {}).get("System.WorkItemType") or "")
            state = str((raw.get("fields") or {}).get("System.State") or "")
            if (work_type, state) in categories:
                target_categories[str(raw["id"])] = categories[(work_type, state)]
        issues: list[Issue] = []
        skipped: list[SkippedItem] = []
        for item_id, raw in raw_items.items():
            try:
                issue = map_work_item(raw, ado_process, target_categories=target_categories)
            except MappingError as exc:
                reason = (
                    f"{self._where()}: project {project!r}: work item {exc.record}: "
                    f"field {exc.field!r}: {exc.reason}"
                )
                skipped.append(SkippedItem(str(item_id), reason))
                continue
            self._project_of[issue.key] = issue.project or project
            issues.append(issue)
        return issues, skipped

    # ----- process --------------------------------------------------------------------------------
    def _process(self, project: str) -> ProcessInfo:
        """Effort/order fields and backlog state categories: from memory, disk or server."""
        if project in self._processes:
            return self._effective(self._processes[project])
        cached = self._read_cache(f"process-{project}", PROCESS_CACHE_MAX_AGE)
        if cached is not None:
            info = ProcessInfo.from_json(cached)
        else:
            work = self._work()
            config = self._call(
                f"process configuration of project {project!r}",
                lambda: work.get_process_configuration(project),
                project=project,
            )
            type_fields = config.type_fields or {}
            effort = type_fields.get("Effort")
            order = type_fields.get("Order")
            backlog_types: list[str] = []
            for category in (config.requirement_backlog, config.bug_work_items):
                for ref in getattr(category, "work_item_types", None) or []:
                    if ref.name and ref.name not in backlog_types:
                        backlog_types.append(ref.name)
            info = ProcessInfo(
                effort_field=effort.reference_name if effort else None,
                order_field=order.reference_name if order else None,
                backlog_types=tuple(backlog_types),
                state_categories={},
            )
            self._processes[project] = info
            for work_type in backlog_types:
                self._states_for(project, work_type)
            info = self._processes[project]
        # What the server said is cached; the config's overrides apply on top, so changing them
        # takes effect at once.
        self._processes[project] = info
        self._write_cache(f"process-{project}", info.to_json())
        return self._effective(info)

    def _effective(self, info: ProcessInfo) -> ProcessInfo:
        """The process with the configured effort/order fields in place of the discovered ones."""
        return ProcessInfo(
            effort_field=self.source.effort_field or info.effort_field,
            order_field=self.source.order_field or info.order_field,
            backlog_types=info.backlog_types,
            state_categories=info.state_categories,
        )

    def _states_for(self, project: str, work_type: str) -> Mapping[str, str]:
        """State -> category of one work item type, fetched once per (project, type)."""
        if not work_type:
            return {}
        info = self._processes.get(project)
        if info is not None and work_type in info.state_categories:
            return info.state_categories[work_type]
        key = (project.lower(), work_type.lower())
        if key in self._type_states:
            return self._type_states[key]
        # Types of other projects (a predecessor elsewhere) are cached on disk like the process.
        foreign = self._read_cache(f"types-{project}", PROCESS_CACHE_MAX_AGE) or {}
        if info is None and isinstance(foreign.get(work_type), dict):
            self._type_states[key] = {str(k): str(v) for k, v in foreign[work_type].items()}
            return self._type_states[key]
        wit = self._wit()
        try:
            states = self._call(
                f"states of work item type {work_type!r} in project {project!r}",
                lambda: wit.get_work_item_type_states(project, work_type),
                project=project,
            )
            found = {str(s.name): str(s.category) for s in states or []}
        except _NotFoundError:
            logger.warning(
                "%s: project %s has no work item type %r; guessing categories from state names",
                self.name,
                project,
                work_type,
            )
            found = {}
        self._type_states[key] = found
        if info is None:
            self._write_cache(f"types-{project}", {**foreign, work_type: found})
        else:
            merged = {**info.state_categories, work_type: found}
            self._processes[project] = ProcessInfo(
                info.effort_field, info.order_field, info.backlog_types, merged
            )
            self._write_cache(f"process-{project}", self._processes[project].to_json())
        return found

    def _condition(self, project: str, query: str | None, process: ProcessInfo) -> str:
        parts = [f"[System.TeamProject] = {wiql_string(project)}"]
        if self.source.area_path:
            parts.append(f"[System.AreaPath] UNDER {wiql_string(self.source.area_path)}")
        if query and query.strip():
            condition = wiql_condition(query)
            if condition:
                parts.append(f"({condition})")
        else:
            parts.append(
                "([System.WorkItemType] IN GROUP 'Microsoft.RequirementCategory' "
                "OR [System.WorkItemType] IN GROUP 'Microsoft.BugCategory')"
            )
            done = process.done_states()
            if done:
                parts.append(f"[System.State] NOT IN ({', '.join(wiql_string(s) for s in done)})")
        return " AND ".join(parts)

    # ----- snapshots and caches -------------------------------------------------------------------
    def _snapshot_key(self, project: str, condition: str) -> str:
        digest = hashlib.sha256(f"{self.source.url}\n{project}\n{condition}".encode()).hexdigest()[:16]
        return f"sync-{digest}"

    def _load_snapshot(self, key: str) -> _Snapshot | None:
        if key in self._snapshots:
            return self._snapshots[key]
        data = self._read_cache(key, None)
        if data is None:
            return None
        try:
            synced_at = datetime.fromisoformat(data["synced_at"])
            snapshot = _Snapshot(
                key,
                synced_at,
                {int(k): v for k, v in data["items"].items()},
                {int(k): str(v) for k, v in data["targets"].items()},
                datetime.fromisoformat(data.get("full_synced_at") or data["synced_at"]),
            )
        except (KeyError, ValueError, TypeError, AttributeError):
            logger.warning("%s: ignoring unreadable sync state %s; doing a full sync", self.name, key)
            return None
        self._snapshots[key] = snapshot
        return snapshot

    def _save_snapshot(self, snapshot: _Snapshot) -> None:
        self._snapshots[snapshot.key] = snapshot
        self._write_cache(
            snapshot.key,
            {
                "synced_at": snapshot.synced_at.isoformat(),
                "full_synced_at": (snapshot.full_synced_at or snapshot.synced_at).isoformat(),
                "items": {str(k): v for k, v in snapshot.items.items()},
                "targets": {str(k): v for k, v in snapshot.targets.items()},
            },
        )

    def _cache_path(self, name: str) -> Path | None:
        if self.source.cache_dir is None:
            return None
        url_digest = hashlib.sha256(self.source.url.encode()).hexdigest()[:12]
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        return self.source.cache_dir / "refinebot" / url_digest / f"{safe}.json"

    def _read_cache(self, name: str, max_age: timedelta | None) -> dict[str, Any] | None:
        path = self._cache_path(name)
        if path is None or not path.is_file():
            return None
        if max_age is not None and time.time() - path.stat().st_mtime > max_age.total_seconds():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("%s: cannot read cache file %s; ignoring it", self.name, path)
            return None
        return data if isinstance(data, dict) else None

    def _write_cache(self, name: str, data: Mapping[str, Any]) -> None:
        path = self._cache_path(name)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(data), encoding="utf-8")
            temporary.replace(path)
        except OSError as exc:
            logger.warning("%s: cannot write cache file %s: %s", self.name, path, exc.strerror)

    # ----- SDK clients and the call guard ---------------------------------------------------------
    def _where(self) -> str:
        return f"source {self.name!r} ({self.source.url})"

    def _connect(self) -> tuple[Any, Any]:
        if self._clients is not None:
            return self._clients
        token = self.source.token()
        if token is None:
            raise ConnectorError(
                f"{self._where()}: environment variable {self.source.token_env} is not set "
                "(it must hold a personal access token)"
            )
        if self.source.cache_dir is not None:
            # The SDK reads this once, at import, for its 12-hour cache of resource locations.
            os.environ.setdefault("AZURE_DEVOPS_CACHE_DIR", str(self.source.cache_dir / "azure-devops-sdk"))
        from azure.devops.connection import Connection
        from msrest.authentication import BasicAuthentication

        connection = Connection(
            base_url=self.source.url, creds=BasicAuthentication("", token.get_secret_value())
        )
        wit = self._call(
            "connect (resource areas)",
            connection.clients_v7_1.get_work_item_tracking_client,
            project=None,
        )
        work = self._call("connect (resource areas)", connection.clients_v7_1.get_work_client, project=None)
        for client in (wit, work):
            self._configure(client)
        self._clients = (wit, work)
        return self._clients

    def _configure(self, client: Any) -> None:
        """Make the guard the only retry layer; let it see statuses and Retry-After."""
        policy = client.config.retry_policy.policy
        policy.total = policy.connect = policy.read = policy.status = 0
        policy.status_forcelist = frozenset()
        policy.respect_retry_after_header = False
        client.config.connection.timeout = self.source.timeout_seconds
        client.config.hooks.append(self._on_response)

    def _on_response(self, response: Any, *args: Any, **kwargs: Any) -> None:
        with self._count_lock:
            self._requests += 1
        # The SDK's WorkItem model drops ``multilineFieldsFormat`` (which fields hold Markdown, not HTML):
        # read it from the raw body, only when it is there at all.
        content = getattr(response, "content", b"") or b""
        if b"multilineFieldsFormat" in content:
            self._remember_formats(content)
        self._log.status = int(response.status_code)
        self._log.retry_after = response.headers.get("Retry-After")
        remaining = response.headers.get("X-RateLimit-Remaining")
        if remaining is not None:
            logger.debug(
                "%s: X-RateLimit-Remaining=%s resource=%s",
                self.name,
                remaining,
                response.headers.get("X-RateLimit-Resource"),
            )

    def _remember_formats(self, content: bytes) -> None:
        try:
            data = json.loads(content)
        except ValueError:
            return
        items = data.get("value") if isinstance(data, dict) else None
        for item in items if isinstance(items, list) else [data]:
            if isinstance(item, dict) and isinstance(item.get("multilineFieldsFormat"), dict):
                with self._count_lock:
                    self._formats[str(item.get("id"))] = dict(item["multilineFieldsFormat"])

    def _wit(self) -> Any:
        return self._connect()[0]

    def _work(self) -> Any:
        return self._connect()[1]

    def _call(
        self,
        what: str,
        operation: Callable[[], T],
        *,
        project: str | None,
        recover: Callable[[], Any] | None = None,
    ) -> T:
        """Run one SDK call with bounded retries; ``recover`` checks if a failed write happened."""
        from azure.core.exceptions import DeserializationError
        from azure.devops.exceptions import AzureDevOpsAuthenticationError, AzureDevOpsServiceError
        from msrest.exceptions import AuthenticationError, ClientRequestError

        attempts = self.source.retry_attempts
        last_problem = ""
        for attempt in range(1, attempts + 1):
            if self._pending_delay > 0:
                delay, self._pending_delay = self._pending_delay, 0.0
                logger.info("%s: server asked to slow down; waiting %.2f s", self.name, delay)
                self._sleep(delay)
            self._log.status = None
            self._log.retry_after = None
            try:
                result = operation()
            except (DeserializationError, TypeError, KeyError, ValueError) as exc:
                # A 200 that is not Azure DevOps JSON: a login page, a proxy, a wrong URL.
                raise ConnectorError(
                    f"{self._where()}: {what}: the server's answer is not Azure DevOps JSON "
                    f"({type(exc).__name__}); check that url is the organisation or collection URL"
                ) from None
            except (AzureDevOpsAuthenticationError, AuthenticationError):
                raise ConnectorError(
                    f"{self._where()}: authentication failed (HTTP 401) for {what}; "
                    "check the personal access "
                    f"token in {self.source.token_env} (it may be expired or revoked)"
                ) from None
            except ClientRequestError as exc:
                status = self._log.status
                if status is not None and status < 400:
                    # A success seen earlier in this call (a discovery request): not this failure.
                    status = None
                message = _error_message(exc)
                if isinstance(exc, AzureDevOpsServiceError) or status is not None:
                    self._raise_for_status(what, project, status, message)
                    last_problem = f"HTTP {status}: {message}"
                else:
                    last_problem = f"connection failed: {message}"
                retry_after = self._log.retry_after
                if recover is not None:
                    # The write may have reached the server before failing: look first.
                    done = recover()
                    if done is not None:
                        logger.info("%s: %s succeeded before the failure; not repeating it", self.name, what)
                        return done  # type: ignore[no-any-return]
                if attempt == attempts:
                    break
                delay = self._delay(attempt, retry_after)
                logger.warning(
                    "%s: %s: %s; retry %d/%d in %.2f s",
                    self.name,
                    what,
                    last_problem,
                    attempt,
                    attempts - 1,
                    delay,
                )
                self._sleep(delay)
                continue
            retry_after = _parse_retry_after(self._log.retry_after)
            if retry_after:
                # A delayed 200: the service is throttling us softly; pause before the next request.
                self._pending_delay = retry_after
            return result
        plural = "" if attempts == 1 else "s"
        raise ConnectorError(
            f"{self._where()}: {what} failed after {attempts} attempt{plural}; last error: {last_problem}"
        )

    def _raise_for_status(self, what: str, project: str | None, status: int | None, message: str) -> None:
        """Raise a clear ``ConnectorError`` unless the failure is worth retrying."""
        if status in _TRANSIENT_STATUSES:
            return
        if status == 403:
            raise ConnectorError(
                f"{self._where()}: access denied (HTTP 403) for {what}; "
                f"the token in {self.source.token_env} "
                f"needs the Work Items scope (read, and write for comments): {message}"
            )
        if status == 404 and ("TF200016" in message or "project" in message.lower()) and project is not None:
            raise ConnectorError(f"{self._where()}: project {project!r} not found (HTTP 404): {message}")
        if status == 404 and "VS402323" in message:
            raise _NotFoundError(message)
        if status == 400 and "VS402337" in message:
            raise _ResultCapError(message)
        if status == 400 and "format" in message.lower() and "comment" in what:
            raise _FormatUnsupportedError(message)
        shown = f"HTTP {status}" if status is not None else "error"
        raise ConnectorError(f"{self._where()}: {what} failed ({shown}): {message}")

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        honoured = _parse_retry_after(retry_after)
        if honoured is not None:
            return min(honoured, MAX_RETRY_AFTER)
        ceiling = min(
            self.source.backoff_max_seconds, self.source.backoff_base_seconds * 2.0 ** (attempt - 1)
        )
        # "Equal jitter": spread over the upper half, so never zero and never over the cap.
        return ceiling / 2 + float(self._jitter()) * ceiling / 2


class _NotFoundError(ConnectorError):
    """A 404 the caller handles (an unknown work item type)."""


class _ResultCapError(ConnectorError):
    """VS402337: the WIQL matched more than 20,000 items."""


class _FormatUnsupportedError(ConnectorError):
    """The server does not take the comment ``format`` parameter (older servers)."""


def _error_message(exc: BaseException) -> str:
    message = str(getattr(exc, "message", None) or exc)
    return message.strip()[:500]


def _parse_retry_after(value: str | None) -> float | None:
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _chunks(values: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def _relation_kind(relation: Mapping[str, Any]) -> LinkKind | None:
    from connectors.ado_json import RELATION_KINDS

    return RELATION_KINDS.get(str(relation.get("rel", "")))


def _raw_work_item(item: Any) -> dict[str, Any]:
    """The SDK's ``WorkItem`` model back to the REST JSON shape ``map_work_item`` reads."""
    return {
        "id": item.id,
        "rev": item.rev,
        "fields": dict(item.fields or {}),
        "relations": [
            {"rel": r.rel, "url": r.url, "attributes": dict(r.attributes or {})}
            for r in (item.relations or [])
        ],
        "url": item.url,
    }


def _marker_text(marker: str) -> str:
    # An HTML comment survives both markdown and HTML comments and is invisible when rendered.
    return f"<!-- refinebot:{marker.replace('--', '- -')} -->"


def markdown_to_html(text: str) -> str:
    """Minimal Markdown to HTML for servers without markdown comments (paragraphs, lists, bold)."""
    blocks: list[str] = []
    items: list[str] = []
    paragraph: list[str] = []

    def inline(line: str) -> str:
        return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escape(line))

    def flush() -> None:
        if items:
            blocks.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
            items.clear()
        if paragraph:
            blocks.append("<p>" + "<br>".join(inline(p) for p in paragraph) + "</p>")
            paragraph.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("- ", "* ")):
            if paragraph:
                flush()
            items.append(stripped[2:])
        elif not stripped:
            flush()
        else:
            if items:
                flush()
            paragraph.append(stripped)
    flush()
    return "".join(blocks)
