"""The Azure DevOps connector end to end: the real connector, the real ``azure-devops`` SDK, HTTP.

Every test talks to the session's fake organisation (tests/fakes/ado_server.py) in its own
project, so request counts are read from the fake's log of what actually crossed the wire.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from connectors.azure_devops import AzureDevOpsConnector, markdown_to_html, wiql_condition
from connectors.base import CommentingConnector, ConnectorError
from refinebot.config import AzureDevOpsSourceConfig
from refinebot.models import IssueType, LinkKind, StatusCategory
from tests.connectors.conftest import PAT, TOKEN_ENV, Sleeps
from tests.fakes.ado_server import FakeAzureDevOps, Fault, RecordedRequest

DEP_REVERSE = "System.LinkTypes.Dependency-Reverse"
DEP_FORWARD = "System.LinkTypes.Dependency-Forward"


def make_connector(
    ado: FakeAzureDevOps, sleeps: Sleeps, *, token_env: str = TOKEN_ENV, **settings: Any
) -> AzureDevOpsConnector:
    settings.setdefault("backoff_base_seconds", 0.01)
    settings.setdefault("backoff_max_seconds", 0.05)
    source = AzureDevOpsSourceConfig(kind="azure_devops", url=ado.url, token_env=token_env, **settings)
    return AzureDevOpsConnector(source, name="ado-test", sleep=sleeps, jitter=lambda: 0.5)


def since(ado: FakeAzureDevOps, mark: int) -> list[RecordedRequest]:
    return list(ado.requests[mark:])


def of_kind(requests: list[RecordedRequest], method: str, fragment: str) -> list[RecordedRequest]:
    return [r for r in requests if r.method == method and fragment.lower() in r.path.lower()]


@pytest.mark.parametrize("count", [0, 1, 200, 201, 2500])
def test_fetch_sizes_use_one_wiql_and_full_batches(
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
    count: int,
) -> None:
    project = unique_name("Size")
    ado.add_project(project)
    ids = [ado.add_item(project, f"Story {n}") for n in range(count)]
    connector = make_connector(ado, sleeps)
    mark = len(ado.requests)

    result = connector.fetch(project, None, full=True)

    assert sorted(int(i.key) for i in result.issues) == ids
    assert not result.skipped
    sent = since(ado, mark)
    batches = of_kind(sent, "POST", f"/{project}/_apis/wit/workItemsBatch")
    assert len(batches) == math.ceil(count / 200)
    assert all(len(b.body["ids"]) <= 200 for b in batches)
    assert all(b.body.get("$expand") == "Relations" and "fields" not in b.body for b in batches)
    assert len(of_kind(sent, "POST", "/_apis/wit/wiql")) == 1
    # api-version travels in the Accept header, at the 7.1 preview versions the v7_1 client uses.
    assert {b.api_version for b in batches} <= {"7.1-preview.1"}
    # The connector counts what its own clients sent; the SDK's connection discovery (OPTIONS and
    # ResourceAreas, made by its internal location client) is visible only on the wire.
    discovery = [r for r in sent if r.method == "OPTIONS" or "ResourceAreas" in r.path]
    assert result.requests == len(sent) - len(discovery)


def test_query_over_the_20000_cap_is_split_and_syncs_completely(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Huge")
    ado.add_project(project)
    total = 20_050
    for n in range(total):
        ado.add_item(project, f"Story {n}")
    connector = make_connector(ado, sleeps)
    mark = len(ado.requests)

    result = connector.fetch(project, None, full=True)

    assert len(result.issues) == total
    wiql = of_kind(since(ado, mark), "POST", "/_apis/wit/wiql")
    assert [r.status for r in wiql] == [200, 200]
    assert [r.query.get("$top") for r in wiql] == ["20000", "20000"]
    # The same query without $top is what the service refuses (VS402337): the fake enforces the cap.
    refused = _raw_wiql(
        ado, project, f"SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = '{project}'"
    )
    assert refused[0] == 400
    assert "VS402337" in refused[1]["message"]


def _raw_wiql(ado: FakeAzureDevOps, project: str, query: str) -> tuple[int, dict[str, Any]]:
    import base64

    import httpx

    auth = base64.b64encode(f":{PAT}".encode()).decode()
    response = httpx.post(
        f"{ado.url}/{project}/_apis/wit/wiql",
        json={"query": query},
        headers={"Authorization": f"Basic {auth}", "Accept": "application/json;api-version=7.1"},
    )
    return response.status_code, response.json()


def test_small_wiql_pages_still_return_every_item_once(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Paged")
    ado.add_project(project)
    ids = [ado.add_item(project, f"Story {n}") for n in range(120)]
    connector = make_connector(ado, sleeps, wiql_page_size=50)
    mark = len(ado.requests)

    result = connector.fetch(project, None, full=True)

    assert [int(i.key) for i in result.issues] == ids
    assert len(of_kind(since(ado, mark), "POST", "/_apis/wit/wiql")) == 3


@pytest.mark.parametrize(
    ("process", "effort_field", "order_field", "states", "expected"),
    [
        (
            "Agile",
            "Microsoft.VSTS.Scheduling.StoryPoints",
            "Microsoft.VSTS.Common.StackRank",
            ["New", "Active", "Resolved", "Closed", "Removed"],
            # Resolved (code done, not verified) is in progress: boards show it so, and it is still open.
            [StatusCategory.TODO, StatusCategory.IN_PROGRESS, StatusCategory.IN_PROGRESS],
        ),
        (
            "Scrum",
            "Microsoft.VSTS.Scheduling.Effort",
            "Microsoft.VSTS.Common.BacklogPriority",
            ["Approved", "Committed", "Done", "Removed"],
            [StatusCategory.TODO, StatusCategory.IN_PROGRESS],
        ),
        (
            "CMMI",
            "Microsoft.VSTS.Scheduling.Size",
            "Microsoft.VSTS.Common.StackRank",
            ["Proposed", "Active", "Resolved", "Closed"],
            [StatusCategory.TODO, StatusCategory.IN_PROGRESS, StatusCategory.IN_PROGRESS],
        ),
    ],
)
def test_process_decides_effort_order_and_state_categories(
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
    process: str,
    effort_field: str,
    order_field: str,
    states: list[str],
    expected: list[StatusCategory],
) -> None:
    project = unique_name(process)
    ado.add_project(project, process)
    # A decoy: another process's effort field must be ignored once the process is known.
    decoy = "Microsoft.VSTS.Scheduling.Effort" if process != "Scrum" else "Microsoft.VSTS.Scheduling.Size"
    for n, state in enumerate(states):
        ado.add_item(
            project,
            f"{process} item {state}",
            state=state,
            fields={effort_field: n + 1, decoy: 99, order_field: 1000.0 - n},
        )
    connector = make_connector(ado, sleeps)

    result = connector.fetch(project, None, full=True)

    # The default query leaves out the Completed and Removed categories, whatever they are called.
    assert [i.status for i in result.issues] == [s for s in states if s not in ("Closed", "Done", "Removed")]
    assert [i.status_category for i in result.issues] == expected
    assert [i.story_points for i in result.issues] == [float(n + 1) for n in range(len(expected))]
    ranks = [i.rank or "" for i in result.issues]
    assert ranks == sorted(ranks, reverse=True)  # order field read: higher position numbers sort later
    assert all(i.type is IssueType.STORY for i in result.issues)


def test_configured_effort_field_overrides_the_process(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Override")
    ado.add_project(project, "Agile")
    ado.add_item(project, "custom", fields={"Custom.Points": 8, "Microsoft.VSTS.Scheduling.StoryPoints": 3})
    connector = make_connector(ado, sleeps, effort_field="Custom.Points")

    (issue,) = connector.fetch(project, None, full=True).issues

    assert issue.story_points == 8.0


def test_html_fields_tags_and_relations_are_mapped(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Map")
    ado.add_project(project)
    parent = ado.add_item(project, "Epic parent", type="Epic")
    dup = ado.add_item(project, "Original")
    item = ado.add_item(
        project,
        "  Checkout with PayPal ",
        fields={
            "System.Description": (
                "<div><h2>Why</h2><p>Users ask &amp; wait.</p><ul><li>one</li><li>two</li></ul></div>"
            ),
            "Microsoft.VSTS.Common.AcceptanceCriteria": "<ol><li>Given a cart</li></ol>",
            "System.Tags": "payments; Q3 ",
            "System.AssignedTo": {"displayName": "Ana Lima", "uniqueName": "ana@example.com"},
        },
        relations=[
            ("System.LinkTypes.Hierarchy-Reverse", parent),
            ("System.LinkTypes.Duplicate-Reverse", dup),
            ("System.LinkTypes.Related", dup),
            ("AttachedFile", 0),
        ],
    )
    connector = make_connector(ado, sleeps)

    issues = {i.key: i for i in connector.fetch(project, None, full=True).issues}

    issue = issues[str(item)]
    assert issue.title == "Checkout with PayPal"
    assert issue.description == "Why\n\nUsers ask & wait.\n- one\n- two"
    assert "Given a cart" in (issue.acceptance_criteria or "")
    assert issue.labels == ("payments", "Q3")
    assert issue.assignee == "Ana Lima"
    assert issue.parent == str(parent)
    assert {(link.kind, link.target) for link in issue.links} == {
        (LinkKind.PARENT, str(parent)),
        (LinkKind.DUPLICATES, str(dup)),
        (LinkKind.RELATES, str(dup)),
    }
    assert (issue.url or "").endswith(f"/_workitems/edit/{item}")
    assert issue.project == project


def test_predecessor_outside_the_query_gets_its_category_in_one_batched_request(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Deps")
    other = unique_name("DepsOther")
    ado.add_project(project)
    ado.add_project(other, "Scrum")
    open_elsewhere = ado.add_item(other, "Platform work", state="Committed")
    done_here = ado.add_item(project, "Done already", state="Closed")  # outside the default query
    blocked = ado.add_item(
        project,
        "Needs platform",
        relations=[(DEP_REVERSE, open_elsewhere), (DEP_REVERSE, done_here)],
    )
    successor = ado.add_item(other, "Later work", state="New")
    free = ado.add_item(project, "Successor only", relations=[(DEP_FORWARD, successor)])
    connector = make_connector(ado, sleeps)
    mark = len(ado.requests)

    issues = {i.key: i for i in connector.fetch(project, None, full=True).issues}

    assert set(issues) == {str(blocked), str(free)}
    categories = {link.target: link.target_status_category for link in issues[str(blocked)].links}
    assert categories == {
        str(open_elsewhere): StatusCategory.IN_PROGRESS,
        str(done_here): StatusCategory.DONE,
    }
    target_reads = [r for r in of_kind(since(ado, mark), "POST", "workItemsBatch") if r.body.get("fields")]
    assert len(target_reads) == 1
    assert sorted(target_reads[0].body["ids"]) == sorted([open_elsewhere, done_here])
    # Successor links are not blockers: their targets need no lookup.
    assert issues[str(free)].links[0].kind is LinkKind.BLOCKS
    assert issues[str(free)].links[0].target_status_category is None


def test_blocked_tag_and_blocked_field(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    agile = unique_name("Agile")
    cmmi = unique_name("Cmmi")
    ado.add_project(agile, "Agile")
    ado.add_project(cmmi, "CMMI")
    tagged = ado.add_item(agile, "tagged", fields={"System.Tags": "blocked; ux"})
    custom = ado.add_item(agile, "custom tag", fields={"System.Tags": "On Hold"})
    plain = ado.add_item(agile, "plain")
    flagged = ado.add_item(cmmi, "field yes", fields={"Microsoft.VSTS.CMMI.Blocked": "Yes"})
    unflagged = ado.add_item(cmmi, "field no", fields={"Microsoft.VSTS.CMMI.Blocked": "No"})

    default = make_connector(ado, sleeps)
    agile_issues = {i.key: i.flagged_blocked for i in default.fetch(agile, None, full=True).issues}
    cmmi_issues = {i.key: i.flagged_blocked for i in default.fetch(cmmi, None, full=True).issues}
    custom_tag = make_connector(ado, sleeps, blocked_tag="On Hold")
    custom_issues = {i.key: i.flagged_blocked for i in custom_tag.fetch(agile, None, full=True).issues}

    assert agile_issues == {str(tagged): True, str(custom): False, str(plain): False}
    assert cmmi_issues == {str(flagged): True, str(unflagged): False}
    assert custom_issues == {str(tagged): False, str(custom): True, str(plain): False}


def test_names_with_quotes_cannot_change_the_query(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    victim = unique_name("Victim")
    ado.add_project(victim)
    ado.add_item(victim, "must not leak")
    evil = "x' OR [System.TeamProject] <> 'x"
    ado.add_project(evil)
    mine = ado.add_item(evil, "mine", fields={"System.AreaPath": "x' OR [System.Id] > 0 OR 'a\\Team"})
    ado.add_item(evil, "other area", fields={"System.AreaPath": "x' OR [System.Id] > 0 OR 'a"})
    connector = make_connector(ado, sleeps, area_path="x' OR [System.Id] > 0 OR 'a\\Team")

    result = connector.fetch(evil, None, full=True)

    assert [i.key for i in result.issues] == [str(mine)]


def test_configured_wiql_is_scoped_to_the_project(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Wiql")
    other = unique_name("WiqlOther")
    ado.add_project(project)
    ado.add_project(other)
    wanted = ado.add_item(project, "where order by", fields={"System.Tags": "refine"})
    ado.add_item(project, "untagged")
    ado.add_item(other, "other project", fields={"System.Tags": "refine"})
    query = (
        "SELECT [System.Id], [System.Title] FROM WorkItems "
        "WHERE [System.Tags] CONTAINS 'refine' AND [System.Title] <> 'order by x' "
        "ORDER BY [System.ChangedDate] DESC"
    )
    connector = make_connector(ado, sleeps)

    result = connector.fetch(project, query, full=True)

    assert [i.key for i in result.issues] == [str(wanted)]
    assert wiql_condition(query) == "[System.Tags] CONTAINS 'refine' AND [System.Title] <> 'order by x'"
    with pytest.raises(ConnectorError, match="FROM WorkItems"):
        wiql_condition("SELECT [System.Id] FROM WorkItemLinks WHERE [Source].[System.Id] = 1")


def test_incremental_sync_reads_only_changes_and_survives_a_restart(
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    project = unique_name("Incr")
    other = unique_name("IncrOther")
    ado.add_project(project)
    ado.add_project(other)
    long_ago = datetime.now(UTC) - timedelta(days=30)
    blocker = ado.add_item(other, "Elsewhere", state="Active", changed=long_ago)
    ids = [ado.add_item(project, f"Story {n}", changed=long_ago) for n in range(449)]
    blocked = ado.add_item(project, "Waits", changed=long_ago, relations=[(DEP_REVERSE, blocker)])
    ids.append(blocked)
    first = make_connector(ado, sleeps, cache_dir=tmp_path)
    first.fetch(project, None, full=True)
    now = datetime.now(UTC)
    for item_id in ids[:100]:
        ado.touch(item_id, now, **{"System.Title": f"Renamed {item_id}"})
    ado.touch(ids[100], now, **{"System.State": "Closed"})
    ado.touch(blocker, now, **{"System.State": "Closed"})  # the blocker in another project is done
    new = ado.add_item(project, "Brand new", changed=now)

    # A new connector (a new process run) reads its state and the process from the cache folder.
    second = make_connector(ado, sleeps, cache_dir=tmp_path)
    mark = len(ado.requests)
    result = second.fetch(project, None)

    sent = since(ado, mark)
    assert len(sent) <= 3, [(r.method, r.path) for r in sent]
    assert result.extra["incremental"] is True
    assert result.extra["fetched"] == 102
    keys = {i.key: i for i in result.issues}
    assert str(ids[100]) not in keys
    assert str(new) in keys
    assert len(keys) == 450
    assert keys[str(ids[0])].title == f"Renamed {ids[0]}"
    assert keys[str(ids[200])].title == "Story 200"
    (batch,) = of_kind(sent, "POST", "workItemsBatch")
    # The 100 renamed items, the new one and the outside blocker that changed.
    assert sorted(batch.body["ids"]) == sorted([*ids[:100], new, blocker])
    assert batch.path == f"/{ado.org}/_apis/wit/workItemsBatch"  # no project: the blocker is elsewhere
    (link,) = keys[str(blocked)].links
    assert link.target_status_category is StatusCategory.DONE

    full = second.fetch(project, None, full=True)
    assert {i.key for i in full.issues} == set(keys)


def test_throttling_honours_retry_after_on_429_and_on_delayed_200(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Throttle")
    ado.add_project(project)
    for n in range(3):
        ado.add_item(project, f"Story {n}")
    connector = make_connector(ado, sleeps)
    connector.fetch(project, None, full=True)  # discovery done; only the read is measured
    ado.faults.append(Fault(f"/{project}/_apis/wit/wiql", status=None, headers={"Retry-After": "7"}))
    ado.faults.append(Fault(f"/{project}/_apis/wit/workItemsBatch", status=429, headers={"Retry-After": "3"}))
    mark = len(ado.requests)

    result = connector.fetch(project, None, full=True)

    assert len(result.issues) == 3
    assert sleeps.calls == [7.0, 3.0]  # the delayed 200's pause, then the 429's
    statuses = [(r.path.rsplit("/", 1)[-1], r.status) for r in since(ado, mark)]
    assert statuses == [("wiql", 200), ("workItemsBatch", 429), ("workItemsBatch", 200)]


def test_503_backs_off_with_jitter_and_gives_up_after_bounded_attempts(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Unavailable")
    ado.add_project(project)
    ado.add_item(project, "Story")
    connector = make_connector(
        ado, sleeps, retry_attempts=4, backoff_base_seconds=0.01, backoff_max_seconds=0.03
    )
    connector.fetch(project, None, full=True)
    ado.faults.append(Fault(f"/{project}/_apis/wit/wiql", status=503, times=2))

    assert len(connector.fetch(project, None, full=True).issues) == 1
    assert sleeps.calls == [0.0075, 0.015]  # equal jitter with jitter()=0.5: 3/4 of 0.01, 0.02

    sleeps.calls.clear()
    ado.faults.append(Fault(f"/{project}/_apis/wit/wiql", status=503, times=10))
    with pytest.raises(ConnectorError, match=r"failed after 4 attempts.*HTTP 503.*TF400324"):
        connector.fetch(project, None, full=True)
    assert sleeps.calls == [0.0075, 0.015, 0.0225]  # capped at backoff_max_seconds=0.03
    ado.faults.clear()


def test_bad_pat_is_a_clear_error_that_never_shows_the_token(
    ado: FakeAzureDevOps,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    project = unique_name("Auth")
    ado.add_project(project)
    wrong = "wrong-pat-9876543210"
    monkeypatch.setenv(TOKEN_ENV, wrong)
    caplog.set_level(logging.DEBUG)
    connector = make_connector(ado, sleeps)

    with pytest.raises(ConnectorError) as raised:
        connector.fetch(project, None)

    message = str(raised.value)
    assert "authentication failed (HTTP 401)" in message
    assert TOKEN_ENV in message
    assert wrong not in message
    assert PAT not in message
    assert wrong not in caplog.text
    assert sleeps.calls == []  # a 401 is not retried


def test_missing_token_variable_is_named(
    ado: FakeAzureDevOps, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ADO_TEST_UNSET_PAT", raising=False)
    connector = make_connector(ado, sleeps, token_env="ADO_TEST_UNSET_PAT")

    with pytest.raises(ConnectorError, match="ADO_TEST_UNSET_PAT is not set"):
        connector.fetch("Anything", None)


def test_unknown_project_and_forbidden_are_clear_errors(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    connector = make_connector(ado, sleeps)
    with pytest.raises(ConnectorError, match=r"project 'NoSuchProject' not found \(HTTP 404\).*TF200016"):
        connector.fetch("NoSuchProject", None)

    project = unique_name("Forbidden")
    ado.add_project(project)
    ado.faults.append(
        Fault(
            f"/{project}/_apis/work/processconfiguration",
            status=403,
            message="TF400813: not authorized",
        )
    )
    with pytest.raises(ConnectorError, match=r"access denied \(HTTP 403\).*Work Items scope"):
        connector.fetch(project, None)
    assert sleeps.calls == []


def test_malformed_work_item_is_skipped_with_a_reason(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Malformed")
    ado.add_project(project)
    good = ado.add_item(project, "fine")
    bad_points = ado.add_item(project, "bad points", fields={"Microsoft.VSTS.Scheduling.StoryPoints": "lots"})
    connector = make_connector(ado, sleeps)

    result = connector.fetch(project, None, full=True)

    assert [i.key for i in result.issues] == [str(good)]
    (skipped,) = result.skipped
    assert skipped.key == str(bad_points)
    assert "Microsoft.VSTS.Scheduling.StoryPoints" in skipped.reason
    assert "not a number" in skipped.reason
    assert project in skipped.reason


def test_comments_are_added_found_and_updated_in_place(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Comments")
    ado.add_project(project)
    item = ado.add_item(project, "Needs comment")
    connector = make_connector(ado, sleeps)
    assert isinstance(connector, CommentingConnector)
    connector.fetch(project, None, full=True)
    mark = len(ado.requests)

    assert connector.find_comment(str(item), "readiness") is None
    comment_id = connector.add_comment(
        str(item), "**Not ready**\n- add acceptance criteria", marker="readiness"
    )
    assert connector.find_comment(str(item), "readiness") == comment_id
    assert connector.find_comment(str(item), "other") is None
    connector.update_comment(str(item), comment_id, "Ready now", marker="readiness")

    (stored,) = ado.comments[item]
    assert str(stored["id"]) == comment_id
    assert stored["version"] == 2
    assert stored["format"] == "markdown"
    assert stored["text"].startswith("Ready now")
    assert "refinebot:readiness" in stored["text"]
    (post,) = of_kind(since(ado, mark), "POST", "/comments")
    assert post.query.get("format") == "markdown"
    assert post.api_version == "7.1-preview.4"


def test_comment_on_an_item_not_fetched_looks_up_its_project(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Lookup")
    ado.add_project(project)
    item = ado.add_item(project, "Fresh connector")
    connector = make_connector(ado, sleeps)

    comment_id = connector.add_comment(str(item), "hello", marker="m")

    assert [str(c["id"]) for c in ado.comments[item]] == [comment_id]
    with pytest.raises(ConnectorError, match="not a work item id"):
        connector.add_comment("ABC-1", "hello", marker="m")


def test_dropped_connection_after_comment_post_does_not_post_twice(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Dropped")
    ado.add_project(project)
    item = ado.add_item(project, "Flaky network")
    connector = make_connector(ado, sleeps)
    connector.fetch(project, None, full=True)
    ado.faults.append(
        Fault(f"/{project}/_apis/wit/workItems/{item}/comments", method="POST", drop_after=True)
    )
    mark = len(ado.requests)

    comment_id = connector.add_comment(str(item), "Once only", marker="agenda")

    assert len(ado.comments[item]) == 1
    assert str(ado.comments[item][0]["id"]) == comment_id
    assert len(of_kind(since(ado, mark), "POST", "/comments")) == 1


def test_comment_post_that_never_arrived_is_retried(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Retried")
    ado.add_project(project)
    item = ado.add_item(project, "Busy server")
    connector = make_connector(ado, sleeps)
    connector.fetch(project, None, full=True)
    ado.faults.append(Fault(f"/{project}/_apis/wit/workItems/{item}/comments", method="POST", status=503))

    comment_id = connector.add_comment(str(item), "Eventually", marker="agenda")

    assert [str(c["id"]) for c in ado.comments[item]] == [comment_id]
    assert len(sleeps.calls) == 1


def test_servers_without_markdown_comments_get_html(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Html")
    ado.add_project(project)
    item = ado.add_item(project, "Old server")
    connector = make_connector(ado, sleeps)
    connector.fetch(project, None, full=True)
    ado.markdown_comments = False
    try:
        comment_id = connector.add_comment(str(item), "**Heads up**\n- one & two", marker="m")
        connector.update_comment(str(item), comment_id, "Fixed", marker="m")
    finally:
        ado.markdown_comments = True

    (stored,) = ado.comments[item]
    assert stored["format"] == "html"
    assert stored["text"].startswith("<p>Fixed</p>")
    assert connector.find_comment(str(item), "m") == comment_id


def test_markdown_to_html_escapes_and_keeps_lists() -> None:
    assert markdown_to_html("**Hi** <b>\n\n- a & b\n- c") == (
        "<p><b>Hi</b> &lt;b&gt;</p><ul><li>a &amp; b</li><li>c</li></ul>"
    )


def test_unreachable_server_fails_after_bounded_attempts(
    pat_env: str, sleeps: Sleeps, unused_tcp_port: int
) -> None:
    source = AzureDevOpsSourceConfig(
        kind="azure_devops",
        url=f"http://127.0.0.1:{unused_tcp_port}/nowhere",
        token_env=TOKEN_ENV,
        retry_attempts=1,
    )
    connector = AzureDevOpsConnector(source, sleep=sleeps)

    # One attempt only: the SDK's own location client already retries a refused connection during
    # connect (about 5 s of urllib3 backoff we cannot configure), so more would slow the suite.
    with pytest.raises(ConnectorError, match=r"failed after 1 attempt; last error: connection"):
        connector.fetch("Any", None)
    assert sleeps.calls == []


def test_configured_fields_are_not_cached_as_the_process(
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    project = unique_name("Cache")
    ado.add_project(project, "Agile")
    ado.add_item(project, "pts", fields={"Custom.Points": 8, "Microsoft.VSTS.Scheduling.StoryPoints": 3})
    overridden = make_connector(ado, sleeps, cache_dir=tmp_path, effort_field="Custom.Points")
    assert [i.story_points for i in overridden.fetch(project, None, full=True).issues] == [8.0]

    plain = make_connector(ado, sleeps, cache_dir=tmp_path)
    mark = len(ado.requests)

    assert [i.story_points for i in plain.fetch(project, None, full=True).issues] == [3.0]
    assert of_kind(since(ado, mark), "GET", "processconfiguration") == []  # came from the cache


def test_markdown_fields_keep_their_structure(
    ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Markdown")
    ado.add_project(project)
    item = ado.add_item(
        project,
        "Export orders",
        fields={
            "System.Description": "Intro\n\n## Acceptance criteria\n- Given a cart, when I export, then I get a CSV",
            "Microsoft.VSTS.Common.AcceptanceCriteria": "<ul><li>HTML still</li></ul>",
        },
        markdown_fields=["System.Description"],
    )
    connector = make_connector(ado, sleeps)

    (issue,) = [i for i in connector.fetch(project, None, full=True).issues if i.key == str(item)]

    assert (
        issue.description == "Intro\n\nAcceptance criteria\n\n- Given a cart, when I export, then I get a CSV"
    )
    assert issue.acceptance_criteria == "- HTML still"


class _NotAzureDevOps(BaseHTTPRequestHandler):
    """Answers every request with 200 and a body that is not Azure DevOps JSON (a login page or a proxy)."""

    body = b"<html><body>Sign in</body></html>"
    content_type = "text/html"

    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = do_OPTIONS = _answer  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("body", "content_type"), [(b"<html>Sign in</html>", "text/html"), (b"{}", "application/json")]
)
def test_a_server_that_is_not_azure_devops_gives_a_clear_error(
    pat_env: str, sleeps: Sleeps, body: bytes, content_type: str
) -> None:
    handler = type("Handler", (_NotAzureDevOps,), {"body": body, "content_type": content_type})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        source = AzureDevOpsSourceConfig(
            kind="azure_devops",
            url=f"http://127.0.0.1:{server.server_port}/org",
            token_env=TOKEN_ENV,
            retry_attempts=1,
        )
        connector = AzureDevOpsConnector(source, name="wrong-url", sleep=sleeps, jitter=lambda: 0.5)
        with pytest.raises(ConnectorError) as caught:
            connector.fetch("Project", None, full=True)
    finally:
        server.shutdown()
        server.server_close()
    message = str(caught.value)
    assert "wrong-url" in message
    assert "url" in message.lower()
    assert PAT not in message


def test_a_day_after_the_last_full_sync_the_next_sync_reads_everything(
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    project = unique_name("Daily")
    ado.add_project(project)
    for n in range(3):
        ado.add_item(project, f"Story {n}")
    make_connector(ado, sleeps, cache_dir=tmp_path).fetch(project, None, full=True)
    assert make_connector(ado, sleeps, cache_dir=tmp_path).fetch(project, None).extra["incremental"] is True

    # Age the saved state's last full sync by 25 hours, as a process restarted the next day would find it.
    states = [p for p in tmp_path.rglob("*.json") if "full_synced_at" in p.read_text(encoding="utf-8")]
    assert states, list(tmp_path.rglob("*"))
    for path in states:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["full_synced_at"] = (datetime.now(UTC) - timedelta(hours=25)).isoformat()
        path.write_text(json.dumps(data), encoding="utf-8")

    result = make_connector(ado, sleeps, cache_dir=tmp_path).fetch(project, None)

    assert result.extra["incremental"] is False
    assert len(result.issues) == 3
