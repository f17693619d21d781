"""Readiness per project and cycle, so a digest can say "up from 4 of 10 last week" and a chart can trend."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select

from refinebot.store.engine import Database
from refinebot.store.schema import readiness


@dataclass(frozen=True, slots=True)
class ReadinessRecord:
    """One project's readiness in one cycle."""

    project: str
    cycle: str
    ready: int  # ready items among the top N
    top_n: int
    share: float  # ready / top N (0 for an empty backlog)
    open_items: int
    ready_items: int  # ready items in the whole backlog
    recorded_at: datetime


class ReadinessStore:
    """Readiness history per project."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def record(self, record: ReadinessRecord) -> None:
        """Keep ``record``, replacing the one of the same project and cycle (a rerun of the cycle)."""
        with self._database.begin() as connection:
            self._database.upsert(connection, readiness, asdict(record), ["project", "cycle"])

    def get(self, project: str, cycle: str) -> ReadinessRecord | None:
        """The readiness recorded for (project, cycle), or None."""
        query = select(readiness).where(readiness.c.project == project, readiness.c.cycle == cycle)
        with self._database.read() as connection:
            row = connection.execute(query).first()
        return None if row is None else ReadinessRecord(**row._mapping)

    def previous(self, project: str, cycle: str) -> ReadinessRecord | None:
        """The latest readiness of ``project`` recorded before ``cycle``'s (or the latest at all when
        ``cycle`` has none yet): what this cycle compares with. Order is by time recorded, not by the cycle's
        name, so any cycle naming works."""
        with self._database.read() as connection:
            this = connection.execute(
                select(readiness.c.recorded_at).where(
                    readiness.c.project == project, readiness.c.cycle == cycle
                )
            ).scalar()
            query = select(readiness).where(readiness.c.project == project, readiness.c.cycle != cycle)
            if this is not None:
                query = query.where(readiness.c.recorded_at < this)
            row = connection.execute(query.order_by(readiness.c.recorded_at.desc()).limit(1)).first()
        return None if row is None else ReadinessRecord(**row._mapping)

    def history(self, project: str, limit: int = 12) -> list[ReadinessRecord]:
        """The last ``limit`` cycles of ``project``, oldest first (the trend chart's points)."""
        query = (
            select(readiness)
            .where(readiness.c.project == project)
            .order_by(readiness.c.recorded_at.desc())
            .limit(limit)
        )
        with self._database.read() as connection:
            rows = list(connection.execute(query))
        return [ReadinessRecord(**row._mapping) for row in reversed(rows)]
