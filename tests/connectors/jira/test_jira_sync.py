"""Incremental sync: only what changed since the last successful sync, merged into memory."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import ConnectorError, MemorySyncStateStore
from refinebot.models import StatusCategory
from tests.fakes.jira_data import link, make_issue, populate, status
from tests.fakes.jira_server import Site


def _searches(site: Site) -> list[str]:
    return [e.query["jql"][0] for e in site.requests("GET", "/rest/api/3/search/jql") if "jql" in e.query]


def test_incremental_sync_of_100_changed_issues_takes_at_most_3_requests(cloud_site: Site, connect) -> None:
    populate(cloud_site, 1000)
    connector = connect(cloud_site)
    first = connector.fetch("SHOP", None)
    assert not first.incremental
    now = datetime.now(UTC)
    for number in range(1, 101):
        cloud_site.touch(f"SHOP-{number}", now, summary=f"Reworded {number}")
    before = len(cloud_site.log)

    second = connector.fetch("SHOP", None)

    assert second.incremental
    assert len(cloud_site.log) - before == second.counters.requests <= 3
    assert len(second.issues) == 1000
    titles = {i.key: i.title for i in second.issues}
    assert titles["SHOP-1"] == "Reworded 1"
    assert titles["SHOP-100"] == "Reworded 100"
    assert titles["SHOP-101"] == "Checkout improvement 101"
    jql = next(q for q in reversed(_searches(cloud_site)) if "updated" in q)
    minutes = int(re.search(r'updated >= "-(\d+)m"', jql).group(1))  # type: ignore[union-attr]
    assert 6 <= minutes <= 7  # the time since the last sync plus the 5-minute overlap


def test_incremental_sync_drops_items_that_became_done_and_adds_new_ones(cloud_site: Site, connect) -> None:
    populate(cloud_site, 5)
    connector = connect(cloud_site)
    connector.fetch("SHOP", None)
    now = datetime.now(UTC)
    cloud_site.touch("SHOP-2", now, status=status(cloud_site, "Done"))
    make_issue(cloud_site, 6, updated=now)

    result = connector.fetch("SHOP", None)

    assert [i.key for i in result.issues] == ["SHOP-1", "SHOP-3", "SHOP-4", "SHOP-5", "SHOP-6"]


def test_incremental_sync_with_a_custom_query_drops_items_that_stopped_matching(
    cloud_site: Site, connect
) -> None:
    for number in range(1, 4):
        make_issue(cloud_site, number, labels=["refine"])
    query = 'project = "SHOP" AND labels = refine ORDER BY Rank ASC'
    connector = connect(cloud_site)
    assert len(connector.fetch("SHOP", query).issues) == 3
    cloud_site.touch("SHOP-2", datetime.now(UTC), labels=[])
    before = len(cloud_site.log)

    result = connector.fetch("SHOP", query)

    assert [i.key for i in result.issues] == ["SHOP-1", "SHOP-3"]
    # The changed matches, then the ids of everything the query matches now.
    assert len(cloud_site.log) - before == 2
    assert _searches(cloud_site)[-1] == query
    assert cloud_site.log[-1].query["fields"] == ["id"]


def test_custom_query_for_a_config_key_that_is_not_a_jira_project(cloud_site: Site, connect) -> None:
    make_issue(cloud_site, 1, project="API", project_name="Api")
    make_issue(cloud_site, 2, project="WEB", project_name="Web")
    connector = connect(cloud_site)
    query = "project in (API, WEB) ORDER BY key"
    assert len(connector.fetch("team-a", query).issues) == 2
    cloud_site.touch("WEB-2", datetime.now(UTC), summary="Renamed")

    result = connector.fetch("team-a", query)

    assert result.incremental
    assert {i.key: i.title for i in result.issues}["WEB-2"] == "Renamed"


def test_a_day_without_sync_falls_back_to_a_full_sync(cloud_site: Site, connect) -> None:
    populate(cloud_site, 3)
    state = MemorySyncStateStore()
    first = connect(cloud_site, state=state)
    first.fetch("SHOP", None)
    key = first.state_key("SHOP", None)
    saved = state.load(key)
    saved["last_sync"] = (datetime.now(UTC) - timedelta(hours=25)).isoformat()
    state.save(key, saved)
    del cloud_site.issues["SHOP-2"]  # deleted on the server: no search reports it as changed

    result = connect(cloud_site, state=state).fetch("SHOP", None)

    assert not result.incremental
    assert [i.key for i in result.issues] == ["SHOP-1", "SHOP-3"]


def test_full_sync_on_demand_ignores_the_remembered_state(cloud_site: Site, connect) -> None:
    populate(cloud_site, 3)
    connector = connect(cloud_site)
    connector.fetch("SHOP", None)

    result = connector.fetch("SHOP", None, full=True)

    assert not result.incremental
    assert "updated" not in _searches(cloud_site)[-1]


def test_a_failed_sync_is_not_remembered_as_the_last_sync(cloud_site: Site, connect) -> None:
    populate(cloud_site, 2)
    state = MemorySyncStateStore()
    connector = connect(cloud_site, state=state, retry_attempts=1)
    cloud_site.fail("GET", "/rest/api/3/search/jql", 500)
    with pytest.raises(ConnectorError, match="HTTP 500"):
        connector.fetch("SHOP", None)
    assert state.load(connector.state_key("SHOP", None)) is None

    result = connector.fetch("SHOP", None)

    assert not result.incremental
    assert len(result.issues) == 2


def test_data_center_incremental_sync(dc_site: Site, connect) -> None:
    populate(dc_site, 120)
    connector = connect(dc_site)
    connector.fetch("SHOP", None)
    dc_site.touch("SHOP-7", datetime.now(UTC), summary="Changed on the server")
    before = len(dc_site.log)

    result = connector.fetch("SHOP", None)

    # The changes, the ids of everything changed (by time alone), the query's count.
    assert len(dc_site.log) - before == 3
    assert {i.key: i.title for i in result.issues}["SHOP-7"] == "Changed on the server"
    assert len(result.issues) == 120


def test_custom_query_an_issue_moved_between_matched_projects_keeps_only_its_new_key(
    cloud_site: Site, connect
) -> None:
    for number in (1, 2, 3):
        make_issue(cloud_site, number)
    query = "project in (SHOP, WEB) ORDER BY key"
    connector = connect(cloud_site)
    assert [i.key for i in connector.fetch("team", query).issues] == ["SHOP-1", "SHOP-2", "SHOP-3"]
    cloud_site.move("SHOP-2", "WEB-9", datetime.now(UTC))

    result = connector.fetch("team", query)

    assert result.incremental
    assert sorted(i.key for i in result.issues) == ["SHOP-1", "SHOP-3", "WEB-9"]


def test_default_query_an_issue_moved_to_another_project_leaves_the_backlog(
    cloud_site: Site, connect
) -> None:
    for number in (1, 2, 3):
        make_issue(cloud_site, number)
    connector = connect(cloud_site)
    connector.fetch("SHOP", None)
    cloud_site.move("SHOP-2", "OPS-9", datetime.now(UTC))

    result = connector.fetch("SHOP", None)

    assert result.incremental
    assert [i.key for i in result.issues] == ["SHOP-1", "SHOP-3"]


def test_incremental_sync_lets_deleted_issues_go_and_finds_matches_whose_updated_did_not_move(
    cloud_site: Site, connect
) -> None:
    populate(cloud_site, 3)
    connector = connect(cloud_site)
    connector.fetch("SHOP", None)
    del cloud_site.issues["SHOP-2"]
    make_issue(cloud_site, 4)  # 'updated' long ago: invisible to a change scan
    before = len(cloud_site.log)

    result = connector.fetch("SHOP", None)

    assert result.incremental
    assert [i.key for i in result.issues] == ["SHOP-1", "SHOP-3", "SHOP-4"]
    assert len(cloud_site.log) - before == 3  # changes, membership, the one missed issue by id


def test_data_center_paging_does_not_skip_an_issue_when_one_leaves_between_pages(
    dc_site: Site, connect
) -> None:
    # The reviewer's scenario: a user closes SHOP-1 while the sync is between pages 1 and 2, so
    # every later issue moves up one offset and SHOP-51 would slip past startAt=50.
    dc_site.dc_page_cap = 50
    populate(dc_site, 120)

    def close_shop_1(query: dict[str, list[str]]) -> None:
        if query.get("startAt") == ["50"] and dc_site.issues["SHOP-1"]["fields"]["status"]["name"] != "Done":
            dc_site.touch("SHOP-1", datetime.now(UTC), status=status(dc_site, "Done"))

    dc_site.before_search = close_shop_1
    connector = connect(dc_site)

    result = connector.fetch("SHOP", None)

    keys = {i.key for i in result.issues}
    assert {f"SHOP-{n}" for n in range(2, 121)} <= keys
    assert len(result.issues) == len(keys)  # the page read twice brought no duplicates


def _blockers(result_issues: list, key: str) -> dict[str, object]:  # type: ignore[type-arg]
    [issue] = [i for i in result_issues if i.key == key]
    return {
        link.target: link.target_status_category for link in issue.links if link.kind.value == "blocked_by"
    }


def test_a_blocker_that_became_done_is_known_done_after_an_incremental_sync(
    cloud_site: Site, connect
) -> None:
    # Resolving SHOP-2 does not touch SHOP-1's 'updated'; SHOP-2 leaves the default query (done),
    # so neither the change scan nor the backlog says it is done.
    make_issue(cloud_site, 1, links=[link(cloud_site, "Blocks", "inward", "SHOP-2")])
    make_issue(cloud_site, 2)
    make_issue(cloud_site, 3, links=[link(cloud_site, "Blocks", "inward", "OPS-7", "In Progress")])
    make_issue(cloud_site, 7, project="OPS", project_name="Ops", status_name="In Progress")
    connector = connect(cloud_site)
    connector.fetch("SHOP", None)
    cloud_site.touch("SHOP-2", datetime.now(UTC), status=status(cloud_site, "Done"))
    before = len(cloud_site.log)

    result = connector.fetch("SHOP", None)

    assert result.incremental
    assert [i.key for i in result.issues] == ["SHOP-1", "SHOP-3"]
    assert _blockers(result.issues, "SHOP-1") == {"SHOP-2": StatusCategory.DONE}
    assert _blockers(result.issues, "SHOP-3") == {"OPS-7": StatusCategory.IN_PROGRESS}
    # changes, membership, one scan of what changed in the outside blockers' projects (statuses)
    assert len(cloud_site.log) - before == 3
    assert re.fullmatch(r'project in \("OPS", "SHOP"\) AND updated >= "-\d+m"', _searches(cloud_site)[-1])

    again = connector.fetch("SHOP", None)

    assert _blockers(again.issues, "SHOP-1") == {"SHOP-2": StatusCategory.DONE}
    assert _blockers(again.issues, "SHOP-3") == {"OPS-7": StatusCategory.IN_PROGRESS}


def test_a_deleted_blocker_does_not_fail_the_sync(cloud_site: Site, connect) -> None:
    make_issue(cloud_site, 1, links=[link(cloud_site, "Blocks", "inward", "OPS-7")])
    make_issue(cloud_site, 7, project="OPS", project_name="Ops")
    connector = connect(cloud_site)
    connector.fetch("SHOP", None)
    del cloud_site.issues["OPS-7"]  # Jira now refuses JQL naming it

    result = connector.fetch("SHOP", None)

    assert result.incremental
    assert _blockers(result.issues, "SHOP-1") == {"OPS-7": StatusCategory.TODO}  # what it knew
    assert all(e.status == 200 for e in cloud_site.log)  # a deleted issue is in no scan of changes


def test_a_data_center_backlog_over_the_10000_result_window_syncs_completely(dc_site: Site, connect) -> None:
    populate(dc_site, 10_450)
    dc_site.issues["SHOP-10450"]["fields"]["customfield_10019"] = "0|a00000:"  # ranked to the top
    connector = connect(dc_site)

    result = connector.fetch("SHOP", None)

    assert len(result.issues) == 10_450
    # Read in key order, handed back in rank order.
    assert [i.key for i in result.issues[:3]] == ["SHOP-10450", "SHOP-1", "SHOP-2"]
    assert result.issues[-1].key == "SHOP-10449"
    assert all(e.status == 200 for e in dc_site.log)
    assert all(
        int(e.query["startAt"][0]) + int(e.query["maxResults"][0]) <= 10_000
        for e in dc_site.requests("GET", "/rest/api/2/search")
    )
    dc_site.touch("SHOP-10400", datetime.now(UTC), summary="Changed late in the backlog")

    again = connector.fetch("SHOP", None)

    assert again.incremental
    assert len(again.issues) == 10_450
    assert {i.key: i.title for i in again.issues}["SHOP-10400"] == "Changed late in the backlog"


def test_data_center_incremental_sync_sees_moves_done_and_deletions(dc_site: Site, connect) -> None:
    # Data Center lists at most 1000 ids a page, so it looks for leavers by time and checks the count.
    populate(dc_site, 6)
    connector = connect(dc_site)
    connector.fetch("SHOP", None)
    now = datetime.now(UTC)
    dc_site.move("SHOP-2", "OPS-9", now)
    dc_site.touch("SHOP-3", now, status=status(dc_site, "Done"))
    before = len(dc_site.log)

    moved = connector.fetch("SHOP", None)

    assert [i.key for i in moved.issues] == ["SHOP-1", "SHOP-4", "SHOP-5", "SHOP-6"]
    # The scan covers SHOP only, so the count (one fewer) sends for the ids: the move is seen.
    assert len(dc_site.log) - before == 4
    del dc_site.issues["SHOP-5"]  # deleted: no search reports it as changed

    deleted = connector.fetch("SHOP", None)

    assert deleted.incremental
    assert [i.key for i in deleted.issues] == ["SHOP-1", "SHOP-4", "SHOP-6"]
    make_issue(dc_site, 7)  # matches without its 'updated' moving

    entered = connector.fetch("SHOP", None)

    assert [i.key for i in entered.issues] == ["SHOP-1", "SHOP-4", "SHOP-6", "SHOP-7"]


def test_data_center_custom_query_move_between_matched_projects(dc_site: Site, connect) -> None:
    for number in (1, 2, 3):
        make_issue(dc_site, number)
    query = "project in (SHOP, WEB) ORDER BY key"
    connector = connect(dc_site)
    connector.fetch("team", query)
    dc_site.move("SHOP-2", "WEB-9", datetime.now(UTC))

    result = connector.fetch("team", query)

    assert sorted(i.key for i in result.issues) == ["SHOP-1", "SHOP-3", "WEB-9"]


def test_data_center_refreshes_only_blockers_that_changed(dc_site: Site, connect) -> None:
    make_issue(
        dc_site,
        1,
        links=[
            link(dc_site, "Blocker", "inward", "SHOP-2"),
            link(dc_site, "Blocker", "inward", "OPS-7", "In Progress"),
        ],
    )
    make_issue(dc_site, 2)
    make_issue(dc_site, 7, project="OPS", project_name="Ops", status_name="In Progress")
    connector = connect(dc_site)
    connector.fetch("SHOP", None)
    dc_site.touch("SHOP-2", datetime.now(UTC), status=status(dc_site, "Done"))
    before = len(dc_site.log)

    result = connector.fetch("SHOP", None)

    assert _blockers(result.issues, "SHOP-1") == {
        "SHOP-2": StatusCategory.DONE,
        "OPS-7": StatusCategory.IN_PROGRESS,
    }
    searches = [e.query["jql"][0] for e in dc_site.requests("GET", "/rest/api/2/search")]
    assert searches[-1] == 'key in ("SHOP-2")'  # OPS-7 did not change: its link status stands
    assert len(dc_site.log) - before == 4  # changes, ids changed by time, count, blocker status


def test_the_fake_compares_keys_within_the_named_issues_project_like_jira(dc_site: Site) -> None:
    for number in (1, 2, 3):
        make_issue(dc_site, number)
        make_issue(dc_site, number, project="WEB", project_name="Web")

    after, _ = dc_site.search('key > "SHOP-1" ORDER BY key')
    gone, _ = dc_site.search('key > "SHOP-9" ORDER BY key')

    assert [i["key"] for i in after] == ["SHOP-2", "SHOP-3"]  # no WEB issue, though "WEB" > "SHOP"
    assert gone == []  # a key that names no issue matches nothing (no error either)


def test_data_center_window_read_covers_every_project_of_a_multi_project_query(
    dc_site: Site, connect
) -> None:
    populate(dc_site, 6000, project="API")
    populate(dc_site, 6000, project="WEB")
    populate(dc_site, 3000, project="XYZ")
    connector = connect(dc_site)

    result = connector.fetch("team", "project in (API, WEB, XYZ) ORDER BY Rank ASC")

    keys = [i.key for i in result.issues]
    assert len(keys) == len(set(keys)) == 15_000
    assert {k.rpartition("-")[0] for k in keys} == {"API", "WEB", "XYZ"}
    assert all(e.status == 200 for e in dc_site.log)
    assert all(
        int(e.query["startAt"][0]) + int(e.query["maxResults"][0]) <= 10_000
        for e in dc_site.requests("GET", "/rest/api/2/search")
    )


def test_data_center_window_read_steps_back_when_the_key_it_continues_from_is_deleted(
    dc_site: Site, connect
) -> None:
    populate(dc_site, 10_450)

    def delete_the_last_key_read(query: dict[str, list[str]]) -> None:
        if 'key > "SHOP-10000"' in query.get("jql", [""])[0]:
            dc_site.issues.pop("SHOP-10000", None)

    dc_site.before_search = delete_the_last_key_read
    connector = connect(dc_site)

    result = connector.fetch("SHOP", None)

    keys = {i.key for i in result.issues}
    assert len(keys) == 10_450  # SHOP-10000 was read before it went; nothing after it is lost
    assert "SHOP-10450" in keys


def test_data_center_window_read_never_ends_silently_when_it_cannot_continue(dc_site: Site, connect) -> None:
    populate(dc_site, 10_450)

    def delete_everything_read(query: dict[str, list[str]]) -> None:
        if "key >" in query.get("jql", [""])[0]:
            for number in range(1, 10_001):
                dc_site.issues.pop(f"SHOP-{number}", None)

    dc_site.before_search = delete_everything_read
    connector = connect(dc_site)

    with pytest.raises(ConnectorError, match="every key read was deleted"):
        connector.fetch("SHOP", None)


def test_data_center_incremental_sync_scans_only_its_projects_not_the_whole_site(
    dc_site: Site, connect
) -> None:
    populate(dc_site, 1000)
    connector = connect(dc_site)
    connector.fetch("SHOP", None)
    now = datetime.now(UTC)
    for number in range(1, 3001):  # a busy other project: 3000 changes in the window
        make_issue(dc_site, number, project="OTHER", project_name="Other", updated=now)
    for number in range(1, 101):
        dc_site.touch(f"SHOP-{number}", now, summary=f"Reworded {number}")
    before = len(dc_site.log)

    second = connector.fetch("SHOP", None)

    assert second.counters.requests == len(dc_site.log) - before <= 3
    assert {i.key: i.title for i in second.issues}["SHOP-100"] == "Reworded 100"
    scans = [e.query["jql"][0] for e in dc_site.log[before:] if "jql" in e.query]
    assert all("project" in jql for jql in scans)


def test_data_center_incremental_scan_covers_the_projects_of_outside_blockers(dc_site: Site, connect) -> None:
    make_issue(dc_site, 1, links=[link(dc_site, "Blocker", "inward", "OPS-7", "In Progress")])
    make_issue(dc_site, 7, project="OPS", project_name="Ops", status_name="In Progress")
    connector = connect(dc_site)
    connector.fetch("SHOP", None)
    dc_site.touch("OPS-7", datetime.now(UTC), status=status(dc_site, "Done"))

    result = connector.fetch("SHOP", None)

    assert _blockers(result.issues, "SHOP-1") == {"OPS-7": StatusCategory.DONE}


def test_cloud_incremental_sync_does_not_grow_with_the_blockers_outside_the_backlog(
    cloud_site: Site, connect
) -> None:
    for number in range(1, 1001):
        blockers = (
            [link(cloud_site, "Blocks", "inward", f"OPS-{number}", "In Progress")] if number <= 350 else []
        )
        make_issue(cloud_site, number, links=blockers)
    for number in range(1, 351):
        make_issue(cloud_site, number, project="OPS", project_name="Ops", status_name="In Progress")
    connector = connect(cloud_site)
    connector.fetch("SHOP", None)
    now = datetime.now(UTC)
    for number in range(1, 101):
        cloud_site.touch(f"SHOP-{number}", now, summary=f"Reworded {number}")
    cloud_site.touch("OPS-300", now, status=status(cloud_site, "Done"))
    before = len(cloud_site.log)

    second = connector.fetch("SHOP", None)

    assert second.counters.requests == len(cloud_site.log) - before == 3  # was 6: 350 blockers, 100 a search
    assert _blockers(second.issues, "SHOP-300") == {"OPS-300": StatusCategory.DONE}
    assert _blockers(second.issues, "SHOP-299") == {"OPS-299": StatusCategory.IN_PROGRESS}


def test_one_deleted_blocker_does_not_stop_the_status_refresh_of_the_others(dc_site: Site, connect) -> None:
    make_issue(dc_site, 1, links=[link(dc_site, "Blocker", "inward", "OPS-7", "In Progress")])
    make_issue(dc_site, 3, links=[link(dc_site, "Blocker", "inward", "OPS-8", "In Progress")])
    make_issue(dc_site, 7, project="OPS", project_name="Ops", status_name="In Progress")
    make_issue(dc_site, 8, project="OPS", project_name="Ops", status_name="In Progress")
    connector = connect(dc_site)
    connector.fetch("SHOP", None)
    now = datetime.now(UTC)
    dc_site.touch("OPS-7", now, summary="Changed, then deleted")
    dc_site.touch("OPS-8", now, status=status(dc_site, "Done"))

    def delete_ops_7(query: dict[str, list[str]]) -> None:  # between the scan and the refresh
        if query.get("jql", [""])[0].startswith("key in"):
            dc_site.issues.pop("OPS-7", None)

    dc_site.before_search = delete_ops_7

    result = connector.fetch("SHOP", None)

    assert _blockers(result.issues, "SHOP-3") == {"OPS-8": StatusCategory.DONE}
    assert _blockers(result.issues, "SHOP-1") == {"OPS-7": StatusCategory.IN_PROGRESS}  # as known
    refreshes = [
        e for e in dc_site.requests("GET", "/rest/api/2/search") if e.query["jql"][0].startswith("key in")
    ]
    assert [(e.query["jql"][0], e.status) for e in refreshes] == [
        ('key in ("OPS-7", "OPS-8")', 400),
        ('key in ("OPS-8")', 200),  # Jira named OPS-7: asked again without it
    ]


@pytest.mark.parametrize("cloud", [False, True])
def test_a_reopened_blocker_is_no_longer_done_after_an_incremental_sync(
    fake_jira, connect, cloud: bool
) -> None:
    site = fake_jira.new_site(cloud=cloud)
    make_issue(site, 1, links=[link(site, "Blocks", "inward", "OPS-7", "In Progress")])
    make_issue(site, 7, project="OPS", project_name="Ops", status_name="In Progress")
    connector = connect(site)
    connector.fetch("SHOP", None)
    site.touch("OPS-7", datetime.now(UTC), status=status(site, "Done"))
    done = connector.fetch("SHOP", None)
    assert _blockers(done.issues, "SHOP-1") == {"OPS-7": StatusCategory.DONE}
    site.touch("OPS-7", datetime.now(UTC), status=status(site, "In Progress"))

    reopened = connector.fetch("SHOP", None)

    assert reopened.incremental
    assert _blockers(reopened.issues, "SHOP-1") == {"OPS-7": StatusCategory.IN_PROGRESS}


@pytest.mark.parametrize("cloud", [True, False])
def test_an_issue_deleted_before_the_missed_issue_fetch_does_not_fail_the_sync(
    fake_jira, connect, cloud: bool
) -> None:
    site = fake_jira.new_site(cloud=cloud)
    populate(site, 3)
    connector = connect(site)
    connector.fetch("SHOP", None)
    make_issue(site, 4)  # 'updated' long ago: only the membership listing finds them
    make_issue(site, 5)
    if not cloud:
        del site.issues["SHOP-3"]  # the count disagrees, so Data Center lists the ids too

    def delete_shop_4(query: dict[str, list[str]]) -> None:  # between the listing and the fetch
        if " id in (" in query.get("jql", [""])[0]:
            site.issues.pop("SHOP-4", None)

    site.before_search = delete_shop_4

    result = connector.fetch("SHOP", None)

    assert result.incremental
    assert [i.key for i in result.issues] == ["SHOP-1", "SHOP-2"] + ([] if not cloud else ["SHOP-3"]) + [
        "SHOP-5"
    ]
    fetches = [e.status for e in site.log if " id in (" in e.query.get("jql", [""])[0]]
    assert fetches == [400, 200]  # refused for SHOP-4's id, asked again without it


def test_data_center_a_move_out_costs_one_scan_of_all_changes_not_a_listing_of_every_id(
    dc_site: Site, connect
) -> None:
    populate(dc_site, 2500)  # listing their ids would take 3 requests (1000 a page)
    connector = connect(dc_site)
    connector.fetch("SHOP", None)
    dc_site.move("SHOP-7", "OPS-7", datetime.now(UTC))
    before = len(dc_site.log)

    result = connector.fetch("SHOP", None)

    keys = {i.key for i in result.issues}
    assert len(keys) == 2499 and "SHOP-7" not in keys and "OPS-7" not in keys
    # changes, changes in SHOP (ids), the count (one fewer), what changed anywhere (shows the move)
    assert len(dc_site.log) - before == 4
    assert re.fullmatch(r'updated >= "-\d+m"', dc_site.log[-1].query["jql"][0])
