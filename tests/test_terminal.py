"""Progress reports from connectors as the terminal shows them: bars on a TTY, a log line now and then otherwise."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console

from connectors.base import Progress
from refinebot.terminal import LOG_EVERY, TerminalProgress


def test_off_a_terminal_progress_is_an_occasional_log_line(caplog: pytest.LogCaptureFixture) -> None:
    progress = TerminalProgress(console=Console(file=io.StringIO(), force_terminal=False))
    with caplog.at_level(logging.INFO, logger="refinebot.terminal"):
        for page in range(1, 2 * LOG_EVERY + 1):
            progress(Progress("PAY: full sync", page * 100, 10_000))
        progress(Progress("PAY: full sync", 2_050, 10_000, finished=True))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "PAY: full sync: 1000 of 10000",
        "PAY: full sync: 2000 of 10000",
        "PAY: full sync: 2050 of 10000",
    ]


def test_on_a_terminal_progress_draws_a_bar_on_stderr_and_removes_it() -> None:
    screen = io.StringIO()
    with TerminalProgress(console=Console(file=screen, force_terminal=True, width=80)) as progress:
        progress(Progress("PAY: full sync", 500, 1000))
        progress(Progress("PAY: full sync", 1000, 1000, finished=True))
        progress(Progress("work items", 3, None))
    drawn = screen.getvalue()
    assert "PAY: full sync" in drawn
    assert progress.enabled
