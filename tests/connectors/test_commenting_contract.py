"""The promises every commenting connector keeps, run on the Jira Cloud, Jira Data Center and Azure DevOps fakes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import CommentGoneError, ConnectorError
from refinebot.document import Document, Link, bullets, heading, paragraph
from tests.connectors.azure_devops.harness import ado_harness
from tests.connectors.harness import CommentingHarness
from tests.connectors.jira.harness import cloud_harness, dc_harness

HARNESSES: dict[str, Callable[[], AbstractContextManager[CommentingHarness]]] = {
    "jira-cloud": cloud_harness,
    "jira-dc": dc_harness,
    "azure-devops": ado_harness,
}

DOC = Document(
    (
        heading("Not ready for refinement"),
        paragraph("This item has no acceptance criteria."),
        bullets(["add acceptance criteria", "estimate it"]),
    )
)
NEWER = Document((paragraph("All good now: acceptance criteria found."),))


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Iterator[CommentingHarness]:
    with HARNESSES[request.param]() as made:
        yield made


def test_add_then_find_then_update_in_place(harness: CommentingHarness) -> None:
    connector, key = harness.connector, harness.issue_key
    assert connector.find_comment(key, "contract:add") is None
    comment_id = connector.add_comment(key, DOC, marker="contract:add")
    assert connector.find_comment(key, "contract:add") == comment_id
    assert connector.find_comment(key, "contract:ad") is None  # a prefix of the marker is another marker
    before = len(harness.comment_bodies())
    connector.update_comment(key, comment_id, NEWER, marker="contract:add")
    bodies = harness.comment_bodies()
    assert len(bodies) == before  # edited in place, not posted again
    assert any("All good now" in body for body in bodies)
    assert not any("no acceptance criteria" in body for body in bodies)
    assert connector.find_comment(key, "contract:add") == comment_id


def test_an_edit_known_to_be_ours_skips_the_author_read_and_a_deleted_comment_says_so(
    harness: CommentingHarness,
) -> None:
    connector, key = harness.connector, harness.issue_key
    comment_id = connector.add_comment(key, DOC, marker="contract:known")
    connector.update_comment(key, comment_id, NEWER, marker="contract:known", known_ours=True)
    assert any("All good now" in body for body in harness.comment_bodies())
    harness.delete_comment(comment_id)
    with pytest.raises(CommentGoneError):
        connector.update_comment(key, comment_id, DOC, marker="contract:known", known_ours=True)
    with pytest.raises(ConnectorError):  # without the ledger's word the author read fails first
        connector.update_comment(key, comment_id, DOC, marker="contract:known")


def test_a_dropped_post_never_doubles_the_comment(harness: CommentingHarness) -> None:
    connector, key = harness.connector, harness.issue_key
    before = len(harness.comment_bodies())
    harness.drop_next_comment_response()
    comment_id = connector.add_comment(key, DOC, marker="contract:dropped")
    assert len(harness.comment_bodies()) == before + 1
    assert connector.find_comment(key, "contract:dropped") == comment_id


def test_a_person_quoting_the_marker_is_never_found_or_overwritten(harness: CommentingHarness) -> None:
    connector, key = harness.connector, harness.issue_key
    mine = connector.add_comment(key, DOC, marker="contract:quoted")
    # A person copies the bot's whole comment (marker included) into their own reply.
    quoted = next(body for body in harness.comment_bodies() if "no acceptance criteria" in body)
    theirs = harness.add_person_comment(quoted)
    assert connector.find_comment(key, "contract:quoted") == mine
    with pytest.raises(ConnectorError):
        connector.update_comment(key, theirs, NEWER, marker="contract:quoted")
    assert sum(body == quoted for body in harness.comment_bodies()) >= 1  # their comment is intact


def test_a_person_quoting_the_marker_first_does_not_stop_the_bot_posting(harness: CommentingHarness) -> None:
    connector, key = harness.connector, harness.issue_key
    connector.add_comment(key, DOC, marker="contract:first")
    quoted = next(body for body in harness.comment_bodies() if "no acceptance criteria" in body)
    harness.add_person_comment(quoted.replace("contract:first", "contract:later"))
    assert connector.find_comment(key, "contract:later") is None
    mine = connector.add_comment(key, DOC, marker="contract:later")
    assert connector.find_comment(key, "contract:later") == mine


def test_comments_since_are_typed_and_tell_the_bot_apart(harness: CommentingHarness) -> None:
    connector, key = harness.connector, harness.issue_key
    start = datetime.now(UTC) - timedelta(minutes=1)
    mine = connector.add_comment(key, DOC, marker="contract:since")
    theirs = harness.add_person_comment(
        "refinebot dismiss missing-acceptance-criteria: AC live in Confluence"
    )
    comments = {c.id: c for c in connector.comments_since(key, start)}
    assert comments[mine].by_bot
    assert not comments[theirs].by_bot
    assert "dismiss missing-acceptance-criteria" in comments[theirs].text
    assert comments[theirs].issue_key == key
    assert comments[theirs].author and comments[theirs].author_id
    assert comments[theirs].created.tzinfo is not None
    later = connector.comments_since(key, datetime.now(UTC) + timedelta(hours=1))
    assert list(later) == []


def test_user_text_never_becomes_markup(harness: CommentingHarness) -> None:
    connector, key = harness.connector, harness.issue_key
    hostile = (
        "[click](https://evil.example/a) [x|https://evil.example/b] <a href='https://evil.example/c'>x</a>"
    )
    doc = Document(
        (
            paragraph("Possible duplicate of: ", hostile),
            paragraph(Link("PAY-7", "https://jira.example/browse/PAY-7")),
            bullets(["* not a bullet", "# not a heading"]),
        )
    )
    comment_id = connector.add_comment(key, doc, marker="contract:escape")
    body = next(b for b in harness.comment_bodies() if "evil.example" in b)
    targets = harness.link_targets(body)
    assert "https://jira.example/browse/PAY-7" in targets  # a real link stays a link
    assert not [url for url in targets if "evil.example" in url]  # user text never becomes one
    assert connector.find_comment(key, "contract:escape") == comment_id
