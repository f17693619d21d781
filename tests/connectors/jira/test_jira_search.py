"""Paging through Cloud's search/jql and Data Center's search, against the fake Jira."""

from __future__ import annotations

import math

import pytest

from connectors.base import Progress
from refinebot.models import SourceKind
from tests.fakes.jira_data import make_issue, populate
from tests.fakes.jira_server import Site


@pytest.mark.parametrize("count", [1, 99, 100, 101, 2500])
def test_cloud_pages_follow_next_page_token_to_the_end(cloud_site: Site, connect, count: int) -> None:
    populate(cloud_site, count)
    connector = connect(cloud_site)

    result = connector.fetch("SHOP", None)

    assert [i.key for i in result.issues] == [f"SHOP-{n}" for n in range(1, count + 1)]
    searches = cloud_site.requests("GET", "/rest/api/3/search/jql")
    assert len(searches) == math.ceil(count / 100)  # the floor for 100 per page
    assert result.counters.search_requests == len(searches)
    first = searches[0].query
    assert first["maxResults"] == ["100"]
    assert "nextPageToken" not in first
    fields = first["fields"][0].split(",")
    assert {
        "summary",
        "description",
        "status",
        "issuelinks",
        "customfield_10016",
        "customfield_10020",
    } <= set(fields)
    assert all("nextPageToken" in s.query for s in searches[1:])
    assert not cloud_site.requests(path=r"/rest/api/\d/search")  # the removed endpoint is never called


def test_cloud_default_query_is_open_items_of_the_project_in_rank_order(cloud_site: Site, connect) -> None:
    make_issue(cloud_site, 1, rank="0|i00003:")
    make_issue(cloud_site, 2, rank="0|i00001:")
    make_issue(cloud_site, 3, status_name="Done")
    make_issue(cloud_site, 4, status_name="In Progress", rank="0|i00002:")
    make_issue(cloud_site, 1, project="OTHER", project_name="Other")

    result = connect(cloud_site).fetch("SHOP", None)

    assert [i.key for i in result.issues] == ["SHOP-2", "SHOP-4", "SHOP-1"]
    jql = cloud_site.requests("GET", "/rest/api/3/search/jql")[0].query["jql"][0]
    assert jql == 'project = "SHOP" AND statusCategory != Done ORDER BY Rank ASC'
    assert all(i.source_kind is SourceKind.JIRA for i in result.issues)
    assert result.issues[0].url == f"{cloud_site.url}/browse/SHOP-2"


def test_cloud_custom_query_is_sent_as_written(cloud_site: Site, connect) -> None:
    make_issue(cloud_site, 1, labels=["refine"])
    make_issue(cloud_site, 2)

    result = connect(cloud_site).fetch("SHOP", 'project = SHOP AND labels = "refine" ORDER BY key ASC')

    assert [i.key for i in result.issues] == ["SHOP-1"]


def test_cloud_uses_smaller_configured_page_size(cloud_site: Site, connect) -> None:
    populate(cloud_site, 30)

    result = connect(cloud_site, page_size=10).fetch("SHOP", None)

    assert len(result.issues) == 30
    assert len(cloud_site.requests("GET", "/rest/api/3/search/jql")) == 3


def test_cloud_server_capping_below_the_asked_size_still_reaches_the_end(fake_jira, connect) -> None:
    site = fake_jira.new_site(cloud=True, cloud_page_cap=40)
    populate(site, 101)

    result = connect(site).fetch("SHOP", None)

    assert len(result.issues) == 101
    assert len(site.requests("GET", "/rest/api/3/search/jql")) == 3


@pytest.mark.parametrize("count", [1, 50, 99, 101])
def test_data_center_honours_a_page_cap_of_50(fake_jira, connect, count: int) -> None:
    site = fake_jira.new_site(cloud=False, dc_page_cap=50)
    populate(site, count)

    connector = connect(site)
    result = connector.fetch("SHOP", None)

    assert [i.key for i in result.issues] == [f"SHOP-{n}" for n in range(1, count + 1)]
    searches = site.requests("GET", "/rest/api/2/search")
    assert [s.query["startAt"] for s in searches] == [[str(50 * n)] for n in range(math.ceil(count / 50))]
    assert all(s.query["maxResults"] == ["1000"] for s in searches)  # asks for the most, takes what it gets
    assert not connector.is_cloud
    assert not site.requests(path="/rest/api/3/.*")


def test_data_center_reads_wiki_descriptions_with_structure(dc_site: Site, connect) -> None:
    make_issue(dc_site, 7)

    [issue] = connect(dc_site).fetch("SHOP", None).issues

    assert "Acceptance criteria" in issue.description.splitlines()
    assert "- Given a cart, when I pay, then I get a receipt" in issue.description.splitlines()
    auth = dc_site.log[0]
    assert auth.status == 200


def test_empty_backlog_makes_one_search(cloud_site: Site, connect) -> None:
    result = connect(cloud_site).fetch("SHOP", None)

    assert result.issues == []
    assert len(cloud_site.requests("GET", "/rest/api/3/search/jql")) == 1


def test_progress_is_reported_once_per_page_and_never_printed(
    cloud_site: Site, connect, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(cloud_site, 250)
    events: list[Progress] = []
    connector = connect(cloud_site, progress=events.append)

    result = connector.fetch("SHOP", None)

    assert len(result.issues) == 250
    assert events == [
        Progress("SHOP: full sync", 100),
        Progress("SHOP: full sync", 200),
        Progress("SHOP: full sync", 250),
        Progress("SHOP: full sync", 250, 250, finished=True),
    ]
    assert capsys.readouterr() == ("", "")  # the connector draws nothing: the CLI renders progress


def test_data_center_progress_knows_the_total(fake_jira, connect) -> None:
    site = fake_jira.new_site(cloud=False, dc_page_cap=50)
    populate(site, 120)
    events: list[Progress] = []

    connect(site, progress=events.append).fetch("SHOP", None)

    assert [(e.done, e.total, e.finished) for e in events] == [
        (50, 120, False),
        (100, 120, False),
        (120, 120, False),
        (120, 120, True),
    ]
