"""Suppressions people made (snooze, ignore, not a duplicate), kept with who, when, why and from where.

Rows map one to one onto ``refinebot.suppressions.Suppression``, the type ``decide`` reads. Lifting
keeps the row (``lifted`` set) for the record. A "not a duplicate" pair is stored once whichever way
round it was marked: while it is in force its sorted pair sits in a unique column, so marking B~A after
A~B (or two people at once) returns the suppression already there.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, select, update
from sqlalchemy.exc import IntegrityError

from refinebot.models import pair_subject
from refinebot.store.engine import Database
from refinebot.store.schema import suppressions
from refinebot.suppressions import Suppression, SuppressionKind, SuppressionSource

logger = logging.getLogger(__name__)


class SuppressionStore:
    """Add, list and lift suppressions."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def add(self, suppression: Suppression) -> Suppression:
        """Store ``suppression`` and return it with its id (an existing live pair is returned instead)."""
        row = _row(suppression)
        with self._database.begin() as connection:
            if row["active_pair"] is not None:
                existing = self._live_pair(connection, suppression.project, row["active_pair"])
                if existing is not None:
                    return existing
            try:
                # A savepoint, so a concurrent insert of the same pair fails this statement only and not
                # the caller's transaction (PostgreSQL aborts a transaction at its first error).
                with connection.begin_nested():
                    new_id = connection.execute(
                        suppressions.insert().returning(suppressions.c.id), row
                    ).scalar_one()
            except IntegrityError:
                existing = self._live_pair(connection, suppression.project, row["active_pair"])
                if existing is None:
                    raise
                return existing
        logger.info(
            "suppression %d: %s %s%s by %s via %s",
            new_id,
            suppression.kind.value,
            suppression.issue,
            f" ~ {suppression.other_issue}" if suppression.other_issue else "",
            suppression.by,
            suppression.source.value,
        )
        return replace(suppression, id=new_id)

    def list_suppressions(
        self, project: str | None = None, *, active_at: datetime | None = None
    ) -> list[Suppression]:
        """Suppressions of ``project`` (all projects when None), oldest first.

        With ``active_at``, only those in force then; without, every one ever made, lifted ones included
        (``decide`` wants the not-lifted ones, expired snoozes too, to say a snooze ended).
        """
        query = select(suppressions).order_by(suppressions.c.created, suppressions.c.id)
        if project is not None:
            query = query.where(suppressions.c.project == project)
        if active_at is not None:
            query = query.where(
                suppressions.c.lifted.is_(None) | (suppressions.c.lifted > active_at),
                suppressions.c.until.is_(None) | (suppressions.c.until > active_at),
            )
        with self._database.read() as connection:
            found = [_suppression(row._mapping) for row in connection.execute(query)]
        return [s for s in found if active_at is None or s.active(active_at)]

    def get(self, suppression_id: int) -> Suppression | None:
        """The suppression with ``suppression_id``, or None."""
        with self._database.read() as connection:
            row = connection.execute(select(suppressions).where(suppressions.c.id == suppression_id)).first()
        return None if row is None else _suppression(row._mapping)

    def lift(self, suppression_id: int, now: datetime) -> bool:
        """Stop ``suppression_id`` applying from ``now``; False when unknown or already lifted."""
        with self._database.begin() as connection:
            result = connection.execute(
                update(suppressions)
                .where(suppressions.c.id == suppression_id, suppressions.c.lifted.is_(None))
                .values(lifted=now, active_pair=None)
            )
        lifted = result.rowcount == 1
        if lifted:
            logger.info("suppression %d lifted", suppression_id)
        return lifted

    def _live_pair(self, connection: Connection, project: str, pair: str | None) -> Suppression | None:
        row = connection.execute(
            select(suppressions).where(suppressions.c.project == project, suppressions.c.active_pair == pair)
        ).first()
        return None if row is None else _suppression(row._mapping)


def _row(suppression: Suppression) -> dict[str, Any]:
    live_pair = suppression.kind is SuppressionKind.NOT_DUPLICATE and suppression.lifted is None
    return {
        "kind": suppression.kind.value,
        "project": suppression.project,
        "issue": suppression.issue,
        "rule": suppression.rule,
        "other_issue": suppression.other_issue,
        "until": suppression.until,
        "reason": suppression.reason,
        "created": suppression.created,
        "created_by": suppression.by,
        "source": suppression.source.value,
        "lifted": suppression.lifted,
        "active_pair": pair_subject(suppression.issue, suppression.other_issue or "") if live_pair else None,
    }


def _suppression(values: RowMapping) -> Suppression:
    return Suppression(
        kind=SuppressionKind(values["kind"]),
        project=values["project"],
        issue=values["issue"],
        created=values["created"],
        by=values["created_by"],
        source=SuppressionSource(values["source"]),
        rule=values["rule"],
        other_issue=values["other_issue"],
        until=values["until"],
        reason=values["reason"],
        lifted=values["lifted"],
        id=values["id"],
    )
