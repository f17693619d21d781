"""Measure ``refinebot digest``: the requests of a first and a second digest, and the time the store adds to a scan.

Part 1, requests: a 10,000-issue backlog on the fake Jira Cloud (real HTTP, in this process) with 200
flagged tickets; a first digest, then 100 changes, then a second digest in a fresh store connection and
a fresh connector, as the next week's process would. The 100 changes: 40 flagged tickets fixed (their
comment becomes "ready now"), 20 answered by a person with ``refinebot snooze 2w`` (comment read, then
edited to acknowledge), 10 ready tickets that become flagged (a first comment each) and 30 ready
tickets edited in ways no rule cares about (no request at all). Prints each digest's requests by kind.
Target: the second makes <= 3 search requests plus only the comment reads and edits the changes need.

Part 2, time: a 100,000-issue backlog from ``benchmarks/gen_backlog.py`` (real Jira text), the scan's
rules run as ``refinebot scan`` runs them, once with no store and once with the store's part: open it
(schema check), read the suppressions, rule cache and bot activity (``scan_inputs``), and the sync state
a tracker scan keeps (the 100k issues as raw Jira JSON, built by ``store_bench.py``, in the shape the
Jira connector saves): as the next run does it, in a new store, loaded, then saved with 100 issues
re-read. The first run's save (every issue written) is printed too. Target: the store adds <= 10 % of
the scan.

    .venv/bin/python -m benchmarks.digest_requests [--issues 10000] [--scan-issues 100000] [--skip-requests]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.base import FetchResult
from refinebot.config import LoadedConfig, load_config
from refinebot.digest import CycleReport, DigestCycle, scan_inputs
from refinebot.pipeline import ProjectInputs, evaluate_project
from refinebot.store import Store
from rules.registry import RuleRegistry, default_registry
from tests.fakes.jira_data import adf, bullets, heading, make_issue, para
from tests.fakes.jira_server import FakeJiraServer, Site

TOKEN_ENV = "REFINEBOT_BENCH_DIGEST_TOKEN"
CHANGED = 100  # issues an incremental sync re-reads between two scans
FLAGGED = 200
WORDS = [
    "cart",
    "checkout",
    "refund",
    "invoice",
    "search",
    "filter",
    "export",
    "import",
    "report",
    "login",
    "token",
    "session",
    "cache",
    "queue",
    "retry",
    "webhook",
    "payment",
    "coupon",
    "shipping",
    "address",
    "profile",
    "avatar",
    "upload",
    "preview",
    "thumbnail",
    "locale",
    "currency",
    "tax",
    "receipt",
    "email",
    "digest",
    "banner",
    "onboarding",
    "wizard",
    "settings",
    "audit",
    "archive",
    "restore",
]


def _title(rng: random.Random, number: int) -> str:
    """A title of its own: four words, each tagged with the ticket's number, so no two look alike."""
    return " ".join(f"{word}{number}" for word in rng.sample(WORDS, 4)).capitalize()


def _vague(number: int) -> object:
    return adf(para(f"Make part {number} better."))  # no acceptance criteria: flagged


def _criteria(number: int) -> object:
    """A description with acceptance criteria, in words no other ticket shares (no duplicate hint)."""
    rng = random.Random(number)
    words = [f"{w}{number}" for w in rng.sample(WORDS, 6)]
    return adf(
        para(f"As an admin I want {' '.join(words[:3])} so that {' '.join(words[3:])} works."),
        heading("Acceptance criteria"),
        bullets(f"Given {words[0]}, when {words[1]} runs, then {words[2]} is listed"),
    )


def build_backlog(site: Site, issues: int, seed: int = 5) -> None:
    """``issues`` tickets, the first ``FLAGGED`` of them without acceptance criteria."""
    rng = random.Random(seed)
    for number in range(1, issues + 1):
        if number <= FLAGGED:
            make_issue(site, number, summary=_title(rng, number), description=_vague(number))
        else:
            make_issue(site, number, summary=_title(rng, number))


def change_100(site: Site) -> dict[str, int]:
    """The 100 changes between the digests; how many of each kind."""
    now = datetime.now(UTC) + timedelta(minutes=5)  # later than the bot's own writes
    for number in range(1, 41):  # fixed: acceptance criteria written
        site.touch(f"SHOP-{number}", now, description=_criteria(number))
    for number in range(41, 61):  # answered on the ticket
        site.add_person_comment(
            f"SHOP-{number}", adf(para("Later, please."), para("refinebot snooze 2w")), when=now
        )
        site.touch(f"SHOP-{number}", now)
    for number in range(201, 211):  # newly flagged
        site.touch(f"SHOP-{number}", now, description=_vague(number))
    for number in range(301, 331):  # edits no rule cares about
        site.touch(f"SHOP-{number}", now, labels=["touched"])
    return {"fixed": 40, "answered": 20, "newly flagged": 10, "harmless edits": 30}


