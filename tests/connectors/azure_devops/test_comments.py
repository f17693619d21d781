"""The bot's comments on work items: Markdown with a marker, found again only when the bot wrote them,
never posted twice on a lost answer, HTML for servers without ``format=markdown``, and replies read back.

(The promises every commenting connector keeps are in tests/connectors/test_commenting_contract.py;
these are the Azure DevOps specifics: routes, versions, formats, request counts.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from connectors.azure_devops import AzureDevOpsConnector
from connectors.base import CommentingConnector, ConnectorError
from refinebot.document import Document, Strong, bullets, paragraph
from tests.connectors.azure_devops.conftest import ConnectorFactory, Sleeps
from tests.fakes.ado_server import BOT, PERSON, FakeAzureDevOps, Fault, of_kind

NOT_READY = Document((paragraph(Strong("Not ready")), bullets(["add acceptance criteria"])))
READY = Document((paragraph("Ready now"),))


@dataclass(frozen=True)
class Fetched:
    """A project with one work item, and a connector that has fetched it (so it knows the project)."""

    project: str
    item: int
    connector: AzureDevOpsConnector


@pytest.fixture
def fetched(
    make_connector: ConnectorFactory, ado: FakeAzureDevOps, pat_env: str, unique_name: Callable[[str], str]
) -> Fetched:
    project = unique_name("Comments")
    ado.add_project(project)
    item = ado.add_item(project, "Needs a comment")
    connector = make_connector()
    connector.fetch(project, None, full=True)
    return Fetched(project, item, connector)


def test_comments_are_added_found_and_updated_in_place(
    fetched: Fetched,
    ado: FakeAzureDevOps,
) -> None:
    item, connector = fetched.item, fetched.connector
    assert isinstance(connector, CommentingConnector)
    mark = len(ado.requests)

    assert connector.find_comment(str(item), "readiness") is None
    comment_id = connector.add_comment(str(item), NOT_READY, marker="readiness")
    assert connector.find_comment(str(item), "readiness") == comment_id
    assert connector.find_comment(str(item), "other") is None
    connector.update_comment(str(item), comment_id, READY, marker="readiness")

    (stored,) = ado.comments[item]
    assert str(stored["id"]) == comment_id
    assert stored["version"] == 2
    assert stored["format"] == "markdown"
    assert stored["text"] == "Ready now\n\n<!-- refinebot:readiness -->"
    assert stored["createdBy"]["id"] == BOT["id"]
    (post,) = of_kind(ado.requests_since(mark), "POST", "/comments")
    assert post.query.get("format") == "markdown"
    assert post.api_version == "7.1-preview.4"
    assert post.body["text"].startswith("**Not ready**\n\n- add acceptance criteria")
    # The bot's identity is asked for once per connector, not per call.
    assert len(of_kind(ado.requests_since(mark), "GET", "/_apis/connectionData")) == 1


def test_someone_elses_comment_is_never_found_or_updated(
    make_connector: ConnectorFactory, ado: FakeAzureDevOps, pat_env: str, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Quoted")
    ado.add_project(project)
    item = ado.add_item(project, "Quoted marker")
    theirs = ado.add_comment(item, "I copied this: <!-- refinebot:readiness -->")
    connector = make_connector()

    assert connector.find_comment(str(item), "readiness") is None
    mark = len(ado.requests)
    with pytest.raises(ConnectorError, match="not written by refinebot"):
        connector.update_comment(str(item), str(theirs), READY, marker="readiness")

    assert of_kind(ado.requests_since(mark), "PATCH", "/comments") == []  # refused before any write
    assert ado.comments[item][0]["text"] == "I copied this: <!-- refinebot:readiness -->"
    assert ado.comments[item][0]["version"] == 1


def test_comment_on_an_item_not_fetched_looks_up_its_project(
    make_connector: ConnectorFactory, ado: FakeAzureDevOps, pat_env: str, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Lookup")
    ado.add_project(project)
    item = ado.add_item(project, "Fresh connector")
    connector = make_connector()

    comment_id = connector.add_comment(str(item), READY, marker="m")

    assert [str(c["id"]) for c in ado.comments[item]] == [comment_id]
    with pytest.raises(ConnectorError, match="not a work item id"):
        connector.add_comment("ABC-1", READY, marker="m")


def test_dropped_connection_after_comment_post_does_not_post_twice(
    fetched: Fetched,
    ado: FakeAzureDevOps,
) -> None:
    project, item, connector = fetched.project, fetched.item, fetched.connector
    ado.faults.append(
        Fault(f"/{project}/_apis/wit/workItems/{item}/comments", method="POST", drop_after=True)
    )
    mark = len(ado.requests)

    comment_id = connector.add_comment(str(item), READY, marker="agenda")

    assert len(ado.comments[item]) == 1
    assert str(ado.comments[item][0]["id"]) == comment_id
    assert len(of_kind(ado.requests_since(mark), "POST", "/comments")) == 1


def test_comment_post_that_never_arrived_is_retried(
    fetched: Fetched,
    ado: FakeAzureDevOps,
    sleeps: Sleeps,
) -> None:
    project, item, connector = fetched.project, fetched.item, fetched.connector
    ado.faults.append(Fault(f"/{project}/_apis/wit/workItems/{item}/comments", method="POST", status=503))

    comment_id = connector.add_comment(str(item), READY, marker="agenda")

    assert [str(c["id"]) for c in ado.comments[item]] == [comment_id]
    assert len(sleeps.calls) == 1


def test_servers_without_markdown_comments_get_escaped_html(
    fetched: Fetched,
    ado: FakeAzureDevOps,
) -> None:
    item, connector = fetched.item, fetched.connector
    ado.markdown_comments = False
    try:
        doc = Document((paragraph(Strong("Heads up")), bullets(["one & <two>"])))
        comment_id = connector.add_comment(str(item), doc, marker="m")
        assert ado.comments[item][0]["text"] == (
            "<p><b>Heads up</b></p><ul><li>one &amp; &lt;two&gt;</li></ul><!-- refinebot:m -->"
        )
        connector.update_comment(str(item), comment_id, READY, marker="m")
    finally:
        ado.markdown_comments = True

    (stored,) = ado.comments[item]
    assert stored["format"] == "html"
    assert stored["text"] == "<p>Ready now</p><!-- refinebot:m -->"
    assert connector.find_comment(str(item), "m") == comment_id


def test_comments_since_follows_pages_and_strips_markup(
    make_connector: ConnectorFactory, ado: FakeAzureDevOps, pat_env: str, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Since")
    ado.add_project(project)
    item = ado.add_item(project, "Busy thread")
    first = ado.add_comment(item, "**note 0**")
    for n in range(1, 205):  # more than one page of 200
        ado.add_comment(item, f"**note {n}**")
    html = ado.add_comment(item, "<p>see <a href='https://x.example'>this</a></p>", fmt="html")
    connector = make_connector()
    mine = connector.add_comment(str(item), Document((paragraph("Use [brackets] * here"),)), marker="m")
    mark = len(ado.requests)

    comments = connector.comments_since(str(item), None)

    assert len(comments) == 207
    assert len(of_kind(ado.requests_since(mark), "GET", "/comments")) == 2
    by_id = {c.id: c for c in comments}
    assert by_id[str(html)].text == "see this"
    assert by_id[str(first)].text == "note 0"
    assert by_id[mine].text == "Use [brackets] * here"  # escapes undone, marker dropped
    assert by_id[mine].by_bot
    assert by_id[str(html)].author == PERSON["displayName"]
    assert by_id[str(html)].author_id == PERSON["id"]
    assert not by_id[str(html)].by_bot
    assert all(c.created.tzinfo is not None for c in comments)
    assert [c.created for c in comments] == sorted(c.created for c in comments)
    assert connector.comments_since(str(item), datetime.now(UTC) + timedelta(minutes=1)) == []
