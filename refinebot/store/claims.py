"""Claim a project's cycle in the database for as long as it runs, so replicas sharing one database (several
``refinebot serve`` or ``refinebot digest`` processes) never run the same project at once and never post twice.

Two parts, because each covers what the other cannot:

- A *mutex per project*, held by a live process only. PostgreSQL: a session advisory lock
  (``pg_try_advisory_lock``) on a connection kept for the cycle; SQLite: ``flock`` on
  ``<db>.<project>.lock`` beside the file. Both vanish with their holder (a killed process's socket or
  descriptor is closed by the kernel), so a rerun after a crash never waits. Taking it never waits either:
  a process that finds it held skips the project and says who holds it.
- A *claims row* per (project, cycle) in ``cycle_claims``: owner (``host/pid/token``), when, and a lease
  that ends when the owner lets go. It names the holder for the one that lost, and it covers the case the
  mutex cannot see: a holder that is alive but lost its database connection (and so its advisory lock).
  Its lease is respected until it runs out, unless the owner is provably gone (same host, process dead).

Claimers are serialised by a transaction-level lock (PostgreSQL) or the SQLite write lock, and the winner
commits its row before that lock is released, so a loser always reads who won. A finished cycle keeps its
``finished_at``; running it again (``refinebot digest`` twice in a week) is allowed and idempotent.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Row, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from refinebot.store.engine import (
    Database,
    FileLock,
    StoreError,
    advisory_key,
    describe_error,
    is_sqlite_file,
    lock,
    lock_file_for,
)
from refinebot.store.schema import cycle_claims

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=30)  # a weekly cycle of a 10k-issue backlog takes minutes, not half an hour
CLAIMS_LOCK = "refinebot.store.claims"  # serialises claimers for the moment of claiming
CLAIM_LOCK_WAIT_SECONDS = 30.0
DEAD_HOLDER_WAIT_SECONDS = 10.0  # how long a dead holder's session may take to close before we give up
_DEAD_HOLDER_POLL_SECONDS = 0.1

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock: leases are about processes, so a cycle run ``--now`` next week still uses it."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Owner:
    """One process: its host, pid and a random token (a restarted container is often pid 1 again)."""

    host: str
    pid: int
    token: str

    @staticmethod
    def this_process() -> Owner:
        """This process (the same token for all its claims; a forked child has its own pid)."""
        # The owner column holds 255 characters; a host name may have 253.
        return Owner(socket.gethostname()[:200], os.getpid(), _process_token())

    @staticmethod
    def parse(text_value: str) -> Owner | None:
        """The owner stored as ``host/pid/token``; None for anything else (another writer's owner name)."""
        host, _, rest = text_value.rpartition("/")
        host, _, pid = host.rpartition("/")
        if not host or not pid.isdigit() or not rest:
            return None
        return Owner(host, int(pid), rest)

    def __str__(self) -> str:
        return f"{self.host}/{self.pid}/{self.token}"

    @property
    def label(self) -> str:
        """How messages name it: ``host/pid``."""
        return f"{self.host}/{self.pid}"

    def gone(self, me: Owner) -> bool:
        """True when this owner provably no longer runs (only knowable on ``me``'s host)."""
        if self.host != me.host:
            return False
        if self.pid == me.pid:
            return self.token != me.token  # an earlier life of this pid (a restarted container)
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, another user's
        return False


@cache
def _process_token() -> str:
    return secrets.token_hex(4)


def holder_label(owner: str) -> str:
    """``host/pid`` of a stored owner (another writer's owner name as it is)."""
    parsed = Owner.parse(owner)
    return parsed.label if parsed is not None else owner


class _Mutex(Protocol):
    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...


class _AdvisoryMutex:
    """A PostgreSQL session advisory lock on ``connection`` (kept open for the cycle)."""

    def __init__(self, connection: Connection, name: str) -> None:
        self._connection = connection
        self._key = advisory_key(name)

    def try_acquire(self) -> bool:
        got = self._connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key})
        return bool(got.scalar())

    def release(self) -> None:
        unlock = text("SELECT pg_advisory_unlock(:key)")
        if self._connection.in_transaction():  # advisory locks ignore transactions: no commit needed
            self._connection.execute(unlock, {"key": self._key})
            return
        with self._connection.begin():
            self._connection.execute(unlock, {"key": self._key})


@dataclass
class Claim:
    """The outcome of claiming: ``won``, or who holds the project (``holder``, ``host/pid``)."""

    project: str
    cycle: str
    owner: Owner
    won: bool
    holder: str | None = None
    lease_until: datetime | None = None  # set when a lease (not the mutex) kept us out
    finished: bool = False

    @property
    def message(self) -> str:
        """What the process that lost says."""
        who = self.holder or "unknown"
        lease = f", lease until {self.lease_until:%Y-%m-%d %H:%M} UTC" if self.lease_until else ""
        return f"project {self.project}: cycle {self.cycle} is being run by another process ({who}{lease}); skipped"

    def finish(self) -> None:
        """The cycle ran to the end: ``finished_at`` is recorded when the claim is let go."""
        self.finished = True


