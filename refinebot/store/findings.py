"""The finding lifecycle: what each run found, since when, whether it is hidden, and when it went away.

A finding's identity is ``Finding.identity`` (project, issue, rule, subject). Recording a run's findings
upserts each one (first seen kept, last seen moved on), marks the open ones the run no longer produced as
resolved, and reopens a resolved one that comes back. Hidden findings are stored too, flagged suppressed,
so "what would be shown without suppressions" is never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, select, update

from refinebot.models import Finding, Severity
from refinebot.store.engine import Database
from refinebot.store.schema import findings
from refinebot.suppressions import Decision

logger = logging.getLogger(__name__)

Identity = tuple[str, str, str, str]  # project, issue, rule, subject: Finding.identity


@dataclass(frozen=True, slots=True)
class StoredFinding:
    """A finding as the store knows it: the finding, its verdict and its lifecycle."""

    finding: Finding
    suppressed: bool
    verdict: str  # a refinebot.suppressions.Verdict value
    suppression_id: int | None
    first_seen: datetime
    last_seen: datetime
    first_cycle: str
    last_cycle: str
    resolved_at: datetime | None

    @property
    def is_open(self) -> bool:
        """True while the latest run still produced it."""
        return self.resolved_at is None


@dataclass(frozen=True, slots=True)
class RecordedRun:
    """What one ``record`` changed, by identity (for composing comments and digests)."""

    opened: tuple[Identity, ...] = ()  # never seen before
    reopened: tuple[Identity, ...] = ()  # resolved before, back now
    resolved: tuple[Identity, ...] = ()  # open before, gone now
    still_open: tuple[Identity, ...] = ()


class FindingStore:
    """Findings per project with their lifecycle."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def record(
        self,
        project: str,
        cycle: str,
        found: Sequence[Finding],
        decisions: Sequence[Decision],
        now: datetime,
    ) -> RecordedRun:
        """Record one complete run of ``project``'s rules; ``decisions[i]`` is ``decide(found[i], ...)``.

        Every open finding of the project that is not in ``found`` is resolved at ``now``: pass the whole
        run, never a part of it.
        """
        if len(found) != len(decisions):
            raise ValueError(f"{len(found)} findings but {len(decisions)} decisions: pass one per finding")
        latest: dict[Identity, tuple[Finding, Decision]] = {}
        for finding, decision in zip(found, decisions, strict=True):
            if finding.project != project:
                raise ValueError(f"finding of project {finding.project!r} recorded under {project!r}")
            latest[finding.identity] = (finding, decision)  # a rule reporting twice: the last one counts

        with self._database.begin() as connection:
            known = {
                (row.project, row.issue, row.rule, row.subject): row
                for row in connection.execute(
                    select(findings.c.id, *_IDENTITY, findings.c.resolved_at, *_CONTENT).where(
                        findings.c.project == project
                    )
                )
            }
            inserts: list[dict[str, Any]] = []
            changes: list[dict[str, Any]] = []
            opened: list[Identity] = []
            reopened: list[Identity] = []
            still_open: list[Identity] = []
            for identity, (finding, decision) in latest.items():
                content = _content(finding, decision)
                existing = known.get(identity)
                if existing is None:
                    identity_values = dict(
                        zip(("project", "issue", "rule", "subject"), identity, strict=True)
                    )
                    inserts.append(
                        content
                        | identity_values
                        | {"first_seen": now, "first_cycle": cycle, "last_seen": now, "last_cycle": cycle}
                    )
                    opened.append(identity)
                    continue
                (reopened if existing.resolved_at is not None else still_open).append(identity)
                # Only rows whose content changed or that come back are written one by one; a weekly run
                # changes few, and moving every open row's last_seen is one statement below.
                if existing.resolved_at is not None or any(
                    getattr(existing, name) != value for name, value in content.items()
                ):
                    changes.append(
                        {f"new_{name}": value for name, value in content.items()} | {"row_id": existing.id}
                    )
            resolved = [
                identity
                for identity, row in known.items()
                if row.resolved_at is None and identity not in latest
            ]
            if inserts:
                connection.execute(findings.insert(), inserts)
            if changes:
                connection.execute(
                    update(findings)
                    .where(findings.c.id == bindparam("row_id"))
                    .values(
                        {column.name: bindparam(f"new_{column.name}") for column in _CONTENT}
                        | {"resolved_at": None}
                    ),
                    changes,
                )
            if resolved:
                connection.execute(
                    update(findings).where(findings.c.id == bindparam("row_id")).values(resolved_at=now),
                    [{"row_id": known[identity].id} for identity in resolved],
                )
            # Now the open rows are exactly this run's findings.
            connection.execute(
                update(findings)
                .where(findings.c.project == project, findings.c.resolved_at.is_(None))
                .values(last_seen=now, last_cycle=cycle)
            )
        logger.debug(
            "findings of %s in %s: %d new, %d back, %d resolved, %d still open",
            project,
            cycle,
            len(opened),
            len(reopened),
            len(resolved),
            len(still_open),
        )
        return RecordedRun(tuple(opened), tuple(reopened), tuple(resolved), tuple(still_open))

    def open(self, project: str, *, include_suppressed: bool = True) -> list[StoredFinding]:
        """The project's open findings (hidden ones too unless ``include_suppressed`` is false)."""
        query = select(findings).where(findings.c.project == project, findings.c.resolved_at.is_(None))
        if not include_suppressed:
            query = query.where(findings.c.suppressed.is_(False))
        return self._select(query)

    def of_issue(self, project: str, issue: str, *, include_resolved: bool = False) -> list[StoredFinding]:
        """The findings on one issue (open ones only unless ``include_resolved``)."""
        query = select(findings).where(findings.c.project == project, findings.c.issue == issue)
        if not include_resolved:
            query = query.where(findings.c.resolved_at.is_(None))
        return self._select(query)

    def _select(self, query: Any) -> list[StoredFinding]:
        ordered = query.order_by(findings.c.issue, findings.c.rule, findings.c.subject)
        with self._database.read() as connection:
            return [_stored(row) for row in connection.execute(ordered)]


_IDENTITY = (findings.c.project, findings.c.issue, findings.c.rule, findings.c.subject)
# What a run may change about a finding that is still the same finding.
_CONTENT = (
    findings.c.code,
    findings.c.severity,
    findings.c.message,
    findings.c.details,
    findings.c.suppressed,
    findings.c.verdict,
    findings.c.suppression_id,
)


def _content(finding: Finding, decision: Decision) -> dict[str, Any]:
    """The ``_CONTENT`` columns of ``finding`` as this run decided it."""
    return {
        "code": finding.code,
        "severity": finding.severity.value,
        "message": finding.message,
        # to_json's details: datetimes and enums made plain, so the column holds JSON only.
        "details": finding.to_json()["details"],
        "suppressed": not decision.shown,
        "verdict": decision.verdict.value,
        "suppression_id": decision.suppression.id if decision.suppression is not None else None,
    }


def _stored(row: Row[Any]) -> StoredFinding:
    details: Mapping[str, Any] = row.details
    return StoredFinding(
        finding=Finding(
            project=row.project,
            issue=row.issue,
            rule=row.rule,
            code=row.code,
            severity=Severity(row.severity),
            message=row.message,
            details=details,
            subject=row.subject,
        ),
        suppressed=row.suppressed,
        verdict=row.verdict,
        suppression_id=row.suppression_id,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        first_cycle=row.first_cycle,
        last_cycle=row.last_cycle,
        resolved_at=row.resolved_at,
    )
