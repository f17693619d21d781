"""Which readiness chart refinebot uploaded into which digest's thread, so a rerun of the cycle uploads none."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select

from refinebot.store.engine import Database
from refinebot.store.schema import chart_uploads


@dataclass(frozen=True, slots=True)
class ChartUpload:
    """The chart file shared under the digest ``message_ts`` of (project, cycle, channel)."""

    project: str
    cycle: str
    channel: str
    message_ts: str
    file_id: str
    uploaded_at: datetime


class ChartUploads:
    """The chart upload ledger (``refinebot.slack.charts.ChartLedger``)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def chart_upload(self, project: str, cycle: str, channel: str) -> ChartUpload | None:
        """The upload recorded for (project, cycle, channel), or None."""
        query = select(chart_uploads).where(
            chart_uploads.c.project == project,
            chart_uploads.c.cycle == cycle,
            chart_uploads.c.channel == channel,
        )
        with self._database.read() as connection:
            row = connection.execute(query).first()
        return None if row is None else ChartUpload(**row._mapping)

    def save_chart_upload(self, upload: ChartUpload) -> None:
        """Record ``upload``, replacing an older one of the same (project, cycle, channel)."""
        with self._database.begin() as connection:
            self._database.upsert(connection, chart_uploads, asdict(upload), ["project", "cycle", "channel"])
