"""Show connectors' progress reports on the terminal: a Rich bar on a TTY, else a log line now and then.

Connectors only call a ``ProgressCallback``; this is the one place that decides how progress looks,
so JSON on stdout stays clean (everything here goes to stderr).
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn
from rich.progress import Progress as RichProgress

from connectors.base import Progress

logger = logging.getLogger(__name__)

LOG_EVERY = 10  # reports between log lines when stderr is not a terminal


class TerminalProgress:
    """A ``ProgressCallback`` that draws one bar per label on a terminal, or logs every few reports."""

    def __init__(self, *, enabled: bool | None = None, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = self.console.is_terminal if enabled is None else enabled
        self._bar: RichProgress | None = None
        self._tasks: dict[str, Any] = {}
        self._reports: dict[str, int] = {}

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Remove the bars (they are transient)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            self._tasks.clear()

    def __call__(self, report: Progress) -> None:
        """Show one progress report."""
        if not self.enabled:
            count = self._reports.get(report.label, 0) + 1
            self._reports[report.label] = count
            if count % LOG_EVERY == 0 or report.finished:
                of = f" of {report.total}" if report.total is not None else ""
                logger.info("%s: %d%s", report.label, report.done, of)
            return
        if self._bar is None:
            self._bar = RichProgress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.start()
        task = self._tasks.get(report.label)
        if task is None:
            task = self._bar.add_task(report.label, total=report.total)
            self._tasks[report.label] = task
        self._bar.update(task, completed=report.done, total=report.total)
        if report.finished:
            self._bar.remove_task(task)
            del self._tasks[report.label]
