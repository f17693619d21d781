"""The bot's comments on work items: post (never twice), find, update in place, and read replies.

Only comments written by the bot's own account count as its comments: the account is learned once
from ``_apis/connectionData`` (the authenticated user) and compared with each comment's
``createdBy.id``, so a person quoting the marker is never found or overwritten. Comments are posted
as Markdown (``format=markdown``, 7.1-preview.4); a server that refuses the parameter gets HTML.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

from connectors.azure_devops.client import AdoClient, FormatUnsupportedError
from connectors.azure_devops.render import html_comment, markdown_comment, marker_text
from connectors.azure_devops.search import STATE_FIELDS
from connectors.base import ConnectorError, TicketComment
from refinebot.document import Document
from refinebot.markup import to_text

logger = logging.getLogger(__name__)

_MARKERS = re.compile(r"<!-- refinebot:[A-Za-z0-9:_ -]*-->")
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")
PAGE_SIZE = 200


class WorkItemComments:
    """Comments on one organisation's work items, through the client's guard."""

    def __init__(self, client: AdoClient, project_of: dict[str, str]) -> None:
        self.client = client
        self.project_of = project_of  # filled by fetches; looked up once for other items
        self._markdown = True
        self._bot_id: str | None = None

    # ----- who and where --------------------------------------------------------------------------
    def bot_id(self) -> str:
        """The identity id of the account the token belongs to (asked once)."""
        if self._bot_id is None:
            location = self.client.clients().location
            data = self.client.call("who am I (connection data)", location.get_connection_data, project=None)
            user = getattr(data, "authenticated_user", None)
            if user is None or not getattr(user, "id", None):
                raise ConnectorError(f"{self.client.where()}: connection data names no authenticated user")
            self._bot_id = str(user.id)
        return self._bot_id

    def target(self, issue_key: str) -> tuple[str, int]:
        """(project, id) of a work item key; the project is from the last fetch or one lookup."""
        if not issue_key.strip().isdigit():
            raise ConnectorError(f"{self.client.where()}: {issue_key!r} is not a work item id")
        item_id = int(issue_key)
        project = self.project_of.get(str(item_id))
        if project is None:
            from azure.devops.v7_1.work_item_tracking.models import WorkItemBatchGetRequest

            wit = self.client.clients().wit
            request = WorkItemBatchGetRequest(ids=[item_id], fields=STATE_FIELDS, error_policy="Omit")
            answer = self.client.call(
                f"project of work item {item_id}", partial(wit.get_work_items_batch, request), project=None
            )
            found = [item for item in answer or [] if item is not None]
            if not found:
                raise ConnectorError(f"{self.client.where()}: work item {item_id} not found")
            project = str((found[0].fields or {}).get("System.TeamProject") or "")
            self.project_of[str(item_id)] = project
        return project, item_id

    def _pages(self, project: str, item_id: int) -> Iterator[Any]:
        """Every comment on the work item, page by page (following the continuation token)."""
        wit = self.client.clients().wit
        token: str | None = None
        while True:
            page = self.client.call(
                f"comments of work item {item_id}",
                partial(wit.get_comments, project, item_id, top=PAGE_SIZE, continuation_token=token),
                project=project,
            )
            yield from page.comments or []
            token = page.continuation_token
            if not token:
                return

    def _is_bot(self, comment: Any) -> bool:
        author = getattr(comment, "created_by", None)
        return author is not None and str(getattr(author, "id", "") or "") == self.bot_id()

    # ----- the connector's comment API ------------------------------------------------------------
    def find(self, issue_key: str, marker: str) -> str | None:
        """The id of the bot's own comment carrying ``marker``, if one exists."""
        project, item_id = self.target(issue_key)
        needle = marker_text(marker)
        for comment in self._pages(project, item_id):
            if self._is_bot(comment) and needle in (comment.text or ""):
                return str(comment.id)
        return None

    def add(self, issue_key: str, document: Document, *, marker: str) -> str:
        """Post ``document`` with a hidden marker; a POST whose answer was lost is never repeated blindly."""
        from azure.devops.v7_1.work_item_tracking.models import CommentCreate

        project, item_id = self.target(issue_key)
        wit = self.client.clients().wit
        self.bot_id()  # learned before posting, so recovering from a lost answer costs no extra step

        def post() -> Any:
            if self._markdown:
                request = CommentCreate(text=markdown_comment(document, marker))
                return wit.add_work_item_comment(request, project, item_id, format="markdown")
            return wit.add_comment(CommentCreate(text=html_comment(document, marker)), project, item_id)

        comment = self._with_format_fallback(
            lambda: self.client.call(
                f"comment on work item {item_id}",
                post,
                project=project,
                recover=lambda: self.find(issue_key, marker),
            )
        )
        return comment if isinstance(comment, str) else str(comment.id)

    def update(
        self, issue_key: str, comment_id: str, document: Document, *, marker: str, known_ours: bool = False
    ) -> None:
        """Replace the bot's own comment's text in place; refuses a comment someone else wrote.

        ``known_ours`` skips reading the author first (the caller recorded the id from its own post or
        from ``find``). A deleted comment raises ``CommentGoneError``.
        """
        from azure.devops.v7_1.work_item_tracking.models import CommentUpdate

        project, item_id = self.target(issue_key)
        if not comment_id.strip().isdigit():
            raise ConnectorError(f"{self.client.where()}: {comment_id!r} is not a comment id")
        wit = self.client.clients().wit
        existing = None
        if not known_ours:
            existing = self.client.call(
                f"comment {comment_id} on work item {item_id}",
                partial(wit.get_comment, project, item_id, int(comment_id)),
                project=project,
            )
        if existing is not None and not self._is_bot(existing):
            raise ConnectorError(
                f"{self.client.where()}: comment {comment_id} on work item {item_id} "
                "was not written by refinebot's account; not changing it"
            )

        def patch() -> Any:
            if self._markdown:
                request = CommentUpdate(text=markdown_comment(document, marker))
                return wit.update_work_item_comment(
                    request, project, item_id, int(comment_id), format="markdown"
                )
            request = CommentUpdate(text=html_comment(document, marker))
            return wit.update_comment(request, project, item_id, int(comment_id))

        # A PATCH of the same text is idempotent, so retrying it is safe.
        what = f"update comment {comment_id} on work item {item_id}"
        self._with_format_fallback(lambda: self.client.call(what, patch, project=project))

    def since(self, issue_key: str, since: datetime | None) -> list[TicketComment]:
        """Comments created or edited after ``since`` (all when None), oldest first, markup stripped."""
        project, item_id = self.target(issue_key)
        bot = self.bot_id()
        found: list[TicketComment] = []
        for comment in self._pages(project, item_id):
            created = _aware(comment.created_date)
            modified = _aware(comment.modified_date) if comment.modified_date else None
            if created is None:
                continue
            latest = max(created, modified) if modified is not None else created
            if since is not None and latest <= since:
                continue
            author = comment.created_by
            author_id = str(getattr(author, "id", "") or "")
            found.append(
                TicketComment(
                    id=str(comment.id),
                    issue_key=str(item_id),
                    author=str(getattr(author, "display_name", "") or ""),
                    author_id=author_id,
                    created=created,
                    updated=modified if modified is not None and modified != created else None,
                    text=comment_text(comment.text or "", str(comment.format or "html")),
                    by_bot=author_id == bot,
                )
            )
        return sorted(found, key=lambda c: c.created)

    def _with_format_fallback(self, run: Callable[[], Any]) -> Any:
        try:
            return run()
        except FormatUnsupportedError:
            logger.info("%s: server rejects markdown comments; using HTML", self.client.name)
            self._markdown = False
            return run()


def comment_text(text: str, fmt: str) -> str:
    """A comment's readable text: markers dropped, markup stripped, Markdown escapes undone."""
    bare = _MARKERS.sub("", text)
    if fmt.lower() == "markdown":
        return _ESCAPED.sub(r"\1", to_text(bare, "markdown"))
    return to_text(bare, "html")


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
