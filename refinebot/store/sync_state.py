"""Connectors' sync state in the database: the ``SyncStateStore`` port, big collections kept one row per item.

A connector saves one JSON value per key (a Jira snapshot: cursors plus ``issues``, a list of 100,000 raw
issues; Azure DevOps: ``items``, a dict of raw work items). Rewriting that whole value every run was 37 %
of a 100k-issue scan's rule time (``python -m benchmarks.digest_requests``). So a value's large
collections of objects (``SPLIT_MIN`` or more) are stored item by item in ``sync_items``, keyed by a
content hash of the item's JSON, and the rest of the value (the *head*: cursors, ids, the hashes in
order) stays in ``sync_state`` as compressed JSON. A save writes only the items whose hash is new and
deletes only those no longer referenced, in one transaction with the head.

Working out which items are new costs no encoding for the items ``load`` handed out (or the last
``save`` took) and the connector passed back untouched: their hash is remembered by object identity.
That relies on the port's rule that a value handed to ``save`` or returned by ``load`` is not changed
in place afterwards (a connector builds a new dict for what it re-read; both connectors do). Items
are encoded with msgspec (several times faster than the standard ``json`` module, same JSON), and loads
run with the cyclic garbage collector paused (``collector_paused``).
"""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Connection, bindparam, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from refinebot.store.engine import Database
from refinebot.store.schema import sync_items, sync_state

logger = logging.getLogger(__name__)

# Level 1 is within a few per cent of level 6's size on vendor JSON at several times its speed.
COMPRESSION_LEVEL = 1
# Collections shorter than this stay inside the head: a row per item only pays off for big ones.
SPLIT_MIN = 64
PLAIN = 1  # sync_state.format: the whole value, zlib-compressed JSON
SPLIT = 2  # the head (zlib-compressed JSON) plus one sync_items row per item of its big collections
BATCH = 5_000  # rows per executemany: bounded memory and statement size on both engines

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def decode_json(blob: bytes) -> Any:
    """A head or plain value ``save`` stored (raises ``msgspec.DecodeError`` or ``zlib.error`` on damage)."""
    return _decode(zlib.decompress(blob))


def item_hash(encoded: bytes) -> str:
    """The content hash an item's row is stored under."""
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile (the state holds no cycles).

    Decoding 100,000 issues allocates millions of dicts and lists, and each allocation burst sets off
    a collection that walks every live object, the backlog already in memory included: pausing it makes
    the load about 3x faster (``benchmarks.digest_requests``). Reference counting still frees as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class UnreadableStateError(Exception):
    """A stored value that cannot be put back together (damaged or missing rows)."""


@dataclass(frozen=True, slots=True)
class _Split:
    """A value taken apart: the head, and every item of its big collections with its hash."""

    head: dict[str, Any]
    items: dict[str, object]  # hash -> its encoded JSON (bytes), or the item itself when not encoded
    remembered: dict[int, tuple[object, str]]  # id(item) -> (item, hash), for the next save


def _collections(value: Any) -> Iterator[tuple[str, list[Any] | dict[str, Any]]]:
    """The members of ``value`` worth a row per item: big lists or dicts whose items are all objects."""
    if not isinstance(value, dict):
        return
    for name, member in value.items():
        items = member if isinstance(member, list) else member.values() if isinstance(member, dict) else ()
        if len(items) >= SPLIT_MIN and all(isinstance(item, dict) for item in items):
            yield str(name), member


