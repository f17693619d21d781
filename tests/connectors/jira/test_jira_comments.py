"""Bot comments: ADF or wiki bodies, in-place updates, markers, no duplicate on retried POSTs."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest

from connectors.base import CommentingConnector, ConnectorError
from refinebot.document import Document, Strong, bullets, heading, paragraph
from tests.fakes.jira_data import adf, make_issue, para
from tests.fakes.jira_server import Site

COMMENTS = "/rest/api/3/issue/SHOP-1/comment"
TEXT = Document(
    (
        heading("Refinement check"),
        paragraph("This story is not ready yet:"),
        bullets(["no acceptance criteria", "13 points is too big"]),
        paragraph("Thanks!"),
    )
)


def text(value: str) -> Document:
    return Document((paragraph(value),))


def _posted_bodies(site: Site) -> list[Any]:
    return [e.body["body"] for e in site.log if e.method in ("POST", "PUT") and "/comment" in e.path]


def test_connector_satisfies_the_commenting_protocol(cloud_site: Site, connect) -> None:
    assert isinstance(connect(cloud_site), CommentingConnector)


def test_cloud_comment_is_valid_adf_tagged_by_property_and_footer(
    cloud_site: Site, connect, adf_validator: jsonschema.protocols.Validator
) -> None:
    make_issue(cloud_site, 1)
    connector = connect(cloud_site)

    comment_id = connector.add_comment("SHOP-1", TEXT, marker="SHOP-1:readiness")

    [stored] = cloud_site.all_comments("SHOP-1")
    assert stored["id"] == comment_id
    body = stored["body"]
    adf_validator.validate(body)
    assert [block["type"] for block in body["content"]] == [
        "heading",
        "paragraph",
        "bulletList",
        "paragraph",
        "paragraph",
    ]
    assert body["content"][-1]["content"][0]["text"] == "refinebot-marker: SHOP-1:readiness"
    assert stored["properties"] == [{"key": "refinebot", "value": {"marker": "SHOP-1:readiness", "v": 1}}]
    assert connector.find_comment("SHOP-1", "SHOP-1:readiness") == comment_id
    assert connector.find_comment("SHOP-1", "SHOP-1:readines") is None


def test_update_replaces_the_body_in_place_without_notifying(
    cloud_site: Site, connect, adf_validator: jsonschema.protocols.Validator
) -> None:
    make_issue(cloud_site, 1)
    connector = connect(cloud_site)
    comment_id = connector.add_comment("SHOP-1", TEXT, marker="m1")

    connector.update_comment("SHOP-1", comment_id, text("All good now."), marker="m1")

    [stored] = cloud_site.all_comments("SHOP-1")
    assert stored["body"]["content"][0]["content"][0]["text"] == "All good now."
    assert stored["notified"] == "false"
    for body in _posted_bodies(cloud_site):
        adf_validator.validate(body)


def test_find_falls_back_to_the_text_footer_when_the_property_is_gone(cloud_site: Site, connect) -> None:
    make_issue(cloud_site, 1)
    connector = connect(cloud_site)
    comment_id = connector.add_comment("SHOP-1", TEXT, marker="m2")
    cloud_site.comments["SHOP-1"][0]["properties"] = []

    assert connector.find_comment("SHOP-1", "m2") == comment_id


def test_find_pages_through_many_comments(cloud_site: Site, connect) -> None:
    make_issue(cloud_site, 1)
    connector = connect(cloud_site)
    wanted = connector.add_comment("SHOP-1", text("the one"), marker="needle")
    for n in range(150):  # newer human chatter pushes the bot comment onto the second page
        cloud_site.comments["SHOP-1"].append(
            {
                **cloud_site.comments["SHOP-1"][0],
                "id": str(50000 + n),
                "properties": [],
                "created": f"2099-01-01T00:{n // 60:02d}:{n % 60:02d}.000+0000",
                "body": {"type": "doc", "version": 1, "content": []},
            }
        )

    assert connector.find_comment("SHOP-1", "needle") == wanted
    assert len(cloud_site.requests("GET", COMMENTS)) == 2


def test_dropped_connection_after_the_post_does_not_post_twice(cloud_site: Site, connect) -> None:
    make_issue(cloud_site, 1)
    cloud_site.drop_after_commit("POST", COMMENTS)

    comment_id = connect(cloud_site).add_comment("SHOP-1", TEXT, marker="once")

    assert [c["id"] for c in cloud_site.all_comments("SHOP-1")] == [comment_id]
    assert [e.method for e in cloud_site.requests(path=COMMENTS)] == ["POST", "GET"]


def test_a_500_after_the_post_was_refused_posts_again_after_checking(cloud_site: Site, connect) -> None:
    make_issue(cloud_site, 1)
    cloud_site.fail("POST", COMMENTS, 500)  # answered before any work: nothing was stored

    comment_id = connect(cloud_site).add_comment("SHOP-1", TEXT, marker="twice-asked")

    assert [c["id"] for c in cloud_site.all_comments("SHOP-1")] == [comment_id]
    assert [e.method for e in cloud_site.requests(path=COMMENTS)] == ["POST", "GET", "POST"]


def test_a_503_after_the_comment_was_stored_does_not_post_twice(cloud_site: Site, connect) -> None:
    # A gateway can answer 503 after Jira committed the comment: only a 429 proves nothing happened.
    make_issue(cloud_site, 1)
    cloud_site.fail_after_commit("POST", COMMENTS, 503, headers={"Retry-After": "0"})

    comment_id = connect(cloud_site).add_comment("SHOP-1", TEXT, marker="gateway")

    assert [c["id"] for c in cloud_site.all_comments("SHOP-1")] == [comment_id]
    assert [e.method for e in cloud_site.requests(path=COMMENTS)] == ["POST", "GET"]


def test_a_503_before_the_comment_was_stored_posts_again_after_checking(cloud_site: Site, connect) -> None:
    make_issue(cloud_site, 1)
    cloud_site.fail("POST", COMMENTS, 503, headers={"Retry-After": "0"})

    comment_id = connect(cloud_site).add_comment("SHOP-1", TEXT, marker="unavailable")

    assert [c["id"] for c in cloud_site.all_comments("SHOP-1")] == [comment_id]
    assert [e.method for e in cloud_site.requests(path=COMMENTS)] == ["POST", "GET", "POST"]


def test_a_429_on_post_is_retried_without_checking(cloud_site: Site, connect) -> None:
    make_issue(cloud_site, 1)
    cloud_site.fail("POST", COMMENTS, 429, headers={"Retry-After": "0"})

    connect(cloud_site).add_comment("SHOP-1", TEXT, marker="limited")

    assert len(cloud_site.all_comments("SHOP-1")) == 1
    assert [e.method for e in cloud_site.requests(path=COMMENTS)] == ["POST", "POST"]


def test_data_center_comments_are_wiki_markup(dc_site: Site, connect) -> None:
    make_issue(dc_site, 1)
    connector = connect(dc_site)

    comment_id = connector.add_comment("SHOP-1", TEXT, marker="dc-1")
    connector.update_comment(
        "SHOP-1", comment_id, Document((*TEXT.blocks, bullets(["one more"]))), marker="dc-1"
    )

    [stored] = dc_site.all_comments("SHOP-1")
    assert isinstance(stored["body"], str)
    assert stored["body"].startswith("h2. Refinement check\n")
    assert "* 13 points is too big" in stored["body"]
    assert "* one more" in stored["body"]
    assert stored["notified"] == "false"
    dc_site.comments["SHOP-1"][0]["properties"] = []
    assert connector.find_comment("SHOP-1", "dc-1") == comment_id
    assert connector.find_comment("SHOP-1", "dc") is None


def test_comment_on_a_missing_issue_is_a_clear_error(cloud_site: Site, connect) -> None:
    with pytest.raises(
        ConnectorError, match=r"HTTP 404 while adding a comment to SHOP-404: Issue does not exist"
    ):
        connect(cloud_site).add_comment("SHOP-404", TEXT, marker="x")


def test_unsafe_marker_is_refused_before_any_request(cloud_site: Site, connect) -> None:
    with pytest.raises(ValueError, match="marker"):
        connect(cloud_site).add_comment("SHOP-1", TEXT, marker="has spaces")
    assert cloud_site.log == []


def _human_comment_quoting(site: Site, marker: str) -> dict[str, Any]:
    author = (
        {"accountId": "557058:human-dana", "displayName": "Dana Dev", "active": True}
        if site.cloud
        else {"name": "dana", "key": "JIRAUSER10200", "displayName": "Dana Dev", "active": True}
    )
    footer = f"refinebot-marker: {marker}"
    body: Any = (
        {
            "type": "doc",
            "version": 1,
            "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "I disagree with the bot:"}]},
                {"type": "paragraph", "content": [{"type": "text", "text": footer}]},
            ],
        }
        if site.cloud
        else f"I disagree with the bot:\n{footer}"
    )
    comment = {
        "id": "777",
        "author": author,
        "updateAuthor": author,
        "body": body,
        "created": "2026-11-20T10:00:00.000+0000",
        "updated": "2026-11-20T10:00:00.000+0000",
        "properties": [],
    }
    site.comments.setdefault("SHOP-1", []).append(comment)
    return comment


@pytest.mark.parametrize("cloud", [True, False], ids=["cloud", "dc"])
def test_a_persons_comment_quoting_the_marker_is_never_taken_for_the_bots(
    fake_jira, connect, cloud: bool
) -> None:
    site = fake_jira.new_site(cloud=cloud)
    make_issue(site, 1)
    human = _human_comment_quoting(site, "missing_ac:SHOP-1")
    as_written = copy.deepcopy(human)
    connector = connect(site)

    assert connector.find_comment("SHOP-1", "missing_ac:SHOP-1") is None
    mine = connector.add_comment("SHOP-1", TEXT, marker="missing_ac:SHOP-1")
    assert connector.find_comment("SHOP-1", "missing_ac:SHOP-1") == mine
    assert human == as_written  # never touched
    with pytest.raises(ConnectorError, match="not written by the bot; not updating it"):
        connector.update_comment("SHOP-1", "777", text("new findings"), marker="missing_ac:SHOP-1")
    assert human == as_written  # never touched
    api = "3" if cloud else "2"
    assert len(site.requests("GET", f"/rest/api/{api}/myself")) == 1  # asked once per connector


@pytest.mark.parametrize("cloud", [True, False], ids=["cloud", "dc"])
def test_comments_since_pages_through_every_comment_typed_oldest_first(
    fake_jira, connect, cloud: bool
) -> None:
    site = fake_jira.new_site(cloud=cloud)
    make_issue(site, 1)
    connector = connect(site)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(130):  # two pages of 100
        body = adf(para(f"note {n}")) if cloud else f"note *{n}*"
        site.add_person_comment("SHOP-1", body, when=start + timedelta(minutes=n))
    mine = connector.add_comment("SHOP-1", Document((paragraph("a-b [x] ", Strong("c")),)), marker="since")

    comments = connector.comments_since("SHOP-1", start + timedelta(minutes=99, seconds=30))

    assert [c.text for c in comments[:2]] == ["note 100", "note 101"]
    assert len(comments) == 31
    assert comments[-1].id == mine and comments[-1].by_bot
    assert comments[-1].text.startswith("a-b [x] c")  # markup (and its escapes) stripped
    person = comments[0]
    assert (person.author, person.issue_key, person.by_bot) == ("Dana Dev", "SHOP-1", False)
    assert person.author_id == ("557058:human-dana" if cloud else "JIRAUSER10200")
    assert person.created == start + timedelta(minutes=100) and person.created.tzinfo is not None
    api = "3" if cloud else "2"
    listed = site.requests("GET", f"/rest/api/{api}/issue/SHOP-1/comment")
    assert [e.query["startAt"] for e in listed[-2:]] == [["0"], ["100"]]
    assert len(connector.comments_since("SHOP-1", None)) == 131


def test_comments_since_counts_an_edit_after_the_time(cloud_site: Site, connect) -> None:
    make_issue(cloud_site, 1)
    connector = connect(cloud_site)
    old = datetime(2026, 1, 1, tzinfo=UTC)
    edited = cloud_site.add_person_comment("SHOP-1", adf(para("first words")), when=old)
    cloud_site.add_person_comment("SHOP-1", adf(para("untouched")), when=old)
    cloud_site.comments["SHOP-1"][0]["updated"] = "2026-03-01T10:00:00.000+0000"

    comments = connector.comments_since("SHOP-1", datetime(2026, 2, 1, tzinfo=UTC))

    assert [c.id for c in comments] == [edited]
    assert comments[0].updated == datetime(2026, 3, 1, 10, tzinfo=UTC)
