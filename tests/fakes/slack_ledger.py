"""In-memory digest ledger and digest lookup (what the store's ledger will answer), for Slack tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """One recorded digest message."""

    project: str
    cycle: str
    channel: str
    message_ts: str
    content_hash: str
    posted_at: datetime
    updated_at: datetime


@dataclass
class MemoryLedger:
    """``DigestLedger`` and ``DigestLookup`` in a dict; ``fail_saves`` simulates a crash before the commit."""

    entries: dict[tuple[str, str, str], DigestEntry] = field(default_factory=dict)
    fail_saves: bool = False

    def digest(self, project: str, cycle: str, channel: str) -> DigestEntry | None:
        return self.entries.get((project, cycle, channel))

    def save_digest(
        self, project: str, cycle: str, channel: str, message_ts: str, content_hash: str, now: datetime
    ) -> DigestEntry:
        if self.fail_saves:
            raise RuntimeError("process killed before the ledger commit")
        old = self.entries.get((project, cycle, channel))
        entry = DigestEntry(
            project, cycle, channel, message_ts, content_hash, old.posted_at if old else now, now
        )
        self.entries[(project, cycle, channel)] = entry
        return entry

    def digest_by_message(self, channel: str, message_ts: str) -> DigestEntry | None:
        return next(
            (e for e in self.entries.values() if e.channel == channel and e.message_ts == message_ts), None
        )
