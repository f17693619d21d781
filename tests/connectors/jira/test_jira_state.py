"""Sync state through the injected ``SyncStateStore``: raw JSON snapshots, shared by connectors on one store."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.base import JsonDirSyncStateStore, MemorySyncStateStore, SyncStateStore
from connectors.jira import JiraConnector
from refinebot.models import StatusCategory
from tests.fakes.jira_data import link, make_issue, populate, status
from tests.fakes.jira_server import Site

SEARCH = "/rest/api/3/search/jql"


@pytest.mark.parametrize("kind", ["memory", "json-dir"])
def test_a_second_connector_on_the_same_store_syncs_incrementally(
    cloud_site: Site, connect: Callable[..., JiraConnector], tmp_path: Path, kind: str
) -> None:
    populate(cloud_site, 1000)
    store: SyncStateStore = MemorySyncStateStore() if kind == "memory" else JsonDirSyncStateStore(tmp_path)
    first = connect(cloud_site, state=store).fetch("SHOP", None)
    now = datetime.now(UTC)
    for number in range(1, 101):
        cloud_site.touch(f"SHOP-{number}", now, summary=f"Reworded {number}")
    searches_before = len(cloud_site.requests("GET", SEARCH))
    fields_before = len(cloud_site.requests("GET", "/rest/api/3/field"))

    second = connect(cloud_site, state=store).fetch("SHOP", None)

    assert not first.incremental and second.incremental
    assert len(cloud_site.requests("GET", SEARCH)) - searches_before == second.counters.search_requests <= 3
    assert len(cloud_site.requests("GET", "/rest/api/3/field")) == fields_before  # 0 field discovery
    assert second.counters.fetched == 100
    assert len(second.issues) == 1000
    assert {i.key: i.title for i in second.issues}["SHOP-100"] == "Reworded 100"
    if kind == "json-dir":
        assert len(list(tmp_path.glob("*.json"))) == 2  # the field map and the project's snapshot


def test_the_snapshot_holds_raw_jira_json_keyed_by_source_and_query(cloud_site: Site, connect) -> None:
    make_issue(cloud_site, 1, links=[link(cloud_site, "Blocks", "inward", "OPS-1")])
    store = MemorySyncStateStore()
    connector = connect(cloud_site, state=store)
    connector.fetch("SHOP", None)

    key = connector.state_key("SHOP", None)
    assert key.startswith(f"jira:test:{cloud_site.url}:project:SHOP:")
    assert sorted(store.keys()) == sorted([key, f"jira:test:{cloud_site.url}:fields"])
    saved = store.load(key)
    [raw] = saved["issues"]
    assert (
        raw["key"] == "SHOP-1"
        and raw["fields"]["summary"] == cloud_site.issues["SHOP-1"]["fields"]["summary"]
    )
    assert set(saved) == {"v", "query", "fingerprint", "last_sync", "issues", "ids", "blockers"}
    assert saved["query"] == 'project = "SHOP" AND statusCategory != Done ORDER BY Rank ASC'
    assert saved["ids"] == {cloud_site.issues["SHOP-1"]["id"]: "SHOP-1"}
    assert connector.state_key("SHOP", "project = SHOP") != key  # another query, another snapshot
    json.dumps(saved)  # JSON all the way down


def test_each_fetch_maps_the_snapshot_again_with_refreshed_blocker_statuses(
    cloud_site: Site, connect
) -> None:
    make_issue(cloud_site, 1, project="OPS", project_name="Ops")
    make_issue(cloud_site, 2, links=[link(cloud_site, "Blocks", "inward", "OPS-1")])
    store = MemorySyncStateStore()
    connect(cloud_site, state=store).fetch("SHOP", None)
    cloud_site.touch("OPS-1", datetime.now(UTC), status=status(cloud_site, "Done"))

    result = connect(cloud_site, state=store).fetch("SHOP", None)

    assert result.incremental
    [blocked] = result.issues
    assert [x.target_status_category for x in blocked.links] == [StatusCategory.DONE]
    saved = store.load(connect(cloud_site, state=store).state_key("SHOP", None))
    assert saved["blockers"] == {"OPS-1": "done"}
    # The raw JSON still says what Jira sent for SHOP-2: statuses are applied when mapping.
    assert (
        saved["issues"][0]["fields"]["issuelinks"][0]["inwardIssue"]["fields"]["status"]["statusCategory"][
            "key"
        ]
        != "done"
    )


def test_an_unreadable_snapshot_means_a_full_sync(cloud_site: Site, connect) -> None:
    populate(cloud_site, 3)
    store = MemorySyncStateStore()
    connector = connect(cloud_site, state=store)
    connector.fetch("SHOP", None)
    store.save(connector.state_key("SHOP", None), {"v": 1, "issues": "not a list"})

    result = connect(cloud_site, state=store).fetch("SHOP", None)

    assert not result.incremental and len(result.issues) == 3


def test_without_a_store_each_connector_starts_afresh(cloud_site: Site, connect) -> None:
    populate(cloud_site, 2)
    source = connect(cloud_site).source

    results = [JiraConnector(source).fetch("SHOP", None) for _ in range(2)]

    assert [r.incremental for r in results] == [False, False]  # no module-level state any more
