"""The test hooks that stop the process at a named step of a cycle: killed as a power cut would, or held at a
barrier until a test lets it go (crash-safety and replica tests only).

``REFINEBOT_TEST_CRASH_AFTER=<step>``: the process dies (SIGKILL: no cleanup, no commit, no ``finally``)
right after that step; a rerun must still leave exactly one comment per ticket and one digest per channel.

``REFINEBOT_TEST_HOLD_AT=<step>[,<step>...]`` with ``REFINEBOT_TEST_HOLD_DIR=<dir>``: at each named step
the process creates ``<dir>/<step>.<pid>.arrived`` and waits (at most ``HOLD_TIMEOUT_SECONDS``) for
``<dir>/<step>.go``, so a test can start several processes and let them race from the same point, or keep
the one that claimed a cycle inside it while the others try.

Unset (always, outside tests), a fault point does nothing. ``STEPS`` is every step the cycle passes; a
fault point with another name is a programming error, so a test parametrised over ``STEPS`` covers them all.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

logger = logging.getLogger(__name__)

CRASH_ENV = "REFINEBOT_TEST_CRASH_AFTER"
HOLD_ENV = "REFINEBOT_TEST_HOLD_AT"
HOLD_DIR_ENV = "REFINEBOT_TEST_HOLD_DIR"
HOLD_TIMEOUT_SECONDS = 60.0  # a test that never says go must not leave a process behind for ever
_HOLD_POLL_SECONDS = 0.01

# Every fault point, in the order a cycle passes them, and what has happened when it is reached.
STEPS: dict[str, str] = {
    "migrate": "the store is opened and about to take the migration lock (the schema may not exist yet)",
    "claimed": "the project's cycle is claimed; nothing is synced yet",
    "sync": "the tracker sync is done and its state committed",
    "reply-applied": "a ticket's new comments are applied (suppressions added or lifted) in the transaction "
    "that also records their read mark; none of it is committed yet",
    "store": "findings, issue snapshots and readiness are committed",
    "comment-post": "a ticket comment was POSTed; the ledger still says pending",
    "comment-edit": "a ticket comment was edited; the ledger still has the old content hash",
    "comment-ledger": "a posted or edited comment's ledger row is committed",
    "digest-post": "Slack accepted chat.postMessage; the digest ledger has no row yet",
    "digest-dm-post": "Slack accepted the DM copy's chat.postMessage (pm_slack_user); no ledger row yet",
    "digest-commit": "the digest's ledger row is committed",
    "chart-upload": "the readiness chart is shared in the digest's thread; its upload is not recorded yet",
}


def fault_point(step: str) -> None:
    """Die here as a power cut would, or wait at the barrier, when a test hook names ``step``."""
    if step not in STEPS:
        raise ValueError(f"unknown fault point {step!r} (add it to refinebot.faults.STEPS)")
    if os.environ.get(CRASH_ENV) == step:
        logger.warning("test hook %s=%s: killing the process", CRASH_ENV, step)
        os.kill(os.getpid(), signal.SIGKILL)
    held = os.environ.get(HOLD_ENV, "")
    if held and step in (name.strip() for name in held.split(",")):
        _hold(step)


def _hold(step: str) -> None:
    folder = Path(os.environ.get(HOLD_DIR_ENV) or ".")
    (folder / f"{step}.{os.getpid()}.arrived").touch()
    go = folder / f"{step}.go"
    deadline = time.monotonic() + HOLD_TIMEOUT_SECONDS
    while not go.exists():
        if time.monotonic() > deadline:
            logger.error("test hook %s=%s: nobody created %s; going on", HOLD_ENV, step, go)
            return
        time.sleep(_HOLD_POLL_SECONDS)
