"""Map Jira REST issue JSON (v2 wiki bodies or v3 ADF bodies, Cloud or Data Center) to ``Issue``.

Shared by the live Jira connector and the file connector (saved search responses), so one mapping serves both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.field_values import parse_datetime, parse_number
from connectors.mapping_errors import MappingError, guarded
from refinebot.markup import adf_to_text, wiki_to_text
from refinebot.models import Issue, IssueType, Link, LinkKind, SourceKind, StatusCategory

# Field ids seen on real sites when nothing better is known (see shared notes: Cloud team-managed 10016,
# company-managed 10026, older Cloud/Server 10002). Discovery or config overrides replace these.
_FALLBACK_POINT_FIELDS = (
    "customfield_10016",
    "customfield_10026",
    "customfield_10002",
    "story_points",
)
_FALLBACK_SPRINT_FIELDS = ("customfield_10020", "customfield_10004", "customfield_10007", "sprint")
_FALLBACK_RANK_FIELDS = ("customfield_10019", "customfield_10009", "customfield_10005", "rank")

_POINT_NAMES = ("story points", "story point estimate", "story point")
_SPRINT_LEGACY = re.compile(r"\[(.*)\]\s*$")


@dataclass(frozen=True, slots=True)
class JiraFieldMap:
    """Which custom fields hold story points, sprint, rank and acceptance criteria on a site."""

    story_points: tuple[str, ...] = _FALLBACK_POINT_FIELDS
    sprint: tuple[str, ...] = _FALLBACK_SPRINT_FIELDS
    rank: tuple[str, ...] = _FALLBACK_RANK_FIELDS
    acceptance_criteria: tuple[str, ...] = ()
    epic_link: tuple[str, ...] = ()

    @classmethod
    def from_names(
        cls, names: Mapping[str, str], overrides: Mapping[str, str | None] | None = None
    ) -> JiraFieldMap:
        """Build a map from field id -> display name pairs (``expand=names`` or ``/field``), then overrides."""
        by_name: dict[str, list[str]] = {}
        for field_id, display in names.items():
            by_name.setdefault(str(display).strip().lower(), []).append(field_id)

        def ids(*wanted: str) -> tuple[str, ...]:
            found: list[str] = []
            for name in wanted:
                found.extend(by_name.get(name, []))
            return tuple(found)

        base = cls(
            story_points=ids(*_POINT_NAMES) or _FALLBACK_POINT_FIELDS,
            sprint=ids("sprint") or _FALLBACK_SPRINT_FIELDS,
            rank=ids("rank") or _FALLBACK_RANK_FIELDS,
            acceptance_criteria=ids("acceptance criteria", "acceptance criterion"),
            epic_link=ids("epic link"),
        )
        return base.with_overrides(overrides or {})

    def with_overrides(self, overrides: Mapping[str, str | None]) -> JiraFieldMap:
        """The same map with configured field ids taking precedence."""
        values = {
            "story_points": self.story_points,
            "sprint": self.sprint,
            "rank": self.rank,
            "acceptance_criteria": self.acceptance_criteria,
            "epic_link": self.epic_link,
        }
        for name, field_id in overrides.items():
            if field_id and name in values:
                values[name] = (field_id,)
        return JiraFieldMap(**values)

    def wanted_fields(self) -> list[str]:
        """The ``fields`` list a search must request to map issues completely."""
        base = [
            "summary",
            "description",
            "issuetype",
            "status",
            "priority",
            "labels",
            "assignee",
            "reporter",
            "created",
            "updated",
            "parent",
            "issuelinks",
            "project",
            "resolutiondate",
        ]
        extra = [
            *self.story_points,
            *self.sprint,
            *self.rank,
            *self.acceptance_criteria,
            *self.epic_link,
        ]
        return base + [f for f in dict.fromkeys(extra) if f not in base]


def link_kind_from_text(text: str) -> LinkKind:
    """Classify a link by its direction text ("is blocked by"), which is stable where type names vary."""
    lowered = " ".join(text.lower().split())
    # Direction texts first; bare type names ("Blocker", "Duplicate", "Dependency") read outward.
    if "blocked by" in lowered or lowered.startswith(("depends on", "is dependent on", "requires", "depend")):
        return LinkKind.BLOCKED_BY
    if lowered.startswith(
        (
            "blocks",
            "is blocking",
            "is depended on",
            "is a dependency",
            "is required by",
            "is a blocker",
            "block",
        )
    ):
        return LinkKind.BLOCKS
    if "duplicated by" in lowered or lowered.startswith("has duplicate"):
        return LinkKind.DUPLICATED_BY
    if lowered.startswith(("duplicate", "is a duplicate", "is duplicate of")):
        return LinkKind.DUPLICATES
    if lowered.startswith(("is child of", "is subtask of", "is a child of")):
        return LinkKind.PARENT
    if lowered.startswith(("is parent of", "is a parent of", "has subtask")):
        return LinkKind.CHILD
    return LinkKind.RELATES


def body_to_text(value: Any, record: str, field: str) -> str:
    """Plain text of a description-like field: ADF dict (v3) or wiki string (v2)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return wiki_to_text(value)
    if isinstance(value, Mapping):
        if value.get("type") != "doc":
            raise MappingError(record, field, "an object that is not an ADF document")
        return adf_to_text(value)
    raise MappingError(record, field, f"expected text or an ADF document, got {type(value).__name__}")


