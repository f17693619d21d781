"""A project's cycle is its schedule's period: a "mon,thu 09:00" project gets a digest message for Monday's run
and a new one for Thursday's, and a rerun on Thursday edits Thursday's; a "mon 09:00" project keeps one message
a week. In process on a controllable clock (time-machine), through the real ``serve()`` wiring, the real digest
cycle over the demo export and the fake Slack Web API, as ``test_scheduler`` does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import time_machine

from refinebot.config import load_config
from refinebot.serve import Server
from refinebot.slack.runs import digest_cycle
from rules.registry import default_registry
from tests.fakes.slack_server import FakeSlack, Message
from tests.scheduler.test_scheduler import CHANNEL, DUE, WAIT, record, slack, started, write_config

__all__ = ["slack"]  # the fixture, shared with test_scheduler

THURSDAY = datetime(2026, 12, 10, 8, 0, tzinfo=UTC)  # Thursday 09:00 in Berlin
NEXT_MONDAY = DUE + timedelta(days=7)


def _cycle(message: Message) -> str:
    assert message.metadata is not None
    return str(message.metadata["event_payload"]["cycle"])


def _rename_every_issue(folder: Path) -> None:
    """The team retitles the backlog, so the next run's agenda differs from the one posted."""
    path = folder / "backlog.json"
    export = json.loads(path.read_text(encoding="utf-8"))
    for issue in export["issues"]:
        issue["fields"]["summary"] += " (reworded)"
    path.write_text(json.dumps(export), encoding="utf-8")


def _rerun(server: Server, config: Path, now: datetime) -> str:
    """``refinebot digest --project SHOP`` at ``now``, on the server's store (what the report says of Slack)."""
    loaded = load_config(config, default_registry(), check_env=False)
    report = digest_cycle(loaded, server.store, default_registry()).run("SHOP", now)
    assert report.ok, report.error
    return report.digest


def test_a_mon_thu_schedule_posts_a_digest_per_run_and_a_rerun_edits_the_latest(
    tmp_path: Path, slack: tuple[FakeSlack, str]
) -> None:
    fake, base_url = slack
    config = write_config(tmp_path, base_url, schedule="mon,thu 09:00")
    with (
        time_machine.travel(DUE - timedelta(minutes=1), tick=False) as clock,
        started(config) as (server, jobs),
    ):
        clock.move_to(DUE)
        jobs.wakeup()
        assert jobs.wait_for_runs(1, WAIT)
        (monday,) = fake.in_channel(CHANNEL)
        assert _cycle(monday) == "2026-12-07T09:00+01:00"
        assert jobs.status()["SHOP"]["next_run"] == "2026-12-10T09:00:00+01:00"

        # Thursday's run is a cycle of its own: a new message, Monday's left as it was.
        clock.move_to(THURSDAY)
        jobs.wakeup()
        assert jobs.wait_for_runs(2, WAIT)
        monday_again, thursday = fake.in_channel(CHANNEL)
        assert monday_again.ts == monday.ts and monday_again.edits == 0
        assert _cycle(thursday) == "2026-12-10T09:00+01:00"
        assert "Thu 10 Dec 2026 09:00" in thursday.text  # the readable cycle, not the id
        assert jobs.status()["SHOP"]["last_cycle"] == "2026-12-10T09:00+01:00"
        assert fake.methods().count("chat.postMessage") == 2 and "chat.update" not in fake.methods()

        # A rerun later on Thursday (the backlog changed) edits Thursday's message in place.
        _rename_every_issue(tmp_path)
        clock.move_to(THURSDAY + timedelta(hours=2))
        said = _rerun(server, config, datetime.now(UTC))
        assert said.startswith("updated in C0SHOP"), said
        monday_last, thursday_last = fake.in_channel(CHANNEL)
        assert (monday_last.edits, thursday_last.edits) == (0, 1)
        assert thursday_last.ts == thursday.ts and "(reworded)" in json.dumps(thursday_last.blocks)
        assert fake.methods().count("chat.postMessage") == 2
        # Readiness is kept per run: one point for Monday's cycle, one for Thursday's.
        points = [p.cycle for p in server.store.readiness.history("SHOP")]
        assert points == ["2026-12-07T09:00+01:00", "2026-12-10T09:00+01:00"]
    stored = record(config, "SHOP")
    assert isinstance(stored, dict) and stored["cycle"] == "2026-12-10T09:00+01:00"


def test_a_weekly_schedule_keeps_one_message_a_week(tmp_path: Path, slack: tuple[FakeSlack, str]) -> None:
    fake, base_url = slack
    config = write_config(tmp_path, base_url, schedule="mon 09:00")
    with (
        time_machine.travel(DUE - timedelta(minutes=1), tick=False) as clock,
        started(config) as (server, jobs),
    ):
        clock.move_to(DUE)
        jobs.wakeup()
        assert jobs.wait_for_runs(1, WAIT)

        # Thursday is still Monday's cycle: the rerun edits Monday's message.
        _rename_every_issue(tmp_path)
        clock.move_to(THURSDAY)
        assert _rerun(server, config, datetime.now(UTC)).startswith("updated in C0SHOP")
        (monday,) = fake.in_channel(CHANNEL)
        assert monday.edits == 1 and _cycle(monday) == "2026-12-07T09:00+01:00"

        # Next Monday's run starts the next cycle: a new message.
        clock.move_to(NEXT_MONDAY)
        jobs.wakeup()
        assert jobs.wait_for_runs(2, WAIT)
        first, second = fake.in_channel(CHANNEL)
        assert first.ts == monday.ts and _cycle(second) == "2026-12-14T09:00+01:00"
    assert fake.methods().count("chat.postMessage") == 2
