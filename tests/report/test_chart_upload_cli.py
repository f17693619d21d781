"""End to end: ``refinebot digest`` in a subprocess against the fake Jira Cloud and fake Slack, SQLite.
The first digest of a cycle gets one chart in its thread; a rerun in the same cycle (edit or not) uploads
none; a process SIGKILLed right after Slack shared the chart is rerun without a second chart."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from refinebot.faults import CRASH_ENV
from tests.cycle.test_digest_slack import _backlog, _config, _digest
from tests.fakes.jira_server import FakeJiraServer
from tests.fakes.slack_server import FakeSlack, running

FILE_CALLS = ("files.getUploadURLExternal", "upload", "files.completeUploadExternal")


@pytest.fixture
def slack() -> Iterator[tuple[FakeSlack, str]]:
    with running() as served:
        yield served


def file_calls(fake: FakeSlack, mark: int = 0) -> list[str]:
    return [m for m in fake.methods()[mark:] if m in FILE_CALLS]


def test_one_chart_per_cycle_in_the_digest_thread(
    jira: FakeJiraServer, slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    fake, base_url = slack
    site = jira.new_site(cloud=True)
    _backlog(site)
    config = _config(tmp_path, site, base_url)

    first = _digest(site, config)
    assert first.code == 0, first.stderr
    assert file_calls(fake) == list(FILE_CALLS)
    (digest,) = fake.in_channel("C0SHOP")
    (reply,) = fake.thread("C0SHOP", digest.ts)
    assert reply.files[0]["name"].startswith("refinebot-readiness-SHOP-")
    (upload,) = fake.uploads.values()
    assert upload.data is not None and upload.data.startswith(b"\x89PNG")

    mark = len(fake.calls)
    assert _digest(site, config).code == 0  # unchanged
    site.touch("SHOP-3", datetime.now(UTC), **{site.field_ids.story_points: 3.0})
    edited = _digest(site, config)  # the digest is edited in place
    assert edited.code == 0, edited.stderr
    assert "chat.update" in fake.methods()[mark:]
    assert file_calls(fake, mark) == []
    assert len(fake.thread("C0SHOP", digest.ts)) == 1


def test_killed_after_the_chart_was_shared_then_rerun_uploads_no_second_chart(
    jira: FakeJiraServer, slack: tuple[FakeSlack, str], tmp_path: Path
) -> None:
    fake, base_url = slack
    site = jira.new_site(cloud=True)
    _backlog(site)
    config = _config(tmp_path, site, base_url)

    killed = _digest(site, config, env={CRASH_ENV: "chart-upload"})
    assert killed.code == -signal.SIGKILL
    (digest,) = fake.in_channel("C0SHOP")
    assert len(fake.thread("C0SHOP", digest.ts)) == 1  # Slack shared it; the store never heard

    mark = len(fake.calls)
    rerun = _digest(site, config)
    assert rerun.code == 0, rerun.stderr
    assert "conversations.replies" in fake.methods()[mark:]
    assert file_calls(fake, mark) == []
    assert len(fake.thread("C0SHOP", digest.ts)) == 1
    assert len(fake.in_channel("C0SHOP")) == 1

    mark = len(fake.calls)
    assert _digest(site, config).code == 0  # now recorded: not even a thread read
    assert "conversations.replies" not in fake.methods()[mark:]
