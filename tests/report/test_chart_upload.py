"""The readiness chart goes into the digest's thread once per cycle: slack_sdk's ``files_upload_v2`` over
real HTTP against the fake Slack (getUploadURLExternal, the upload POST, completeUploadExternal), the record
in a real store (SQLite and PostgreSQL). Reruns that edit the digest upload nothing; a crash after the upload and before the
record does not upload twice; a refused upload leaves the digest standing and is retried next run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from slack_sdk import WebClient
from sqlalchemy.engine import URL

from refinebot.agenda import Agenda, AgendaItem, AgendaReadiness
from refinebot.chart import MAX_POINTS
from refinebot.config import SlackConfig
from refinebot.cycle import DigestAction
from refinebot.slack.blocks import digest_payload
from refinebot.slack.charts import ChartAction, ChartPoster, chart_filename, store_chart_source
from refinebot.slack.digest import Pacer, SlackDigestPoster, build_client
from refinebot.store import ChartUpload, ReadinessRecord, Store
from tests.fakes.slack_server import TOKEN, FakeSlack, running

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
FILE_CALLS = ("files.getUploadURLExternal", "upload", "files.completeUploadExternal")


def agenda(cycle: str = "2026-W49", ready: int = 3) -> Agenda:
    item = AgendaItem(
        "SHOP-5", "SHOP-5", "Checkout", "https://t.example/browse/SHOP-5", 5.0, 5,
        ("no acceptance criteria",), ("draft acceptance criteria",), ("missing-acceptance-criteria",),
    )  # fmt: skip
    return Agenda("SHOP", cycle, AgendaReadiness(ready, 10, None), (item,), more=0)


class CrashingUploads:
    """The store's chart ledger, but the first save dies as a killed process would."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.crash = True

    def chart_upload(self, project: str, cycle: str, channel: str) -> ChartUpload | None:
        return self.store.chart_uploads.chart_upload(project, cycle, channel)

    def save_chart_upload(self, upload: ChartUpload) -> None:
        if self.crash:
            self.crash = False
            raise KeyboardInterrupt("killed before the record committed")
        self.store.chart_uploads.save_chart_upload(upload)


@pytest.fixture
def store(database_url: URL) -> Iterator[Store]:
    """A store on SQLite and on PostgreSQL, with ten cycles of readiness."""
    with Store.open(database_url) as opened:
        for week in range(40, 50):
            ready = week - 38
            at = NOW - timedelta(weeks=50 - week)
            opened.readiness.record(
                ReadinessRecord("SHOP", f"2026-W{week}", ready, 16, ready / 16, 30, 12, at)
            )
        yield opened


@pytest.fixture
def slack() -> Iterator[tuple[FakeSlack, WebClient]]:
    with running() as (fake, base_url):
        yield fake, build_client(SlackConfig(base_url=base_url), SecretStr(TOKEN), sleep=lambda _s: None)


def poster(client: WebClient, store: Store, ledger: object | None = None) -> SlackDigestPoster:
    charts = ChartPoster(client, ledger or store.chart_uploads, store_chart_source(store.readiness))  # type: ignore[arg-type]
    return SlackDigestPoster(client, store.ledger, pacer=Pacer(sleep=lambda _s: None), charts=charts)


def file_calls(fake: FakeSlack, mark: int = 0) -> list[str]:
    return [m for m in fake.methods()[mark:] if m in FILE_CALLS]