def _first(fields: Mapping[str, Any], ids: Iterable[str]) -> Any:
    for field_id in ids:
        value = fields.get(field_id)
        if value not in (None, "", []):
            return value
    return None


def _name(value: Any) -> str | None:
    if isinstance(value, Mapping):
        found = value.get("displayName") or value.get("name") or value.get("value")
        return str(found) if found is not None else None
    return str(value) if value not in (None, "") else None


def _points(value: Any, record: str) -> float | None:
    return parse_number(value, record, "story points", allow_negative=False)


def parse_sprints(value: Any) -> list[tuple[str, str]]:
    """``(name, state)`` pairs from Cloud sprint objects or legacy ``...Sprint@x[id=1,state=ACTIVE,name=S]``."""
    items = value if isinstance(value, list) else [value]
    result: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, Mapping):
            result.append((str(item.get("name", "")), str(item.get("state", "")).lower()))
        elif isinstance(item, str):
            match = _SPRINT_LEGACY.search(item)
            if match:
                attrs = dict(
                    part.split("=", 1) for part in re.split(r",(?=\w+=)", match.group(1)) if "=" in part
                )
                result.append((attrs.get("name", ""), attrs.get("state", "").lower()))
            elif item:
                result.append((item, ""))
    return result


def _obj(value: Any, record: str, field: str) -> Mapping[str, Any]:
    """An optional JSON object: None reads as empty; anything else that is not an object is an error."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MappingError(record, field, f"expected an object, got {type(value).__name__}")
    return value


def _category(issue_ref: Mapping[str, Any], record: str, field: str) -> StatusCategory | None:
    fields = _obj(issue_ref.get("fields"), record, f"{field}.fields")
    status = _obj(fields.get("status"), record, f"{field}.fields.status")
    return StatusCategory.from_jira_key(_obj(status.get("statusCategory"), record, field).get("key"))


_REVERSE = {
    LinkKind.BLOCKS: LinkKind.BLOCKED_BY,
    LinkKind.BLOCKED_BY: LinkKind.BLOCKS,
    LinkKind.DUPLICATES: LinkKind.DUPLICATED_BY,
    LinkKind.DUPLICATED_BY: LinkKind.DUPLICATES,
    LinkKind.PARENT: LinkKind.CHILD,
    LinkKind.CHILD: LinkKind.PARENT,
    LinkKind.RELATES: LinkKind.RELATES,
}


def _link_kind(link_type: Mapping[str, Any], side: str) -> LinkKind:
    """The kind of a link from this issue's side: by the direction text, else by the type name."""
    text = link_type.get(side)
    if text:
        return link_kind_from_text(str(text))
    # Only a name ("Blocks"): it reads outward, so an inward link is the reverse.
    kind = link_kind_from_text(str(link_type.get("name", "")))
    return kind if side == "outward" else _REVERSE[kind]


def _links(fields: Mapping[str, Any], record: str) -> list[Link]:
    links: list[Link] = []
    raw = fields.get("issuelinks") or []
    if not isinstance(raw, list):
        raise MappingError(record, "issuelinks", "expected a list")
    for entry in raw:
        if not isinstance(entry, Mapping):
            raise MappingError(record, "issuelinks", "expected a list of objects")
        link_type = _obj(entry.get("type"), record, "issuelinks.type")
        side = "outward" if "outwardIssue" in entry else "inward" if "inwardIssue" in entry else None
        if side is None:
            continue
        other = _obj(entry[f"{side}Issue"], record, f"issuelinks.{side}Issue")
        key = other.get("key")
        if not key:
            continue
        links.append(
            Link(_link_kind(link_type, side), str(key), _category(other, record, f"issuelinks.{side}Issue"))
        )
    subtasks = fields.get("subtasks") or []
    if not isinstance(subtasks, list):
        raise MappingError(record, "subtasks", "expected a list")
    for sub in subtasks:
        sub_obj = _obj(sub, record, "subtasks")
        if sub_obj.get("key"):
            links.append(Link(LinkKind.CHILD, str(sub_obj["key"]), _category(sub_obj, record, "subtasks")))
    return links


