"""Incremental syncs after the bot commented: its own bumps of 'updated' are not read again, a person's are.

Jira (and the fake) set an issue's 'updated' to the time of every comment post or edit, the bot's
included. The connector notes the time each of its own writes left and, on Cloud, lists what changed
with ids and times only, so an issue whose 'updated' is exactly the bot's is not re-read; anything a
person did afterwards, even a millisecond later in the same minute, is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import MemorySyncStateStore
from connectors.jira import JiraConnector
from refinebot.document import Document, paragraph
from tests.fakes.jira_data import populate
from tests.fakes.jira_server import FakeJiraServer, Site

Connect = Callable[..., JiraConnector]
NOTE = Document((paragraph("Acceptance criteria are missing."),))


def _searches(site: Site, since: int) -> dict[str, int]:
    """Search requests after log entry ``since``, by kind: pages of issues, of ids and times, counts."""
    kinds: dict[str, int] = {}
    for exchange in site.log[since:]:
        if "/search" not in exchange.path:
            continue
        if exchange.path.endswith("approximate-count"):
            kind = "count"
        else:
            query = exchange.query if exchange.method == "GET" else exchange.body or {}
            fields = query.get("fields") or []
            names = {f for value in fields for f in str(value).split(",")}
            kind = "full" if names - {"id", "key", "updated"} else "ids"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def _read_jql(site: Site, since: int) -> list[str]:
    """The JQL of each full-field search after ``since``."""
    out = []
    for exchange in site.log[since:]:
        if exchange.path.endswith("/search/jql"):
            query: Any = exchange.query if exchange.method == "GET" else exchange.body
            fields = ",".join(str(v) for v in (query.get("fields") or []))
            if set(fields.split(",")) - {"id", "key", "updated"}:
                jql = query["jql"]
                out.append(jql[0] if isinstance(jql, list) else str(jql))
    return out


def _comment_time(site: Site, key: str) -> datetime:
    return datetime.fromisoformat(site.comments[key][-1]["updated"])


def _digest_like(site: Site, connector: JiraConnector, keys: list[str]) -> None:
    """What a digest does after its sync: a bot comment on each of ``keys``."""
    for key in keys:
        connector.add_comment(key, NOTE, marker="refinebot-test")


def test_the_bots_comments_are_not_read_again_but_a_persons_edit_right_after_one_is(
    cloud_site: Site, connect: Connect
) -> None:
    populate(cloud_site, 300)
    connector = connect(cloud_site)
    connector.fetch("SHOP", None)
    _digest_like(cloud_site, connector, [f"SHOP-{n}" for n in range(1, 151)])
    # A person edits SHOP-7 one millisecond after the bot's comment: the same minute, the same second.
    cloud_site.touch(
        "SHOP-7", _comment_time(cloud_site, "SHOP-7") + timedelta(milliseconds=1), summary="Now X"
    )
    later = datetime.now(UTC) + timedelta(seconds=1)
    for number in range(201, 221):
        cloud_site.touch(f"SHOP-{number}", later, summary=f"Reworded {number}")
    mark = len(cloud_site.log)

    result = connector.fetch("SHOP", None)

    assert result.incremental
    titles = {issue.key: issue.title for issue in result.issues}
    assert titles["SHOP-7"] == "Now X"
    assert titles["SHOP-201"] == "Reworded 201"
    assert len(result.issues) == 300
    # One page of ids and times (the whole backlog), one read of the 21 changed: not the 150 comments.
    assert _searches(cloud_site, mark) == {"ids": 1, "full": 1}
    (read,) = _read_jql(cloud_site, mark)
    assert read.count(",") == 20
    assert result.counters.fetched == 21


def test_a_big_backlogs_changes_skip_the_bots_comments_in_three_searches(
    cloud_site: Site, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scope path, which backlogs of 5000 issues and more take, on a small backlog.
    monkeypatch.setattr("connectors.jira.sync.CLOUD_ID_PAGE_SIZE", 100)
    populate(cloud_site, 400)
    connector = connect(cloud_site)
    connector.fetch("SHOP", None)
    _digest_like(cloud_site, connector, [f"SHOP-{n}" for n in range(1, 201)])
    cloud_site.touch(
        "SHOP-9", _comment_time(cloud_site, "SHOP-9") + timedelta(milliseconds=1), summary="Now Y"
    )
    reply_at = _comment_time(cloud_site, "SHOP-12") + timedelta(milliseconds=1)
    cloud_site.add_person_comment("SHOP-12", "refinebot snooze 2w", when=reply_at)
    later = datetime.now(UTC) + timedelta(seconds=1)
    for number in range(301, 331):
        cloud_site.touch(f"SHOP-{number}", later, summary=f"Reworded {number}")
    mark = len(cloud_site.log)

    result = connector.fetch("SHOP", None)

    titles = {issue.key: issue.title for issue in result.issues}
    assert titles["SHOP-9"] == "Now Y" and titles["SHOP-330"] == "Reworded 330"
    assert len(result.issues) == 400
    # Scope with times, the count, one page of the changes that are not the bot's own (was 3 pages).
    assert _searches(cloud_site, mark) == {"ids": 1, "count": 1, "full": 1}
    assert result.counters.fetched == 32  # SHOP-9, SHOP-12 (a person's reply) and the 30 reworded


def test_pages_of_times_no_bigger_than_full_ones_fall_back_and_are_not_asked_again(
    fake_jira: FakeJiraServer, connect: Connect
) -> None:
    site = fake_jira.new_site(cloud=True, cloud_stamp_page_cap=100)
    populate(site, 300)
    state = MemorySyncStateStore()
    connector = connect(site, state=state)
    connector.fetch("SHOP", None)
    _digest_like(site, connector, [f"SHOP-{n}" for n in range(1, 151)])
    site.touch("SHOP-3", _comment_time(site, "SHOP-3") + timedelta(milliseconds=1), summary="Now Z")
    mark = len(site.log)

    result = connector.fetch("SHOP", None)

    assert {i.key: i.title for i in result.issues}["SHOP-3"] == "Now Z"
    # One page of times found too small, then the changes in full (2 pages) and the ids.
    assert _searches(site, mark) == {"ids": 2, "full": 2}
    _digest_like(site, connector, ["SHOP-4"])
    mark = len(site.log)
    connector.fetch("SHOP", None)
    # Not asked for times again: the changes in full (the bot's comments of 5 minutes ago included).
    assert _searches(site, mark) == {"ids": 1, "full": 2}


def test_data_center_reads_the_bots_comments_as_before_and_sees_a_persons_edit(
    dc_site: Site, connect: Connect
) -> None:
    populate(dc_site, 300)
    connector = connect(dc_site)
    connector.fetch("SHOP", None)
    _digest_like(dc_site, connector, [f"SHOP-{n}" for n in range(1, 151)])
    dc_site.touch("SHOP-5", _comment_time(dc_site, "SHOP-5") + timedelta(milliseconds=1), summary="Now DC")
    mark = len(dc_site.log)

    result = connector.fetch("SHOP", None)

    assert {i.key: i.title for i in result.issues}["SHOP-5"] == "Now DC"
    # The changes (1000 full issues a page: no times asked for), the scope and the count (ids only).
    assert _searches(dc_site, mark) == {"full": 1, "ids": 2}


def test_the_bots_write_times_are_kept_in_the_state_store(cloud_site: Site, connect: Connect) -> None:
    populate(cloud_site, 3)
    state = MemorySyncStateStore()
    connector = connect(cloud_site, state=state)
    connector.fetch("SHOP", None)
    _digest_like(cloud_site, connector, ["SHOP-1", "SHOP-2"])
    names = state.keys()  # the store's keys (a method, not a dict)
    (where,) = [name for name in names if name.endswith(":bot-writes")]
    saved = state.load(where)
    assert saved == {key: cloud_site.comments[key][-1]["updated"] for key in ("SHOP-1", "SHOP-2")}
    # A new connector (the next process) reads them from the store: SHOP-1/2 are not read again.
    fresh = connect(cloud_site, state=state)
    mark = len(cloud_site.log)
    result = fresh.fetch("SHOP", None)
    assert result.incremental and result.counters.fetched == 0
    assert _searches(cloud_site, mark) == {"ids": 1}
