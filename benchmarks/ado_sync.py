"""Benchmark the Azure DevOps connector: requests on the wire vs the floor, time and peak memory.

Seeds the fake Azure DevOps server (tests/fakes/ado_server.py, real HTTP) with N work items whose
titles and descriptions come from the real Jira issues in ../shared/data/jira-storypoints (synthetic
text when that folder is absent), 2 % of them blocked by a predecessor outside the query. Each sync
runs in a fresh process (as ``refinebot scan`` would), through the real SDK:

1. cold full sync (empty SDK and connector caches),
2. incremental sync after ``--changed`` items were edited (caches from run 1),
3. warm full sync (``--full`` with the caches).

Floor = 1 WIQL + ceil(N / 200) batches; discovery = OPTIONS, ResourceAreas, process configuration
and work item type states. Target: non-discovery requests <= 1.05 x floor, discovery <= 5, and the
incremental sync of 100 changed items <= 3 requests. Sync state lives in a ``JsonDirSyncStateStore``
under the cache folder (as ``refinebot/sources.py`` gives a source with ``cache_dir``), so each run's
new process finds the last one's snapshot and process.

Run from the project root:
``.venv/bin/python -m benchmarks.ado_sync [--items 10000] [--changed 100]``.
"""

from __future__ import annotations

import argparse
import csv
import math
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.fakes.ado_server import FakeAzureDevOps, RecordedRequest

ROOT = Path(__file__).resolve().parent.parent

PAT = "bench-pat"
TOKEN_ENV = "ADO_BENCH_PAT"
PROJECT = "Bench"
OTHER = "Platform"
DATA = ROOT.parent / "shared" / "data" / "jira-storypoints"


def real_texts(limit: int) -> list[tuple[str, str]]:
    """(title, HTML description) pairs from the shared Jira dataset, or synthetic ones."""
    texts: list[tuple[str, str]] = []
    if DATA.is_dir():
        csv.field_size_limit(10_000_000)
        for path in sorted(DATA.glob("*.csv")):
            with path.open(encoding="utf-8", newline="") as handle:
                for row in csv.DictReader(handle):
                    body = (row.get("description") or "").replace("{html}", "")
                    texts.append((row["title"][:250] or "untitled", f"<div>{body}</div>"))
                    if len(texts) >= limit:
                        return texts
    while len(texts) < limit:
        n = len(texts)
        texts.append((f"Story {n}", f"<div><p>Synthetic description of story {n}.</p></div>"))
    return texts


def seed(fake: FakeAzureDevOps, items: int) -> list[int]:
    fake.add_project(PROJECT, "Agile")
    fake.add_project(OTHER, "Agile")
    long_ago = datetime.now(UTC) - timedelta(days=30)
    outside = [
        fake.add_item(OTHER, f"Platform dependency {n}", state="Active", changed=long_ago) for n in range(50)
    ]
    closed = [
        fake.add_item(PROJECT, f"Finished groundwork {n}", state="Closed", changed=long_ago)
        for n in range(50)
    ]
    ids = []
    for n, (title, description) in enumerate(real_texts(items)):
        relations = []
        if n % 50 == 0:  # 2 % blocked by something outside the query (other project or closed)
            relations.append(
                ("System.LinkTypes.Dependency-Reverse", (outside if n % 100 else closed)[n % 50])
            )
        ids.append(
            fake.add_item(
                PROJECT,
                title,
                fields={
                    "System.Description": description,
                    "Microsoft.VSTS.Scheduling.StoryPoints": (n % 8) + 1,
                    "Microsoft.VSTS.Common.StackRank": float(n),
                    "System.Tags": "refine; web" if n % 3 else "",
                },
                relations=relations,
                changed=long_ago,
            )
        )
    return ids


def sync_in_child(url: str, cache_dir: str, full: bool) -> dict[str, Any]:
    """One sync in this (fresh) process; returns counts, time and this process's peak RSS."""
    from connectors.azure_devops import AzureDevOpsConnector
    from connectors.base import JsonDirSyncStateStore
    from refinebot.config import AzureDevOpsSourceConfig

    source = AzureDevOpsSourceConfig(
        kind="azure_devops", url=url, token_env=TOKEN_ENV, cache_dir=Path(cache_dir)
    )
    state = JsonDirSyncStateStore(Path(cache_dir) / "refinebot")  # what refinebot/sources.py gives it
    started = time.perf_counter()
    cpu_started = time.process_time()
    result = AzureDevOpsConnector(source, state=state).fetch(PROJECT, None, full=full)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    blocked_known = sum(
        1
        for issue in result.issues
        for link in issue.links
        if link.kind.value == "blocked_by" and link.target_status_category is not None
    )
    return {
        "issues": len(result.issues),
        "skipped": len(result.skipped),
        "incremental": result.incremental,
        "counters": result.counters,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "blockers_with_category": blocked_known,
    }


