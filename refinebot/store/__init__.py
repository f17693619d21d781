"""The store: refinebot's memory between runs, one ``Store`` over one database (SQLite or PostgreSQL).

Open it with ``Store.open(url)`` or ``Store.from_config(loaded)``; the schema is migrated on opening.
Each part is its own object (``store.findings``, ``store.suppressions``, ``store.ledger`` ...); every
method commits on its own, and ``with store.transaction():`` makes a group of calls (one project's
cycle step) commit together or not at all. Only JSON and bytes are stored, never SDK objects.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from refinebot.config import LoadedConfig
from refinebot.store.charts import ChartUpload, ChartUploads
from refinebot.store.cycles import CycleClaim, CycleClaims
from refinebot.store.engine import (
    Database,
    StoreError,
    create_store_engine,
    database_url_for,
    describe_error,
    parse_url,
    safe_url,
)
from refinebot.store.findings import FindingStore, Identity, RecordedRun, StoredFinding
from refinebot.store.issues import IssueSnapshots
from refinebot.store.ledger import BotComment, Digest, Ledger
from refinebot.store.migrate import upgrade
from refinebot.store.readiness import ReadinessRecord, ReadinessStore
from refinebot.store.rule_cache import DatabaseRuleCache
from refinebot.store.suppressions import SuppressionStore
from refinebot.store.sync_state import DatabaseSyncStateStore

__all__ = [
    "BotComment",
    "ChartUpload",
    "CycleClaim",
    "DatabaseRuleCache",
    "DatabaseSyncStateStore",
    "Digest",
    "Identity",
    "IssueSnapshots",
    "ReadinessRecord",
    "RecordedRun",
    "Store",
    "StoreError",
    "StoredFinding",
]

logger = logging.getLogger(__name__)


class Store:
    """Every part of the store over one engine."""

    def __init__(self, engine: Engine, *, migrate: bool = True) -> None:
        self.engine = engine
        self.url = safe_url(engine.url)  # safe to print: the password is hidden
        if migrate:
            upgrade(engine)
        else:
            self._check_reachable()
        self._database = Database(engine)
        self.sync_state = DatabaseSyncStateStore(self._database)
        self.issues = IssueSnapshots(self.sync_state)
        self.findings = FindingStore(self._database)
        self.suppressions = SuppressionStore(self._database)
        self.ledger = Ledger(self._database)
        self.readiness = ReadinessStore(self._database)
        self.cycles = CycleClaims(self._database)
        self.chart_uploads = ChartUploads(self._database)  # readiness charts in digest threads

    @classmethod
    def open(cls, url: URL | str, *, migrate: bool = True) -> Store:
        """The store at ``url`` (schema migrated unless ``migrate`` is false)."""
        engine = create_store_engine(parse_url(url))
        try:
            return cls(engine, migrate=migrate)
        except BaseException:
            engine.dispose()
            raise

    @classmethod
    def from_config(cls, loaded: LoadedConfig, *, migrate: bool = True) -> Store:
        """The store the config's ``database_url`` names (a relative SQLite path is beside the config)."""
        return cls.open(database_url_for(loaded), migrate=migrate)

    def rule_cache(self, project: str) -> DatabaseRuleCache:
        """The ``RuleCache`` of ``project`` (for ``RuleContext.cache``)."""
        return DatabaseRuleCache(self._database, project)

    def cycle_last_run(self, project: str, cycle: str) -> datetime | None:
        """When (project, cycle) last ran as far as the store knows (its readiness recorded, its claim
        taken), or None: how a cycle an older release named is recognised (``refinebot.cycle.current_cycle``)."""
        readiness = self.readiness.get(project, cycle)
        claim = self.cycles.get(project, cycle)
        seen = [readiness.recorded_at] if readiness is not None else []
        seen += [claim.claimed_at] if claim is not None else []
        return max(seen, default=None)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group store calls: all of them commit at the end of the block, or none if it raises."""
        with self._database.begin():
            yield

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_reachable(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot open the database at {self.url}: {describe_error(exc, self.engine.url)}"
            ) from None
