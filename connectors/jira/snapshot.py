"""A project's sync state as the store keeps it (raw Jira JSON) and the backlog a fetch builds from it.

``Snapshot`` is what one successful sync leaves behind: raw issue JSON for the wanted fields, the id ->
key map, the statuses of blockers outside the backlog, the time, the query and a fingerprint of the
field map. ``Backlog`` holds the raws of a fetch in progress and maps each one once (the mapping is
pure), so a mapping fix takes effect on the next run without a full re-read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from connectors.base import SkippedItem
from connectors.jira.discovery import field_map_to_json
from connectors.jira.search import Page
from connectors.jira_json import JiraFieldMap, map_jira_issue
from connectors.mapping_errors import MappingError
from refinebot.models import Issue, LinkKind, StatusCategory

logger = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1


def project_state_key(prefix: str, project: str, query_text: str) -> str:
    """Where one project's snapshot for one query is kept (``prefix`` = ``jira:{name}:{url}``)."""
    digest = hashlib.sha256(query_text.encode()).hexdigest()[:16]
    return f"{prefix}:project:{project}:{digest}"


def fingerprint(field_map: JiraFieldMap, fields: Sequence[str]) -> str:
    """A digest of what the raw JSON was read with: another field map means reading it all again."""
    text = json.dumps({"map": field_map_to_json(field_map), "fields": list(fields)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def key_of(raw: Any) -> str:
    """An issue's key, or a stand-in naming its id (for the logs of a malformed one)."""
    if not isinstance(raw, Mapping):
        return "?"
    return str(raw.get("key") or f"issue id {raw.get('id', '?')}")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one project's last successful sync left behind (JSON in the store)."""

    query: str
    fingerprint: str
    last_sync: datetime
    issues: tuple[Mapping[str, Any], ...]  # raw issue JSON in backlog order
    ids: Mapping[str, str]  # Jira issue id -> key, to read the id-only scans of what changed
    blockers: Mapping[str, StatusCategory]  # outside-blocker key -> its last known status category

    def to_json(self) -> dict[str, Any]:
        """The snapshot as JSON for ``SyncStateStore.save``."""
        return {
            "v": SNAPSHOT_VERSION,
            "query": self.query,
            "fingerprint": self.fingerprint,
            "last_sync": self.last_sync.isoformat(),
            "issues": list(self.issues),
            "ids": dict(self.ids),
            "blockers": {key: category.value for key, category in self.blockers.items()},
        }

    @classmethod
    def from_json(cls, value: Any) -> Snapshot | None:
        """A snapshot saved by ``to_json``; None for anything else (the sync then starts over)."""
        if not isinstance(value, Mapping) or value.get("v") != SNAPSHOT_VERSION:
            return None
        try:
            last_sync = datetime.fromisoformat(str(value["last_sync"]))
            blockers = {str(k): StatusCategory(v) for k, v in dict(value["blockers"]).items()}
            issues = tuple(raw for raw in value["issues"] if isinstance(raw, Mapping))
            ids = {str(k): str(v) for k, v in dict(value["ids"]).items()}
            return cls(str(value["query"]), str(value["fingerprint"]), last_sync, issues, ids, blockers)
        except (KeyError, TypeError, ValueError):
            logger.warning("ignoring an unreadable Jira sync snapshot; doing a full sync")
            return None


# A field value longer than this as JSON is kept as it came (a big custom field is rarely repeated).
SHARE_AT_MOST = 2_000


class Repeats:
    """One object for each distinct field value that recurs across a backlog's raw issues.

    10,000 raw issues are 76 MiB of Python objects, yet most of their ``status``, ``issuetype``,
    ``priority``, ``project`` and people objects are equal to another issue's: pointing them at
    one object saves about a third (``benchmarks/jira_sync.py``) and changes nothing a reader or
    ``json.dumps`` sees. Raws are never changed after they are read, so sharing is safe. ADF
    documents (descriptions) and lists are left alone: they are seldom equal.
    """

    def __init__(self) -> None:
        self._seen: dict[str, Any] = {}  # a field value's JSON -> the first such value
        self._strings: dict[str, str] = {}

    def share(self, raw: Any) -> None:
        """Point ``raw``'s recurring field values at the first equal one seen (in place)."""
        fields = raw.get("fields") if isinstance(raw, dict) else None
        if not isinstance(fields, dict):
            return
        seen = self._seen
        expand = raw.get("expand")
        if isinstance(expand, str):  # the same 90 characters on every issue
            raw["expand"] = self._strings.setdefault(expand, expand)
        for name, value in fields.items():
            if type(value) is dict and value.get("type") != "doc":
                try:
                    text = json.dumps(value)
                except (TypeError, ValueError):
                    continue
                if len(text) <= SHARE_AT_MOST:
                    fields[name] = seen.setdefault(text, value)


def _rank_key(issue: Issue | None) -> tuple[int, str]:
    return (0, issue.rank) if issue is not None and issue.rank else (1, "")


@dataclass(slots=True)
class Backlog:
    """The raw issues of one fetch in progress, mapped on demand (each raw once)."""

    field_map: JiraFieldMap
    site: str
    where: str
    raws: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    blockers: dict[str, StatusCategory] = field(default_factory=dict)
    _mapped: dict[str, Issue | SkippedItem] = field(default_factory=dict)
    _repeats: Repeats = field(default_factory=Repeats)

    def put(self, page: Page, *, replace_known: bool, fresh_blockers: bool = False) -> int:
        """Take a search page in (ids noted, skipped items too); returns how many issues it held."""
        for raw in page:
            key = key_of(raw)
            if replace_known or key not in self.raws:  # offset paging can repeat an item that moved
                self._repeats.share(raw)
                self.raws[key] = raw
                self._mapped.pop(key, None)
                if fresh_blockers:
                    self._note_blockers(key)
            if isinstance(raw, Mapping) and raw.get("id") and raw.get("key"):
                self.ids[str(raw["id"])] = str(raw["key"])
        return len(page)

    def _note_blockers(self, key: str) -> None:
        # A freshly read issue carries its blockers' current statuses: newer than any kept.
        issue = self.issue(key)
        for link in issue.links if isinstance(issue, Issue) else ():
            if link.kind is LinkKind.BLOCKED_BY and link.target_status_category is not None:
                self.blockers[link.target] = link.target_status_category

    def mapped(self, key: str) -> Issue | SkippedItem:
        """The issue under ``key`` mapped (without blocker refreshes), or why it was skipped."""
        found = self._mapped.get(key)
        if found is None:
            try:
                found = map_jira_issue(self.raws[key], self.field_map, site=self.site)
            except MappingError as exc:
                logger.warning("%s: skipping %s: field %r: %s", self.where, exc.record, exc.field, exc.reason)
                found = SkippedItem(exc.record, f"field {exc.field!r}: {exc.reason}")
            self._mapped[key] = found
        return found

    def issue(self, key: str) -> Issue | None:
        found = self.mapped(key)
        return found if isinstance(found, Issue) else None

    def order_by_rank(self) -> None:
        """Backlog order (a stable sort, so unranked items keep the order they came in)."""
        self.raws = {key: self.raws[key] for key in sorted(self.raws, key=lambda k: _rank_key(self.issue(k)))}

    def keep_only(self, current: set[str]) -> None:
        """Keep an item only while its id is matched, under the key it was last seen with."""
        live = {key for issue_id, key in self.ids.items() if issue_id in current}
        self.raws = {key: raw for key, raw in self.raws.items() if key in live}
        self.ids = {issue_id: key for issue_id, key in self.ids.items() if issue_id in current}

    def outside_blockers(self) -> dict[str, StatusCategory | None]:
        """Blockers that are not in the backlog, with their best known status category."""
        found: dict[str, StatusCategory | None] = {}
        for key in self.raws:
            issue = self.issue(key)
            for link in issue.links if issue is not None else ():
                if link.kind is LinkKind.BLOCKED_BY and link.target not in self.raws:
                    known = self.blockers.get(link.target, link.target_status_category)
                    # Known done only when every link says so (one stale link is reason to ask).
                    if link.target not in found or found[link.target] is StatusCategory.DONE:
                        found[link.target] = known
        return found

    def result(self) -> tuple[list[Issue], list[SkippedItem]]:
        """The backlog mapped, blocker statuses applied; and what could not be mapped."""
        outside = set(self.outside_blockers())
        self.blockers = {key: value for key, value in self.blockers.items() if key in outside}
        issues: list[Issue] = []
        skipped: list[SkippedItem] = []
        for key in self.raws:
            found = self.mapped(key)
            if isinstance(found, SkippedItem):
                skipped.append(found)
                continue
            links = tuple(
                replace(link, target_status_category=self.blockers[link.target])
                if link.kind is LinkKind.BLOCKED_BY and link.target in self.blockers
                else link
                for link in found.links
            )
            issues.append(found if links == found.links else replace(found, links=links))
        return issues, skipped
