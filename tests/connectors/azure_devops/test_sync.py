"""Full and incremental syncs: mapping, blockers' categories, the snapshot in the store, the daily full read.

The real connector and the real ``azure-devops`` SDK over HTTP against the session's fake organisation
(each test in its own project); request counts come from the fake's log of what crossed the wire.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.azure_devops import AzureDevOpsConnector
from connectors.base import JsonDirSyncStateStore, MemorySyncStateStore, Progress
from refinebot.config import AzureDevOpsSourceConfig
from refinebot.models import LinkKind, StatusCategory
from tests.connectors.azure_devops.conftest import ConnectorFactory, Sleeps
from tests.connectors.azure_devops.fake_org import TOKEN_ENV
from tests.fakes.ado_server import FakeAzureDevOps, of_kind

DEP_REVERSE = "System.LinkTypes.Dependency-Reverse"
DEP_FORWARD = "System.LinkTypes.Dependency-Forward"


def test_html_fields_tags_and_relations_are_mapped(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
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
    connector = make_connector()

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
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
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
    connector = make_connector()
    mark = len(ado.requests)

    issues = {i.key: i for i in connector.fetch(project, None, full=True).issues}

    assert set(issues) == {str(blocked), str(free)}
    categories = {link.target: link.target_status_category for link in issues[str(blocked)].links}
    assert categories == {
        str(open_elsewhere): StatusCategory.IN_PROGRESS,
        str(done_here): StatusCategory.DONE,
    }
    target_reads = [
        r for r in of_kind(ado.requests_since(mark), "POST", "workItemsBatch") if r.body.get("fields")
    ]
    assert len(target_reads) == 1
    assert sorted(target_reads[0].body["ids"]) == sorted([open_elsewhere, done_here])
    # Successor links are not blockers: their targets need no lookup.
    assert issues[str(free)].links[0].kind is LinkKind.BLOCKS
    assert issues[str(free)].links[0].target_status_category is None


def test_blocked_tag_and_blocked_field(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
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

    default = make_connector()
    agile_issues = {i.key: i.flagged_blocked for i in default.fetch(agile, None, full=True).issues}
    cmmi_issues = {i.key: i.flagged_blocked for i in default.fetch(cmmi, None, full=True).issues}
    custom_tag = make_connector(blocked_tag="On Hold")
    custom_issues = {i.key: i.flagged_blocked for i in custom_tag.fetch(agile, None, full=True).issues}

    assert agile_issues == {str(tagged): True, str(custom): False, str(plain): False}
    assert cmmi_issues == {str(flagged): True, str(unflagged): False}
    assert custom_issues == {str(tagged): False, str(custom): True, str(plain): False}


def test_incremental_sync_reads_only_changes_and_survives_a_restart(
    make_connector: ConnectorFactory,
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
    first = make_connector(state=JsonDirSyncStateStore(tmp_path / "refinebot"))
    first.fetch(project, None, full=True)
    now = datetime.now(UTC)
    for item_id in ids[:100]:
        ado.touch(item_id, now, **{"System.Title": f"Renamed {item_id}"})
    ado.touch(ids[100], now, **{"System.State": "Closed"})
    ado.touch(blocker, now, **{"System.State": "Closed"})  # the blocker in another project is done
    new = ado.add_item(project, "Brand new", changed=now)

    # A new connector (a new process run) reads its state and the process from the cache folder.
    second = make_connector(state=JsonDirSyncStateStore(tmp_path / "refinebot"))
    mark = len(ado.requests)
    result = second.fetch(project, None)

    sent = ado.requests_since(mark)
    assert len(sent) <= 3, [(r.method, r.path) for r in sent]
    assert result.counters.requests == len(sent)
    assert result.counters.discovery_requests == 0  # the process came from the store too
    assert result.counters.search_requests == len(sent)
    assert result.incremental is True
    assert result.counters.fetched == 102
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


def test_a_day_after_the_last_full_sync_the_next_sync_reads_everything(
    make_connector: ConnectorFactory,
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
    make_connector(state=JsonDirSyncStateStore(tmp_path / "refinebot")).fetch(project, None, full=True)
    assert (
        make_connector(state=JsonDirSyncStateStore(tmp_path / "refinebot")).fetch(project, None).incremental
        is True
    )

    # Age the saved state's last full sync by 25 hours, as a process restarted the next day would find it.
    states = [p for p in tmp_path.rglob("*.json") if "full_synced_at" in p.read_text(encoding="utf-8")]
    assert states, list(tmp_path.rglob("*"))
    for path in states:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["full_synced_at"] = (datetime.now(UTC) - timedelta(hours=25)).isoformat()
        path.write_text(json.dumps(data), encoding="utf-8")

    result = make_connector(state=JsonDirSyncStateStore(tmp_path / "refinebot")).fetch(project, None)

    assert result.incremental is False
    assert len(result.issues) == 3


def test_malformed_work_item_is_skipped_with_a_reason(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
) -> None:
    project = unique_name("Malformed")
    ado.add_project(project)
    good = ado.add_item(project, "fine")
    bad_points = ado.add_item(project, "bad points", fields={"Microsoft.VSTS.Scheduling.StoryPoints": "lots"})
    connector = make_connector()

    result = connector.fetch(project, None, full=True)

    assert [i.key for i in result.issues] == [str(good)]
    (skipped,) = result.skipped
    assert skipped.key == str(bad_points)
    assert "Microsoft.VSTS.Scheduling.StoryPoints" in skipped.reason
    assert "not a number" in skipped.reason
    assert project in skipped.reason


def test_markdown_fields_keep_their_structure(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
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
    connector = make_connector()

    (issue,) = [i for i in connector.fetch(project, None, full=True).issues if i.key == str(item)]

    assert (
        issue.description == "Intro\n\nAcceptance criteria\n\n- Given a cart, when I export, then I get a CSV"
    )
    assert issue.acceptance_criteria == "- HTML still"


def test_counters_and_progress_of_a_cold_full_fetch(
    make_connector: ConnectorFactory, ado: FakeAzureDevOps, pat_env: str, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Counted")
    ado.add_project(project)
    for n in range(450):
        ado.add_item(project, f"Story {n}")
    events: list[Progress] = []
    source = AzureDevOpsSourceConfig(kind="azure_devops", url=ado.url, token_env=TOKEN_ENV)
    connector = AzureDevOpsConnector(source, progress=events.append)
    mark = len(ado.requests)

    result = connector.fetch(project, None)

    sent = ado.requests_since(mark)
    discovery = [r for r in sent if "processconfiguration" in r.path or r.path.endswith("/states")]
    search = of_kind(sent, "POST", "/wiql") + of_kind(sent, "POST", "workItemsBatch")
    assert result.counters.discovery_requests == len(discovery) == 3  # process + User Story + Bug states
    assert result.counters.search_requests == len(search) == 1 + 3
    assert result.counters.requests == len(discovery) + len(search)
    assert result.counters.fetched == 450
    assert not result.incremental
    batches = [e for e in events if not e.finished]
    assert [(e.label, e.done, e.total) for e in batches] == [
        ("work items", 200, 450),
        ("work items", 400, 450),
        ("work items", 450, 450),
    ]
    assert events[-1].finished


def test_the_snapshot_is_raw_vendor_json_under_namespaced_keys(
    make_connector: ConnectorFactory, ado: FakeAzureDevOps, pat_env: str, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Raw")
    ado.add_project(project)
    item = ado.add_item(project, "Raw item")
    store = MemorySyncStateStore()
    make_connector(state=store).fetch(project, None)

    prefix = f"ado:ado-test:{ado.url}:"
    assert store.keys() and all(key.startswith(prefix) for key in store.keys())  # noqa: SIM118
    (sync_key,) = [key for key in store.keys() if ":sync:" in key]  # noqa: SIM118
    snapshot = store.load(sync_key)
    assert set(snapshot) == {"synced_at", "full_synced_at", "items", "targets"}
    raw = snapshot["items"][str(item)]
    assert raw["fields"]["System.Title"] == "Raw item"  # what the service answered, not an Issue
    assert raw["url"].endswith(f"/_apis/wit/workItems/{item}")
    # A mapping change applies without a new read: the next fetch maps the snapshot again.
    again = make_connector(state=store)
    mark = len(ado.requests)
    assert [i.title for i in again.fetch(project, None).issues] == ["Raw item"]
    assert again.fetch(project, None).incremental
    assert of_kind(ado.requests_since(mark), "POST", "workItemsBatch") == []
