"""The test hook that kills the process at a named step, as a power cut would (crash-safety tests only).

Set ``REFINEBOT_TEST_CRASH_AFTER`` to a step name (``comment-post``, ``comment-edit``, ``digest-post``,
``chart-upload``) and the process dies right after that write, before anything is committed; a rerun must
still leave exactly one comment, digest or chart. Unset (always, outside tests), a fault point does nothing.
"""

from __future__ import annotations

import logging
import os
import signal

logger = logging.getLogger(__name__)

CRASH_ENV = "REFINEBOT_TEST_CRASH_AFTER"


def fault_point(step: str) -> None:
    """Die here, as a power cut would, when the test hook names ``step`` (no cleanup, no commit)."""
    if os.environ.get(CRASH_ENV) == step:
        logger.warning("test hook %s=%s: killing the process", CRASH_ENV, step)
        os.kill(os.getpid(), signal.SIGKILL)
