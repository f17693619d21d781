"""The scheduler inside ``refinebot serve``, in process, on a controllable clock (time-machine): the real
``serve()`` wiring, the real digest cycle over the demo export, the fake Slack Web API and the fake Jira
over HTTP, SQLite. The clock is frozen and moved; ``wakeup()`` makes APScheduler look at the moved clock,
and ``wait_for_runs`` waits (bounded) for the runs to finish: no sleeps, no wall-clock assertions.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from refinebot.config import load_config
from refinebot.scheduler import RUN_KEY, CycleScheduler
from refinebot.serve import Server, serve
from refinebot.store import Store
from rules.registry import default_registry
from tests.cli_process import ROOT
from tests.fakes.jira_data import make_issue
from tests.fakes.jira_server import FakeJiraServer
from tests.fakes.slack_server import TOKEN, FakeSlack, running

DUE = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # Monday 09:00 in Berlin: "mon 09:00"
NEXT_WEEK = "2026-12-14T09:00:00+01:00"
CYCLE = "2026-12-07T09:00+01:00"  # a project with a schedule: the cycle is named by its due time
NEXT_CYCLE = "2026-12-14T09:00+01:00"
CHANNEL = "C0SHOP"
ADMIN = "C0PAY"  # a channel the fake Slack knows
JIRA_TOKEN_ENV = "REFINEBOT_TEST_SCHEDULER_JIRA_TOKEN"
WAIT = 60.0  # seconds a run may take on a loaded machine (a bound, not an expectation)


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeSlack, str]]:
    for name in list(os.environ):
        if name.startswith("REFINEBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "test-signing-secret")
    with running() as served:
        yield served


def write_config(
    tmp: Path,
    base_url: str,
    *,
    schedule: str = "mon 09:00",
    jira_url: str | None = None,
    jira_project: str = "BROKEN",
    jira_schedule: str | None = None,
    admin: bool = True,
    grace: int = 60,
) -> Path:
    """SHOP reads the demo export and posts to C0SHOP; with ``jira_url``, ``jira_project`` reads that Jira
    (BROKEN: one that refuses its token)."""
    shutil.copy(ROOT / "refinebot" / "demo" / "backlog.json", tmp / "backlog.json")
    admin_line = f'admin_channel = "{ADMIN}"\n' if admin else ""
    text = f"""
timezone = "Europe/Berlin"
database_url = "sqlite:///refinebot.db"

[slack]
mode = "http"
base_url = "{base_url}"
{admin_line}
[scheduler]
misfire_grace_minutes = {grace}
retry_minutes = 10

[sources.demo]
kind = "file"
path = "backlog.json"
url = "https://shop-demo.atlassian.net"

[projects.SHOP]
source = "demo"
slack_channel = "{CHANNEL}"
schedule = "{schedule}"
"""
    if jira_url:
        text += f"""
[sources.jira]
kind = "jira"
url = "{jira_url}"
email = "bot@example.com"
token_env = "{JIRA_TOKEN_ENV}"
retry_attempts = 2
backoff_base_seconds = 0.01

