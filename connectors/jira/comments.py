"""The bot's comments on Jira issues: add, update in place, find by marker, and read what was said since.

A comment is tagged twice: a ``refinebot`` comment property (primary) and a footer
``refinebot-marker: <marker>`` in its body (the fallback when the property is gone). Only comments
*written by the bot's own account* (``/myself``) count as the bot's: a person quoting the marker is
never found, updated or overwritten. A POST is not idempotent, so a try whose outcome is unknown is
followed by a look for the marker before posting again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.base import CommentGoneError, ConnectorError, TicketComment
from connectors.field_values import parse_datetime
from connectors.jira.client import JiraClient, headers_of, path_segment, status_of
from connectors.jira.render import marker_text, to_adf, to_wiki
from connectors.mapping_errors import MappingError
from refinebot.document import Document
from refinebot.markup import adf_to_text, wiki_to_text

logger = logging.getLogger(__name__)

PROPERTY_KEY = "refinebot"
COMMENT_PAGE_SIZE = 100
_MARKER_OK = re.compile(r"^[A-Za-z0-9_.:/#@+=-]{1,200}$")
_MARKER_CHARS = r"[A-Za-z0-9_.:/#@+=-]"
# A backslash-escaped character in wiki markup (``\*``): literal text, hidden from the markup reader.
_WIKI_ESCAPE = re.compile(r"\\([^A-Za-z0-9\s])")
_PLACEHOLDER_BASE = 0xE000  # private-use code points stand in for escaped characters meanwhile


def check_marker(marker: str) -> str:
    """The marker if it is safe to embed in text and JSON; a clear error otherwise."""
    if not _MARKER_OK.match(marker):
        raise ValueError(
            f"comment marker {marker!r} must be 1-200 characters of letters, digits and _.:/#@+=-"
        )
    return marker


def _adf_strings(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        if node.get("type") == "text" and "text" in node:
            yield str(node["text"])
        for child in node.get("content") or []:
            yield from _adf_strings(child)


def body_has_marker(body: Any, marker: str) -> bool:
    """True when a comment body (ADF dict or wiki string) carries ``marker`` in its footer."""
    wanted = marker_text(marker)
    if isinstance(body, str):
        # The marker must end where the footer's does, so "X" never matches a comment tagged "X2".
        return re.search(re.escape(wanted) + f"(?!{_MARKER_CHARS})", body) is not None
    return any(text.strip() == wanted for text in _adf_strings(body))


def property_has_marker(comment: Mapping[str, Any], marker: str) -> bool:
    """True when the comment's ``refinebot`` property (``expand=properties``) names ``marker``."""
    for prop in comment.get("properties") or []:
        if isinstance(prop, Mapping) and prop.get("key") == PROPERTY_KEY:
            value = prop.get("value")
            if isinstance(value, Mapping) and value.get("marker") == marker:
                return True
    return False


def wiki_plain_text(body: str) -> str:
    """Plain text of a wiki body, escaped characters (``\\*``) kept as the characters they show."""
    hidden = _WIKI_ESCAPE.sub(lambda m: chr(_PLACEHOLDER_BASE + ord(m.group(1))), body)
    text = wiki_to_text(hidden)
    return re.sub("[\ue000-\ue07f]", lambda m: chr(ord(m.group(0)) - _PLACEHOLDER_BASE), text)


