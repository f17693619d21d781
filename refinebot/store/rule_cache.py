"""Backlog rules' state between runs (the duplicate index): a ``rules.base.RuleCache`` per project.

Values are pickled, then zlib-compressed; ``bytes`` values are kept as they are behind a marker (the
duplicate index is written as raw array buffers, which pickling and compressing only slowed: 8.5 s a
200k scan). Pickle is acceptable here because only refinebot writes the database it reads; a value
that no longer unpickles (a class changed between versions) is dropped and rebuilt, never a failed
run.
"""

from __future__ import annotations

import logging
import pickle
import zlib
from datetime import UTC, datetime

from sqlalchemy import delete, select

from refinebot.store.engine import Database
from refinebot.store.schema import rule_cache

logger = logging.getLogger(__name__)

# Before raw bytes. A zlib stream never starts so: its first byte names deflate in its low four bits
# (0x78 in practice), and "R" (0x52) does not.
RAW_MARKER = b"RBRAW1\x00"


class DatabaseRuleCache:
    """A ``RuleCache`` holding one project's values in the ``rule_cache`` table."""

    def __init__(self, database: Database, project: str) -> None:
        self._database = database
        self.project = project

    def after_fork(self) -> None:
        """In a forked child (``refinebot.rule_fork``): read through connections of its own."""
        self._database.after_fork()

    def get(self, key: str) -> object | None:
        """The value saved under ``key`` for this project, or None (also when it cannot be read back)."""
        query = select(rule_cache.c.value).where(
            rule_cache.c.project == self.project, rule_cache.c.key == key
        )
        with self._database.read() as connection:
            blob = connection.execute(query).scalar()
        if blob is None:
            return None
        blob = bytes(blob)  # PostgreSQL drivers may hand back a memoryview
        if blob.startswith(RAW_MARKER):
            return blob[len(RAW_MARKER) :]
        try:
            value: object = pickle.loads(zlib.decompress(blob))
        except Exception as exc:  # unpickling can raise anything a changed class raises
            logger.warning(
                "dropping unreadable rule cache %r of %s (%s); it is rebuilt",
                key,
                self.project,
                type(exc).__name__,
            )
            return None
        return value

    def put(self, key: str, value: object) -> None:
        """Save ``value`` under ``key`` for this project."""
        if isinstance(value, bytes):
            blob = RAW_MARKER + value
        else:
            blob = zlib.compress(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), 1)
        row = {
            "project": self.project,
            "key": key,
            "value": blob,
            "updated_at": datetime.now(UTC),
        }
        with self._database.begin() as connection:
            self._database.upsert(connection, rule_cache, row, ["project", "key"])

    def delete(self, key: str) -> None:
        """Forget the value under ``key`` for this project (nothing happens when there is none)."""
        query = delete(rule_cache).where(rule_cache.c.project == self.project, rule_cache.c.key == key)
        with self._database.begin() as connection:
            connection.execute(query)
