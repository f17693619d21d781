"""Build issues in Jira's real JSON shapes (ADF bodies on Cloud, wiki on Data Center) for the fake.

Link-type names and texts follow real sites (Blocks / Blocker / Blockers all read "is blocked by");
status categories use Jira's real keys (new / indeterminate / done). Blocks links here are synthetic
test data.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.jira_server import STATUS_CATEGORIES, Site, jira_time

OLD = datetime(2025, 1, 6, 9, 30, tzinfo=UTC)

# (name, inward, outward) as configured on real sites
LINK_TYPES = {
    "Blocks": ("10000", "is blocked by", "blocks"),  # Cloud default, Hyperledger, RedHat
    "Blocker": ("10032", "is blocked by", "blocks"),  # Apache
    "Blockers": ("10100", "is blocked by", "blocks"),  # SecondLife
    "Depend": ("10200", "is depended on by", "depends on"),  # Spring
    "Duplicate": ("10002", "is duplicated by", "duplicates"),
    "Relates": ("10003", "relates to", "relates to"),
}
STATUSES = {"To Do": "new", "In Progress": "indeterminate", "Done": "done"}


def adf(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "doc", "version": 1, "content": list(blocks)}


def para(text: str) -> dict[str, Any]:
    return {"type": "paragraph", "content": [{"type": "text", "text": text}]}


def heading(text: str, level: int = 3) -> dict[str, Any]:
    return {
        "type": "heading",
        "attrs": {"level": level},
        "content": [{"type": "text", "text": text}],
    }


def bullets(*items: str) -> dict[str, Any]:
    return {
        "type": "bulletList",
        "content": [{"type": "listItem", "content": [para(item)]} for item in items],
    }


def status(site: Site, name: str) -> dict[str, Any]:
    key = STATUSES[name]
    category = dict(STATUS_CATEGORIES[key])
    category["self"] = f"{site.url}/rest/api/{site.api}/statuscategory/{category['id']}"
    return {
        "self": f"{site.url}/rest/api/{site.api}/status/{category['id']}",
        "description": "",
        "iconUrl": "",
        "name": name,
        "id": str(category["id"]),
        "statusCategory": category,
    }


def link(
    site: Site, type_name: str, direction: str, other_key: str, other_status: str = "To Do"
) -> dict[str, Any]:
    """One ``issuelinks`` entry; "inward" means this issue is blocked by the other one."""
    type_id, inward, outward = LINK_TYPES[type_name]
    other = {
        "id": str(90000 + abs(hash(other_key)) % 9999),
        "key": other_key,
        "self": f"{site.url}/rest/api/{site.api}/issue/{other_key}",
        "fields": {
            "summary": f"Linked {other_key}",
            "status": status(site, other_status),
            "priority": {"self": "", "iconUrl": "", "name": "Medium", "id": "3"},
            "issuetype": {"self": "", "id": "10001", "name": "Story", "subtask": False},
        },
    }
    return {
        "id": str(30000 + abs(hash((type_name, direction, other_key))) % 9999),
        "self": f"{site.url}/rest/api/{site.api}/issueLink/1",
        "type": {
            "id": type_id,
            "name": type_name,
            "inward": inward,
            "outward": outward,
            "self": f"{site.url}/rest/api/{site.api}/issueLinkType/{type_id}",
        },
        f"{direction}Issue": other,
    }


def make_issue(
    site: Site,
    number: int,
    *,
    project: str = "SHOP",
    project_name: str = "Shop",
    summary: str | None = None,
    description: Any = "default",
    points: Any = 3.0,
    status_name: str = "To Do",
    issue_type: str = "Story",
    links: list[dict[str, Any]] | None = None,
    sprint: Any = None,
    rank: str | None = None,
    acceptance: Any = None,
    labels: list[str] | None = None,
    updated: datetime | None = None,
) -> dict[str, Any]:
    """A complete issue as ``search`` with ``*all`` returns it, added to ``site``."""
    key = f"{project}-{number}"
    if description == "default":
        if site.cloud:
            description = adf(
                para(f"As a shopper I want feature {number} so that I can buy faster."),
                heading("Acceptance criteria"),
                bullets("Given a cart, when I pay, then I get a receipt", "The receipt is emailed"),
            )
        else:
            description = (
                f"As a shopper I want feature {number} so that I can buy faster.\n"
                "h3. Acceptance criteria\n"
                "* Given a cart, when I pay, then I get a receipt\n* The receipt is emailed"
            )
    when = updated or OLD + timedelta(minutes=number)
    fields: dict[str, Any] = {
        "summary": summary if summary is not None else f"Checkout improvement {number}",
        "description": description,
        "issuetype": {
            "self": f"{site.url}/rest/api/{site.api}/issuetype/10001",
            "id": "10001",
            "description": "",
            "iconUrl": "",
            "name": issue_type,
            "subtask": False,
        },
        "status": status(site, status_name),
        "priority": {
            "self": f"{site.url}/rest/api/{site.api}/priority/3",
            "iconUrl": "",
            "name": "Medium",
            "id": "3",
        },
        "labels": labels or [],
        "assignee": None,
        "reporter": {"displayName": "Pat Product", "active": True},
        "created": jira_time(OLD),
        "updated": jira_time(when),
        "project": {
            "self": f"{site.url}/rest/api/{site.api}/project/10000",
            "id": "10000",
            "key": project,
            "name": project_name,
            "projectTypeKey": "software",
        },
        "issuelinks": links or [],
        "resolutiondate": None,
        "subtasks": [],
    }
    ids = site.field_ids
    if ids.story_points:
        fields[ids.story_points] = points
    if ids.original_points:
        fields[ids.original_points] = 40.0  # decoy: must never be read as the estimate
    if ids.rank:
        fields[ids.rank] = rank or f"0|i{number:07d}:"
    if ids.sprint:
        fields[ids.sprint] = sprint
    if ids.acceptance_criteria:
        fields[ids.acceptance_criteria] = acceptance
    return site.add_issue({"key": key, "fields": fields})


def cloud_sprint(name: str, state: str) -> dict[str, Any]:
    return {
        "id": 37,
        "name": name,
        "state": state,
        "boardId": 1,
        "goal": "",
        "startDate": "2026-11-16T09:00:00.000Z",
        "endDate": "2026-11-30T09:00:00.000Z",
    }


def legacy_sprint(name: str, state: str) -> str:
    return (
        f"com.atlassian.greenhopper.service.sprint.Sprint@1fdd4900[id=5820,rapidViewId=3504,state={state.upper()},"
        f"name={name},startDate=2026-11-16T09:00:00.000Z,endDate=2026-11-30T09:00:00.000Z,completeDate=<null>,"
        "sequence=5820]"
    )


def board_configuration(site: Site, board_id: int, points_field: str, rank_number: int) -> dict[str, Any]:
    return {
        "id": board_id,
        "name": "SHOP board",
        "self": f"{site.url}/rest/agile/1.0/board/{board_id}/configuration",
        "location": {"type": "project", "key": "SHOP", "id": "10000", "name": "Shop"},
        "filter": {"id": "10000", "self": f"{site.url}/rest/api/2/filter/10000"},
        "columnConfig": {
            "columns": [{"name": "To Do", "statuses": [{"id": "10000"}]}],
            "constraintType": "none",
        },
        "estimation": {
            "type": "field",
            "field": {"fieldId": points_field, "displayName": "Story Points"},
        },
        "ranking": {"rankCustomFieldId": rank_number},
    }


def populate(site: Site, count: int, *, project: str = "SHOP", start: int = 1) -> None:
    for number in range(start, start + count):
        make_issue(site, number, project=project)
