"""The store's tables (SQLAlchemy Core), the one definition both engines and the migrations follow.

``versions/`` creates exactly these (0001 the first release, each later revision one change); a test compares them with an upgraded database, so a
table changed here without a migration fails the suite. Times are stored in UTC and always come back
timezone-aware (SQLite keeps no zone of its own).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

# Named constraints, so a later migration can drop or alter them by name on both engines.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

KEY = 255  # issue keys, project keys, rule names, channels, ids: short, indexable on both engines


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC; naive input is refused rather than guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"the store needs timezone-aware datetimes, got {value!r}")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


sync_state = Table(
    "sync_state",
    metadata,
    Column("key", String(512), primary_key=True),
    Column("value", LargeBinary, nullable=False),  # zlib-compressed UTF-8 JSON (format 2: the head)
    Column("raw_bytes", Integer, nullable=False),  # size before compression, for diagnostics
    Column("updated_at", UtcDateTime, nullable=False),
    # 1: value is the whole JSON value; 2: its big collections are in sync_items (sync_state.py)
    Column("format", Integer, nullable=False, server_default="1"),
)

sync_items = Table(
    "sync_items",
    metadata,
    Column("state_key", String(512), primary_key=True),  # sync_state.key
    Column("hash", String(32), primary_key=True),  # blake2b-128 of the item's JSON
    Column("value", LargeBinary, nullable=False),  # the item's UTF-8 JSON (PostgreSQL compresses it itself)
)

findings = Table(
    "findings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(KEY), nullable=False),
    Column("issue", String(KEY), nullable=False),
    Column("rule", String(KEY), nullable=False),
    Column("subject", String(512), nullable=False),
    Column("code", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("details", JSON, nullable=False),
    Column("suppressed", Boolean, nullable=False),
    Column("verdict", String(32), nullable=False),  # suppressions.Verdict of the last run that saw it
    Column("suppression_id", Integer, nullable=True),  # the suppression behind the verdict, if any
    Column("first_seen", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),
    Column("first_cycle", String(KEY), nullable=False),
    Column("last_cycle", String(KEY), nullable=False),
    Column("resolved_at", UtcDateTime, nullable=True),  # None while open
    UniqueConstraint("project", "issue", "rule", "subject"),
    Index(None, "project", "resolved_at"),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("project", String(KEY), nullable=False),
    Column("issue", String(KEY), nullable=False),
    Column("rule", String(KEY), nullable=True),
    Column("other_issue", String(KEY), nullable=True),
    Column("until", UtcDateTime, nullable=True),
    Column("reason", Text, nullable=False),
    Column("created", UtcDateTime, nullable=False),
    Column("created_by", String(KEY), nullable=False),
    Column("source", String(32), nullable=False),
    Column("lifted", UtcDateTime, nullable=True),
    # "A|B" (sorted) while a not-duplicate pair is in force, NULL otherwise: the unique constraint then
    # keeps one live row per pair whichever way round it was marked (NULLs never collide on either engine).
    Column("active_pair", String(2 * KEY + 1), nullable=True),
    UniqueConstraint("project", "active_pair"),
    Index(None, "project", "issue"),
)

bot_comments = Table(
    "bot_comments",
    metadata,
    Column("project", String(KEY), primary_key=True),
    Column("issue", String(KEY), primary_key=True),
    Column("marker", String(KEY), primary_key=True),
    Column("comment_id", String(KEY), nullable=False),
    Column("content_hash", String(128), nullable=False),
    Column("edited_at", UtcDateTime, nullable=False),
    Column("replies_read_at", UtcDateTime, nullable=True),  # the cursor for comments_since
)

digests = Table(
    "digests",
    metadata,
    Column("project", String(KEY), primary_key=True),
    Column("cycle", String(KEY), primary_key=True),
    Column("channel", String(KEY), primary_key=True),
    Column("message_ts", String(64), nullable=False),
    Column("content_hash", String(128), nullable=False),
    Column("posted_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

slack_deliveries = Table(
    "slack_deliveries",
    metadata,
    Column("delivery_id", String(KEY), primary_key=True),
    Column("received_at", UtcDateTime, nullable=False, index=True),
)

readiness = Table(
    "readiness",
    metadata,
    Column("project", String(KEY), primary_key=True),
    Column("cycle", String(KEY), primary_key=True),
    Column("ready", Integer, nullable=False),  # ready items among the top N
    Column("top_n", Integer, nullable=False),
    Column("share", Float, nullable=False),
    Column("open_items", Integer, nullable=False),
    Column("ready_items", Integer, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)

rule_cache = Table(
    "rule_cache",
    metadata,
    Column("project", String(KEY), primary_key=True),
    Column("key", String(512), primary_key=True),
    Column("value", LargeBinary, nullable=False),  # zlib-compressed pickle
    Column("updated_at", UtcDateTime, nullable=False),
)

cycle_claims = Table(
    "cycle_claims",
    metadata,
    Column("project", String(KEY), primary_key=True),
    Column("cycle", String(KEY), primary_key=True),
    Column("owner", String(KEY), nullable=False),
    Column("claimed_at", UtcDateTime, nullable=False),
    Column("lease_until", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
)

# The readiness chart uploaded into a digest's thread, once per (project, cycle, channel); message_ts is
# the digest it went under (a digest deleted and posted anew gets its chart again).
chart_uploads = Table(
    "chart_uploads",
    metadata,
    Column("project", String(KEY), primary_key=True),
    Column("cycle", String(KEY), primary_key=True),
    Column("channel", String(KEY), primary_key=True),
    Column("message_ts", String(64), nullable=False),
    Column("file_id", String(KEY), nullable=False),
    Column("uploaded_at", UtcDateTime, nullable=False),
)