def _kind(method: str, path: str) -> str:
    if "/search" in path:
        return "search"
    if path.endswith("/comment"):
        return {"GET": "comment listings (replies)", "POST": "comment posts"}.get(method, method)
    if "/comment/" in path:
        # A GET of one comment: the author check before a PUT (skipped when the ledger knows the comment).
        return {"GET": "comment author checks", "PUT": "comment edits"}.get(method, method)
    return "other (fields, myself)"


def digest_once(
    loaded: LoadedConfig, registry: RuleRegistry, site: Site, now: datetime
) -> tuple[CycleReport, Counter[str], float]:
    """One digest in a fresh store connection and connector; its report, requests by kind, wall time."""
    mark = len(site.log)
    started = time.perf_counter()
    with Store.from_config(loaded) as store:
        report = DigestCycle(loaded, store, registry).run("SHOP", now)
    seconds = time.perf_counter() - started
    kinds = Counter(_kind(e.method, e.path) for e in site.log[mark:])
    return report, kinds, seconds


def requests_part(issues: int) -> None:
    registry = default_registry()
    server = FakeJiraServer().start()
    try:
        site = server.new_site(cloud=True)
        build_backlog(site, issues)
        os.environ[TOKEN_ENV] = site.token
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "refinebot.toml"
            config.write_text(
                f"""
[sources.jira]
kind = "jira"
url = "{site.url}"
email = "{site.email}"
token_env = "{TOKEN_ENV}"

[rules.stale-item]
enabled = false

[projects.SHOP]
source = "jira"
comment_on_tickets = true
""",
                encoding="utf-8",
            )
            loaded = load_config(config, registry)
            now = datetime.now(UTC)
            first, first_kinds, first_s = digest_once(loaded, registry, site, now)
            changes = change_100(site)
            second, second_kinds, second_s = digest_once(loaded, registry, site, now + timedelta(minutes=10))
    finally:
        server.stop()
    print(f"Part 1: digest requests, {issues} issues on the fake Jira Cloud, {FLAGGED} flagged")
    print(f"changes between the digests: {', '.join(f'{v} {k}' for k, v in changes.items())}")
    kinds = sorted(set(first_kinds) | set(second_kinds))
    print(f"{'requests':30} {'first':>7} {'second':>7}")
    for kind in kinds:
        print(f"{kind:30} {first_kinds[kind]:7d} {second_kinds[kind]:7d}")
    print(f"{'total':30} {sum(first_kinds.values()):7d} {sum(second_kinds.values()):7d}")
    print(f"{'wall time s':30} {first_s:7.1f} {second_s:7.1f}")
    for name, report in (("first", first), ("second", second)):
        counts = Counter(action.action for action in report.comments)
        print(
            f"{name}: comments {dict(sorted(counts.items()))}, {report.unchanged} unchanged, "
            f"replies read on {report.comment_reads} tickets, {len(report.replies)} commands"
        )
    changed = changes["fixed"] + changes["answered"]  # tickets with a bot comment that changed
    edits = changes["fixed"] + changes["answered"]
    posts = changes["newly flagged"]
    ok = (
        second_kinds["search"] <= 3
        and second_kinds["comment listings (replies)"] <= changed
        and second_kinds["comment edits"] == edits
        and second_kinds["comment author checks"] == 0  # the ledger knows the bot's comments
        and second_kinds["comment posts"] == posts
    )
    print(
        f"target: second <= 3 search + {changed} listings + {edits} edits (no author checks) + {posts} posts: "
        f"{second_kinds['search']} + {second_kinds['comment listings (replies)']} + "
        f"{second_kinds['comment edits']} ({second_kinds['comment author checks']}) + "
        f"{second_kinds['comment posts']}: {'met' if ok else 'MISSED'}"
    )
    if second_kinds["search"] > 3:
        print(
            f"  the changes search reads the {FLAGGED} tickets the first digest commented on too: Jira "
            "(and the fake) bump 'updated' for the bot's own comments, 100 issues a page"
        )


