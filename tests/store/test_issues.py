"""Issue snapshots: the issues a cycle saw come back equal, per project, and an unknown format reads as none."""

from __future__ import annotations

from datetime import UTC, datetime

from refinebot.models import Issue, IssueType, Link, LinkKind, SourceKind, StatusCategory
from refinebot.store import Store

ISSUES = [
    Issue(
        "SHOP-1",
        "SHOP",
        SourceKind.JIRA,
        "Checkout <b> & <!channel>",
        type=IssueType.STORY,
        url="https://jira.example/browse/SHOP-1",
        story_points=13.0,
        status_category=StatusCategory.TODO,
        rank="0|a",
        labels=("pay", "ux"),
        created=datetime(2026, 1, 2, 3, tzinfo=UTC),
        updated=None,
        in_active_sprint=False,
        links=(
            Link(LinkKind.BLOCKED_BY, "SHOP-7", StatusCategory.IN_PROGRESS),
            Link(LinkKind.RELATES, "X-1"),
        ),
    ),
    Issue("SHOP-2", "SHOP", SourceKind.AZURE_DEVOPS, "Plain"),
]


def test_issues_round_trip_per_project(store: Store) -> None:
    assert store.issues.load("SHOP") is None
    store.issues.save("SHOP", ISSUES)
    store.issues.save("WEB", ISSUES[1:])
    assert store.issues.load("SHOP") == ISSUES
    assert store.issues.load("WEB") == ISSUES[1:]
    store.issues.save("SHOP", [])
    assert store.issues.load("SHOP") == []


def test_an_unknown_snapshot_version_reads_as_none(store: Store) -> None:
    store.sync_state.save("refinebot:issues:SHOP", {"version": 99, "issues": []})
    assert store.issues.load("SHOP") is None
