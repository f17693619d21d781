"""What a cycle is: a schedule's period named by its due time, the ISO week for a project without a schedule,
and week ids an older release stored still read (bounds for "Remove from agenda", chart labels)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from refinebot.chart import short_labels, span
from refinebot.config import RefinebotConfig, load_config
from refinebot.cycle import project_cycle, project_cycle_ends, project_period
from refinebot.schedules import cycle_label, period_named, period_of
from rules.registry import default_registry

BERLIN = ZoneInfo("Europe/Berlin")
MON_THU = "30 9 * * mon,thu"


def _config(tmp_path: Path, schedule: str | None) -> RefinebotConfig:
    line = f'schedule = "{schedule}"\n' if schedule else ""
    path = tmp_path / "refinebot.toml"
    path.write_text(
        'timezone = "Europe/Berlin"\n[sources.demo]\nkind = "file"\npath = "backlog.json"\n'
        f'[projects.SHOP]\nsource = "demo"\n{line}',
        encoding="utf-8",
    )
    return load_config(path, default_registry(), check_env=False).config


@pytest.mark.parametrize(
    ("now", "cycle"),
    [
        (datetime(2026, 12, 7, 9, 30, tzinfo=BERLIN), "2026-12-07T09:30+01:00"),  # at the due time: its cycle
        (datetime(2026, 12, 10, 9, 29, tzinfo=BERLIN), "2026-12-07T09:30+01:00"),  # Thursday before 09:30
        (datetime(2026, 12, 10, 9, 30, tzinfo=BERLIN), "2026-12-10T09:30+01:00"),
        (datetime(2026, 12, 14, 8, 0, tzinfo=BERLIN), "2026-12-10T09:30+01:00"),  # Monday before its run
        (datetime(2026, 12, 10, 8, 30, tzinfo=UTC), "2026-12-10T09:30+01:00"),  # any zone in, Berlin's out
    ],
)
def test_a_cycle_runs_from_the_last_due_time_to_the_next(now: datetime, cycle: str) -> None:
    period = period_of(now, BERLIN, MON_THU)
    assert period.id == cycle
    assert period.starts <= now < period.ends
    assert period_of(period.ends, BERLIN, MON_THU).starts == period.ends  # periods tile, no gap


def test_ids_keep_the_offset_of_their_due_time_across_a_daylight_saving_change() -> None:
    period = period_of(datetime(2026, 10, 20, 12, 0, tzinfo=BERLIN), BERLIN, "0 9 * * mon")
    assert period.id == "2026-10-19T09:00+02:00"
    assert period.ends == datetime(2026, 10, 26, 9, 0, tzinfo=BERLIN)
    assert period_of(period.ends, BERLIN, "0 9 * * mon").id == "2026-10-26T09:00+01:00"


def test_a_frequent_and_a_rare_schedule_find_their_last_due_time() -> None:
    now = datetime(2026, 12, 10, 9, 44, 30, tzinfo=BERLIN)
    assert period_of(now, BERLIN, "*/15 * * * *").id == "2026-12-10T09:30+01:00"
    monthly = period_of(now, BERLIN, "0 9 1 * *")
    assert (monthly.id, monthly.ends) == ("2026-12-01T09:00+01:00", datetime(2027, 1, 1, 9, 0, tzinfo=BERLIN))


def test_a_project_without_a_schedule_keeps_the_iso_week_one_with_a_schedule_its_due_times(
    tmp_path: Path,
) -> None:
    thursday = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
    plain = _config(tmp_path, None)
    assert plain.projects["SHOP"].cron == "0 9 * * MON"  # serve still runs it on Mondays
    assert project_cycle(plain, "SHOP", thursday) == "2026-W50"
    assert project_period(plain, "SHOP", thursday).ends == datetime(2026, 12, 14, 0, 0, tzinfo=BERLIN)
    scheduled = _config(tmp_path, "mon,thu 09:30")
    assert project_cycle(scheduled, "SHOP", thursday) == "2026-12-10T09:30+01:00"
    # A schedule written out the same as the default is still a schedule the file chose.
    assert project_cycle(_config(tmp_path, "0 9 * * MON"), "SHOP", thursday) == "2026-12-07T09:00+01:00"


def test_a_cycle_ends_at_the_next_due_time_and_a_stored_week_id_still_reads(tmp_path: Path) -> None:
    scheduled = _config(tmp_path, "mon,thu 09:30")
    # "Remove from agenda" snoozes until the clicked message's cycle ends.
    assert project_cycle_ends(scheduled, "SHOP", "2026-12-07T09:30+01:00") == datetime(
        2026, 12, 10, 9, 30, tzinfo=BERLIN
    )
    # A message an older release posted (named by its week) still ends at that week's end.
    assert project_cycle_ends(scheduled, "SHOP", "2026-W49") == datetime(2026, 12, 7, 0, 0, tzinfo=BERLIN)
    # A due-time id of a project whose schedule was dropped since: a week on.
    plain = _config(tmp_path, None)
    assert project_cycle_ends(plain, "SHOP", "2026-12-07T09:30+01:00") == datetime(
        2026, 12, 14, 9, 30, tzinfo=BERLIN
    )
    with pytest.raises(ValueError, match="not a cycle id"):
        period_named("2026-12-07T09:30", BERLIN, MON_THU)  # no offset: not an id refinebot made


def test_labels_read_as_people_write_dates() -> None:
    assert cycle_label("2026-W49") == "2026-W49"
    assert cycle_label("2026-12-10T09:30+01:00") == "Thu 10 Dec 2026 09:30"
    assert cycle_label("something-else") == "something-else"
    mixed = ["2026-W48", "2026-W49", "2026-12-07T09:30+01:00", "2026-12-10T09:30+01:00"]
    assert short_labels(mixed) == ["W48", "W49", "7 Dec", "10 Dec"]  # the week of an upgrade, say
    assert span(mixed[2:]) == "7 Dec 2026 to 10 Dec 2026"
    same_day = ["2026-12-07T09:00+01:00", "2026-12-07T15:00+01:00"]
    assert short_labels(same_day) == ["7 Dec 09:00", "7 Dec 15:00"]
    assert span(same_day[:1]) == "7 Dec 2026"


def test_the_week_ids_of_the_last_release_are_unchanged() -> None:
    for day in range(14):
        now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC) + timedelta(days=day)
        year, week, _ = now.astimezone(BERLIN).isocalendar()
        assert period_of(now, BERLIN, None).id == f"{year}-W{week:02d}"
