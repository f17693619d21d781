"""Two ``refinebot serve`` processes on one PostgreSQL database, both with SHOP's schedule due now: exactly one
digest in the channel and one bot comment per flagged ticket, the replica that lost the claim says so and
schedules a retry instead of recording the run, and both stop with exit 0 on SIGTERM.

The race is made certain, not hoped for: the winner is held at the ``claimed`` fault point (it holds the
cycle) until the loser has logged that another process runs it; then the winner is let go.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from refinebot.faults import HOLD_DIR_ENV, HOLD_ENV
from tests.fakes.jira_server import FakeJiraServer
from tests.fakes.slack_server import running
from tests.replicas.scenario import FLAGGED, Shop
from tests.scheduler.test_serve_schedules import DEADLINE, Serving
from tests.store.conftest import Postgres

SIGNING_ENV = "REFINEBOT_TEST_SIGNING_SECRET"


def _serve_config(shop: Shop, schedule: str) -> None:
    """SHOP's digest config, served over HTTP on a free port with ``schedule``."""
    text = shop.config.read_text(encoding="utf-8")
    text = text.replace(
        "[slack]\n",
        f'[slack]\nmode = "http"\nhost = "127.0.0.1"\nsigning_secret_env = "{SIGNING_ENV}"\n',
        1,
    )
    text = text.replace("[projects.SHOP]\n", f'[projects.SHOP]\nschedule = "{schedule}"\n', 1)
    shop.config.write_text(text, encoding="utf-8")


def _wait_for_holder(folder: Path) -> Path:
    """The ``claimed`` hold's arrival file (the replica that won the claim writes it)."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        arrived = sorted(folder.glob("claimed.*.arrived"))
        if arrived:
            return arrived[0]
        threading.Event().wait(0.05)  # a poll interval, not a timing assumption
    pytest.fail("no replica claimed the cycle")


def test_two_serve_replicas_with_a_schedule_due_now_post_one_digest(
    jira: FakeJiraServer, postgres: Postgres, tmp_path: Path
) -> None:
    url = postgres.new_database().render_as_string(hide_password=False)
    hold = tmp_path / "hold"
    hold.mkdir()
    with running() as (slack, base_url):
        shop = Shop.create(jira, slack, base_url, tmp_path, url)
        now = datetime.now(UTC)
        _serve_config(shop, f"{now.minute} {now.hour} * * *")  # due this minute: caught up at start
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REFINEBOT_", "SLACK_"))}
        env |= shop.env(**{SIGNING_ENV: "signing-secret", HOLD_ENV: "claimed", HOLD_DIR_ENV: str(hold)})

        replicas = [Serving(shop.config, env), Serving(shop.config, env)]
        try:
            # One of them claims the cycle and waits at the hold; the other is refused the claim.
            holder = _wait_for_holder(hold)
            (winner,) = [r for r in replicas if f".{r.proc.pid}." in holder.name]
            (loser,) = [r for r in replicas if r is not winner]
            line = loser.wait_line(lambda text: "is being run by another process" in text, "the lost claim")
            message = json.loads(line)["message"]
            assert f"/{winner.proc.pid})" in message and "skipped" in message  # it names the winner
            loser.wait_line(lambda text: "retrying at" in text, "the loser's retry")

            (hold / "claimed.go").touch()
            body = winner.wait_health(lambda b: b["schedules"]["SHOP"]["last_outcome"] is not None, "the run")
            assert body["schedules"]["SHOP"]["last_outcome"] == "ok", body
            assert loser.health()["schedules"]["SHOP"]["last_outcome"] is None  # nothing recorded by it
        finally:
            codes = [replica.stop() for replica in replicas]

        assert codes == [0, 0]
        assert not [p for p in hold.glob("claimed.*.arrived") if p != holder]  # the loser never held it
        assert shop.posts() == 1 and shop.messages() == 1
        assert [shop.bot_comments(key) for key in FLAGGED] == [1, 1]
        assert shop.bot_comments("SHOP-1") == 0
