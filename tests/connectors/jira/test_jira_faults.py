"""Rate limits, server faults, bad credentials and malformed issues, through the fake Jira."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import ConnectorError
from tests.fakes.jira_data import make_issue, populate
from tests.fakes.jira_server import Site

SEARCH = "/rest/api/3/search/jql"


class Sleeps:
    """Records the waits the connector asks for instead of sleeping (a clock seam, not a mock)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def test_three_429s_with_retry_after_then_success(cloud_site: Site, connect) -> None:
    populate(cloud_site, 3)
    cloud_site.fail(
        "GET",
        SEARCH,
        429,
        times=3,
        headers={"Retry-After": "2", "RateLimit-Reason": "jira-burst-based"},
    )
    sleeps = Sleeps()

    result = connect(cloud_site, sleep=sleeps).fetch("SHOP", None)

    assert len(result.issues) == 3
    assert [e.status for e in cloud_site.requests("GET", SEARCH)] == [429, 429, 429, 200]
    assert len(sleeps.delays) == 3
    assert all(2.0 <= d <= 2.6 for d in sleeps.delays)  # never earlier than asked, a little jitter on top


def test_retry_after_as_http_date_and_rate_limit_reset(cloud_site: Site, connect) -> None:
    populate(cloud_site, 1)
    soon = datetime.now(UTC) + timedelta(seconds=30)
    cloud_site.fail("GET", SEARCH, 429, headers={"Retry-After": soon.strftime("%a, %d %b %Y %H:%M:%S GMT")})
    cloud_site.fail("GET", SEARCH, 429, headers={"X-RateLimit-Reset": soon.strftime("%Y-%m-%dT%H:%MZ")})
    sleeps = Sleeps()

    connect(cloud_site, sleep=sleeps).fetch("SHOP", None)

    assert len(sleeps.delays) == 2
    assert 20 <= sleeps.delays[0] <= 40  # about 30 s from the HTTP date
    assert 0 <= sleeps.delays[1] <= 60  # until the reset minute


def test_429_without_headers_backs_off_exponentially(cloud_site: Site, connect) -> None:
    populate(cloud_site, 1)
    cloud_site.fail("GET", SEARCH, 429, times=3)
    sleeps = Sleeps()

    connect(cloud_site, sleep=sleeps, backoff_base_seconds=1.0, backoff_max_seconds=30).fetch("SHOP", None)

    first, second, third = sleeps.delays
    assert 0.7 <= first <= 1.3
    assert 1.4 <= second <= 2.6
    assert 2.8 <= third <= 5.2


def test_a_500_once_is_retried(cloud_site: Site, connect) -> None:
    populate(cloud_site, 2)
    cloud_site.fail("GET", SEARCH, 500)

    result = connect(cloud_site).fetch("SHOP", None)  # real sleeps, 0.01 s base

    assert len(result.issues) == 2
    assert [e.status for e in cloud_site.requests("GET", SEARCH)] == [500, 200]


def test_rate_limit_that_never_ends_gives_a_clear_error_after_bounded_attempts(
    cloud_site: Site, connect
) -> None:
    cloud_site.fail("GET", SEARCH, 503, times=100, headers={"Retry-After": "1"})
    sleeps = Sleeps()

    with pytest.raises(ConnectorError, match=r"still rate limited \(HTTP 503\) after 4 attempts"):
        connect(cloud_site, sleep=sleeps, retry_attempts=4).fetch("SHOP", None)

    assert len(cloud_site.requests("GET", SEARCH)) == 4


def test_dropped_connections_on_reads_are_retried(cloud_site: Site, connect) -> None:
    populate(cloud_site, 2)
    cloud_site.drop_after_commit("GET", SEARCH)

    result = connect(cloud_site).fetch("SHOP", None)

    assert len(result.issues) == 2


