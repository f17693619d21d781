"""Claims on a project's cycle, so that replicas sharing one database run each cycle once.

A claim is a row per (project, cycle) with an owner and a lease. Claiming takes a PostgreSQL advisory
lock for that (project, cycle) first (on SQLite the transaction's BEGIN IMMEDIATE is the lock), so two
replicas checking at the same moment cannot both see "free". A lease that ran out (its owner died) can
be taken over; a finished cycle is never claimed again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from refinebot.store.engine import Database, lock
from refinebot.store.schema import cycle_claims

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CycleClaim:
    """Who holds (or finished) one project's cycle, and until when."""

    project: str
    cycle: str
    owner: str
    claimed_at: datetime
    lease_until: datetime
    finished_at: datetime | None


class CycleClaims:
    """Claim, renew and finish cycles."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def claim(self, project: str, cycle: str, owner: str, lease_seconds: float, now: datetime) -> bool:
        """Take (or renew) ``owner``'s claim on the cycle for ``lease_seconds``; False when another owner's
        lease still runs or the cycle is finished."""
        lease_until = now + timedelta(seconds=lease_seconds)
        with self._database.begin() as connection:
            lock(connection, f"refinebot.cycle:{project}:{cycle}")
            row = connection.execute(
                select(cycle_claims).where(cycle_claims.c.project == project, cycle_claims.c.cycle == cycle)
            ).first()
            if row is None:
                connection.execute(
                    cycle_claims.insert(),
                    {
                        "project": project,
                        "cycle": cycle,
                        "owner": owner,
                        "claimed_at": now,
                        "lease_until": lease_until,
                        "finished_at": None,
                    },
                )
                return True
            if row.finished_at is not None:
                return False
            if row.owner != owner and row.lease_until > now:
                logger.info(
                    "cycle %s of %s is held by %s until %s", cycle, project, row.owner, row.lease_until
                )
                return False
            if row.owner != owner:
                logger.warning(
                    "taking over cycle %s of %s from %s (lease ran out)", cycle, project, row.owner
                )
            connection.execute(
                update(cycle_claims)
                .where(cycle_claims.c.project == project, cycle_claims.c.cycle == cycle)
                .values(
                    owner=owner,
                    claimed_at=now if row.owner != owner else row.claimed_at,
                    lease_until=lease_until,
                )
            )
            return True

    def finish(self, project: str, cycle: str, owner: str, now: datetime) -> bool:
        """Mark the cycle done by ``owner``; False when ``owner`` does not hold it."""
        with self._database.begin() as connection:
            result = connection.execute(
                update(cycle_claims)
                .where(
                    cycle_claims.c.project == project,
                    cycle_claims.c.cycle == cycle,
                    cycle_claims.c.owner == owner,
                    cycle_claims.c.finished_at.is_(None),
                )
                .values(finished_at=now)
            )
        return result.rowcount == 1

    def get(self, project: str, cycle: str) -> CycleClaim | None:
        """The claim on (project, cycle), or None when nobody claimed it."""
        query = select(cycle_claims).where(cycle_claims.c.project == project, cycle_claims.c.cycle == cycle)
        with self._database.read() as connection:
            row = connection.execute(query).first()
        return None if row is None else CycleClaim(**row._mapping)
