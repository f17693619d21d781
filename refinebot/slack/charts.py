"""Upload the readiness trend chart into the digest's thread, once per (project, cycle, channel).

After the digest is posted or edited, ``ChartPoster.after_digest`` uploads the PNG with
``files_upload_v2`` (Slack's external upload: ``files.getUploadURLExternal``, the bytes to the upload
URL, ``files.completeUploadExternal`` with ``thread_ts`` = the digest's ts) and records it in the store's
``chart_uploads``. A rerun of the cycle finds the record and uploads nothing, whatever the edit changed.

Crash safety: a process killed after Slack shared the file and before the record committed would upload
the chart again on the rerun. So when there is no record and the digest message is not brand new
(edited, unchanged or recovered), the thread is read first (``conversations.replies``, the history
scope the digest already needs) for a file of this cycle's chart name; found, it is recorded and not
uploaded again. A freshly posted digest has an empty thread and skips the look. What is left: a file
uploaded but never shared (a kill between the upload and ``files.completeUploadExternal``) stays private
and invisible, and is uploaded anew.

A chart that fails (no ``files:write`` scope, say) is logged and leaves the digest as it is: it is the
digest's garnish, not a reason to fail the project; the next run tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from refinebot.agenda import Agenda
from refinebot.chart import MAX_POINTS, alt_text, readiness_png
from refinebot.cycle import DigestAction, DigestOutcome
from refinebot.faults import fault_point
from refinebot.store.charts import ChartUpload
from refinebot.store.readiness import ReadinessStore

logger = logging.getLogger(__name__)

REPLY_PAGES = 3  # 3 x 100 replies: a digest thread holds the chart and a few comments


@dataclass(frozen=True, slots=True)
class Chart:
    """A rendered chart and what it says in words."""

    png: bytes
    alt_text: str


ChartSource = Callable[[Agenda], Chart | None]  # drawn only when an upload is due


class ChartLedger(Protocol):
    """Which chart went into which digest thread (the store's ``ChartUploads``)."""

    def chart_upload(self, project: str, cycle: str, channel: str) -> ChartUpload | None:
        """The upload recorded for (project, cycle, channel), or None."""
        ...

    def save_chart_upload(self, upload: ChartUpload) -> None:
        """Record ``upload``."""
        ...


class ChartAction(StrEnum):
    """What ``after_digest`` did."""

    UPLOADED = "uploaded"
    ALREADY = "already uploaded"  # recorded for this digest: nothing sent
    RECOVERED = "recovered"  # found in the thread after a crash before the record: recorded, not re-sent
    SKIPPED = "skipped"  # no digest message (dry run) or no chart to draw
    FAILED = "failed"


def chart_filename(project: str, cycle: str) -> str:
    """The chart's file name in Slack, which also finds it again in the thread."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{project}-{cycle}")
    return f"refinebot-readiness-{safe}.png"


def store_chart_source(readiness: ReadinessStore) -> ChartSource:
    """Charts of the store's last 12 readiness records of the agenda's project (this cycle's included)."""

    def source(agenda: Agenda) -> Chart:
        points = readiness.history(agenda.project, MAX_POINTS)
        return Chart(readiness_png(agenda.project, points), alt_text(agenda.project, points))

    return source


def find_chart(client: WebClient, channel: str, thread_ts: str, filename: str) -> str | None:
    """The id of a file named ``filename`` shared in the thread of ``thread_ts``, or None."""
    cursor = None
    for _ in range(REPLY_PAGES):
        page = client.conversations_replies(channel=channel, ts=thread_ts, limit=100, cursor=cursor)
        for message in page.get("messages") or []:
            for shared in message.get("files") or []:
                if shared.get("name") == filename and shared.get("id"):
                    return str(shared["id"])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return None
    return None


class ChartPoster:
    """Uploads each cycle's chart under its digest, once."""

    def __init__(
        self,
        client: WebClient,
        ledger: ChartLedger,
        source: ChartSource,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._source = source
        self._now = now

    def after_digest(
        self, agenda: Agenda, outcome: DigestOutcome, wait: Callable[[str], None] = lambda _c: None
    ) -> ChartAction:
        """Make the thread of ``outcome``'s message hold this cycle's chart; ``wait`` paces the post."""
        if outcome.action is DigestAction.PLANNED or not outcome.message_ts:
            return ChartAction.SKIPPED
        try:
            return self._upload(agenda, outcome, wait)
        except (SlackApiError, SlackRequestError, OSError) as exc:
            detail = (
                exc.response.get("error", "unknown") if isinstance(exc, SlackApiError) else type(exc).__name__
            )
            logger.warning(
                "readiness chart of %s %s not uploaded to %s: %s (the digest stands; the next run retries)",
                agenda.project, agenda.cycle, outcome.channel, detail,
            )  # fmt: skip
            return ChartAction.FAILED

    def _upload(self, agenda: Agenda, outcome: DigestOutcome, wait: Callable[[str], None]) -> ChartAction:
        project, cycle, channel, ts = agenda.project, agenda.cycle, outcome.channel, outcome.message_ts
        recorded = self._ledger.chart_upload(project, cycle, channel)
        if recorded is not None and recorded.message_ts == ts:
            return ChartAction.ALREADY
        filename = chart_filename(project, cycle)

        def record(file_id: str) -> None:
            self._ledger.save_chart_upload(ChartUpload(project, cycle, channel, ts, file_id, self._now()))

        if outcome.action is not DigestAction.POSTED:
            found = find_chart(self._client, channel, ts, filename)
            if found is not None:
                record(found)
                logger.info(
                    "readiness chart of %s %s found in the thread (%s): recorded", project, cycle, found
                )
                return ChartAction.RECOVERED
        chart = self._source(agenda)
        if chart is None:
            return ChartAction.SKIPPED
        wait(channel)
        response = self._client.files_upload_v2(
            channel=channel,
            thread_ts=ts,
            content=chart.png,
            filename=filename,
            title=f"{project} readiness, last cycles",
            alt_txt=chart.alt_text[:1000],  # Slack's limit
        )
        fault_point("chart-upload")  # tests: die after Slack shared the chart, before the record
        file_id = str((response.get("file") or {}).get("id") or "")
        record(file_id)
        logger.info("readiness chart of %s %s uploaded to %s (file %s)", project, cycle, channel, file_id)
        return ChartAction.UPLOADED
