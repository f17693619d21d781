"""What keeps a Jira sync's snapshot cheap: no JSON copies in the memory store, no snapshot read by a full
sync, and one object per recurring field value, while what is saved stays the raw JSON Jira sent.

The real connector and the ``jira`` package over HTTP against the fake Jira (figures in
``benchmarks/jira_sync.py``; tests assert behaviour, never time or bytes).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from connectors.base import JsonDirSyncStateStore, MemorySyncStateStore
from connectors.jira.snapshot import Repeats
from tests.fakes.jira_data import link, make_issue, populate
from tests.fakes.jira_server import Site


class CountingStore(MemorySyncStateStore):
    """A memory store that notes every key loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []

    def load(self, key: str) -> Any | None:
        self.loaded.append(key)
        return super().load(key)


def test_the_memory_store_keeps_the_value_itself() -> None:
    store = MemorySyncStateStore()
    value = {"issues": [{"key": "SHOP-1"}]}
    store.save("k", value)

    assert store.load("k") is value
    assert store.load("missing") is None
    assert store.keys() == ["k"]


def test_a_full_sync_does_not_read_the_snapshot_and_an_incremental_one_does(
    cloud_site: Site, connect
) -> None:
    populate(cloud_site, 20)
    store = CountingStore()
    connector = connect(cloud_site, state=store)
    connector.fetch("SHOP", None)
    key = connector.state_key("SHOP", None)
    store.loaded.clear()

    full = connector.fetch("SHOP", None, full=True)
    assert not full.incremental and len(full.issues) == 20
    assert key not in store.loaded

    incremental = connector.fetch("SHOP", None)
    assert incremental.incremental and len(incremental.issues) == 20
    assert key in store.loaded


def test_recurring_field_values_are_one_object_and_the_saved_json_is_what_jira_sent(
    cloud_site: Site, connect, tmp_path: Path
) -> None:
    populate(cloud_site, 30)
    make_issue(cloud_site, 31, links=[link(cloud_site, "Blocks", "inward", "OPS-1")])
    memory = MemorySyncStateStore()
    connector = connect(cloud_site, state=memory)
    connector.fetch("SHOP", None)
    issues = memory.load(connector.state_key("SHOP", None))["issues"]

    by_status: dict[str, list[Any]] = {}
    for raw in issues:
        by_status.setdefault(raw["fields"]["status"]["id"], []).append(raw["fields"]["status"])
    assert any(len(same) > 1 for same in by_status.values())
    for same in by_status.values():
        assert all(status is same[0] for status in same)  # one object per distinct status
    projects = {id(raw["fields"]["project"]) for raw in issues}
    assert len(projects) == 1

    # A store that writes JSON gets the same document, and each issue is what the fake served.
    disk = JsonDirSyncStateStore(tmp_path)
    on_disk = connect(cloud_site, state=disk)
    on_disk.fetch("SHOP", None)
    written = json.loads(disk.path_for(on_disk.state_key("SHOP", None)).read_text(encoding="utf-8"))
    assert written["issues"] == issues
    served = {raw["key"]: raw for raw in issues}
    for key, issue in cloud_site.issues.items():
        if key in served:
            for name, value in served[key]["fields"].items():
                assert value == issue["fields"].get(name), (key, name)


def test_sharing_changes_no_value() -> None:
    status = {"self": "https://x/status/1", "id": "1", "name": "To Do", "statusCategory": {"id": 2}}
    raws: list[dict[str, Any]] = [
        {
            "expand": ",".join(["renderedFields", "names"]),  # a new string object each time
            "key": f"SHOP-{n}",
            "fields": {
                "status": copy.deepcopy(status),
                "points": 1 if n % 2 else 1.0,  # 1 and 1.0 are different JSON: never merged
                "flag": {"value": True} if n % 2 else {"value": 1},
                "description": {"type": "doc", "version": 1, "content": []},
                "labels": ["a"],
            },
        }
        for n in range(4)
    ]
    before = json.dumps(raws)
    repeats = Repeats()
    for raw in raws:
        repeats.share(raw)

    assert json.dumps(raws) == before
    assert all(raw["fields"]["status"] is raws[0]["fields"]["status"] for raw in raws)
    assert all(raw["expand"] is raws[0]["expand"] for raw in raws)
    assert raws[0]["fields"]["flag"] is not raws[1]["fields"]["flag"]  # {"value": 1} vs {"value": true}
    assert raws[0]["fields"]["flag"] is raws[2]["fields"]["flag"]
    assert raws[0]["fields"]["description"] is not raws[2]["fields"]["description"]  # ADF left alone
    repeats.share({"fields": "not an object"})  # malformed raws are the mapper's to report
    repeats.share(["not", "an", "issue"])
