"""Learn a project's process: effort and order fields, backlog types and each type's state categories.

Asked once per project and kept twice: in memory for the life of the connector, and in the sync-state
store for 12 hours (as long as the SDK caches its resource locations), so a new process does not ask
again. The age is checked against a ``saved_at`` kept inside the stored value. What the server said is
stored; the configured effort/order fields apply on top, so changing them takes effect at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.ado_json import STATE_CATEGORY_NAMES
from connectors.azure_devops.client import AdoClient, NotFoundError
from connectors.base import SyncStateStore
from refinebot.models import StatusCategory

logger = logging.getLogger(__name__)

PROCESS_CACHE_MAX_AGE = timedelta(hours=12)
DONE_CATEGORIES = frozenset({"Completed", "Removed"})  # left out of the default backlog query


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What the connector learned about a project's process."""

    effort_field: str | None
    order_field: str | None
    backlog_types: tuple[str, ...]
    state_categories: Mapping[str, Mapping[str, str]]  # type -> state -> ADO category name

    def to_json(self) -> dict[str, Any]:
        """The JSON the store keeps."""
        return {
            "effort_field": self.effort_field,
            "order_field": self.order_field,
            "backlog_types": list(self.backlog_types),
            "state_categories": {t: dict(s) for t, s in self.state_categories.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessInfo:
        """The process ``to_json`` wrote."""
        return cls(
            effort_field=data.get("effort_field"),
            order_field=data.get("order_field"),
            backlog_types=tuple(data.get("backlog_types") or ()),
            state_categories={str(t): dict(s) for t, s in (data.get("state_categories") or {}).items()},
        )

    def with_states(self, work_type: str, states: Mapping[str, str]) -> ProcessInfo:
        """This process with ``work_type``'s state categories added."""
        merged = {**self.state_categories, work_type: dict(states)}
        return ProcessInfo(self.effort_field, self.order_field, self.backlog_types, merged)

    def done_states(self) -> list[str]:
        """State names in the Completed/Removed categories of the backlog types."""
        names = {
            state
            for work_type in self.backlog_types
            for state, category in self.state_categories.get(work_type, {}).items()
            if category in DONE_CATEGORIES
        }
        return sorted(names)


class ProcessDiscovery:
    """Process and state categories per project, from memory, the store or the server."""

    def __init__(self, client: AdoClient, store: SyncStateStore, key_prefix: str) -> None:
        self.client = client
        self.store = store
        self.key_prefix = key_prefix
        self._processes: dict[str, ProcessInfo] = {}
        self._saved_at: dict[str, str] = {}  # store key -> when its value was first learned
        self._type_states: dict[tuple[str, str], Mapping[str, str]] = {}

    # ----- the store ------------------------------------------------------------------------------
    def _load(self, kind: str, project: str) -> Mapping[str, Any] | None:
        key = f"{self.key_prefix}:{kind}:{project}"
        value = self.store.load(key)
        if not isinstance(value, Mapping) or not isinstance(value.get(kind), Mapping):
            return None
        try:
            saved_at = datetime.fromisoformat(str(value["saved_at"]))
        except (KeyError, ValueError):
            return None
        if saved_at.tzinfo is None or datetime.now(UTC) - saved_at > PROCESS_CACHE_MAX_AGE:
            return None
        self._saved_at[key] = saved_at.isoformat()
        loaded: Mapping[str, Any] = value[kind]
        return loaded

    def _save(self, kind: str, project: str, data: Mapping[str, Any]) -> None:
        key = f"{self.key_prefix}:{kind}:{project}"
        # Merging in a new type's states keeps the first saved_at: the whole process ages together.
        saved_at = self._saved_at.setdefault(key, datetime.now(UTC).isoformat())
        self.store.save(key, {"saved_at": saved_at, kind: dict(data)})

    # ----- process --------------------------------------------------------------------------------
    def process(self, project: str) -> ProcessInfo:
        """The project's process as the server describes it (configured overrides not applied)."""
        if project in self._processes:
            return self._processes[project]
        cached = self._load("process", project)
        if cached is not None:
            info = ProcessInfo.from_json(cached)
            self._processes[project] = info
            return info
        work = self.client.clients().work
        config = self.client.call(
            f"process configuration of project {project!r}",
            lambda: work.get_process_configuration(project),
            project=project,
            purpose="discovery",
        )
        type_fields = config.type_fields or {}
        effort = type_fields.get("Effort")
        order = type_fields.get("Order")
        backlog_types: list[str] = []
        for category in (config.requirement_backlog, config.bug_work_items):
            for ref in getattr(category, "work_item_types", None) or []:
                if ref.name and ref.name not in backlog_types:
                    backlog_types.append(ref.name)
        self._processes[project] = ProcessInfo(
            effort_field=effort.reference_name if effort else None,
            order_field=order.reference_name if order else None,
            backlog_types=tuple(backlog_types),
            state_categories={},
        )
        for work_type in backlog_types:
            self.states_for(project, work_type)
        self._save("process", project, self._processes[project].to_json())
        return self._processes[project]

    def known(self, project: str) -> ProcessInfo | None:
        """The project's process if it was learned already (no request)."""
        return self._processes.get(project)

    def states_for(self, project: str, work_type: str) -> Mapping[str, str]:
        """State -> category of one work item type, fetched once per (project, type)."""
        if not work_type:
            return {}
        info = self._processes.get(project)
        if info is not None and work_type in info.state_categories:
            return info.state_categories[work_type]
        key = (project.lower(), work_type.lower())
        if key in self._type_states:
            return self._type_states[key]
        # Types of other projects (a predecessor elsewhere) are kept in the store like the process.
        foreign = dict(self._load("types", project) or {}) if info is None else {}
        if isinstance(foreign.get(work_type), Mapping):
            self._type_states[key] = {str(k): str(v) for k, v in foreign[work_type].items()}
            return self._type_states[key]
        wit = self.client.clients().wit
        try:
            states = self.client.call(
                f"states of work item type {work_type!r} in project {project!r}",
                lambda: wit.get_work_item_type_states(project, work_type),
                project=project,
                purpose="discovery",
            )
            found = {str(s.name): str(s.category) for s in states or []}
        except NotFoundError:
            logger.warning(
                "%s: project %s has no work item type %r; guessing categories from state names",
                self.client.name,
                project,
                work_type,
            )
            found = {}
        self._type_states[key] = found
        if info is None:
            self._save("types", project, {**foreign, work_type: found})
        else:
            self._processes[project] = info.with_states(work_type, found)
            self._save("process", project, self._processes[project].to_json())
        return found

    def category_of(self, project: str, raw: Mapping[str, Any]) -> StatusCategory:
        """Our category of a raw work item, from its own project's states (else guessed from the name)."""
        fields = raw.get("fields") or {}
        work_type = str(fields.get("System.WorkItemType") or "")
        state = str(fields.get("System.State") or "")
        owner = str(fields.get("System.TeamProject") or project)
        category = self.states_for(owner, work_type).get(state)
        if category is not None and category in STATE_CATEGORY_NAMES:
            return STATE_CATEGORY_NAMES[category]
        return StatusCategory.guess_from_status(state)