def test_bad_credentials_name_the_source_and_variable_but_never_the_token(
    cloud_site: Site, connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    connector = connect(cloud_site, token="wrong-secret-token-789")

    with pytest.raises(ConnectorError) as caught:
        connector.fetch("SHOP", None)

    message = str(caught.value)
    assert "HTTP 401" in message
    assert "'test'" in message
    assert cloud_site.url in message
    assert connector.source.token_env in message
    assert cloud_site.email in message
    assert "wrong-secret-token-789" not in message
    assert "wrong-secret-token-789" not in caplog.text
    # Raised "from None": the package's error, whose text carries request headers, is not chained.
    assert caught.value.__suppress_context__
    assert len(cloud_site.log) == 1  # a 401 is not retried


def test_data_center_bad_token(dc_site: Site, connect) -> None:
    with pytest.raises(ConnectorError, match="personal access token"):
        connect(dc_site, token="nope").fetch("SHOP", None)


def test_forbidden_says_what_to_check(cloud_site: Site, connect) -> None:
    cloud_site.fail("GET", SEARCH, 403)

    with pytest.raises(ConnectorError, match=r"HTTP 403.*browse the project"):
        connect(cloud_site).fetch("SHOP", None)


def test_missing_token_variable(cloud_site: Site, connect, monkeypatch: pytest.MonkeyPatch) -> None:
    connector = connect(cloud_site)
    monkeypatch.delenv(connector.source.token_env)

    with pytest.raises(ConnectorError, match=f"{connector.source.token_env} is not set"):
        connector.fetch("SHOP", None)
    assert cloud_site.log == []


def test_jql_errors_are_reported_with_jiras_message(cloud_site: Site, connect) -> None:
    with pytest.raises(ConnectorError, match=r"HTTP 400.*reserved JQL word"):
        connect(cloud_site).fetch("SHOP", "project = SHOP AND labels = order")


def test_malformed_issue_is_skipped_with_a_warning_naming_key_and_field(
    cloud_site: Site, connect, caplog: pytest.LogCaptureFixture
) -> None:
    make_issue(cloud_site, 1)
    make_issue(cloud_site, 2, points="thirteen")
    make_issue(cloud_site, 3, summary=None)
    cloud_site.issues["SHOP-3"]["fields"]["summary"] = None
    make_issue(cloud_site, 4, description={"type": "paragraph", "content": []})

    with caplog.at_level(logging.WARNING):
        result = connect(cloud_site).fetch("SHOP", None)

    assert [i.key for i in result.issues] == ["SHOP-1"]
    skipped = {s.key: s.reason for s in result.skipped}
    assert set(skipped) == {"SHOP-2", "SHOP-3", "SHOP-4"}
    assert "story points" in skipped["SHOP-2"]
    assert "thirteen" in skipped["SHOP-2"]
    assert "summary" in skipped["SHOP-3"]
    assert "description" in skipped["SHOP-4"]
    assert "SHOP-2" in caplog.text
    assert "'story points'" in caplog.text


def test_a_wait_longer_than_five_minutes_ends_the_sync_instead_of_hanging(cloud_site: Site, connect) -> None:
    cloud_site.fail("GET", SEARCH, 429, headers={"Retry-After": "3600"})
    sleeps = Sleeps()

    with pytest.raises(ConnectorError, match="rate limited"):
        connect(cloud_site, sleep=sleeps).fetch("SHOP", None)

    assert sleeps.delays == []


def test_an_answer_that_is_not_json_is_a_clear_error(cloud_site: Site, connect) -> None:
    cloud_site.fail("GET", "/rest/api/3/field", 200, body=b"<html>proxy login</html>")

    with pytest.raises(ConnectorError, match="listing fields is not JSON"):
        connect(cloud_site).fetch("SHOP", None)


def test_the_fake_removed_the_old_search_like_jira_cloud_did(cloud_site: Site) -> None:
    # Guards the fake: a client on the legacy endpoint (jira package, no server info) gets 410.
    from jira import JIRA
    from jira.exceptions import JIRAError

    client = JIRA(
        server=cloud_site.url,
        basic_auth=(cloud_site.email, cloud_site.token),
        get_server_info=False,
        max_retries=0,
    )
    with pytest.raises(JIRAError) as caught:
        client.search_issues("project = SHOP")
    assert caught.value.status_code == 410


def test_long_syncs_log_progress_when_not_on_a_terminal(
    cloud_site: Site, connect, caplog: pytest.LogCaptureFixture
) -> None:
    populate(cloud_site, 2500)

    with caplog.at_level(logging.INFO, logger="connectors.jira"):
        connect(cloud_site).fetch("SHOP", None)

    lines = [r.getMessage() for r in caplog.records if "issues in" in r.getMessage()]
    assert lines == [
        "SHOP: full sync: 1000 issues in 10 pages",
        "SHOP: full sync: 2000 issues in 20 pages",
    ]
