"""The file connector: Jira search JSON (v2 wiki, v3 ADF, pages), Jira CSV exports and Azure DevOps JSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.base import ConnectorError
from connectors.files import FileConnector, read_backlog, read_backlog_file
from refinebot.config import FileSourceConfig
from refinebot.models import IssueType, Link, LinkKind, StatusCategory, rank_from_number


def jira_issue(key: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "summary": f"Summary of {key}",
        "issuetype": {"name": "Story"},
        "status": {"name": "To Do", "statusCategory": {"key": "new"}},
        "project": {"key": key.split("-")[0]},
        "created": "2026-01-02T10:00:00.000+0000",
        "updated": "2026-03-04T11:30:00.000+0100",
    }
    base.update(fields)
    return {"id": "1", "key": key, "self": f"https://x.atlassian.net/rest/api/3/issue/{key}", "fields": base}


def write_json(tmp_path: Path, data: Any, name: str = "backlog.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_jira_v3_adf_pages_with_names_map(tmp_path: Path) -> None:
    adf = {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "heading",
                "attrs": {"level": 2},
                "content": [{"type": "text", "text": "Acceptance criteria"}],
            },
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "it works"}]}],
                    }
                ],
            },
        ],
    }
    page1 = {
        "issues": [
            jira_issue(
                "SHOP-1",
                description=adf,
                customfield_10777=5,
                customfield_10778=[{"id": 3, "name": "Sprint 3", "state": "active"}],
                customfield_10779="0|i0001:",
                issuelinks=[
                    {
                        "type": {"name": "Blockers", "inward": "is blocked by", "outward": "blocks"},
                        "inwardIssue": {
                            "key": "SHOP-2",
                            "fields": {"status": {"statusCategory": {"key": "indeterminate"}}},
                        },
                    },
                    {
                        "type": {"name": "Relates", "inward": "relates to", "outward": "relates to"},
                        "outwardIssue": {
                            "key": "SHOP-3",
                            "fields": {"status": {"statusCategory": {"key": "done"}}},
                        },
                    },
                ],
                labels=["checkout", "größe"],
                priority={"name": "High"},
                parent={"key": "SHOP-9"},
            )
        ],
        "nextPageToken": "abc",
        "isLast": False,
        "names": {
            "customfield_10777": "Story Points",
            "customfield_10778": "Sprint",
            "customfield_10779": "Rank",
        },
    }
    page2 = {
        "issues": [
            jira_issue("SHOP-2", status={"name": "Doing", "statusCategory": {"key": "indeterminate"}})
        ],
        "isLast": True,
    }
    issues = read_backlog_file(write_json(tmp_path, [page1, page2]))
    assert [i.key for i in issues] == ["SHOP-1", "SHOP-2"]
    first = issues[0]
    assert first.description == "Acceptance criteria\n\n- it works"
    assert first.story_points == 5.0
    assert (first.sprint, first.in_active_sprint) == ("Sprint 3", True)
    assert first.rank == "0|i0001:"
    assert first.labels == ("checkout", "größe")
    assert first.priority == "High"
    assert first.parent == "SHOP-9"
    assert first.url == "https://x.atlassian.net/browse/SHOP-1"
    assert first.created == datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
    assert first.links == (
        Link(LinkKind.BLOCKED_BY, "SHOP-2", StatusCategory.IN_PROGRESS),
        Link(LinkKind.RELATES, "SHOP-3", StatusCategory.DONE),
        Link(LinkKind.PARENT, "SHOP-9", None),
    )
    assert issues[1].status_category is StatusCategory.IN_PROGRESS


def test_jira_v2_wiki_and_legacy_sprint_strings_with_configured_fields(tmp_path: Path) -> None:
    page = {
        "startAt": 0,
        "maxResults": 50,
        "total": 1,
        "issues": [
            jira_issue(
                "DC-7",
                description="h3. Acceptance Criteria\n* *bold* item\n# numbered",
                customfield_12310293=8.0,
                customfield_12310921=[
                    "com.atlassian.greenhopper.service.sprint.Sprint@1a2b[id=1,rapidViewId=2,state=CLOSED,name=Sprint 1,startDate=2026-01-01]",
                    "com.atlassian.greenhopper.service.sprint.Sprint@1a2c[id=2,rapidViewId=2,state=FUTURE,name=Sprint 2, the big one,startDate=<null>]",
                ],
                customfield_12315940="* Given a user\n* Then it works",
            )
        ],
    }
    source = FileSourceConfig(
        kind="file",
        path=Path("x.json"),
        story_points_field="customfield_12310293",
        sprint_field="customfield_12310921",
        acceptance_criteria_field="customfield_12315940",
    )
    (issue,) = read_backlog_file(write_json(tmp_path, page), source)
    assert issue.description == "Acceptance Criteria\n\n- bold item\n1. numbered"
    assert issue.story_points == 8.0
    assert issue.sprint == "Sprint 2, the big one"
    assert issue.in_active_sprint is False
    assert issue.acceptance_criteria == "- Given a user\n- Then it works"


def test_three_link_type_namings_map_by_direction_text(tmp_path: Path) -> None:
    links = [
        {
            "type": {"name": name, "inward": "is blocked by", "outward": "blocks"},
            "inwardIssue": {"key": f"X-{n}"},
        }
        for n, name in enumerate(["Blocks", "Blocker", "Blockers"], start=1)
    ]
    links.append(
        {
            "type": {"name": "Blocks", "inward": "is blocked by", "outward": "blocks"},
            "outwardIssue": {"key": "X-9"},
        }
    )
    links.append(
        {
            "type": {"name": "Duplicate", "inward": "is duplicated by", "outward": "duplicates"},
            "outwardIssue": {"key": "X-8"},
        }
    )
    (issue,) = read_backlog_file(write_json(tmp_path, {"issues": [jira_issue("X-0", issuelinks=links)]}))
    assert [(link.kind, link.target) for link in issue.links] == [
        (LinkKind.BLOCKED_BY, "X-1"),
        (LinkKind.BLOCKED_BY, "X-2"),
        (LinkKind.BLOCKED_BY, "X-3"),
        (LinkKind.BLOCKS, "X-9"),
        (LinkKind.DUPLICATES, "X-8"),
    ]


@pytest.mark.parametrize(
    ("issue", "message"),
    [
        ({"id": "5", "fields": {"summary": "x"}}, "record issue id 5: field 'key': missing"),
        ({"key": "A-1"}, "record A-1: field 'fields': missing (was the search made without a fields list?)"),
        (
            {"key": "A-1", "fields": {"summary": "x", "customfield_10016": "lots"}},
            "record A-1: field 'story points': not a number: 'lots'",
        ),
        (
            {"key": "A-1", "fields": {"summary": "x", "created": "yesterday"}},
            "record A-1: field 'created': not a date-time: 'yesterday'",
        ),
        (
            {"key": "A-1", "fields": {"summary": "x", "description": 42}},
            "record A-1: field 'description': expected text or an ADF document, got int",
        ),
    ],
)
def test_malformed_jira_records_name_file_record_and_field(
    tmp_path: Path, issue: dict[str, Any], message: str
) -> None:
    path = write_json(tmp_path, {"issues": [issue]})
    with pytest.raises(ConnectorError) as caught:
        read_backlog_file(path)
    assert str(caught.value) == f"{path}: {message}"


def test_unrecognised_and_invalid_json(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"workItems": [{"id": 1}]})
    with pytest.raises(ConnectorError, match="WIQL result"):
        read_backlog_file(path)
    path = write_json(tmp_path, {"foo": 1})
    with pytest.raises(ConnectorError, match="unrecognised JSON"):
        read_backlog_file(path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"issues": [', encoding="utf-8")
    with pytest.raises(ConnectorError, match=r"bad.json: not valid JSON \(line 1, column 13\)"):
        read_backlog_file(bad)


ADO_ITEMS = {
    "count": 3,
    "value": [
        {
            "id": 101,
            "rev": 4,
            "fields": {
                "System.TeamProject": "Fabrikam",
                "System.WorkItemType": "User Story",
                "System.Title": "Export orders",
                "System.State": "New",
                "System.Description": "<div>As a buyer I want an <b>export</b>.</div><ul><li>one</li><li>two</li></ul>",
                "Microsoft.VSTS.Common.AcceptanceCriteria": "<ol><li>CSV has totals</li></ol>",
                "Microsoft.VSTS.Scheduling.StoryPoints": 5,
                "Microsoft.VSTS.Common.StackRank": 1999.5,
                "System.Tags": "Blocked; ui",
                "System.AssignedTo": {"displayName": "Ana Lima", "uniqueName": "ana@example.com"},
                "System.CreatedDate": "2026-01-02T10:00:00.123Z",
                "System.ChangedDate": "2026-02-03T10:00:00Z",
                "System.IterationPath": "Fabrikam\\Sprint 5",
            },
            "relations": [
                {
                    "rel": "System.LinkTypes.Dependency-Reverse",
                    "url": "https://dev.azure.com/org/_apis/wit/workItems/102",
                    "attributes": {},
                },
                {
                    "rel": "System.LinkTypes.Hierarchy-Reverse",
                    "url": "https://dev.azure.com/org/_apis/wit/workItems/100",
                    "attributes": {},
                },
                {
                    "rel": "AttachedFile",
                    "url": "https://dev.azure.com/org/_apis/wit/attachments/abc",
                    "attributes": {},
                },
            ],
            "url": "https://dev.azure.com/org/Fabrikam/_apis/wit/workItems/101",
        },
        {
            "id": 102,
            "fields": {
                "System.TeamProject": "Fabrikam",
                "System.WorkItemType": "Product Backlog Item",
                "System.Title": "API",
                "System.State": "Committed",
                "Microsoft.VSTS.Scheduling.Effort": 3,
            },
        },
        {
            "id": 103,
            "fields": {
                "System.TeamProject": "Fabrikam",
                "System.WorkItemType": "Requirement",
                "System.Title": "CMMI",
                "System.State": "Active",
                "Microsoft.VSTS.Scheduling.Size": 2,
                "Microsoft.VSTS.CMMI.Blocked": "Yes",
            },
        },
    ],
}


def test_azure_devops_work_items(tmp_path: Path) -> None:
    issues = read_backlog_file(write_json(tmp_path, ADO_ITEMS))
    first, second, third = issues
    assert first.key == "101" and first.project == "Fabrikam"
    assert first.type is IssueType.STORY and first.raw_type == "User Story"
    assert first.description == "As a buyer I want an export.\n- one\n- two"
    assert first.acceptance_criteria == "1. CSV has totals"
    assert first.story_points == 5.0
    assert first.labels == ("Blocked", "ui")
    assert first.flagged_blocked is True
    assert first.assignee == "Ana Lima"
    assert first.sprint == "Fabrikam\\Sprint 5"
    assert first.url == "https://dev.azure.com/org/Fabrikam/_workitems/edit/101"
    assert first.links == (
        Link(LinkKind.BLOCKED_BY, "102", StatusCategory.IN_PROGRESS),
        Link(LinkKind.PARENT, "100", None),
    )
    assert first.parent == "100"
    assert (second.story_points, second.status_category) == (3.0, StatusCategory.IN_PROGRESS)
    assert (third.story_points, third.flagged_blocked) == (2.0, True)
    assert first.rank is not None and second.rank is None


def test_malformed_ado_item(tmp_path: Path) -> None:
    data = {
        "value": [{"id": 7, "fields": {"System.Title": "x", "Microsoft.VSTS.Scheduling.StoryPoints": "big"}}]
    }
    path = write_json(tmp_path, data)
    with pytest.raises(ConnectorError) as caught:
        read_backlog_file(path)
    assert (
        str(caught.value)
        == f"{path}: record 7: field 'Microsoft.VSTS.Scheduling.StoryPoints': not a number: 'big'"
    )
    path = write_json(tmp_path, {"value": [{"fields": {"System.Title": "x"}}]})
    with pytest.raises(ConnectorError, match=r"record #1: field 'id': missing"):
        read_backlog_file(path)


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


CSV_HEADER = [
    "Summary",
    "Issue key",
    "Issue id",
    "Issue Type",
    "Status",
    "Priority",
    "Description",
    "Custom field (Story Points)",
    "Created",
    "Updated",
    "Labels",
    "Labels",
    "Sprint",
    "Sprint",
    "Inward issue link (Blocks)",
    "Outward issue link (Blocks)",
    "Outward issue link (Relates)",
    "Custom field (Acceptance Criteria)",
]


def test_jira_csv_export_with_repeated_columns(tmp_path: Path) -> None:
    rows = [
        [
            "Guest checkout",
            "SHOP-1",
            "10001",
            "Story",
            "To Do",
            "High",
            "h3. Goal\nPay without an account.",
            "5",
            "02/Jan/26 10:15 AM",
            "03/Feb/26 4:05 PM",
            "checkout",
            "ux",
            "Sprint 1",
            "Sprint 2",
            "SHOP-2",
            "",
            "SHOP-3",
            "* guest can pay",
        ],
        [
            "Payment API",
            "SHOP-2",
            "10002",
            "Task",
            "In Progress",
            "Medium",
            "",
            "",
            "01/Jan/26 09:00",
            "01/Jan/26 09:00",
            "",
            "",
            "",
            "",
            "",
            "SHOP-1",
            "",
            "",
        ],
        [
            "Old thing",
            "SHOP-3",
            "10003",
            "Bug",
            "Closed",
            "Low",
            "",
            "3",
            "2025-12-01",
            "2025-12-02",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ],
    ]
    path = tmp_path / "export.csv"
    path.write_text(csv_text(CSV_HEADER, rows), encoding="utf-8")
    one, two, three = read_backlog_file(path)
    assert one.title == "Guest checkout" and one.type is IssueType.STORY
    assert one.description == "Goal\n\nPay without an account."
    assert one.story_points == 5.0
    assert one.labels == ("checkout", "ux")
    assert one.sprint == "Sprint 2"
    assert one.acceptance_criteria == "- guest can pay"
    assert one.created == datetime(2026, 1, 2, 10, 15, tzinfo=UTC)
    assert one.updated == datetime(2026, 2, 3, 16, 5, tzinfo=UTC)
    assert one.links == (Link(LinkKind.BLOCKED_BY, "SHOP-2"), Link(LinkKind.RELATES, "SHOP-3"))
    assert two.links == (Link(LinkKind.BLOCKS, "SHOP-1"),)
    assert two.status_category is StatusCategory.IN_PROGRESS and two.story_points is None
    assert three.status_category is StatusCategory.DONE


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda rows: rows[1].__setitem__(7, "five"),
            "row 3 (SHOP-2): field 'Story Points': not a number: 'five'",
        ),
        (
            lambda rows: rows[0].__setitem__(8, "someday"),
            "row 2 (SHOP-1): field 'Created': not a date: 'someday'",
        ),
        (lambda rows: rows[1].__setitem__(1, ""), "row 3 (<row>): field 'Issue key': empty"),
        (lambda rows: rows[0].pop(), "row 2: has 17 cells but the header has 18"),
    ],
)
def test_malformed_csv_rows(tmp_path: Path, mutate: Any, message: str) -> None:
    base = ["T", "SHOP-1", "1", "Story", "To Do", "", "", "", "", "", "", "", "", "", "", "", "", ""]
    rows = [list(base), [*base[:1], "SHOP-2", *base[2:]], [*base[:1], "SHOP-3", *base[2:]]]
    mutate(rows)
    path = tmp_path / "bad.csv"
    path.write_text(csv_text(CSV_HEADER, rows), encoding="utf-8")
    backlog = read_backlog(path)
    assert [f"{s.key}: {s.reason}" for s in backlog.skipped] == [f"{path}: {message}"]
    assert len(backlog.issues) == 2  # the bad row is skipped, the others are read


def test_every_bad_row_is_listed_and_a_file_of_bad_rows_fails(tmp_path: Path) -> None:
    base = ["T", "SHOP-1", "1", "Story", "To Do", "", "", "x", "", "", "", "", "", "", "", "", "", ""]
    rows = [[*base[:1], f"SHOP-{n}", *base[2:]] for n in range(1, 4)]
    path = tmp_path / "all-bad.csv"
    path.write_text(csv_text(CSV_HEADER, rows), encoding="utf-8")
    with pytest.raises(ConnectorError) as caught:
        read_backlog(path)
    assert str(caught.value) == (
        f"{path}: no record could be read (3 problems): "
        + "; ".join(
            f"{path}: row {n + 1} (SHOP-{n}): field 'Story Points': not a number: 'x'" for n in (1, 2, 3)
        )
    )
    rows.append([*base[:1], "SHOP-9", *base[2:7], "3", *base[8:]])
    path.write_text(csv_text(CSV_HEADER, rows), encoding="utf-8")
    connector = FileConnector(FileSourceConfig(kind="file", path=path), path)
    result = connector.fetch("SHOP", None)
    assert [i.key for i in result.issues] == ["SHOP-9"]
    assert [s.key for s in result.skipped] == [f"{path}: row {n + 1} (SHOP-{n})" for n in (1, 2, 3)]


def test_a_bad_json_record_is_skipped_and_named(tmp_path: Path) -> None:
    bad = {"key": "A-2", "fields": {"summary": 7}}
    path = write_json(tmp_path, {"issues": [jira_issue("A-1"), bad, jira_issue("A-3")]})
    backlog = read_backlog(path)
    assert [i.key for i in backlog.issues] == ["A-1", "A-3"]
    assert [f"{s.key}: {s.reason}" for s in backlog.skipped] == [
        f"{path}: record A-2: field 'summary': not a string (got int)"
    ]


def test_csv_cells_of_any_size(tmp_path: Path) -> None:
    base = ["T", "SHOP-1", "1", "Story", "To Do", "", "", "", "", "", "", "", "", "", "", "", "", ""]
    huge = "word " * 60_000  # 300 KB, over the csv module's 128 KiB default field limit
    row = list(base)
    row[CSV_HEADER.index("Description")] = huge
    path = tmp_path / "huge.csv"
    path.write_text(csv_text(CSV_HEADER, [row]), encoding="utf-8")
    (issue,) = read_backlog_file(path)
    assert len(issue.description) > 250_000


def test_csv_without_required_columns(tmp_path: Path) -> None:
    path = tmp_path / "not-jira.csv"
    path.write_text("name,value\na,1\n", encoding="utf-8")
    with pytest.raises(ConnectorError, match="column 'Summary' is missing"):
        read_backlog_file(path)


def test_connector_reads_only_the_configured_project(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"issues": [jira_issue("A-1"), jira_issue("B-1")]})
    connector = FileConnector(FileSourceConfig(kind="file", path=path), path)
    assert [i.key for i in connector.fetch("B", None).issues] == ["B-1"]
    assert [i.key for i in connector.fetch("b", None).issues] == ["B-1"]
    with pytest.raises(ConnectorError) as caught:
        connector.fetch("TYPO", None)
    assert (
        str(caught.value)
        == f"{path}: no items of project 'TYPO'; the file holds A, B (use one of these as the project key)"
    )


def test_overlapping_pages_keep_each_issue_once(tmp_path: Path) -> None:
    pages = [
        {"issues": [jira_issue("P-1"), jira_issue("P-2")]},
        {"issues": [jira_issue("P-2", summary="newer"), jira_issue("P-3")]},
    ]
    issues = read_backlog_file(write_json(tmp_path, pages))
    assert [(i.key, i.title) for i in issues] == [
        ("P-1", "Summary of P-1"),
        ("P-2", "newer"),
        ("P-3", "Summary of P-3"),
    ]


@pytest.mark.parametrize("points", ["nan", "inf", "-5"])
def test_csv_story_points_must_be_a_finite_non_negative_number(tmp_path: Path, points: str) -> None:
    base = ["T", "SHOP-1", "1", "Story", "To Do", "", "", points, "", "", "", "", "", "", "", "", "", ""]
    path = tmp_path / "points.csv"
    path.write_text(csv_text(CSV_HEADER, [base]), encoding="utf-8")
    with pytest.raises(ConnectorError, match=r"row 2 \(SHOP-1\): field 'Story Points': not a"):
        read_backlog_file(path)


def test_csv_cells_with_line_separators_and_dates_in_the_configured_zone(tmp_path: Path) -> None:
    row = [
        "Line\u2028separated\x0ctitle",
        "SHOP-1",
        "1",
        "Story",
        "To Do",
        "",
        "multi\nline",
        "",
        "02/Jan/26 10:15 AM",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
    ]
    path = tmp_path / "odd.csv"
    path.write_text(csv_text(CSV_HEADER, [row]), encoding="utf-8")
    (issue,) = read_backlog_file(path, tz=ZoneInfo("Europe/Berlin"))
    assert issue.title == "Line\u2028separated\x0ctitle"
    assert issue.description == "multi\nline"
    assert issue.created == datetime(2026, 1, 2, 10, 15, tzinfo=ZoneInfo("Europe/Berlin"))


def test_ado_markdown_fields_and_malformed_relations(tmp_path: Path) -> None:
    item = {
        "id": 5,
        "fields": {
            "System.Title": "md",
            "System.Description": "Export.\n\n## Acceptance criteria\n- CSV has totals",
        },
        "multilineFieldsFormat": {"System.Description": "markdown"},
        "_links": "not an object",
    }
    (issue,) = read_backlog_file(write_json(tmp_path, {"value": [item]}))
    assert issue.description == "Export.\n\nAcceptance criteria\n\n- CSV has totals"
    item["relations"] = [None, "x"]
    path = write_json(tmp_path, {"value": [item]})
    with pytest.raises(ConnectorError) as caught:
        read_backlog_file(path)
    assert str(caught.value) == f"{path}: record 5: field 'relations': expected a list of objects"


def test_rank_from_number_keeps_order_exactly() -> None:
    values = [-1e300, -2.5, -1e-9, 0.0, 1e-9, 1999999999.01, 1999999999.02, 3e15, 1e300]
    ranks = [rank_from_number(v) for v in values]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(values)
    with pytest.raises(ValueError, match="finite"):
        rank_from_number(float("nan"))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"status": "Open"}, "record P-1: field 'status': expected an object, got str"),
        ({"project": "P"}, "record P-1: field 'project': expected an object, got str"),
        (
            {"issuelinks": [{"type": "Blocks", "inwardIssue": {"key": "P-2"}}]},
            "record P-1: field 'issuelinks.type': expected an object, got str",
        ),
        ({"issuelinks": ["P-2"]}, "record P-1: field 'issuelinks': expected a list of objects"),
        (
            {"subtasks": [{"key": "P-3", "fields": {"status": "Done"}}]},
            "record P-1: field 'subtasks.fields.status': expected an object, got str",
        ),
        ({"labels": "a,b"}, "record P-1: field 'labels': expected a list"),
    ],
)
def test_wrongly_typed_jira_fields_name_the_field(
    tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    path = write_json(tmp_path, {"issues": [{"key": "P-1", "fields": {"summary": "x", **fields}}]})
    with pytest.raises(ConnectorError) as caught:
        read_backlog_file(path)
    assert str(caught.value) == f"{path}: {message}"


def test_malformed_adf_loses_only_its_broken_part(tmp_path: Path) -> None:
    adf = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": "oops"},
            {
                "type": "orderedList",
                "attrs": {"order": "a"},
                "content": [
                    {
                        "type": "listItem",
                        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "kept"}]}],
                    }
                ],
            },
        ],
    }
    (issue,) = read_backlog_file(write_json(tmp_path, {"issues": [jira_issue("P-1", description=adf)]}))
    assert issue.description == "1. kept"


def test_link_types_with_only_a_name_keep_their_direction(tmp_path: Path) -> None:
    links = [
        {"type": {"name": "Blocks"}, "inwardIssue": {"key": "P-2"}},
        {"type": {"name": "Blocker"}, "outwardIssue": {"key": "P-3"}},
        {"type": {"name": "Duplicate"}, "inwardIssue": {"key": "P-4"}},
        {"type": {"name": "Relates"}, "inwardIssue": {"key": "P-5"}},
    ]
    (issue,) = read_backlog_file(write_json(tmp_path, {"issues": [jira_issue("P-1", issuelinks=links)]}))
    assert [(link.kind, link.target) for link in issue.links] == [
        (LinkKind.BLOCKED_BY, "P-2"),
        (LinkKind.BLOCKS, "P-3"),
        (LinkKind.DUPLICATED_BY, "P-4"),
        (LinkKind.RELATES, "P-5"),
    ]
