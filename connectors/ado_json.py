"""Map Azure DevOps work item JSON (``{"id", "fields", "relations"}``) to ``Issue``.

Shared by the live Azure DevOps connector and the file connector (saved work-items JSON).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.field_values import parse_datetime, parse_number
from connectors.mapping_errors import MappingError, guarded
from refinebot.markup import html_to_text, markdown_to_text
from refinebot.models import (
    Issue,
    IssueType,
    Link,
    LinkKind,
    SourceKind,
    StatusCategory,
    rank_from_number,
)

EFFORT_FIELDS = (
    "Microsoft.VSTS.Scheduling.StoryPoints",  # Agile
    "Microsoft.VSTS.Scheduling.Effort",  # Scrum
    "Microsoft.VSTS.Scheduling.Size",  # CMMI
)
ORDER_FIELDS = ("Microsoft.VSTS.Common.StackRank", "Microsoft.VSTS.Common.BacklogPriority")

RELATION_KINDS: Mapping[str, LinkKind] = {
    "System.LinkTypes.Dependency-Reverse": LinkKind.BLOCKED_BY,  # predecessor
    "System.LinkTypes.Dependency-Forward": LinkKind.BLOCKS,  # successor
    "System.LinkTypes.Hierarchy-Reverse": LinkKind.PARENT,
    "System.LinkTypes.Hierarchy-Forward": LinkKind.CHILD,
    "System.LinkTypes.Duplicate-Forward": LinkKind.DUPLICATED_BY,  # "Duplicate" points at the copies
    "System.LinkTypes.Duplicate-Reverse": LinkKind.DUPLICATES,  # "Duplicate Of"
    "System.LinkTypes.Related": LinkKind.RELATES,
}

# Azure DevOps state categories reduced to ours.
STATE_CATEGORY_NAMES: Mapping[str, StatusCategory] = {
    "Proposed": StatusCategory.TODO,
    "InProgress": StatusCategory.IN_PROGRESS,
    "Resolved": StatusCategory.IN_PROGRESS,  # code done, not yet verified: Agile boards show it as in progress
    "Completed": StatusCategory.DONE,
    "Removed": StatusCategory.DONE,
}


@dataclass(frozen=True, slots=True)
class AdoProcess:
    """What a project's process says: effort and order fields, and each (type, state)'s category."""

    effort_fields: tuple[str, ...] = EFFORT_FIELDS
    order_fields: tuple[str, ...] = ORDER_FIELDS
    state_categories: Mapping[tuple[str, str], StatusCategory] = field(default_factory=dict)
    blocked_tag: str = "Blocked"
    active_iterations: frozenset[str] = frozenset()

    def category(self, work_item_type: str, state: str) -> StatusCategory:
        """The category of a state, from the process when known, else guessed from its name."""
        known = self.state_categories.get((work_item_type, state))
        return known or StatusCategory.guess_from_status(state)


def work_item_id_from_url(url: str) -> str:
    """The id at the end of a relation URL like ``.../_apis/wit/workItems/42``."""
    return url.rstrip("/").rsplit("/", 1)[-1]


def _identity(value: Any) -> str | None:
    if isinstance(value, Mapping):
        found = value.get("displayName") or value.get("uniqueName")
        return str(found) if found else None
    return str(value) if value else None


def html_url(raw: Mapping[str, Any]) -> str | None:
    """The web URL of a work item from ``_links.html`` or its REST URL."""
    links = raw.get("_links")
    html = links.get("html") if isinstance(links, Mapping) else None
    link = html.get("href") if isinstance(html, Mapping) else None
    if link:
        return str(link)
    api = raw.get("url")
    if isinstance(api, str) and "/_apis/wit/workItems/" in api:
        base, item_id = api.split("/_apis/wit/workItems/", 1)
        return f"{base}/_workitems/edit/{item_id}"
    return None


def _rich_text(raw: Mapping[str, Any], name: str) -> str:
    """A multi-line field as plain text: HTML by default, Markdown where ``multilineFieldsFormat`` says so."""
    value = str((raw.get("fields") or {}).get(name) or "")
    formats = raw.get("multilineFieldsFormat")
    if isinstance(formats, Mapping) and str(formats.get(name, "")).lower() == "markdown":
        return markdown_to_text(value)
    return html_to_text(value)


def map_work_item(
    raw: Mapping[str, Any],
    process: AdoProcess | None = None,
    *,
    target_categories: Mapping[str, StatusCategory] | None = None,
    source_kind: SourceKind = SourceKind.AZURE_DEVOPS,
) -> Issue:
    """One work item JSON object to an ``Issue``; ``target_categories`` gives linked items' categories.

    Raises ``MappingError`` naming the work item and the field for anything malformed.
    """
    return guarded(
        lambda: _map_work_item(raw, process, target_categories=target_categories, source_kind=source_kind),
        raw,
        "id",
        "work item",
    )


def _map_work_item(
    raw: Mapping[str, Any],
    process: AdoProcess | None = None,
    *,
    target_categories: Mapping[str, StatusCategory] | None = None,
    source_kind: SourceKind = SourceKind.AZURE_DEVOPS,
) -> Issue:
    process = process or AdoProcess()
    if not isinstance(raw, Mapping):
        raise MappingError("<work item>", "work item", "expected a JSON object")
    if raw.get("id") in (None, ""):
        raise MappingError("<work item>", "id", "missing")
    key = str(raw["id"])
    fields = raw.get("fields")
    if not isinstance(fields, Mapping):
        raise MappingError(key, "fields", "missing")
    title = fields.get("System.Title")
    if not isinstance(title, str):
        reason = "missing" if title is None else f"not a string (got {type(title).__name__})"
        raise MappingError(key, "System.Title", reason)
    raw_type = str(fields.get("System.WorkItemType") or "")
    state = str(fields.get("System.State") or "")
    tags = tuple(t.strip() for t in str(fields.get("System.Tags") or "").split(";") if t.strip())

    points = None
    for name in process.effort_fields:
        points = parse_number(fields.get(name), key, name)
        if points is not None:
            break
    rank = None
    for name in process.order_fields:
        order = parse_number(fields.get(name), key, name)
        if order is not None:
            rank = rank_from_number(order)
            break

    links: list[Link] = []
    relations = raw.get("relations") or []
    if not isinstance(relations, list):
        raise MappingError(key, "relations", "expected a list")
    categories = target_categories or {}
    for relation in relations:
        if not isinstance(relation, Mapping):
            raise MappingError(key, "relations", "expected a list of objects")
        kind = RELATION_KINDS.get(str(relation.get("rel", "")))
        url = relation.get("url")
        if kind is None or not isinstance(url, str):
            continue  # attachments, hyperlinks, commits: not issue links
        target = work_item_id_from_url(url)
        links.append(Link(kind, target, categories.get(target)))
    parent = next((link.target for link in links if link.kind is LinkKind.PARENT), None)
    if parent is None and fields.get("System.Parent") not in (None, ""):
        parent = str(fields["System.Parent"])
        links.append(Link(LinkKind.PARENT, parent, categories.get(parent)))

    iteration = fields.get("System.IterationPath")
    blocked_field = str(fields.get("Microsoft.VSTS.CMMI.Blocked") or "").strip().lower() == "yes"
    blocked_tag = process.blocked_tag.lower() in {t.lower() for t in tags}
    priority = fields.get("Microsoft.VSTS.Common.Priority")
    ac = fields.get("Microsoft.VSTS.Common.AcceptanceCriteria")

    return Issue(
        key=key,
        project=str(fields.get("System.TeamProject") or ""),
        source_kind=source_kind,
        url=html_url(raw),
        type=IssueType.from_name(raw_type),
        raw_type=raw_type,
        title=title.strip(),
        description=_rich_text(raw, "System.Description"),
        acceptance_criteria=_rich_text(raw, "Microsoft.VSTS.Common.AcceptanceCriteria") if ac else None,
        story_points=points,
        status=state,
        status_category=process.category(raw_type, state),
        priority=str(priority) if priority not in (None, "") else None,
        rank=rank,
        labels=tags,
        assignee=_identity(fields.get("System.AssignedTo")),
        reporter=_identity(fields.get("System.CreatedBy")),
        created=parse_datetime(fields.get("System.CreatedDate"), key, "System.CreatedDate"),
        updated=parse_datetime(fields.get("System.ChangedDate"), key, "System.ChangedDate"),
        sprint=str(iteration) if iteration else None,
        in_active_sprint=bool(iteration) and str(iteration) in process.active_iterations,
        parent=parent,
        links=tuple(links),
        flagged_blocked=blocked_field or blocked_tag,
    )
