"""The schedules of ``refinebot serve``: one APScheduler job per project that runs the same cycle as
``refinebot digest --project KEY`` at the times its ``schedule`` names, in the project's time zone.

Jobs: a ``CronTrigger`` from ``ProjectConfig.cron`` in the project's zone, ``coalesce=True`` (a backlog of
missed times runs once), ``max_instances=1`` and ``[scheduler] misfire_grace_minutes`` as the misfire
grace time. Jobs live in APScheduler's memory job store (never shared between processes); what was done
lives in the database, so it survives restarts and is seen by every replica:

- Each run's outcome is kept per project (``RUN_KEY`` in the store's key/value sync state): the time it
  was due (its *slot*), the cycle, ok or failed, the error, and which cycle was reported to the admin.
- Catch-up after a restart: a memory job store forgets the run it missed while the process was down, so
  ``start`` looks for the latest slot within the grace time and schedules it for now unless the store
  says it was done. Before any run the job checks the store again (a run recorded ok for that slot or
  later, or the cycle finished in the claims table at or after the slot, by another replica or a manual
  ``refinebot digest``): an already-done run is skipped with a log line. So a missed run is caught up
  once, never twice, and a run outside the grace time is not caught up at all (APScheduler's own misfire
  check says the same for a run delayed while serve was up).
- A failing project (bad token, tracker down) is logged, retried after ``retry_minutes`` while still
  within the grace time, and reported to ``[slack] admin_channel`` once per cycle (the reported cycle is
  saved before the message is sent: at most one report even if the process dies in between). Jobs run one
  at a time, and one project's failure never touches another's job.
- Stopping: jobs run on one daemon worker thread, so ``stop`` can wait a bounded time for the running
  cycle and then abandon it; that is as safe as a SIGKILL at that step, which the cycle is built for
  (pending comment rows are looked up before posting again, the digest is found by its metadata).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from refinebot.config import LoadedConfig
from refinebot.cycle import current_cycle, project_cycle, project_zone
from refinebot.digest import CycleReport
from refinebot.schedules import last_due, trigger
from refinebot.store import Store

logger = logging.getLogger(__name__)

RUN_KEY = "refinebot:schedule:{project}"
RETRY_SUFFIX = "#retry"
DEFAULT_STOP_WAIT = 8.0  # seconds a stop waits for the running cycle (docker stop sends SIGKILL after 10)

RunCycle = Callable[
    [LoadedConfig, str, datetime], CycleReport
]  # (config, project, now) -> the cycle's report


class Outcome(StrEnum):
    """How a scheduled run ended."""

    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A project's last scheduled run, as the store keeps it."""

    project: str
    slot: datetime  # when the run was due
    cycle: str
    outcome: Outcome
    finished_at: datetime
    error: str | None = None
    reported_cycle: str | None = None  # the last cycle whose failure went to the admin channel

    def to_json(self) -> dict[str, Any]:
        """The record as the store's JSON."""
        return {
            "slot": self.slot.isoformat(),
            "cycle": self.cycle,
            "outcome": self.outcome.value,
            "finished_at": self.finished_at.isoformat(),
            "error": self.error,
            "reported_cycle": self.reported_cycle,
        }

    @classmethod
    def from_json(cls, project: str, raw: Any) -> RunRecord | None:
        """The record stored for ``project``; None when absent or unreadable."""
        if not isinstance(raw, dict):
            return None
        try:
            return cls(
                project,
                datetime.fromisoformat(raw["slot"]),
                str(raw["cycle"]),
                Outcome(raw["outcome"]),
                datetime.fromisoformat(raw["finished_at"]),
                raw.get("error"),
                raw.get("reported_cycle"),
            )
        except (KeyError, TypeError, ValueError):
            logger.warning("ignoring an unreadable schedule record for %s", project)
            return None


class AdminNotifier(Protocol):
    """Tells the admins about refinebot's own problems."""

    def notify(self, text: str) -> None:
        """Deliver ``text``; raises when it could not."""
        ...


class SlackAdminNotifier:
    """Posts to ``[slack] admin_channel`` through the Slack Web API client."""

    def __init__(self, client: WebClient, channel: str) -> None:
        self._client = client
        self._channel = channel

    def notify(self, text: str) -> None:
        """One plain message in the admin channel."""
        self._client.chat_postMessage(channel=self._channel, text=text)


def trigger_for(loaded: LoadedConfig, project: str) -> CronTrigger:
    """The project's schedule as a trigger in its own time zone."""
    return trigger(loaded.config.projects[project].cron, project_zone(loaded.config, project))