[projects.{jira_project}]
source = "jira"
schedule = "{jira_schedule or schedule}"
"""
    path = tmp / "refinebot.toml"
    path.write_text(text, encoding="utf-8")
    return path


@contextmanager
def started(config: Path) -> Iterator[tuple[Server, CycleScheduler]]:
    """``serve()`` as the command builds it, its scheduler started (the HTTP server is not needed)."""
    loaded = load_config(config, default_registry(), check_env=False)
    with serve(loaded, port=0, registry=default_registry()) as server:
        assert server.scheduler is not None
        server.scheduler.start()
        try:
            yield server, server.scheduler
        finally:
            assert server.scheduler.stop(WAIT)


def record(config: Path, project: str) -> object:
    with Store.from_config(load_config(config, default_registry(), check_env=False)) as store:
        return store.sync_state.load(RUN_KEY.format(project=project))


def test_a_job_due_now_runs_once(tmp_path: Path, slack: tuple[FakeSlack, str]) -> None:
    fake, base_url = slack
    config = write_config(tmp_path, base_url)
    with time_machine.travel(DUE - timedelta(minutes=1), tick=False) as clock, started(config) as (_, jobs):
        assert jobs.status()["SHOP"]["next_run"] == "2026-12-07T09:00:00+01:00"
        clock.move_to(DUE)
        jobs.wakeup()
        assert jobs.wait_for_runs(1, WAIT)
        status = jobs.status()["SHOP"]
        assert (status["last_cycle"], status["last_outcome"], status["next_run"]) == (
            CYCLE,
            "ok",
            NEXT_WEEK,
        )
        jobs.wakeup()  # the same moment again: nothing is due any more
        assert jobs.status()["SHOP"]["next_run"] == NEXT_WEEK
    assert jobs.runs == 1
    assert len(fake.in_channel(CHANNEL)) == 1
    assert fake.methods().count("chat.postMessage") == 1


def test_restart_after_a_missed_run_within_grace_catches_up_once(
    tmp_path: Path, slack: tuple[FakeSlack, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, base_url = slack
    config = write_config(tmp_path, base_url)
    caplog.set_level(logging.INFO, logger="refinebot")
    with time_machine.travel(DUE + timedelta(minutes=30), tick=False):  # serve was down at 09:00
        with started(config) as (_, jobs):
            assert jobs.wait_for_runs(1, WAIT)
            assert jobs.status()["SHOP"]["last_outcome"] == "ok"
        assert len(fake.in_channel(CHANNEL)) == 1
        with started(config) as (_, again):  # restarted again, still within the grace time
            assert again.status()["SHOP"]["next_run"] == NEXT_WEEK  # no catch-up queued
            assert again.status()["SHOP"]["last_cycle"] == CYCLE  # read back from the store
        assert again.runs == 0
    assert "the run due at 2026-12-07T09:00:00+01:00 is done already" in caplog.text
    assert len(fake.in_channel(CHANNEL)) == 1
    assert fake.methods().count("chat.postMessage") == 1


def test_a_missed_run_outside_the_grace_time_is_not_caught_up(
    tmp_path: Path, slack: tuple[FakeSlack, str]
) -> None:
    fake, base_url = slack
    config = write_config(tmp_path, base_url, grace=60)
    with (
        time_machine.travel(DUE + timedelta(minutes=90), tick=False) as clock,
        started(config) as (_, jobs),
    ):
        assert jobs.status()["SHOP"]["next_run"] == NEXT_WEEK
        clock.move_to(DUE + timedelta(days=7))
        jobs.wakeup()
        assert jobs.wait_for_runs(1, WAIT)
        assert jobs.status()["SHOP"]["last_cycle"] == NEXT_CYCLE
    assert jobs.runs == 1
    # Only next week's digest: the stale week-50 run never happened.
    assert len(fake.in_channel(CHANNEL)) == 1
    assert record(config, "SHOP") == {
        "slot": "2026-12-14T09:00:00+01:00",
        "cycle": NEXT_CYCLE,
        "outcome": "ok",
        "finished_at": "2026-12-14T08:00:00+00:00",
        "error": None,
        "reported_cycle": None,
    }


def test_a_cycle_another_process_finished_after_the_due_time_is_skipped(
    tmp_path: Path, slack: tuple[FakeSlack, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, base_url = slack
    config = write_config(tmp_path, base_url)
    caplog.set_level(logging.INFO, logger="refinebot")
    with (
        time_machine.travel(DUE - timedelta(minutes=1), tick=False) as clock,
        started(config) as (server, jobs),
    ):
        clock.move_to(DUE)
        # Another replica (or a manual `refinebot digest`) claims and finishes the cycle first.
        assert server.store.cycles.claim("SHOP", CYCLE, "replica-b", 600, DUE)
        assert server.store.cycles.finish("SHOP", CYCLE, "replica-b", DUE)
        jobs.wakeup()
        assert jobs.wait_for_runs(1, WAIT)
    assert "cycle 2026-12-07T09:00+01:00 finished by replica-b" in caplog.text and "skipped" in caplog.text
    assert fake.in_channel(CHANNEL) == []


def test_one_failing_project_does_not_stop_the_other_and_is_reported_once_per_cycle(
    tmp_path: Path,
    slack: tuple[FakeSlack, str],
    jira: FakeJiraServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, base_url = slack
    site = jira.new_site(cloud=True)
    monkeypatch.setenv(JIRA_TOKEN_ENV, "not-the-right-token")
    config = write_config(tmp_path, base_url, jira_url=site.url)
    with time_machine.travel(DUE - timedelta(minutes=1), tick=False) as clock:
        with started(config) as (_, jobs):
            clock.move_to(DUE)
            jobs.wakeup()
            assert jobs.wait_for_runs(2, WAIT)
            status = jobs.status()
            assert status["SHOP"]["last_outcome"] == "ok"
            assert status["BROKEN"]["last_outcome"] == "failed" and status["BROKEN"]["last_error"]
            # The failing project is tried again after retry_minutes, within the grace time.
            assert status["BROKEN"]["next_run"] == "2026-12-07T09:10:00+01:00"
            clock.move_to(DUE + timedelta(minutes=10))
            jobs.wakeup()
            assert jobs.wait_for_runs(3, WAIT)
            assert jobs.status()["BROKEN"]["last_outcome"] == "failed"
        clock.move_to(DUE + timedelta(minutes=15))
        with started(config) as (_, again):  # a restart within the grace time: BROKEN is caught up, SHOP not
            assert again.wait_for_runs(1, WAIT)
            assert again.status()["BROKEN"]["last_outcome"] == "failed"
        assert again.runs == 1
    assert len(fake.in_channel(CHANNEL)) == 1  # SHOP's digest, once
    reports = fake.in_channel(ADMIN)
    assert len(reports) == 1  # three failed tries in one cycle, one report
    assert "BROKEN" in reports[0].text and CYCLE in reports[0].text
    assert "not-the-right-token" not in reports[0].text
    stored = record(config, "BROKEN")
    assert isinstance(stored, dict) and stored["reported_cycle"] == CYCLE
    assert stored["outcome"] == "failed"


def test_reload_with_a_bad_config_keeps_the_jobs_and_a_good_one_reschedules(
    tmp_path: Path, slack: tuple[FakeSlack, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, base_url = slack
    config = write_config(tmp_path, base_url)
    with time_machine.travel(DUE - timedelta(hours=1), tick=False), started(config) as (server, jobs):
        before = jobs.status()
        write_config(tmp_path, base_url, schedule="someday 25:00")
        assert not server.reload()
        assert f"{config}: projects.SHOP.schedule:" in caplog.text
        assert jobs.status() == before
        assert server.loaded.config.projects["SHOP"].schedule == "mon 09:00"
        write_config(tmp_path, base_url, schedule="tue,thu 10:30")
        assert server.reload()
        status = jobs.status()["SHOP"]
        assert (status["schedule"], status["next_run"]) == ("30 10 * * tue,thu", "2026-12-08T10:30:00+01:00")
        assert server.loaded.config.projects["SHOP"].schedule == "tue,thu 10:30"
    assert jobs.runs == 0


def wait_until(check: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        threading.Event().wait(0.02)  # a poll interval, not a timing assumption


@pytest.mark.parametrize("wait", [WAIT, 0.0])
def test_stopping_lets_the_running_cycle_finish_or_abandons_it_after_the_wait(
    tmp_path: Path,
    slack: tuple[FakeSlack, str],
    jira: FakeJiraServer,
    monkeypatch: pytest.MonkeyPatch,
    wait: float,
) -> None:
    _, base_url = slack
    site = jira.new_site(cloud=True)
    make_issue(site, 1, project="SLOW")
    site.hang("GET", "/rest/api/3/search/jql", 1.0)  # the first search hangs, then its retry answers
    monkeypatch.setenv(JIRA_TOKEN_ENV, site.token)
    config = write_config(
        tmp_path, base_url, schedule="tue 09:00", jira_url=site.url, jira_project="SLOW",
        jira_schedule="mon 09:00",
    )  # fmt: skip
    loaded = load_config(config, default_registry(), check_env=False)
    with (
        time_machine.travel(DUE - timedelta(minutes=1), tick=False) as clock,
        serve(loaded, port=0, registry=default_registry()) as server,
    ):
        jobs = server.scheduler
        assert jobs is not None
        jobs.start()
        clock.move_to(DUE)
        jobs.wakeup()
        wait_until(lambda: bool(jobs.status()["SLOW"]["running"]), "the SLOW cycle to start")
        finished = jobs.stop(wait)
        if not finished:
            # Abandoned: serve exits now and the daemon worker dies with it. Here the test waits for it
            # before closing the store; the abandoned run was not recorded as done before it ended.
            assert jobs.status()["SLOW"]["last_outcome"] is None
            assert jobs.wait_for_runs(1, WAIT)
    assert finished is (wait > 0)
    assert jobs.status()["SLOW"]["last_outcome"] == "ok"
