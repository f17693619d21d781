"""Measure the store: saving and loading a 10,000-issue Jira snapshot as sync state, and recording findings.

The snapshot is shaped like the raw issues Jira's search API returns (status, type, priority, people
with avatar URLs, custom fields, links), with real titles and descriptions from
``../shared/data/jira-storypoints/`` when that folder is there (synthetic text otherwise). Prints the
JSON size, then on a SQLite file and, when ``REFINEBOT_TEST_POSTGRES_URL`` names a server, on a
throwaway PostgreSQL database: the first save (every issue a row), and the best of a few next runs (a new
store loads the snapshot, then saves it with 100 issues re-read: only those rows are written), and the
stored size; the JSON-file sync state store is timed on the same snapshot for comparison. Then times ``findings.record`` for a run
of N findings, first (all new) and again (unchanged).

    .venv/bin/python -m benchmarks.store_bench [--issues 10000] [--findings 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from connectors.base import JsonDirSyncStateStore
from refinebot.models import Finding, Severity
from refinebot.store import Store
from refinebot.suppressions import decide

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "jira-storypoints"
SITE = "https://example.atlassian.net"
WORDS = [
    "the",
    "a",
    "to",
    "of",
    "and",
    "in",
    "for",
    "on",
    "with",
    "when",
    "user",
    "page",
    "error",
    "should",
    "can",
    "not",
    "is",
    "be",
    "from",
    "this",
    "that",
    "export",
]


def real_texts(limit: int) -> list[tuple[str, str]]:
    """Up to ``limit`` (title, description) pairs from the real dataset; empty when it is absent."""
    csv.field_size_limit(sys.maxsize)
    texts: list[tuple[str, str]] = []
    for path in sorted(DATA.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            texts.extend((row["title"], row["description"]) for row in csv.DictReader(handle))
        if len(texts) >= limit:
            break
    return texts[:limit]


def synthetic_texts(count: int, seed: int = 7) -> list[tuple[str, str]]:
    """``count`` (title, description) pairs of random words (when the real dataset is absent)."""
    rng = random.Random(seed)
    return [
        (" ".join(rng.choices(WORDS, k=8)), " ".join(rng.choices(WORDS, k=rng.randint(20, 200))))
        for _ in range(count)
    ]


def _person(number: int) -> dict[str, Any]:
    account = f"5b10a2844c20165700ede{number:03d}"
    return {
        "self": f"{SITE}/rest/api/3/user?accountId={account}",
        "accountId": account,
        "displayName": f"Person {number}",
        "active": True,
        "timeZone": "Europe/Berlin",
        "accountType": "atlassian",
        "avatarUrls": {
            size: f"https://avatar-management.example.net/{account}/{size}.png"
            for size in ("48x48", "24x24", "16x16", "32x32")
        },
    }


def jira_issue(number: int, title: str, description: str, rng: random.Random) -> dict[str, Any]:
    """One issue as Jira's search answers it (``fields=*all`` trimmed to what the connector asks for)."""
    done = rng.random() < 0.2
    return {
        "expand": "operations,versionedRepresentations,editmeta,changelog,renderedFields",
        "id": str(10_000 + number),
        "self": f"{SITE}/rest/api/3/issue/{10_000 + number}",
        "key": f"SHOP-{number}",
        "fields": {
            "summary": title,
            "description": description,
            "issuetype": {"self": f"{SITE}/rest/api/3/issuetype/10001", "id": "10001", "name": "Story"},
            "status": {
                "self": f"{SITE}/rest/api/3/status/{10003 if done else 10001}",
                "name": "Done" if done else "To Do",
                "id": str(10003 if done else 10001),
                "statusCategory": {"id": 3 if done else 2, "key": "done" if done else "new"},
            },
            "priority": {"self": f"{SITE}/rest/api/3/priority/3", "name": "Medium", "id": "3"},
            "project": {"self": f"{SITE}/rest/api/3/project/10000", "id": "10000", "key": "SHOP"},
            "assignee": _person(rng.randint(1, 40)) if rng.random() < 0.7 else None,
            "reporter": _person(rng.randint(1, 40)),
            "labels": rng.sample(["backend", "frontend", "payments", "tech-debt", "ux"], k=rng.randint(0, 2)),
            "created": f"2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T09:{rng.randint(10, 59)}:00.000+0100",
            "updated": f"2026-11-{rng.randint(10, 28)}T1{rng.randint(0, 9)}:{rng.randint(10, 59)}:00.000+0100",
            "customfield_10016": rng.choice([None, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0]),
            "customfield_10019": f"0|i{number:05d}:",
            "customfield_10020": None,
            "parent": None,
            "issuelinks": [],
        },
    }