class Commenter:
    """Comments on one site's issues, as the bot's own account."""

    def __init__(
        self, client: JiraClient, on_write: Callable[[str, Mapping[str, Any]], None] | None = None
    ) -> None:
        self.client = client
        self._me: dict[str, str] | None = None  # the bot's own user: accountId (Cloud), key/name (DC)
        # Told of every comment Jira accepted from the bot (issue key, Jira's answer): its time is
        # the issue's new 'updated', which the next sync then knows for the bot's own.
        self.on_write = on_write

    def _wrote(self, issue_key: str, answer: Any) -> None:
        if self.on_write is not None and isinstance(answer, Mapping):
            self.on_write(issue_key, answer)

    def _payload(self, document: Document, marker: str) -> dict[str, Any]:
        rendered: Any = to_adf(document, marker) if self.client.is_cloud else to_wiki(document, marker)
        return {"body": rendered, "properties": [{"key": PROPERTY_KEY, "value": {"marker": marker, "v": 1}}]}

    def add(self, issue_key: str, document: Document, *, marker: str) -> str:
        """Post ``document`` on the issue tagged with ``marker``; return the comment id.

        When a try fails in a way that leaves its outcome unknown (dropped connection, timeout, any
        5xx including 503), the issue's comments are checked for the marker before posting again.
        Only a 429 is repeated without checking (by the retry runner).
        """
        check_marker(marker)
        payload = self._payload(document, marker)
        action = f"adding a comment to {issue_key}"
        runner, where = self.client.runner, self.client.where
        attempts = self.client.source.retry_attempts
        for attempt in range(1, attempts + 1):
            try:
                created = runner.call(
                    f"{where}: {action}",
                    lambda: self.client.send("POST", f"issue/{path_segment(issue_key)}/comment", payload),
                    idempotent=False,
                )
            except Exception as exc:
                failure = runner.classify(exc)
                if failure is None:
                    raise
                if not failure.outcome_unknown or attempt == attempts:
                    raise self.client.error(exc, action) from None
                # A 503 may name its wait; honour it before looking, as for any rate limit.
                asked = runner.policy.server_delay(headers_of(exc), self.client.clock())
                delay = asked if asked is not None else runner.policy.backoff(attempt)
                if delay > runner.policy.max_server_wait_seconds:
                    raise self.client.error(exc, action) from None
                status = status_of(exc)
                logger.warning(
                    "%s: %s: outcome unknown (%s); checking before posting again in %.2f s",
                    where,
                    action,
                    f"HTTP {status}" if status else type(exc).__name__,
                    delay,
                )
                runner.sleep(delay)
                found = self.find(issue_key, marker)
                if found is not None:
                    logger.info("%s: %s: the earlier try had succeeded (comment %s)", where, action, found)
                    return found
                continue
            if not isinstance(created, Mapping) or not created.get("id"):
                raise ConnectorError(f"{where}: {action}: Jira's answer has no comment id")
            self._wrote(issue_key, created)
            return str(created["id"])
        raise ConnectorError(f"{where}: {action}: gave up")  # pragma: no cover - the loop always returns

    def update(
        self, issue_key: str, comment_id: str, document: Document, *, marker: str, known_ours: bool = False
    ) -> None:
        """Replace the bot's own comment's body in place, notifying no watchers (a PUT is safe to repeat).

        ``known_ours`` skips reading the author first (the caller recorded the id from its own post or
        from ``find``); the PUT's answer is still checked. A deleted comment raises ``CommentGoneError``.
        """
        check_marker(marker)
        payload = self._payload(document, marker)
        action = f"updating comment {comment_id} on {issue_key}"
        path = f"issue/{path_segment(issue_key)}/comment/{path_segment(comment_id)}"
        if not known_ours:
            # An id from elsewhere (a stale store, a bug) must not let the bot rewrite a person's
            # comment, which an account allowed to "edit all comments" could do: check the author first.
            current = self.client.get(path, None, f"reading comment {comment_id}")
            if not isinstance(current, Mapping) or not self.by_bot(current):
                raise ConnectorError(
                    f"{self.client.where}: comment {comment_id} on {issue_key} was not written by the bot; "
                    "not updating it"
                )
        try:
            updated = self.client.runner.call(
                f"{self.client.where}: {action}",
                lambda: self.client.send("PUT", path, payload, {"notifyUsers": "false"}),
            )
        except Exception as exc:
            if self.client.runner.classify(exc) is None:
                raise
            if status_of(exc) == 404:
                raise CommentGoneError(
                    f"{self.client.where}: comment {comment_id} on {issue_key} is gone"
                ) from None
            raise self.client.error(exc, action) from None
        self._wrote(issue_key, updated)
        if known_ours and isinstance(updated, Mapping) and not self.by_bot(updated):
            # Never expected (ids in the ledger come from the bot's own posts); loud if a database
            # was pointed at another site.
            logger.error(
                "%s: comment %s on %s is not the bot's, yet was updated",
                self.client.where,
                comment_id,
                issue_key,
            )

    def myself(self) -> dict[str, str]:
        """Who the bot is, to tell its comments from people's (asked once per connector)."""
        if self._me is not None:
            return self._me
        me = self.client.get("myself", None, "reading the bot's own user")
        wanted = ("accountId",) if self.client.is_cloud else ("key", "name")
        found = {k: str(me[k]) for k in wanted if isinstance(me, Mapping) and me.get(k)}
        if not found:
            raise ConnectorError(f"{self.client.where}: the answer to /myself names no {' or '.join(wanted)}")
        self._me = found
        return found

    def by_bot(self, comment: Mapping[str, Any]) -> bool:
        """Whether ``comment`` was written by the bot's own account."""
        author = comment.get("author")
        if not isinstance(author, Mapping):
            return False
        # Cloud users have only an accountId; on Data Center the key survives a rename, the name may not.
        return any(author.get(k) is not None and str(author.get(k)) == v for k, v in self.myself().items())

    def _pages(self, issue_key: str, order_by: str) -> Iterator[Mapping[str, Any]]:
        """Every comment on the issue, in ``order_by`` order, page by page."""
        start = 0
        while True:
            page = self.client.get(
                f"issue/{path_segment(issue_key)}/comment",
                {
                    "startAt": start,
                    "maxResults": COMMENT_PAGE_SIZE,
                    "orderBy": order_by,
                    "expand": "properties",
                },
                f"listing comments of {issue_key}",
            )
            comments = page.get("comments") if isinstance(page, Mapping) else None
            if not isinstance(comments, list):
                raise ConnectorError(f"{self.client.where}: comments of {issue_key}: no 'comments' array")
            yield from (comment for comment in comments if isinstance(comment, Mapping))
            start += len(comments)
            total = page.get("total")
            if not comments or not isinstance(total, int) or start >= total:
                return

    def find(self, issue_key: str, marker: str) -> str | None:
        """The id of the bot's own comment tagged ``marker`` (by property, else by the text footer)."""
        check_marker(marker)
        for comment in self._pages(issue_key, "-created"):
            tagged = property_has_marker(comment, marker) or body_has_marker(comment.get("body"), marker)
            if tagged and self.by_bot(comment):
                return str(comment.get("id"))
        return None

    def since(self, issue_key: str, since: datetime | None) -> list[TicketComment]:
        """The issue's comments created or edited after ``since`` (all when None), oldest first."""
        out: list[TicketComment] = []
        for comment in self._pages(issue_key, "created"):
            typed = self._typed(issue_key, comment)
            if (
                since is None
                or typed.created > since
                or (typed.updated is not None and typed.updated > since)
            ):
                out.append(typed)
        return out

    def _typed(self, issue_key: str, comment: Mapping[str, Any]) -> TicketComment:
        author = comment.get("author") if isinstance(comment.get("author"), Mapping) else {}
        assert isinstance(author, Mapping)
        author_id = author.get("accountId") or author.get("key") or author.get("name") or ""
        record = f"{issue_key} comment {comment.get('id')}"
        try:
            created = _aware(parse_datetime(comment.get("created"), record, "created"))
            updated = _aware(parse_datetime(comment.get("updated"), record, "updated"))
        except MappingError as exc:
            raise ConnectorError(f"{self.client.where}: {exc.record}: {exc.reason}") from None
        if created is None:
            raise ConnectorError(f"{self.client.where}: {record} has no creation time")
        body = comment.get("body")
        text = (
            wiki_plain_text(body)
            if isinstance(body, str)
            else adf_to_text(body if isinstance(body, Mapping) else None)
        )
        return TicketComment(
            id=str(comment.get("id")),
            issue_key=issue_key,
            author=str(author.get("displayName") or author_id),
            author_id=str(author_id),
            created=created,
            updated=updated,
            text=text,
            by_bot=self.by_bot(comment),
        )


def _aware(value: datetime | None) -> datetime | None:
    """A time with its zone (Jira always sends one; a bare time is taken as UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