@contextmanager
def claim_cycle(
    engine: Engine,
    project: str,
    cycle: str,
    *,
    owner: Owner | None = None,
    lease: timedelta = LEASE,
    clock: Clock = utc_now,
) -> Iterator[Claim]:
    """Claim ``project``'s ``cycle`` for the block; the claim says whether it was won (never waits for a holder).

    Let go at the end of the block: the lease ends (and ``finished_at`` is set if ``finish()`` was called),
    then the mutex is released. A process killed inside the block lets go by dying. ``StoreError`` when
    the database cannot be reached or stays locked.
    """
    me = owner or Owner.this_process()
    url = engine.url
    if url.get_backend_name() == "sqlite" and not is_sqlite_file(url):
        yield Claim(project, cycle, me, won=True)
        return
    try:
        connection = engine.connect()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot claim project {project}: {describe_error(exc, url)}") from None
    mutex: _Mutex | None = None
    try:
        deadline = time.monotonic() + DEAD_HOLDER_WAIT_SECONDS
        while True:
            try:
                claim, mutex, dead_holder = _claim(connection, project, cycle, me, lease, clock)
            except SQLAlchemyError as exc:
                raise StoreError(f"cannot claim project {project}: {describe_error(exc, url)}") from None
            if claim.won or not dead_holder or time.monotonic() > deadline:
                break
            # The holder is a killed process whose database session PostgreSQL has not closed yet
            # (a flock goes with the process; a server backend notices the dropped socket a moment later).
            time.sleep(_DEAD_HOLDER_POLL_SECONDS)
        if not claim.won:
            logger.info("%s", claim.message)
            yield claim
            return
        try:
            yield claim
        finally:  # also when the cycle raised: its lease ends now, unfinished, not in half an hour
            try:
                _let_go(connection, claim, clock())
            except SQLAlchemyError as exc:  # the lease simply runs out; the mutex goes below
                logger.warning("project %s: could not end the claim: %s", project, describe_error(exc, url))
    finally:
        _release(mutex, project)
        if connection.dialect.name == "postgresql":
            # Never back into the pool: closing the session is what guarantees its advisory lock is gone.
            connection.invalidate()
        connection.close()


def _release(mutex: _Mutex | None, project: str) -> None:
    if mutex is None:
        return
    try:
        mutex.release()
    except Exception:  # the connection is gone, and its advisory lock with it
        logger.warning("project %s: the claim's lock was already gone", project, exc_info=True)


def _mutex_for(connection: Connection, project: str) -> _Mutex:
    """A SQLite file's ``flock`` beside it, else (PostgreSQL: the store supports no third) an advisory lock."""
    path = lock_file_for(connection.engine.url, project)
    if path is not None:
        return FileLock(path)
    return _AdvisoryMutex(connection, f"refinebot.cycle:{project}")


def _claim(
    connection: Connection, project: str, cycle: str, me: Owner, lease: timedelta, clock: Clock
) -> tuple[Claim, _Mutex | None, bool]:
    """Take the mutex and write the row, or find out who holds the project; the flag is true when the
    mutex is held although every claim on record is a dead process's (its session is still closing)."""
    mutex = _mutex_for(connection, project)
    acquired = False
    try:
        with connection.begin():
            lock(connection, CLAIMS_LOCK, wait_seconds=CLAIM_LOCK_WAIT_SECONDS)
            now = clock()
            others = _other_claims(connection, project, now)
            if not mutex.try_acquire():
                alive = [row for row in others if _alive(row, me, holding=False)]
                row = alive[0] if alive else (others[0] if others else None)
                lost = Claim(project, cycle, me, won=False, holder=_label(row))
                return lost, None, bool(others) and not alive
            acquired = True
            alive = [row for row in others if _alive(row, me, holding=True)]
            if alive:
                # The mutex was free yet a live owner's lease runs: it lost its connection (and so its
                # advisory lock) but may still be posting. Its lease is respected until it runs out.
                acquired = False
                mutex.release()
                row = alive[0]
                return Claim(project, cycle, me, False, _label(row), row.lease_until), None, False
            for row in others:
                if Owner.parse(row.owner) != me:
                    logger.warning(
                        "project %s: taking over cycle %s from %s (that process is gone)",
                        project,
                        row.cycle,
                        holder_label(row.owner),
                    )
            Database(connection.engine).upsert(
                connection,
                cycle_claims,
                {
                    "project": project,
                    "cycle": cycle,
                    "owner": str(me),
                    "claimed_at": now,
                    "lease_until": now + lease,
                    "finished_at": None,
                },
                keys=("project", "cycle"),
                update=("owner", "claimed_at", "lease_until"),  # a finished cycle stays finished
            )
    except BaseException:
        if acquired:
            _release(mutex, project)
        raise
    logger.debug("project %s: cycle %s claimed by %s", project, cycle, me.label)
    return Claim(project, cycle, me, won=True), mutex, False


def _other_claims(connection: Connection, project: str, now: datetime) -> list[Row[Any]]:
    """Claims on ``project`` whose lease still runs, the newest first."""
    query = (
        select(cycle_claims)
        .where(cycle_claims.c.project == project, cycle_claims.c.lease_until > now)
        .order_by(cycle_claims.c.claimed_at.desc())
    )
    return list(connection.execute(query).all())


def _alive(row: Row[Any], me: Owner, *, holding: bool) -> bool:
    """Whether the claim's owner may still be running the project.

    Another writer's owner name cannot be judged: alive. Our own claim: alive while another claim of
    ours holds the mutex, stale once we hold it (an earlier claim whose ending failed to commit).
    """
    holder = Owner.parse(row.owner)
    if holder is None:
        return True
    if holder == me:
        return not holding
    return not holder.gone(me)


def _label(row: Row[Any] | None) -> str | None:
    return holder_label(str(row.owner)) if row is not None else None


def _let_go(connection: Connection, claim: Claim, now: datetime) -> None:
    values: dict[str, datetime] = {"lease_until": now}
    if claim.finished:
        values["finished_at"] = now
    with connection.begin():
        connection.execute(
            update(cycle_claims)
            .where(
                cycle_claims.c.project == claim.project,
                cycle_claims.c.cycle == claim.cycle,
                cycle_claims.c.owner == str(claim.owner),
            )
            .values(**values)
        )
