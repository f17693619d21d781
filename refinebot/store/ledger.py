"""The ledger of what refinebot wrote elsewhere: bot comments on tickets, Slack digests, Slack deliveries.

Writes to trackers and Slack are made idempotent with it: a comment or digest whose content hash has not
changed needs no request, and a Slack delivery retried with the same id is recognised and dropped.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from refinebot.store.engine import Database
from refinebot.store.schema import bot_comments, digests, slack_deliveries

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BotComment:
    """The bot's comment on one ticket, by marker: which comment, what it said, how far replies were read."""

    project: str
    issue: str
    marker: str
    comment_id: str
    content_hash: str
    edited_at: datetime
    replies_read_at: datetime | None = None  # pass to comments_since; None: read none yet


@dataclass(frozen=True, slots=True)
class Digest:
    """The Slack digest of one project's cycle in one channel."""

    project: str
    cycle: str
    channel: str
    message_ts: str
    content_hash: str
    posted_at: datetime
    updated_at: datetime


class Ledger:
    """Bot comments, digests and Slack deliveries seen."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def comment(self, project: str, issue: str, marker: str) -> BotComment | None:
        """The bot comment recorded for (project, issue, marker), or None."""
        with self._database.read() as connection:
            row = connection.execute(
                select(bot_comments).where(
                    bot_comments.c.project == project,
                    bot_comments.c.issue == issue,
                    bot_comments.c.marker == marker,
                )
            ).first()
        return None if row is None else BotComment(**row._mapping)

    def comments(self, project: str) -> list[BotComment]:
        """Every bot comment recorded for ``project``, by issue."""
        query = select(bot_comments).where(bot_comments.c.project == project)
        with self._database.read() as connection:
            rows = connection.execute(query.order_by(bot_comments.c.issue, bot_comments.c.marker))
            return [BotComment(**row._mapping) for row in rows]

    def save_comment(self, comment: BotComment) -> None:
        """Record (or replace) the bot comment for its (project, issue, marker)."""
        with self._database.begin() as connection:
            self._database.upsert(connection, bot_comments, asdict(comment), ["project", "issue", "marker"])

    def mark_replies_read(self, project: str, issue: str, marker: str, read_at: datetime) -> bool:
        """Move the replies cursor of a recorded comment; False when no such comment is recorded."""
        with self._database.begin() as connection:
            result = connection.execute(
                update(bot_comments)
                .where(
                    bot_comments.c.project == project,
                    bot_comments.c.issue == issue,
                    bot_comments.c.marker == marker,
                )
                .values(replies_read_at=read_at)
            )
        return result.rowcount == 1

    def digest(self, project: str, cycle: str, channel: str) -> Digest | None:
        """The digest posted for (project, cycle, channel), or None."""
        with self._database.read() as connection:
            row = connection.execute(
                select(digests).where(
                    digests.c.project == project, digests.c.cycle == cycle, digests.c.channel == channel
                )
            ).first()
        return None if row is None else Digest(**row._mapping)

    def digest_by_message(self, channel: str, message_ts: str) -> Digest | None:
        """The digest held by the message ``message_ts`` in ``channel`` (a button's message), or None.

        ``refinebot.slack.actions.DigestLookup``: which project and cycle a clicked message belongs to.
        """
        query = select(digests).where(digests.c.channel == channel, digests.c.message_ts == message_ts)
        with self._database.read() as connection:
            row = connection.execute(query.order_by(digests.c.updated_at.desc()).limit(1)).first()
        return None if row is None else Digest(**row._mapping)

    def save_digest(
        self, project: str, cycle: str, channel: str, message_ts: str, content_hash: str, now: datetime
    ) -> Digest:
        """Record the digest message for (project, cycle, channel): posted at ``now`` the first time, updated after."""
        values = {
            "project": project,
            "cycle": cycle,
            "channel": channel,
            "message_ts": message_ts,
            "content_hash": content_hash,
            "posted_at": now,
            "updated_at": now,
        }
        with self._database.begin() as connection:
            # posted_at is not in the update list: an edit keeps the time it was first posted.
            self._database.upsert(
                connection,
                digests,
                values,
                ["project", "cycle", "channel"],
                ["message_ts", "content_hash", "updated_at"],
            )
            row = connection.execute(
                select(digests).where(
                    digests.c.project == project, digests.c.cycle == cycle, digests.c.channel == channel
                )
            ).one()
        return Digest(**row._mapping)

    def seen_delivery(self, delivery_id: str, now: datetime | None = None) -> bool:
        """Record a Slack delivery; True when it was recorded before (a retry to drop), False the first time.

        Atomic across processes: the insert either wins or hits the unique key, never both.
        """
        with self._database.begin() as connection:
            try:
                # A savepoint: a duplicate fails this insert only, not a caller's enclosing transaction.
                with connection.begin_nested():
                    connection.execute(
                        slack_deliveries.insert(),
                        {"delivery_id": delivery_id, "received_at": now or datetime.now(UTC)},
                    )
            except IntegrityError:
                logger.debug("Slack delivery %s seen before: dropped", delivery_id)
                return True
        return False

    def forget_deliveries(self, before: datetime) -> int:
        """Drop deliveries received before ``before`` (Slack retries within minutes); how many went."""
        with self._database.begin() as connection:
            result = connection.execute(
                delete(slack_deliveries).where(slack_deliveries.c.received_at < before)
            )
        return result.rowcount
