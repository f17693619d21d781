"""Connectors' sync state in the database: the ``SyncStateStore`` port, values kept as compressed JSON.

A 10,000-issue Jira snapshot is tens of MB of JSON; zlib at level 1 shrinks vendor JSON about 8x at
hundreds of MB/s, so saving costs little more than encoding it (``python -m benchmarks.store_bench``).
"""

from __future__ import annotations

import json
import logging
import zlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from refinebot.store.engine import Database
from refinebot.store.schema import sync_state

logger = logging.getLogger(__name__)

# Level 1 is within a few per cent of level 6's size on vendor JSON at several times its speed.
COMPRESSION_LEVEL = 1


def decode_json(blob: bytes) -> Any:
    """A value ``save`` stored (raises ``ValueError`` or ``zlib.error`` on damage)."""
    return json.loads(zlib.decompress(blob).decode("utf-8"))


class DatabaseSyncStateStore:
    """A ``connectors.base.SyncStateStore`` backed by the ``sync_state`` table (one row per key)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def load(self, key: str) -> Any | None:
        """The value saved under ``key``; None when there is none or it cannot be decoded (logged)."""
        with self._database.read() as connection:
            blob = connection.execute(select(sync_state.c.value).where(sync_state.c.key == key)).scalar()
        if blob is None:
            return None
        try:
            return decode_json(blob)
        except (ValueError, zlib.error):
            # An unreadable snapshot costs one full sync, not a failed project.
            logger.warning("ignoring unreadable sync state %r; the next sync starts over", key)
            return None

    def save(self, key: str, value: Any) -> None:
        """Keep ``value`` (JSON-able) under ``key``, replacing what was there."""
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        row = {
            "key": key,
            "value": zlib.compress(text, COMPRESSION_LEVEL),
            "raw_bytes": len(text),
            "updated_at": datetime.now(UTC),
        }
        with self._database.begin() as connection:
            self._database.upsert(connection, sync_state, row, ["key"])

    def keys(self) -> list[str]:
        """The keys saved so far (for diagnostics and tests)."""
        with self._database.read() as connection:
            return list(connection.execute(select(sync_state.c.key).order_by(sync_state.c.key)).scalars())
