"""One project's digest cycle: what a cycle is called, and the ports the cycle posts its digest through.

A cycle is the project's schedule period, named by its due time ("2026-12-07T09:00+01:00"), or the ISO
week in the project's time zone ("2026-W49") for a project that sets no ``schedule``
(``refinebot.schedules`` says how). The protocols here are what the cycle needs from the outside: a
``DigestPoster`` (Slack, or a recorder in --dry-run) and a ``DigestLedger`` (the store's digests table)
that remembers which message holds a cycle's digest. The store satisfies ``DigestLedger`` without being imported (``Ledger.digest`` / ``Ledger.save_digest``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from refinebot.agenda import Agenda
from refinebot.config import RefinebotConfig
from refinebot.schedules import Period, period_named, period_of, week_period


def cycle_of(now: datetime, zone: ZoneInfo, cron: str | None = None) -> str:
    """The cycle ``now`` falls in: the period of ``cron`` (its last due time's id), or the ISO week in
    ``zone`` without one (Sunday 23:30 in Berlin is still that week)."""
    return period_of(now, zone, cron).id


def cycle_ends(cycle: str, zone: ZoneInfo, cron: str | None = None) -> datetime:
    """When ``cycle`` ends: the schedule's next due time, or for a week id ("2026-W49") the next ISO week's
    Monday 00:00 in ``zone``."""
    return period_named(cycle, zone, cron).ends


def project_zone(config: RefinebotConfig, project: str) -> ZoneInfo:
    """The project's own time zone, else the file's."""
    return ZoneInfo(config.projects[project].timezone or config.timezone)


def project_period(config: RefinebotConfig, project: str, now: datetime) -> Period:
    """``project``'s cycle at ``now``: its schedule's period, or the ISO week when it sets no schedule."""
    return period_of(now, project_zone(config, project), config.projects[project].cycle_cron)


def project_cycle(config: RefinebotConfig, project: str, now: datetime) -> str:
    """The id of ``project``'s cycle at ``now``."""
    return project_period(config, project, now).id


# When the store last saw (project, cycle) run, or None: ``Store.cycle_last_run``.
LastRun = Callable[[str, str], datetime | None]


def current_cycle(config: RefinebotConfig, project: str, now: datetime, last_run: LastRun | None) -> str:
    """``project``'s cycle at ``now``, as the store knows it: an ISO week an older release (or this project
    before it set a schedule) began in this schedule period keeps its id until the period ends.

    Before schedules named cycles, every project's cycle was its ISO week. A database from then may hold
    this period's digest, readiness and claim under "2026-W49"; going on under that id for the rest of the
    period edits that digest rather than posting a second one in the week of the upgrade.
    """
    period = project_period(config, project, now)
    if last_run is None or config.projects[project].cycle_cron is None:
        return period.id
    zone = project_zone(config, project)
    for week in dict.fromkeys(week_period(when, zone).id for when in (period.starts, now)):
        seen = last_run(project, week)
        if seen is not None and seen >= period.starts:
            return week
    return period.id


def project_cycle_ends(config: RefinebotConfig, project: str, cycle: str) -> datetime:
    """When ``project``'s cycle ``cycle`` ends (a week id an older release stored included)."""
    return cycle_ends(cycle, project_zone(config, project), config.projects[project].cycle_cron)


class DigestRecord(Protocol):
    """A digest message the ledger remembers (the store's ``Digest`` has these and more)."""

    @property
    def project(self) -> str: ...
    @property
    def cycle(self) -> str: ...
    @property
    def channel(self) -> str: ...  # the channel ID Slack answered with (chat.update needs the ID)
    @property
    def message_ts(self) -> str: ...
    @property
    def content_hash(self) -> str: ...


class DigestLedger(Protocol):
    """Which message holds (project, cycle, channel)'s digest, and what it said (a hash)."""

    def digest(self, project: str, cycle: str, channel: str) -> DigestRecord | None:
        """The digest recorded for (project, cycle, channel), or None."""
        ...

    def save_digest(
        self, project: str, cycle: str, channel: str, message_ts: str, content_hash: str, now: datetime
    ) -> Any:
        """Record (or replace) the digest of (project, cycle, channel)."""
        ...


class DigestAction(StrEnum):
    """What posting a digest did."""

    POSTED = "posted"  # a new message
    UPDATED = "updated"  # the cycle's message edited in place
    UNCHANGED = "unchanged"  # same content as recorded: no request
    RECOVERED = "recovered"  # found by its metadata after a crash before the ledger commit, then edited
    PLANNED = "planned"  # --dry-run: what would have been posted or edited (no request made)
    SKIPPED = "skipped"  # Slack posting is off for the workspace (app uninstalled, token revoked): no post


@dataclass(frozen=True, slots=True)
class DigestOutcome:
    """The result of posting one digest to one channel."""

    project: str
    cycle: str
    channel: str
    message_ts: str
    action: DigestAction
    content_hash: str
    note: str = ""  # why, for SKIPPED (the report line says it)


class DigestPostError(Exception):
    """Posting a digest failed (Slack refused it or could not be reached); the project's run fails."""


class DigestPoster(Protocol):
    """Posts (or edits) one project's digest in one channel for the agenda's cycle."""

    def post(self, agenda: Agenda, payload: dict[str, Any], channel: str) -> DigestOutcome:
        """Make ``channel`` show ``payload`` (the rendered ``agenda``) once for the agenda's cycle.

        Raises ``DigestPostError`` when it could not."""
        ...


@dataclass
class RecordingPoster:
    """A ``DigestPoster`` for ``--dry-run``: posts nothing and remembers what it was asked to post."""

    posts: list[tuple[Agenda, dict[str, Any], str]] = field(default_factory=list)

    def post(self, agenda: Agenda, payload: dict[str, Any], channel: str) -> DigestOutcome:
        """Record the post; an outcome with no message."""
        self.posts.append((agenda, payload, channel))
        return DigestOutcome(agenda.project, agenda.cycle, channel, "", DigestAction.PLANNED, "")
