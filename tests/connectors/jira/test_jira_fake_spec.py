"""The fake Jira answers in the shapes of Atlassian's published OpenAPI spec.

Drives the real connector through a sync and a comment round trip, then validates every recorded 2xx
response for search/jql, field, comments and serverInfo against
``../shared/specs/jira-cloud-platform-v3.json``, so the connector is tested against the vendor's
truth rather than our guesses.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from refinebot.document import Document, bullets, heading, paragraph
from tests.fakes.jira_data import adf, cloud_sprint, link, make_issue, para, populate
from tests.fakes.jira_server import Exchange, Site
from tests.shared_data import SHARED, require_shared

SPEC = SHARED / "specs" / "jira-cloud-platform-v3.json"
HOST = "https://your-domain.atlassian.net"


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    require_shared(SPEC)
    from openapi_core import Config

    # The spec fails strict validation on one invalid enum default; the documents are fine.
    # Jira writes offsets without a colon ("+0000") where the spec says RFC 3339 date-time. Real
    # traffic wins there, and only there: the check still rejects anything that is no timestamp.
    config = Config(spec_validator_cls=None, extra_format_validators={"date-time": _jira_date_time})
    return OpenAPI.from_dict(json.loads(SPEC.read_text()), config=config)


_JIRA_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})$")


def _jira_date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(_JIRA_DATE_TIME.match(value))


def _request(exchange: Exchange) -> MockRequest:
    return MockRequest(
        HOST,
        exchange.method.lower(),
        exchange.path,
        args={k: v[0] for k, v in exchange.query.items()},
        data=json.dumps(exchange.body).encode() if exchange.body is not None else None,
        # The fake checked the real credentials; the spec only needs the scheme to be there.
        headers={"Authorization": "Basic " + base64.b64encode(b"user:token").decode()},
    )


def _validate(openapi: OpenAPI, exchange: Exchange) -> None:
    if exchange.path == "/rest/api/2/serverInfo":
        # The connector probes with v2 (Data Center has no v3); Cloud documents v2 and v3 serverInfo
        # as the same ServerInformation, and this spec file holds v3 only.
        exchange = replace(exchange, path="/rest/api/3/serverInfo")
    data = b"" if exchange.response is None else json.dumps(exchange.response).encode()
    openapi.validate_response(_request(exchange), MockResponse(data, status_code=exchange.status or 0))


def _scenario(site: Site, connect) -> None:
    populate(site, 120)
    make_issue(
        site,
        500,
        links=[link(site, "Blocks", "inward", "API-1")],
        sprint=[cloud_sprint("S1", "active")],
    )
    connector = connect(site)
    connector.fetch("SHOP", None)
    checked = Document((heading("Check"), bullets(["one", "two"])))
    comment_id = connector.add_comment("SHOP-1", checked, marker="spec")
    connector.update_comment("SHOP-1", comment_id, Document((paragraph("Better now."),)), marker="spec")
    assert connector.find_comment("SHOP-1", "spec") == comment_id
    site.add_person_comment("SHOP-1", adf(para("refinebot snooze")))
    assert [c.by_bot for c in connector.comments_since("SHOP-1", None)] == [True, False]


def test_fake_responses_match_the_published_spec(cloud_site: Site, connect, openapi: OpenAPI) -> None:
    _scenario(cloud_site, connect)

    checked: set[str] = set()
    for exchange in cloud_site.log:
        if exchange.status is not None and 200 <= exchange.status < 300:
            _validate(openapi, exchange)
            checked.add(f"{exchange.method} {exchange.path}")
    assert {
        "GET /rest/api/2/serverInfo",
        "GET /rest/api/3/field",
        "GET /rest/api/3/search/jql",
        "POST /rest/api/3/issue/SHOP-1/comment",
        "PUT /rest/api/3/issue/SHOP-1/comment/20001",
        "GET /rest/api/3/issue/SHOP-1/comment",
        "GET /rest/api/3/myself",
    } <= checked


def test_the_validator_rejects_what_jira_would_never_send(cloud_site: Site, openapi: OpenAPI) -> None:
    # Guards the guard: a page with a numeric id, a string isLast and an invented key must fail.
    bad = Exchange(
        "GET",
        "/rest/api/3/search/jql",
        {"jql": ["project = X"]},
        None,
        200,
        {"issues": [{"id": 10001}], "isLast": "yes", "total": 1},
        {},
    )
    bad_time = Exchange("GET", "/rest/api/3/serverInfo", {}, None, 200, {"serverTime": "yesterday"}, {})
    with pytest.raises(Exception, match=r"InvalidData|Invalid|valid"):
        _validate(openapi, bad)
    with pytest.raises(Exception, match=r"InvalidData|Invalid|valid"):
        _validate(openapi, bad_time)


def test_the_connectors_requests_match_the_published_spec(
    cloud_site: Site, connect, openapi: OpenAPI
) -> None:
    _scenario(cloud_site, connect)

    sent = [
        e for e in cloud_site.log if e.path.endswith(("/search/jql", "/comment", "/comment/20001", "/field"))
    ]
    for exchange in sent:
        openapi.validate_request(_request(exchange))
    assert {e.method for e in sent} == {"GET", "POST", "PUT"}


def test_a_large_cloud_backlogs_incremental_sync_counts_in_the_published_shape(
    cloud_site: Site, connect, openapi: OpenAPI
) -> None:
    # Over 5000 known issues, leavers are found by time and the query's approximate count.
    populate(cloud_site, 5001)
    connector = connect(cloud_site)
    connector.fetch("SHOP", None)
    cloud_site.move("SHOP-9", "OPS-9", datetime.now(UTC))
    before = len(cloud_site.log)

    result = connector.fetch("SHOP", None)

    assert len(result.issues) == 5000 and "SHOP-9" not in {i.key for i in result.issues}
    # changes, ids changed in SHOP by time, the count (one fewer: the move), the ids listed
    assert len(cloud_site.log) - before == 4
    counted = cloud_site.requests("POST", "/rest/api/3/search/approximate-count")
    assert counted and counted[0].response == {"count": 5000}
    for exchange in cloud_site.log[before:]:
        openapi.validate_request(_request(exchange))
        _validate(openapi, exchange)