def test_first_digest_uploads_the_chart_into_its_thread_and_reruns_upload_nothing(
    slack: tuple[FakeSlack, WebClient], store: Store
) -> None:
    fake, client = slack
    made = agenda()
    outcome = poster(client, store).post(made, digest_payload(made), "C0SHOP")
    assert outcome.action is DigestAction.POSTED
    assert file_calls(fake) == list(FILE_CALLS)
    (digest,) = fake.in_channel("C0SHOP")  # the chart is a reply, not a second channel message
    (reply,) = fake.thread("C0SHOP", digest.ts)
    (shared,) = reply.files
    assert shared["name"] == chart_filename("SHOP", "2026-W49") == "refinebot-readiness-SHOP-2026-W49.png"
    upload = fake.uploads[shared["id"]]
    assert upload.data is not None and upload.data.startswith(b"\x89PNG")
    assert upload.shared_in == ("C0SHOP", digest.ts)
    assert "2026-W49 69%" in upload.alt_txt and upload.alt_txt.count("%") == MAX_POINTS - 2
    recorded = store.chart_uploads.chart_upload("SHOP", "2026-W49", "C0SHOP")
    assert recorded is not None and (recorded.file_id, recorded.message_ts) == (shared["id"], digest.ts)

    # The same cycle again, with an edit: chat.update, and not one file call (nor a thread read).
    mark = len(fake.calls)
    changed = agenda(ready=4)
    assert (
        poster(client, store).post(changed, digest_payload(changed), "C0SHOP").action is DigestAction.UPDATED
    )
    assert file_calls(fake, mark) == [] and "conversations.replies" not in fake.methods()[mark:]
    assert len(fake.thread("C0SHOP", digest.ts)) == 1

    # The next cycle has a new digest, and its chart goes under that one.
    later = agenda("2026-W50")
    assert poster(client, store).post(later, digest_payload(later), "C0SHOP").action is DigestAction.POSTED
    second = fake.in_channel("C0SHOP")[1]
    assert len(fake.thread("C0SHOP", second.ts)) == 1
    assert len(fake.uploads) == 2


def test_a_crash_after_the_upload_is_not_followed_by_a_second_upload(
    slack: tuple[FakeSlack, WebClient], store: Store
) -> None:
    fake, client = slack
    made = agenda()
    with pytest.raises(KeyboardInterrupt):
        poster(client, store, CrashingUploads(store)).post(made, digest_payload(made), "C0SHOP")
    (digest,) = fake.in_channel("C0SHOP")
    assert len(fake.thread("C0SHOP", digest.ts)) == 1  # Slack has the chart; the store never heard

    mark = len(fake.calls)
    charts = ChartPoster(client, store.chart_uploads, store_chart_source(store.readiness))
    outcome = SlackDigestPoster(client, store.ledger).post(made, digest_payload(made), "C0SHOP")
    assert outcome.action is DigestAction.UNCHANGED
    assert charts.after_digest(made, outcome) is ChartAction.RECOVERED
    assert fake.methods()[mark:] == ["conversations.replies"]  # read the thread, uploaded nothing
    assert len(fake.thread("C0SHOP", digest.ts)) == 1
    recorded = store.chart_uploads.chart_upload("SHOP", "2026-W49", "C0SHOP")
    assert recorded is not None and recorded.file_id == fake.thread("C0SHOP", digest.ts)[0].files[0]["id"]
    assert charts.after_digest(made, outcome) is ChartAction.ALREADY


def test_a_refused_upload_keeps_the_digest_and_is_retried_next_run(
    slack: tuple[FakeSlack, WebClient], store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    fake, client = slack
    fake.fail_next("files.getUploadURLExternal", 200, retry_after=None, error="missing_scope")
    made = agenda()
    outcome = poster(client, store).post(made, digest_payload(made), "C0SHOP")
    assert outcome.action is DigestAction.POSTED  # the digest stands
    assert "not uploaded to C0SHOP: missing_scope" in caplog.text
    (digest,) = fake.in_channel("C0SHOP")
    assert fake.thread("C0SHOP", digest.ts) == []
    assert store.chart_uploads.chart_upload("SHOP", "2026-W49", "C0SHOP") is None

    mark = len(fake.calls)
    assert poster(client, store).post(made, digest_payload(made), "C0SHOP").action is DigestAction.UNCHANGED
    assert file_calls(fake, mark) == list(FILE_CALLS)  # looked in the thread, found none, uploaded
    assert len(fake.thread("C0SHOP", digest.ts)) == 1


def test_the_fake_refuses_an_upload_whose_bytes_never_arrived(slack: tuple[FakeSlack, WebClient]) -> None:
    fake, client = slack
    started = client.files_getUploadURLExternal(filename="x.png", length=3)
    assert str(started["upload_url"]).startswith(fake.upload_base)
    with pytest.raises(Exception, match="file_not_found"):
        client.files_completeUploadExternal(files=[{"id": str(started["file_id"])}], channel_id="C0SHOP")