def _best(repeat: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def scan_part(issues: int, repeat: int) -> None:
    from benchmarks.gen_backlog import DATA, generate
    from benchmarks.store_bench import jira_snapshot, real_texts

    if not DATA.exists():
        print(f"Part 2 skipped: no data at {DATA}", file=sys.stderr)
        return
    registry = default_registry()
    backlog = generate(issues, seed=7)
    fetched = FetchResult(issues=backlog.issues)
    connector_state = connector_shape(jira_snapshot(issues, real_texts(issues)))
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "refinebot.toml"
        (Path(tmp) / "backlog.json").write_text("[]", encoding="utf-8")
        config.write_text(
            '[sources.export]\nkind = "file"\npath = "backlog.json"\n\n[projects.BIG]\nsource = "export"\n',
            encoding="utf-8",
        )
        loaded = load_config(config, registry)
        Store.from_config(loaded).close()  # the database exists, as on every run after the first

        def scan_without_store() -> object:
            return evaluate_project(loaded, "BIG", fetched, ProjectInputs(), registry=registry, now=now)

        def open_and_inputs() -> object:
            with Store.from_config(loaded) as store:
                return scan_inputs(store, "BIG")

        key = "jira:bench:BIG:snapshot"
        with Store.from_config(loaded) as store:
            started = time.perf_counter()
            store.sync_state.save(key, connector_state)  # the first (full) sync's save, once
            first_save = time.perf_counter() - started

        def next_run() -> tuple[float, float]:
            """A new process: load the state, change 100 issues as a sync would, save it."""
            with Store.from_config(loaded) as store:
                started = time.perf_counter()
                state = store.sync_state.load(key)
                loaded_at = time.perf_counter()
                saved = store_change(state, CHANGED)
                store.sync_state.save(key, saved)
                return loaded_at - started, time.perf_counter() - loaded_at

        runs = [next_run() for _ in range(repeat)]
        load, save = min(r[0] for r in runs), min(r[1] for r in runs)
        raw_mib = len(json.dumps(connector_state, separators=(",", ":")).encode()) / 2**20
        inputs = _best(repeat, open_and_inputs)
        bare = _best(repeat, scan_without_store)
    tracker = inputs + save + load
    print()
    print(f"Part 2: the store's time in a {issues}-issue scan (best of {repeat})")
    print(f"scan without the store (rules on the fetched backlog):  {bare:7.2f} s")
    print(
        f"store: open (schema check) + suppressions, cache, bot activity: {inputs:6.3f} s ({inputs / bare:.1%})"
    )
    print(
        f"store: load the sync state ({raw_mib:.0f} MiB of JSON), next run:    {load:6.2f} s ({load / bare:.1%})"
    )
    print(f"store: save it with {CHANGED} issues changed, next run:       {save:6.2f} s ({save / bare:.1%})")
    print(f"store: the first run's save (every issue written), once:   {first_save:6.2f} s")
    print(
        f"file source (no snapshot kept): the store adds {inputs / bare:.1%}; target <= 10 %: "
        f"{'met' if inputs <= 0.10 * bare else 'MISSED'}"
    )
    print(
        f"tracker source (snapshot loaded and saved): the store adds {tracker / bare:.1%} of the rules' time "
        f"(the 100k fetch itself, ~1,000 search pages, is not in this denominator); target <= 10 %: "
        f"{'met' if tracker <= 0.10 * bare else 'MISSED'}"
    )


def connector_shape(snapshot: dict[str, Any]) -> dict[str, Any]:
    """``store_bench``'s snapshot as the Jira connector saves it (``Snapshot.to_json``): a list of raw
    issues in backlog order, the id -> key map and the cursors."""
    raws = list(snapshot["issues"].values())
    return {
        "v": 1,
        "query": snapshot["query"],
        "fingerprint": "0123456789abcdef",
        "last_sync": snapshot["synced_at"],
        "issues": raws,
        "ids": {raw["id"]: raw["key"] for raw in raws},
        "blockers": {},
    }


def store_change(state: Any, count: int) -> dict[str, Any]:
    """What an incremental sync hands back: ``count`` issues re-read (new objects), the rest as loaded."""
    issues = list(state["issues"])
    for index in range(0, len(issues), max(len(issues) // count, 1))[:count]:
        raw = issues[index]
        issues[index] = dict(raw, fields=dict(raw["fields"], labels=["touched"]))
    return dict(state, issues=issues, last_sync=datetime.now(UTC).isoformat())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=10_000)
    parser.add_argument("--scan-issues", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-scan", action="store_true", help="Only part 1.")
    parser.add_argument("--skip-requests", action="store_true", help="Only part 2.")
    args = parser.parse_args()
    if not args.skip_requests:
        requests_part(args.issues)
    if not args.skip_scan:
        scan_part(args.scan_issues, args.repeat)


if __name__ == "__main__":
    main()
