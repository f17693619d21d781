"""Measure the Jira connector against the fake Jira over HTTP: requests, wall time, peak memory.

Prints, for a backlog of N issues (default 10,000): search requests against the floor
ceil(N / page size), discovery requests (first run, then cached), incremental syncs of 100 changed
issues (Cloud; Cloud with items done or moved out meanwhile; Data Center, also with 3000 changes
in another project; Cloud with 350 blockers outside the backlog; Cloud after the bot commented on 200
issues, whose own bumps of 'updated' are not read again), and the same backlog fetched the
ways the ``jira`` package does by default, side by side.

    .venv/bin/python -m benchmarks.jira_sync [--issues 10000]   (from the repository root)
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import resource
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jira import JIRA

from connectors.base import MemorySyncStateStore
from connectors.jira import CLOUD_PAGE_SIZE, DC_PAGE_SIZE, JiraConnector
from refinebot.config import JiraSourceConfig
from refinebot.document import Document, paragraph
from tests.fakes.jira_data import link, make_issue, populate, status
from tests.fakes.jira_server import FakeJiraServer, Site

TOKEN_ENV = "REFINEBOT_BENCH_JIRA_TOKEN"


@dataclass(frozen=True)
class Row:
    name: str
    issues: int
    search: int
    other: int
    seconds: float
    cpu_seconds: float
    peak_mib: float


def _measure(site: Site, fn: Callable[[], int]) -> tuple[int, int, int, float, float, float]:
    """Issues, search and other requests, wall and CPU time of one untraced run; peak memory of another.

    Tracing allocations slows Python down several times, so time and memory come from separate runs.
    Wall and CPU time include the fake server's own work: it runs in this process (CPU time counts
    every thread, so it is the figure to compare on a busy machine).
    """
    before = len(site.log)
    started = time.perf_counter()
    cpu_started = time.process_time()
    count = fn()
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    new = site.log[before:]
    search = sum(1 for e in new if "/search" in e.path)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return count, search, len(new) - search, seconds, cpu_seconds, peak


def _change_100(site: Site, connector: JiraConnector) -> Callable[[], int]:
    """A measured step: edit SHOP-1..100 now, then sync incrementally; returns how many issues came back."""

    def step() -> int:
        now = datetime.now(UTC)
        for number in range(1, 101):
            site.touch(f"SHOP-{number}", now, summary=f"Changed {number}")
        return len(connector.fetch("SHOP", None).issues)

    return step


def _source(site: Site) -> JiraSourceConfig:
    values: dict[str, Any] = {"kind": "jira", "url": site.url, "token_env": TOKEN_ENV}
    if site.cloud:
        values["email"] = site.email
    return JiraSourceConfig.model_validate(values)


def run(issues: int) -> list[Row]:
    server = FakeJiraServer().start()
    rows: list[Row] = []
    try:
        cloud = server.new_site(cloud=True)
        populate(cloud, issues)
        os.environ[TOKEN_ENV] = cloud.token

        def fresh() -> JiraConnector:
            return JiraConnector(_source(cloud), name="bench", state=MemorySyncStateStore())

        rows.append(
            Row(
                "refinebot full sync (Cloud, first run)",
                *_measure(cloud, lambda: len(fresh().fetch("SHOP", None).issues)),
            )
        )
        warm = fresh()
        warm.fetch("SHOP", None)
        rows.append(
            Row(
                "refinebot full sync (Cloud, fields cached)",
                *_measure(cloud, lambda: len(warm.fetch("SHOP", None, full=True).issues)),
            )
        )

        rows.append(Row("refinebot incremental, 100 changed", *_measure(cloud, _change_100(cloud, warm))))
        # A new process on the same store (the scheduler's next run): fields and snapshot from the store.
        rows.append(
            Row(
                "refinebot incremental, new connector, same store",
                *_measure(
                    cloud, _change_100(cloud, JiraConnector(_source(cloud), name="bench", state=warm.state))
                ),
            )
        )
        batches = itertools.count()

        def incremental_with_leavers() -> int:
            # A realistic interval: edits, items done (they leave the default query) and one item
            # moved to another project (invisible to a project-scoped change scan).
            # The same 100 as above change again (the sync window overlaps the previous run's).
            base = 1000 + 10 * next(batches)
            now = datetime.now(UTC)
            for number in range(1, 101):
                cloud.touch(f"SHOP-{number}", now, summary=f"Changed again {number}")
            for number in range(base, base + 5):
                cloud.touch(f"SHOP-{number}", now, status=status(cloud, "Done"))
            cloud.move(f"SHOP-{base + 5}", f"OPS-{base + 5}", now)
            return len(warm.fetch("SHOP", None).issues)

        rows.append(
            Row("refinebot incremental, 100 changed, 6 left", *_measure(cloud, incremental_with_leavers))
        )
        # A digest's comments since the last sync: Jira bumps 'updated' for each, the bot's own too.
        note = Document((paragraph("Acceptance criteria are missing."),))
        for number in range(2001, 2201):
            warm.add_comment(f"SHOP-{number}", note, marker="refinebot-bench")
        rows.append(
            Row(
                "refinebot incremental, 100 changed + 200 bot comments",
                *_measure(cloud, _change_100(cloud, warm)),
            )
        )

        jql = 'project = "SHOP" AND statusCategory != Done ORDER BY Rank ASC'

        def package_client() -> Any:
            return JIRA(
                server=cloud.url,
                basic_auth=(cloud.email, cloud.token),
                options={"rest_api_version": "3"},
            )

        def package_default() -> int:
            return len(package_client().search_issues(jql))

        def package_token_loop() -> int:
            client = package_client()
            total, token = 0, None
            while True:
                page = client.enhanced_search_issues(jql, nextPageToken=token)  # maxResults=50, *all
                total += len(page)
                token = page.nextPageToken
                if not token:
                    return total

        def package_fetch_all() -> int:
            return len(package_client().search_issues(jql, maxResults=False))

        rows.append(Row("jira pkg search_issues(jql) defaults", *_measure(cloud, package_default)))
        rows.append(Row("jira pkg enhanced_search loop, 50/page", *_measure(cloud, package_token_loop)))
        rows.append(Row("jira pkg search_issues(maxResults=False)", *_measure(cloud, package_fetch_all)))

        dc = server.new_site(cloud=False)
        populate(dc, issues)
        os.environ[TOKEN_ENV] = dc.pat
        rows.append(
            Row(
                "refinebot full sync (Data Center, first run)",
                *_measure(
                    dc,
                    lambda: len(
                        JiraConnector(_source(dc), name="bench-dc", state=MemorySyncStateStore())
                        .fetch("SHOP", None)
                        .issues
                    ),
                ),
            )
        )
        warm_dc = JiraConnector(_source(dc), name="bench-dc", state=MemorySyncStateStore())
        warm_dc.fetch("SHOP", None)

        incremental_dc = _change_100(dc, warm_dc)
        rows.append(Row("refinebot incremental (Data Center), 100 chg", *_measure(dc, incremental_dc)))
        for number in range(1, 3001):  # another project on the same server, as busy as can be
            make_issue(dc, number, project="OTHER", project_name="Other")

        def incremental_dc_busy() -> int:
            now = datetime.now(UTC)
            for number in range(1, 3001):
                dc.touch(f"OTHER-{number}", now, summary=f"Busy {number}")
            return incremental_dc()

        rows.append(Row("refinebot incremental (DC), 3000 elsewhere", *_measure(dc, incremental_dc_busy)))

        blocked = server.new_site(cloud=True)
        os.environ[TOKEN_ENV] = blocked.token
        for number in range(1, 1001):  # 350 items blocked by issues of another project
            links = (
                [link(blocked, "Blocks", "inward", f"OPS-{number}", "In Progress")] if number <= 350 else []
            )
            make_issue(blocked, number, links=links)
        for number in range(1, 351):
            make_issue(blocked, number, project="OPS", project_name="Ops", status_name="In Progress")
        warm_blocked = JiraConnector(_source(blocked), name="bench-blocked", state=MemorySyncStateStore())
        warm_blocked.fetch("SHOP", None)

        rows.append(
            Row(
                "refinebot incremental, 350 outside blockers",
                *_measure(blocked, _change_100(blocked, warm_blocked)),
            )
        )
    finally:
        server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=10_000)
    args = parser.parse_args()
    rows = run(args.issues)
    cloud_floor = math.ceil(args.issues / CLOUD_PAGE_SIZE)
    dc_floor = math.ceil(args.issues / DC_PAGE_SIZE)
    print(
        f"backlog: {args.issues} issues; floor: Cloud {cloud_floor} search requests "
        f"({CLOUD_PAGE_SIZE}/page), Data Center {dc_floor} ({DC_PAGE_SIZE}/page)"
    )
    print(
        f"{'run':44} {'issues':>7} {'search':>7} {'other':>6} {'x floor':>8} {'time s':>8} {'cpu s':>7} {'peak MiB':>9}"
    )
    for row in rows:
        floor = dc_floor if "Data Center" in row.name else cloud_floor
        ratio = f"{row.search / floor:.2f}" if "incremental" not in row.name else "-"
        print(
            f"{row.name:44} {row.issues:7d} {row.search:7d} {row.other:6d} {ratio:>8} "
            f"{row.seconds:8.2f} {row.cpu_seconds:7.2f} {row.peak_mib:9.1f}"
        )
    first, cached, incremental = rows[0], rows[1], rows[2]
    print(
        f"peak RSS of this process (fake server included, all runs): "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    print()
    print(
        f"target search <= 1.05 x floor: {first.search} <= {1.05 * cloud_floor:.0f}: "
        f"{'met' if first.search <= 1.05 * cloud_floor else 'MISSED'}"
    )
    print(
        f"target discovery <= 5 per run, cached after the first: "
        f"{first.other} then {cached.other}: "
        f"{'met' if first.other <= 5 and cached.other <= 1 else 'MISSED'}"
    )
    total_incremental = incremental.search + incremental.other
    print(
        f"target incremental sync of 100 changed <= 3 requests: {total_incremental}: "
        f"{'met' if total_incremental <= 3 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