def jira_snapshot(count: int, texts: Sequence[tuple[str, str]], seed: int = 11) -> dict[str, Any]:
    """Sync state for a ``count``-issue backlog: raw issues by key, plus the cursors a connector keeps."""
    rng = random.Random(seed)
    issues = {}
    for number in range(1, count + 1):
        title, description = texts[(number - 1) % len(texts)]
        issues[f"SHOP-{number}"] = jira_issue(number, title, description, rng)
    return {
        "version": 1,
        "query": "project = SHOP",
        "synced_at": "2026-11-30T09:00:00+00:00",
        "issues": issues,
    }


def best_of(repeat: int, action: Callable[[], object]) -> float:
    """The fastest of ``repeat`` runs of ``action``, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


@contextmanager
def databases() -> Iterator[list[tuple[str, URL]]]:
    """A SQLite file and, when the test server is configured, a throwaway PostgreSQL database."""
    with tempfile.TemporaryDirectory() as folder:
        found = [("SQLite (file, WAL)", make_url(f"sqlite:///{Path(folder) / 'bench.db'}"))]
        admin_raw = os.environ.get("REFINEBOT_TEST_POSTGRES_URL")
        admin_url = make_url(admin_raw) if admin_raw else None
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT") if admin_url else None
        name = f"refinebot_bench_{secrets.token_hex(4)}"
        if admin is not None and admin_url is not None:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            found.append(("PostgreSQL (local)", admin_url.set(database=name)))
        try:
            yield found
        finally:
            if admin is not None:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()


def run_findings(store: Store, count: int, repeat: int) -> tuple[float, float]:
    """Seconds to record ``count`` new findings, and the same findings again (last seen moved on)."""
    now = datetime(2026, 11, 30, 9, tzinfo=UTC)
    found = [
        Finding("BENCH", f"BENCH-{n}", "missing-estimate", "RB102", Severity.WARNING, "No estimate", {"n": n})
        for n in range(count)
    ]
    decisions = [decide(f, (), now) for f in found]
    started = time.perf_counter()
    store.findings.record("BENCH", "2026-W49", found, decisions, now)
    first = time.perf_counter() - started
    again = []
    for week in range(1, repeat + 1):
        started = time.perf_counter()
        store.findings.record("BENCH", f"2026-W{49 + week}", found, decisions, now + timedelta(weeks=week))
        again.append(time.perf_counter() - started)
    return first, min(again)


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=10_000)
    parser.add_argument("--findings", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    texts = real_texts(args.issues)
    source = "real Jira texts (jira-storypoints)" if texts else "synthetic text"
    snapshot = jira_snapshot(args.issues, texts or synthetic_texts(args.issues))
    raw = len(json.dumps(snapshot, separators=(",", ":"), ensure_ascii=False).encode())
    print(f"snapshot: {args.issues:,} issues, {source}, {raw / 1e6:.1f} MB of JSON; best of {args.repeat}")

    with tempfile.TemporaryDirectory() as folder:
        files = JsonDirSyncStateStore(Path(folder))
        save = best_of(args.repeat, lambda: files.save("jira:SHOP", snapshot))
        load = best_of(args.repeat, lambda: files.load("jira:SHOP"))
        print(f"  JSON file store (for comparison): save {save:.2f} s, load {load:.2f} s")

    with databases() as targets:
        for label, url in targets:
            with Store.open(url) as store:
                started = time.perf_counter()
                store.sync_state.save("jira:SHOP", snapshot)  # the first sync: every issue written
                first_save = time.perf_counter() - started
            loads, saves = [], []
            for _ in range(args.repeat):
                with Store.open(url) as store:  # the next run, a new process: nothing remembered
                    started = time.perf_counter()
                    state = store.sync_state.load("jira:SHOP")
                    loads.append(time.perf_counter() - started)
                    assert state == snapshot
                    changed = dict(state, issues=dict(state["issues"]))
                    for key in list(changed["issues"])[:: max(args.issues // 100, 1)][:100]:
                        raw = changed["issues"][key]
                        changed["issues"][key] = dict(raw, fields=dict(raw["fields"], labels=["touched"]))
                    started = time.perf_counter()
                    store.sync_state.save("jira:SHOP", changed)
                    saves.append(time.perf_counter() - started)
                    store.sync_state.save("jira:SHOP", snapshot)  # back, for the next round
                    with store.engine.connect() as connection:
                        stored = connection.execute(
                            text(
                                "SELECT (SELECT sum(length(value)) FROM sync_state) + "
                                "(SELECT sum(length(value)) FROM sync_items)"
                            )
                        ).scalar_one()
            print(
                f"  {label}: first save {first_save:.2f} s; next run: load {min(loads):.2f} s, save with 100 "
                f"issues changed {min(saves):.2f} s; stored {stored / 1e6:.1f} MB"
            )
            with Store.open(url) as store:
                first, again = run_findings(store, args.findings, args.repeat)
            print(
                f"  {label}: record {args.findings:,} findings: first run {first:.2f} s, "
                f"next run with the same findings {again:.2f} s"
            )


if __name__ == "__main__":
    main()
