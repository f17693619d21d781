"""Connecting: telling Cloud from Data Center, and URLs that answer but are not Jira."""

from __future__ import annotations

import pytest

from connectors.base import ConnectorError
from tests.fakes.jira_data import make_issue
from tests.fakes.jira_server import FakeJiraServer, Site

SERVER_INFO = "/rest/api/2/serverInfo"


def test_data_center_with_username_and_password_connects_on_api_v2(
    fake_jira: FakeJiraServer, connect
) -> None:
    site = fake_jira.new_site(cloud=False, dc_password="alice-password-1")
    make_issue(site, 1)
    connector = connect(site, email=site.dc_user, token="alice-password-1")

    result = connector.fetch("SHOP", None)

    assert [i.key for i in result.issues] == ["SHOP-1"]
    assert not connector.is_cloud
    assert all(e.path.startswith(("/rest/api/2/", "/rest/agile/")) for e in site.log)
    assert site.log[0].path == SERVER_INFO
    assert isinstance(result.issues[0].description, str)


def test_cloud_probes_once_on_v2_then_speaks_v3(cloud_site: Site, connect) -> None:
    make_issue(cloud_site, 1)
    connector = connect(cloud_site)

    connector.fetch("SHOP", None)

    assert [e.path for e in cloud_site.log][:3] == [
        SERVER_INFO,
        "/rest/api/3/field",
        "/rest/api/3/search/jql",
    ]
    assert len(cloud_site.requests("GET", r".*/serverInfo")) == 1


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"hello": "world"}, r"serverInfo answer is not Jira's\)"),
        (b"", r"not Jira's: not JSON|not Jira's\)"),
        (b"<html><body>Sign in</body></html>", "not JSON"),
    ],
    ids=["other-json", "empty", "login-page"],
)
@pytest.mark.parametrize("cloud", [True, False], ids=["cloud", "dc"])
def test_a_url_that_answers_200_but_is_not_jira_is_a_clear_error(
    fake_jira: FakeJiraServer, connect, body: object, why: str, cloud: bool
) -> None:
    site = fake_jira.new_site(cloud=cloud)
    site.fail("GET", SERVER_INFO, 200, times=10, body=body)
    connector = connect(site, retry_attempts=1)

    with pytest.raises(ConnectorError, match=why) as caught:
        connector.fetch("SHOP", None)

    message = str(caught.value)
    assert "does not look like a Jira server" in message
    assert "'test'" in message and site.url in message
    assert len(site.log) == 1  # the package's own retry of an empty answer is not used


def test_a_url_without_the_jira_context_path_is_a_clear_error(cloud_site: Site, connect) -> None:
    cloud_site.fail("GET", SERVER_INFO, 404, body={"errorMessages": ["Not found"]})

    with pytest.raises(ConnectorError, match=r"does not look like a Jira server.*HTTP 404"):
        connect(cloud_site).fetch("SHOP", None)