class _DaemonExecutor(BaseExecutor):  # type: ignore[misc]
    """Runs jobs one at a time on a daemon thread, so a stop can give up on a running cycle.

    One at a time: the cycles share one store (SQLite has one writer) and one Slack pacer; a run waits
    its turn well inside the grace time. APScheduler's thread pool cannot abandon a job: its threads
    are joined at interpreter exit.
    """

    def __init__(self) -> None:
        super().__init__()
        self._queue: queue.Queue[tuple[Job, list[datetime]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self._thread = threading.Thread(target=self._work, name="refinebot-scheduler-worker", daemon=True)
        self._thread.start()

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        self._queue.put((job, run_times))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stopping.is_set():
                return  # queued runs are dropped: after a restart they are caught up within the grace time
            job, run_times = item
            try:
                events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
            except BaseException as exc:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, events)

    def shutdown(self, wait: bool = True) -> None:
        self._stopping.set()
        self._queue.put(None)
        if wait and self._thread is not None:
            self._thread.join()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the running job; True when the worker ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()


class CycleScheduler:
    """The projects' jobs over one store; ``run_cycle`` is the digest cycle (``refinebot.slack.runs``)."""

    def __init__(
        self,
        loaded: LoadedConfig,
        store: Store,
        run_cycle: RunCycle,
        *,
        notifier: AdminNotifier | None = None,
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self._loaded = loaded
        self._store = store
        self._run_cycle = run_cycle
        self._notifier = notifier
        self._redact = redact
        self._executor = _DaemonExecutor()
        self._scheduler = BackgroundScheduler(executors={"default": self._executor}, timezone=UTC)
        self._lock = threading.Lock()
        # Held while reload swaps jobs, so /healthz never sees the new schedule beside the old (or no) job.
        self._jobs_lock = threading.RLock()
        self._last: dict[str, RunRecord] = {}
        self._running: str | None = None
        self._finished = threading.Condition()
        self._runs = 0

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def loaded(self) -> LoadedConfig:
        """The configuration the jobs follow now."""
        with self._lock:
            return self._loaded

    @property
    def grace(self) -> timedelta:
        """How late a run may start (a catch-up included)."""
        return timedelta(minutes=self.loaded.config.scheduler.misfire_grace_minutes)

    def start(self) -> None:
        """Add every project's job (catching up a run missed within the grace time) and start."""
        now = datetime.now(UTC)
        for project in self.loaded.config.projects:
            record = self._record(project)
            if record is not None:
                self._last[project] = record
            self._add(project, now, catch_up=True)
        self._scheduler.start()
        logger.info("scheduler: started with %d project job(s)", len(self.loaded.config.projects))

    def stop(self, wait_seconds: float = DEFAULT_STOP_WAIT) -> bool:
        """Stop scheduling; wait up to ``wait_seconds`` for the running cycle. False when it was abandoned."""
        if not self._scheduler.running:
            return True
        running = self._running
        self._scheduler.shutdown(wait=False)
        if running is not None:
            logger.info(
                "scheduler: waiting up to %.0f s for project %s's running cycle", wait_seconds, running
            )
        if self._executor.join(wait_seconds):
            logger.info("scheduler: stopped")
            return True
        logger.warning(
            "scheduler: abandoning project %s's running cycle (safe: the next run finds what it posted)",
            self._running,
            extra={"project": self._running},
        )
        return False

    def reload(self, loaded: LoadedConfig) -> None:
        """Follow a new, already validated config: add, drop and reschedule jobs whose schedule changed."""
        with self._jobs_lock:
            with self._lock:
                old, self._loaded = self._loaded, loaded
            now = datetime.now(UTC)
            for project in old.config.projects:
                if project not in loaded.config.projects:
                    self._remove(project)
                    logger.info("scheduler: project %s removed", project, extra={"project": project})
            for project in loaded.config.projects:
                if project not in old.config.projects:
                    self._add(project, now, catch_up=False)
                    logger.info("scheduler: project %s added", project, extra={"project": project})
                elif _schedule_of(old, project) != _schedule_of(loaded, project):
                    self._remove(project)
                    self._add(project, now, catch_up=False)
                    logger.info(
                        "scheduler: project %s rescheduled: %s", project, _describe(loaded, project),
                        extra={"project": project},
                    )  # fmt: skip

    # --- what /healthz shows -----------------------------------------------------------------------

    def status(self) -> dict[str, dict[str, Any]]:
        """Per project: its schedule, next run, and last scheduled run (cycle, outcome, when, error)."""
        with self._jobs_lock:
            return self._status()

    def _status(self) -> dict[str, dict[str, Any]]:
        loaded = self.loaded
        result: dict[str, dict[str, Any]] = {}
        for project in sorted(loaded.config.projects):
            job = self._scheduler.get_job(project)
            retry = self._scheduler.get_job(project + RETRY_SUFFIX)
            # A job added before start has no next_run_time attribute yet (healthz may ask that early).
            times = [t for j in (job, retry) if (t := getattr(j, "next_run_time", None)) is not None]
            record = self._last.get(project)
            result[project] = {
                "schedule": loaded.config.projects[project].cron,
                "timezone": str(project_zone(loaded.config, project)),
                "next_run": min(times).isoformat() if times else None,
                "running": self._running == project,
                "last_cycle": record.cycle if record else None,
                "last_outcome": record.outcome.value if record else None,
                "last_due": record.slot.isoformat() if record else None,
                "last_finished": record.finished_at.isoformat() if record else None,
                "last_error": record.error if record else None,
            }
        return result

    def wakeup(self) -> None:
        """Look for due jobs now (after the clock moved; APScheduler otherwise sleeps until the next)."""
        self._scheduler.wakeup()

    def wait_for_runs(self, count: int, timeout: float) -> bool:
        """Block until ``count`` runs (done, failed or skipped) finished since start, or ``timeout`` s."""
        with self._finished:
            return self._finished.wait_for(lambda: self._runs >= count, timeout)

    @property
    def runs(self) -> int:
        """How many scheduled runs finished (done, failed or skipped) since start."""
        return self._runs

    # --- jobs --------------------------------------------------------------------------------------

    def _add(self, project: str, now: datetime, *, catch_up: bool) -> None:
        trigger = trigger_for(self.loaded, project)
        options: dict[str, Any] = {}
        slot = last_due(trigger, now, self.grace) if catch_up else None
        if slot is not None:
            done = self._done(project, slot)
            if done:
                logger.info("scheduler: project %s: the run due at %s is done already (%s)",
                            project, slot.isoformat(), done, extra={"project": project})  # fmt: skip
            else:
                logger.info("scheduler: project %s: catching up the run due at %s",
                            project, slot.isoformat(), extra={"project": project})  # fmt: skip
                options["next_run_time"] = slot
        self._scheduler.add_job(
            self._run, trigger, args=[project], id=project, name=f"digest {project}", replace_existing=True,
            coalesce=True, max_instances=1, misfire_grace_time=int(self.grace.total_seconds()), **options,
        )  # fmt: skip

    def _remove(self, project: str) -> None:
        for job_id in (project, project + RETRY_SUFFIX):
            if self._scheduler.get_job(job_id) is not None:
                self._scheduler.remove_job(job_id)

    def _run(self, project: str) -> None:
        """One scheduled run of ``project`` (APScheduler calls it on the worker thread)."""
        self._running = project
        try:
            self._run_once(project)
        except Exception:
            logger.exception("scheduler: project %s: the run could not be recorded", project,
                             extra={"project": project})  # fmt: skip
        finally:
            self._running = None
            with self._finished:
                self._runs += 1
                self._finished.notify_all()

    def _run_once(self, project: str) -> None:
        loaded = self.loaded
        if project not in loaded.config.projects:
            return  # removed by a reload after the run was queued
        now = datetime.now(UTC)
        slot = last_due(trigger_for(loaded, project), now, self.grace) or now
        done = self._done(project, slot)
        if done:
            logger.info("scheduler: project %s: the run due at %s is done already (%s); skipped",
                        project, slot.isoformat(), done, extra={"project": project})  # fmt: skip
            return
        logger.info("scheduler: project %s: digest due at %s starting", project, slot.isoformat(),
                    extra={"project": project})  # fmt: skip
        try:
            report = self._run_cycle(loaded, project, now)
            cycle, error, said = report.cycle, report.error, report.digest
            if report.skipped is not None:
                # Another replica holds the cycle. Nothing is recorded here: should that replica die before
                # it finishes, the retry runs the cycle; once it finished, the retry finds it done.
                logger.info("scheduler: project %s: %s", project, report.skipped,
                            extra={"project": project, "cycle": cycle})  # fmt: skip
                self._schedule_retry(project, slot, now)
                return
        except Exception as exc:  # a bug or the store failing: this project's run fails, the others go on
            logger.exception("scheduler: project %s: the cycle raised", project, extra={"project": project})
            cycle, error, said = (
                project_cycle(loaded.config, project, now),
                f"{type(exc).__name__}: {exc}",
                "",
            )
        previous = self._record(project)
        reported = previous.reported_cycle if previous is not None else None
        outcome = Outcome.OK if error is None else Outcome.FAILED
        error = self._redact(error) if error is not None else None
        record = RunRecord(project, slot, cycle, outcome, datetime.now(UTC), error, reported)
        if outcome is Outcome.OK:
            logger.info("scheduler: project %s: cycle %s done: %s", project, cycle, said,
                        extra={"project": project, "cycle": cycle})  # fmt: skip
            self._save(record)
            return
        logger.error("scheduler: project %s: cycle %s failed: %s", project, cycle, error,
                     extra={"project": project, "cycle": cycle})  # fmt: skip
        retry_at = self._schedule_retry(project, slot, now)
        if self._notifier is None or reported == cycle:
            self._save(record)
            if reported == cycle:
                logger.info("scheduler: project %s: cycle %s's failure was reported already", project, cycle,
                            extra={"project": project, "cycle": cycle})  # fmt: skip
            return
        # Saved before sending: a crash in between loses a report rather than sending it twice.
        self._save(replace(record, reported_cycle=cycle))
        self._report(project, cycle, error or "", retry_at)

    def _schedule_retry(self, project: str, slot: datetime, now: datetime) -> datetime | None:
        zone = project_zone(self.loaded.config, project)  # shown in the project's zone, like its job
        retry_at = (now + timedelta(minutes=self.loaded.config.scheduler.retry_minutes)).astimezone(zone)
        if retry_at > slot + self.grace:
            return None
        self._scheduler.add_job(
            self._run, DateTrigger(retry_at), args=[project], id=project + RETRY_SUFFIX,
            name=f"retry digest {project}", replace_existing=True, max_instances=1,
            misfire_grace_time=int(self.grace.total_seconds()),
        )  # fmt: skip
        logger.info("scheduler: project %s: retrying at %s", project, retry_at.isoformat(),
                    extra={"project": project})  # fmt: skip
        return retry_at

    def _report(self, project: str, cycle: str, error: str, retry_at: datetime | None) -> None:
        assert self._notifier is not None
        job = self._scheduler.get_job(project)
        nxt = retry_at or (job.next_run_time if job is not None else None)
        then = f" Next try: {nxt.isoformat(timespec='minutes')}." if nxt is not None else ""
        text = (
            f":warning: refinebot: the scheduled digest of {project} (cycle {cycle}) failed: {error}.{then} "
            "This is reported once per cycle; see the serve logs for each retry."
        )
        try:
            self._notifier.notify(self._redact(text))
        except SlackApiError as exc:
            reason = exc.response.get("error", "unknown") if exc.response is not None else "unknown"
            logger.error("scheduler: could not report to the admin channel: %s", reason)
        except Exception as exc:
            logger.error("scheduler: could not report to the admin channel: %s", type(exc).__name__)
        else:
            logger.info("scheduler: project %s: cycle %s's failure reported to the admin channel", project,
                        cycle, extra={"project": project, "cycle": cycle})  # fmt: skip

    # --- the store ---------------------------------------------------------------------------------

    def _record(self, project: str) -> RunRecord | None:
        return RunRecord.from_json(project, self._store.sync_state.load(RUN_KEY.format(project=project)))

    def _save(self, record: RunRecord) -> None:
        self._store.sync_state.save(RUN_KEY.format(project=record.project), record.to_json())
        self._last[record.project] = record

    def _done(self, project: str, slot: datetime) -> str | None:
        """Why the run due at ``slot`` needs no running (the store says it was done), or None."""
        record = self._record(project)
        if record is not None and record.outcome is Outcome.OK and record.slot >= slot:
            return f"cycle {record.cycle} ran at {record.finished_at.isoformat()}"
        cycle = current_cycle(self.loaded.config, project, slot, self._store.cycle_last_run)
        claim = self._store.cycles.get(project, cycle)
        if claim is not None and claim.finished_at is not None and claim.finished_at >= slot:
            return f"cycle {cycle} finished by {claim.owner} at {claim.finished_at.isoformat()}"
        return None


def _schedule_of(loaded: LoadedConfig, project: str) -> tuple[str, str]:
    return loaded.config.projects[project].cron, str(project_zone(loaded.config, project))


def _describe(loaded: LoadedConfig, project: str) -> str:
    cron, zone = _schedule_of(loaded, project)
    return f"{cron!r} in {zone}"