class DatabaseSyncStateStore:
    """A ``connectors.base.SyncStateStore`` backed by ``sync_state`` (one row per key) and ``sync_items``."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._lock = threading.Lock()
        self._known: dict[str, dict[int, tuple[object, str]]] = {}  # key -> id(item) -> (item, hash)

    def load(self, key: str) -> Any | None:
        """The value saved under ``key``; None when there is none or it cannot be put together (logged)."""
        with self._database.read() as connection, collector_paused():
            row = connection.execute(
                select(sync_state.c.value, sync_state.c.format).where(sync_state.c.key == key)
            ).one_or_none()
            if row is None:
                return None
            try:
                if row.format != SPLIT:
                    return decode_json(row.value)
                value, remembered = self._assemble(connection, key, decode_json(row.value))
            except (ValueError, TypeError, KeyError, AttributeError, zlib.error, UnreadableStateError):
                # An unreadable snapshot costs one full sync, not a failed project.
                logger.warning("ignoring unreadable sync state %r; the next sync starts over", key)
                return None
        with self._lock:
            self._known[key] = remembered
        return value

    def save(self, key: str, value: Any) -> None:
        """Keep ``value`` (JSON-able) under ``key``, replacing what was there; only changed items are written."""
        with self._lock:
            known = dict(self._known.get(key, {}))
        now = datetime.now(UTC)
        with collector_paused():
            split = self._split(value, known)
        with self._database.begin() as connection, collector_paused():
            if split is None:
                self._write_head(connection, key, _encode(value), PLAIN, now)
                connection.execute(delete(sync_items).where(sync_items.c.state_key == key))
            else:
                self._write_items(connection, key, split.items)
                self._write_head(connection, key, _encode(split.head), SPLIT, now)
        # Hashes are facts about content, true whether or not this transaction commits.
        with self._lock:
            self._known[key] = split.remembered if split is not None else {}

    def keys(self) -> list[str]:
        """The keys saved so far (for diagnostics and tests)."""
        with self._database.read() as connection:
            return list(connection.execute(select(sync_state.c.key).order_by(sync_state.c.key)).scalars())

    # --- taking apart and putting together ----------------------------------------------------------

    def _split(self, value: Any, known: Mapping[int, tuple[object, str]]) -> _Split | None:
        members = list(_collections(value))
        if not members:
            return None
        items: dict[str, object] = {}
        remembered: dict[int, tuple[object, str]] = {}

        def hash_of(item: object) -> str:
            seen = known.get(id(item))
            if seen is not None and seen[0] is item:
                digest = seen[1]
                items.setdefault(digest, item)  # encoded only if the database lacks it after all
            else:
                encoded = _encode(item)
                digest = item_hash(encoded)
                items[digest] = encoded
            remembered[id(item)] = (item, digest)
            return digest

        head = dict(value)
        layout: dict[str, Any] = {}
        for name, member in members:
            del head[name]
            if isinstance(member, list):
                layout[name] = {"hashes": [hash_of(item) for item in member]}
            else:
                layout[name] = {
                    "keys": [str(k) for k in member],
                    "hashes": [hash_of(item) for item in member.values()],
                }
        return _Split({"value": head, "split": layout}, items, remembered)

    def _assemble(
        self, connection: Connection, key: str, head: Any
    ) -> tuple[Any, dict[int, tuple[object, str]]]:
        query = select(sync_items.c.hash, sync_items.c.value).where(sync_items.c.state_key == key)
        # Decoded as they stream in (1,000 rows at a time), so the encoded blobs never all sit in memory.
        rows = connection.execution_options(yield_per=1_000).execute(query)
        decoded: dict[str, Any] = {digest: _decode(blob) for digest, blob in rows}
        value = dict(head["value"])
        remembered: dict[int, tuple[object, str]] = {}

        def item(digest: str) -> Any:
            found = decoded.get(digest)
            if found is None:
                raise UnreadableStateError(f"item {digest} of {key!r} is missing")
            if id(found) in remembered:  # an item repeated in the value gets a copy of its own
                return _decode(_encode(found))
            remembered[id(found)] = (found, digest)
            return found

        for name, layout in dict(head["split"]).items():
            hashes = list(layout["hashes"])
            if "keys" in layout:
                value[name] = dict(zip(layout["keys"], (item(h) for h in hashes), strict=True))
            else:
                value[name] = [item(h) for h in hashes]
        return value, remembered

    # --- writing ------------------------------------------------------------------------------------

    def _write_head(self, connection: Connection, key: str, text: bytes, fmt: int, now: datetime) -> None:
        row = {
            "key": key,
            "value": zlib.compress(text, COMPRESSION_LEVEL),
            "raw_bytes": len(text),
            "format": fmt,
            "updated_at": now,
        }
        self._database.upsert(connection, sync_state, row, ["key"])

    def _write_items(self, connection: Connection, key: str, items: Mapping[str, object]) -> None:
        """Make ``sync_items`` hold exactly ``items`` for ``key``: insert the new, delete the unreferenced."""
        stored = set(
            connection.execute(select(sync_items.c.hash).where(sync_items.c.state_key == key)).scalars()
        )
        gone = [{"k": key, "h": digest} for digest in stored.difference(items)]
        for start in range(0, len(gone), BATCH):
            connection.execute(
                delete(sync_items).where(
                    sync_items.c.state_key == bindparam("k"), sync_items.c.hash == bindparam("h")
                ),
                gone[start : start + BATCH],
            )
        new = []
        for digest, encoded in items.items():
            if digest in stored:
                continue
            blob = encoded if isinstance(encoded, bytes) else _encode(encoded)
            new.append({"state_key": key, "hash": digest, "value": blob})
        for start in range(0, len(new), BATCH):
            connection.execute(_insert_new(connection), new[start : start + BATCH])


def _insert_new(connection: Connection) -> Any:
    """INSERT that leaves an item another process stored meanwhile alone (same hash: same content)."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(sync_items).on_conflict_do_nothing()
    if connection.dialect.name == "sqlite":
        return sqlite.insert(sync_items).on_conflict_do_nothing()
    return insert(sync_items)  # pragma: no cover - only the two engines are supported


class ReadThroughSyncState:
    """A ``SyncStateStore`` that reads the database's and keeps what is saved in memory only.

    For commands that write nothing (``refinebot agenda``): the connector still syncs incrementally from
    the stored state, and its save lasts for the process.
    """

    def __init__(self, below: DatabaseSyncStateStore) -> None:
        self._below = below
        self._mine: dict[str, Any] = {}

    def load(self, key: str) -> Any | None:
        """This process's value, else the stored one."""
        return self._mine[key] if key in self._mine else self._below.load(key)

    def save(self, key: str, value: Any) -> None:
        """Keep ``value`` for this process only (not copied: the port's values are not changed in place)."""
        self._mine[key] = value
