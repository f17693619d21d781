"""What a project's cycle is: the period of its schedule (or the ISO week without one), named, bounded and labelled.

A project with a ``schedule`` has one cycle per scheduled due time: the cycle runs from the most recent due
time at or before now (in the project's zone) to the next one, and is named by that due time's local ISO
timestamp to the minute ("2026-12-07T09:00+01:00"), so a "mon,thu 09:30" project's Thursday run starts a
cycle (a new Slack message, new readiness point) of its own. A project without a ``schedule`` key keeps
the ISO week in its zone ("2026-W49"), as every project had before schedules existed; such ids stored by
an older release stay readable here (bounds, labels) whatever the project's schedule is now.

APScheduler's ``CronTrigger`` (the scheduler's own) computes the due times, imported only when one is
needed. No clock, store or network here: ``now`` always comes in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

WEEK_ID = re.compile(r"^(\d{4})-W(\d{2})$")
_STEP = timedelta(microseconds=1)
# How far back the last due time is looked for, window by window (a frequent cron is found in the first,
# "mon,thu" in the third, a monthly one in the fourth), before the ISO week is taken instead.
_LOOKBACK = (
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=8),
    timedelta(days=32),
    timedelta(days=367),
    timedelta(days=4 * 366),
)


@dataclass(frozen=True, slots=True)
class Period:
    """One cycle: its id and the half-open span [starts, ends) it covers, in the project's zone."""

    id: str
    starts: datetime
    ends: datetime


def trigger(cron: str, zone: ZoneInfo) -> CronTrigger:
    """The 5-field ``cron`` as a trigger firing in ``zone`` (what ``refinebot serve`` schedules)."""
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger.from_crontab(cron, timezone=zone)


def last_due(fires: CronTrigger, now: datetime, within: timedelta) -> datetime | None:
    """The trigger's last fire time in [now - within, now], or None."""
    fire = fires.get_next_fire_time(None, now - within)
    last = None
    while fire is not None and fire <= now:
        last = fire
        fire = fires.get_next_fire_time(fire, fire + _STEP)
    return last


def next_due(fires: CronTrigger, after: datetime) -> datetime | None:
    """The trigger's first fire time strictly after ``after``, or None (a cron that never fires again)."""
    result: datetime | None = fires.get_next_fire_time(after, after + _STEP)
    return result


def due_id(due: datetime, zone: ZoneInfo) -> str:
    """A due time's cycle id: its local ISO timestamp to the minute ("2026-12-07T09:00+01:00")."""
    return due.astimezone(zone).isoformat(timespec="minutes")


def week_period(now: datetime, zone: ZoneInfo) -> Period:
    """The ISO week ``now`` falls in, in ``zone`` (Sunday 23:30 in Berlin is still that week)."""
    year, week, _ = now.astimezone(zone).isocalendar()
    return _week(year, week, zone)


def _week(year: int, week: int, zone: ZoneInfo) -> Period:
    monday = datetime.combine(date.fromisocalendar(year, week, 1), time(0, 0), tzinfo=zone)
    ends = datetime.combine(monday.date() + timedelta(days=7), time(0, 0), tzinfo=zone)
    return Period(f"{year}-W{week:02d}", monday, ends)


def period_of(now: datetime, zone: ZoneInfo, cron: str | None) -> Period:
    """The cycle ``now`` falls in: the schedule period of ``cron`` in ``zone``, or the ISO week without one
    (or for a cron with no due time in the last four years)."""
    if cron is None:
        return week_period(now, zone)
    fires = trigger(cron, zone)
    for window in _LOOKBACK:
        starts = last_due(fires, now, window)
        if starts is not None:
            ends = next_due(fires, starts)
            return Period(due_id(starts, zone), starts, ends or starts + timedelta(days=7))
    return week_period(now, zone)


def period_named(cycle: str, zone: ZoneInfo, cron: str | None) -> Period:
    """The span of the cycle called ``cycle``: an ISO week id (also one an older release stored for a
    project that has a schedule now), or a due time's id, which ends at the schedule's next due time (a
    week later when the project has no schedule any more). ValueError for another name."""
    week = WEEK_ID.match(cycle)
    if week is not None:
        return _week(int(week.group(1)), int(week.group(2)), zone)
    starts = datetime.fromisoformat(cycle)
    if starts.tzinfo is None:
        raise ValueError(f"not a cycle id: {cycle!r}")
    ends = next_due(trigger(cron, zone), starts) if cron is not None else None
    return Period(cycle, starts, ends or starts + timedelta(days=7))


def cycle_label(cycle: str) -> str:
    """How people read a cycle id: a week id as it is ("2026-W49"), a due time's as "Mon 7 Dec 2026 09:00"."""
    if WEEK_ID.match(cycle):
        return cycle
    try:
        due = datetime.fromisoformat(cycle)
    except ValueError:
        return cycle
    return f"{due:%a} {due.day} {due:%b %Y %H:%M}"