def browse_url(self_url: str | None, key: str, site: str | None = None) -> str | None:
    """The human URL of an issue, from the site URL or the REST ``self`` link."""
    if site:
        return f"{site.rstrip('/')}/browse/{key}"
    if self_url and "/rest/api/" in self_url:
        return f"{self_url.split('/rest/api/')[0]}/browse/{key}"
    return None


def map_jira_issue(
    raw: Mapping[str, Any],
    field_map: JiraFieldMap,
    *,
    source_kind: SourceKind = SourceKind.JIRA,
    site: str | None = None,
) -> Issue:
    """One Jira issue JSON object (as in a search response's ``issues`` array) to an ``Issue``.

    Raises ``MappingError`` naming the issue and the field for anything malformed, never a bare TypeError.
    """
    return guarded(
        lambda: _map_jira_issue(raw, field_map, source_kind=source_kind, site=site), raw, "key", "issue"
    )


def _map_jira_issue(
    raw: Mapping[str, Any],
    field_map: JiraFieldMap,
    *,
    source_kind: SourceKind,
    site: str | None,
) -> Issue:
    if not isinstance(raw, Mapping):
        raise MappingError("<issue>", "issue", "expected a JSON object")
    key = raw.get("key")
    if not key or not isinstance(key, str):
        raise MappingError(f"issue id {raw.get('id', '?')}", "key", "missing")
    fields = raw.get("fields")
    if not isinstance(fields, Mapping):
        raise MappingError(key, "fields", "missing (was the search made without a fields list?)")
    title = fields.get("summary")
    if not isinstance(title, str):
        reason = "missing" if title is None else f"not a string (got {type(title).__name__})"
        raise MappingError(key, "summary", reason)

    status = _obj(fields.get("status"), key, "status")
    category = StatusCategory.from_jira_key(
        _obj(status.get("statusCategory"), key, "status.statusCategory").get("key")
    )
    status_name = str(status.get("name") or "")
    raw_type = _name(fields.get("issuetype")) or ""
    sprints = parse_sprints(_first(fields, field_map.sprint)) if _first(fields, field_map.sprint) else []
    current = next((s for s in sprints if s[1] == "active"), None) or (sprints[-1] if sprints else None)
    ac_value = _first(fields, field_map.acceptance_criteria)
    parent_key = _obj(fields.get("parent"), key, "parent").get("key")
    epic = _first(fields, field_map.epic_link)
    project = _obj(fields.get("project"), key, "project")
    labels = fields.get("labels") or []
    if not isinstance(labels, list):
        raise MappingError(key, "labels", "expected a list")
    rank = _first(fields, field_map.rank)
    links = _links(fields, key)
    if parent_key:
        links.append(Link(LinkKind.PARENT, str(parent_key)))
    elif epic:
        parent_key = str(epic)
        links.append(Link(LinkKind.PARENT, parent_key))

    return Issue(
        key=key,
        project=str(project.get("key") or key.rsplit("-", 1)[0]),
        source_kind=source_kind,
        url=browse_url(raw.get("self"), key, site),
        type=IssueType.from_name(raw_type),
        raw_type=raw_type,
        title=title.strip(),
        description=body_to_text(fields.get("description"), key, "description"),
        acceptance_criteria=body_to_text(ac_value, key, "acceptance criteria") if ac_value else None,
        story_points=_points(_first(fields, field_map.story_points), key),
        status=status_name,
        status_category=category or StatusCategory.guess_from_status(status_name),
        priority=_name(fields.get("priority")),
        rank=str(rank) if rank is not None else None,
        labels=tuple(str(label) for label in labels),
        assignee=_name(fields.get("assignee")),
        reporter=_name(fields.get("reporter")),
        created=parse_datetime(fields.get("created"), key, "created"),
        updated=parse_datetime(fields.get("updated"), key, "updated"),
        sprint=current[0] if current else None,
        in_active_sprint=bool(current and current[1] == "active"),
        parent=parent_key,
        links=tuple(links),
    )


def issues_from_search_pages(
    pages: Sequence[Any],
) -> tuple[list[Mapping[str, Any]], dict[str, str]]:
    """The ``issues`` of one or many search responses, and any ``names`` map they carry."""
    issues: list[Mapping[str, Any]] = []
    names: dict[str, str] = {}
    for page in pages:
        if not isinstance(page, Mapping) or not isinstance(page.get("issues"), list):
            raise ValueError("a Jira search response needs an 'issues' array")
        issues.extend(page["issues"])
        if isinstance(page.get("names"), Mapping):
            names.update({str(k): str(v) for k, v in page["names"].items()})
    return issues, names