def run_child(url: str, cache_dir: str, full: bool) -> dict[str, Any]:
    # spawn, not fork: the child must not inherit the fake's memory, or its peak RSS means nothing.
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(sync_in_child, (url, cache_dir, full))


def classify(requests: list[RecordedRequest]) -> dict[str, int]:
    counts = {
        "discovery": 0,
        "foreign_states": 0,
        "wiql": 0,
        "batch": 0,
        "target_batch": 0,
        "other": 0,
    }
    for r in requests:
        path = r.path.lower()
        if path.endswith("/states") and f"/{OTHER.lower()}/" in path:
            # States of the blockers' own project: part of resolving blockers, not of our project.
            counts["foreign_states"] += 1
        elif (
            r.method == "OPTIONS"
            or "resourceareas" in path
            or "processconfiguration" in path
            or path.endswith("/states")
        ):
            counts["discovery"] += 1
        elif path.endswith("/wiql"):
            counts["wiql"] += 1
        elif path.endswith("/workitemsbatch"):
            counts["target_batch" if (r.body or {}).get("fields") else "batch"] += 1
        else:
            counts["other"] += 1
    return counts


def report(
    name: str, fake: FakeAzureDevOps, mark: int, child: dict[str, Any], items: int, *, full: bool
) -> None:
    sent = fake.requests[mark:]
    counts = classify(sent)
    floor = 1 + math.ceil(items / 200)
    data = len(sent) - counts["discovery"] - counts["foreign_states"]
    print(f"\n== {name}")
    print(
        f"issues {child['issues']} (skipped {child['skipped']}, "
        f"incremental {child['incremental']}), "
        f"blockers with known category {child['blockers_with_category']}"
    )
    print(
        f"requests on the wire: {len(sent)} = discovery {counts['discovery']} "
        f"+ other project's type states {counts['foreign_states']} + WIQL {counts['wiql']} "
        f"+ batches {counts['batch']} + blocker-state batches {counts['target_batch']} "
        f"+ other {counts['other']}"
    )
    if full:
        print(
            f"floor (1 WIQL + ceil(N/200) batches): {floor}; "
            f"(requests - discovery) / floor = {data / floor:.3f} "
            f"[{(data + counts['foreign_states']) / floor:.3f} counting the other project's states]"
        )
    else:
        print(f"incremental: {len(sent)} requests for {items} changed items (target <= 3)")
    counters = child["counters"]
    print(
        f"connector's counters: requests {counters.requests} = discovery {counters.discovery_requests} "
        f"+ search {counters.search_requests}; fetched {counters.fetched}"
    )
    print(
        f"wall time {child['seconds']:.2f} s, CPU time {child['cpu_seconds']:.2f} s (the syncing process only; "
        f"the fake server runs in the parent); peak RSS of the syncing process {child['peak_rss_mb']:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=100)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="refinebot-ado-bench-")
    # Read by the SDK in the child at import: keep its cache out of the user's home.
    os.environ["AZURE_DEVOPS_CACHE_DIR"] = str(Path(workdir) / "sdk")
    os.environ[TOKEN_ENV] = PAT
    fake = FakeAzureDevOps(org="benchorg", pat=PAT).start()
    try:
        started = time.perf_counter()
        ids = seed(fake, args.items)
        print(
            f"seeded {len(ids)} work items in {time.perf_counter() - started:.1f} s "
            f"(text from {'shared Jira data' if DATA.is_dir() else 'synthetic'})"
        )
        cache = str(Path(workdir) / "connector")

        mark = len(fake.requests)
        report("cold full sync", fake, mark, run_child(fake.url, cache, True), args.items, full=True)

        now = datetime.now(UTC)
        for item_id in ids[: args.changed]:
            fake.touch(item_id, now, **{"System.Title": f"Edited {item_id}"})
        mark = len(fake.requests)
        report(
            f"incremental sync, {args.changed} changed",
            fake,
            mark,
            run_child(fake.url, cache, False),
            args.changed,
            full=False,
        )

        mark = len(fake.requests)
        state = sum(f.stat().st_size for f in Path(cache).rglob("*_sync_*.json"))
        print(f"\nincremental-sync state on disk: {state / 1e6:.1f} MB for {args.items} items")

        report(
            "warm full sync (--full, caches kept)",
            fake,
            mark,
            run_child(fake.url, cache, True),
            args.items,
            full=True,
        )
    finally:
        fake.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
