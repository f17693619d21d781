"""JQL built from configuration is quoted so a project key or name cannot change its meaning."""

from __future__ import annotations

import pytest

from connectors.jira.jql import JqlQuery, default_query, jql_string, updated_within
from tests.fakes.jira_data import make_issue
from tests.fakes.jira_server import Site


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("SHOP", '"SHOP"'),
        ("Order Service", '"Order Service"'),
        ('Say "hi"', '"Say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("two\nlines", '"two\\nlines"'),
    ],
)
def test_jql_string_escapes_quotes_backslashes_and_newlines(value: str, quoted: str) -> None:
    assert jql_string(value) == quoted


def test_control_characters_are_refused() -> None:
    with pytest.raises(ValueError, match="control characters"):
        jql_string("bell\x07")


def test_order_by_inside_a_string_is_not_the_query_order() -> None:
    query = JqlQuery.parse('summary ~ "order by price" ORDER BY created DESC')
    assert query == JqlQuery('summary ~ "order by price"', "created DESC")
    assert query.and_(updated_within(7)).text() == (
        '(summary ~ "order by price") AND updated >= "-7m" ORDER BY created DESC'
    )


def test_query_without_order_by() -> None:
    assert JqlQuery.parse("project = X").and_("a = b").text() == "(project = X) AND a = b"


@pytest.mark.parametrize(
    "hostile",
    [
        'SHOP" OR project = "SECRET',  # tries to widen the query
        "Order",  # a reserved JQL word
        "Team Rocket",  # spaces
        'SHOP\\" OR project = \\"SECRET',  # pre-escaped quotes
    ],
)
def test_hostile_project_names_only_ever_match_that_project(cloud_site: Site, connect, hostile: str) -> None:
    make_issue(cloud_site, 1, project="SECRET", project_name="Secret")
    make_issue(cloud_site, 2, project="SHOP", project_name="Shop")
    make_issue(cloud_site, 3, project="HOST", project_name=hostile)

    result = connect(cloud_site).fetch(hostile, None)

    assert [i.key for i in result.issues] == ["HOST-3"]
    sent = cloud_site.requests("GET", "/rest/api/3/search/jql")[0].query["jql"][0]
    assert sent == default_query(hostile).text()
