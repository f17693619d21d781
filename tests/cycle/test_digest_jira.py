"""``refinebot digest`` and ``agenda`` end to end: the real CLI in a subprocess, the fake Jira (Cloud and DC) over
HTTP, SQLite (and PostgreSQL where the ``database_url`` fixture runs both)."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from connectors.jira.comments import wiki_plain_text
from refinebot.markup import adf_to_text
from tests.cli_process import CliResult, run_cli
from tests.connectors.jira.harness import ADF_SCHEMA, adf_validator_for
from tests.fakes.jira_data import adf, bullets, heading, make_issue, para
from tests.fakes.jira_server import FakeJiraServer, Site

TOKEN_ENV = "REFINEBOT_FAKE_JIRA_DIGEST_TOKEN"
WRITES = ("POST", "PUT", "DELETE")


def _backlog(site: Site) -> None:
    make_issue(site, 1)  # ready
    vague = adf(para("Make it faster.")) if site.cloud else "Make it faster."
    make_issue(site, 2, description=vague)  # missing acceptance criteria
    make_issue(site, 3, points=21.0)  # oversized


def _config(
    tmp_path: Path, site: Site, *, database_url: str | None = None, stale_days: int | None = None
) -> Path:
    """The config every test here runs: the site as a source, SHOP commenting on tickets; the default
    SQLite file unless ``database_url`` names another; ``stale-item`` off unless ``stale_days`` is given."""
    path = tmp_path / "refinebot.toml"
    email = f'email = "{site.email}"\n' if site.cloud else ""
    database = f'database_url = "{database_url}"\n' if database_url else ""
    stale = f"days = {stale_days}" if stale_days else "enabled = false"
    path.write_text(
        f"""{database}
[sources.jira]
kind = "jira"
url = "{site.url}"
{email}token_env = "{TOKEN_ENV}"
backoff_base_seconds = 0.01

[rules.stale-item]
{stale}

[projects.SHOP]
source = "jira"
comment_on_tickets = true
""",
        encoding="utf-8",
    )
    return path


def _digest(site: Site, config: Path, *args: str, env: dict[str, str] | None = None) -> CliResult:
    secret = _secret(site)
    return run_cli(["digest", "--config", str(config), *args], env={TOKEN_ENV: secret, **(env or {})})


def _bot_comments(site: Site, key: str) -> list[dict[str, object]]:
    return [c for c in site.all_comments(key) if _by_bot(c)]


def _by_bot(comment: dict[str, object]) -> bool:
    """The fake's only person is Dana; every other author is the bot's account."""
    author = comment["author"]
    assert isinstance(author, dict)
    return "Dana" not in str(author.get("displayName"))


def _text(site: Site, comment: dict[str, object]) -> str:
    """What the comment shows, as plain text (ADF or wiki markup read as Jira renders it)."""
    body = comment["body"]
    return adf_to_text(body) if isinstance(body, dict) else wiki_plain_text(str(body))


def _writes_since(site: Site, mark: int) -> list[str]:
    return [f"{e.method} {e.path}" for e in site.log[mark:] if e.method in WRITES]


def _secret(site: Site) -> str:
    return site.token if site.cloud else site.pat


def _answer(site: Site, key: str, *lines: str) -> None:
    """A person's comment, one paragraph per line, 'updated' bumped as Jira does.

    Five minutes on: people answer later than the bot's own write (which bumped 'updated' too), and
    the cycle takes an 'updated' within BOT_WRITE_SLACK of its write for its own.
    """
    when = datetime.now(UTC) + timedelta(minutes=5)
    body = adf(*(para(line) for line in lines)) if site.cloud else "\n".join(lines)
    site.add_person_comment(key, body, when=when)
    site.touch(key, when)


def _good_description(site: Site) -> object:
    if site.cloud:
        return adf(
            para("As a buyer I want gift wrapping so that presents arrive ready to give."),
            heading("Acceptance criteria"),
            bullets("Given an order, when I tick gift wrap, then the parcel is wrapped"),
        )
    return (
        "As a buyer I want gift wrapping so that presents arrive ready to give.\n"
        "h3. Acceptance criteria\n* Given an order, when I tick gift wrap, then the parcel is wrapped"
    )


def _dump(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        return list(connection.iterdump())


@pytest.mark.parametrize("cloud", [True, False], ids=["cloud", "dc"])
def test_digest_comments_once_stays_quiet_edits_in_place_and_answers_commands(
    server: FakeJiraServer, tmp_path: Path, cloud: bool
) -> None:
    site = server.new_site(cloud=cloud)
    _backlog(site)
    config = _config(tmp_path, site)

    first = _digest(site, config)
    assert first.code == 0, first.stderr
    assert [len(_bot_comments(site, f"SHOP-{n}")) for n in (1, 2, 3)] == [0, 1, 1]
    assert "acceptance" in _text(site, _bot_comments(site, "SHOP-2")[0]).lower()
    assert "refinebot snooze" in _text(site, _bot_comments(site, "SHOP-2")[0])
    if cloud and ADF_SCHEMA.exists():
        validator = adf_validator_for(ADF_SCHEMA)
        for key in ("SHOP-2", "SHOP-3"):
            validator.validate(_bot_comments(site, key)[0]["body"])

    mark = len(site.log)
    again = _digest(site, config)
    assert again.code == 0, again.stderr
    assert _writes_since(site, mark) == []  # unchanged: not one write request
    assert "2 unchanged" in again.stdout

    # The team estimates SHOP-3 again: its comment is edited in place (only the duplicate hint is left).
    site.touch("SHOP-3", datetime.now(UTC), **{site.field_ids.story_points: 3.0})
    mark = len(site.log)
    fixed = _digest(site, config)
    assert fixed.code == 0, fixed.stderr
    assert [w.split()[0] for w in _writes_since(site, mark)] == ["PUT"]
    (comment,) = _bot_comments(site, "SHOP-3")
    assert "oversized-story" not in _text(site, comment)
    assert "refinebot not-duplicate SHOP-1" in _text(site, comment)

    # A person answers on SHOP-3 (Jira bumps 'updated' when someone comments): the pair is suppressed.
    _answer(site, "SHOP-3", "Not the same thing at all.", "refinebot not-duplicate shop-1")
    answered = _digest(site, config)
    assert answered.code == 0, answered.stderr
    (comment,) = _bot_comments(site, "SHOP-3")
    assert "Marked not a duplicate of SHOP-1 by Dana" in _text(site, comment)
    listed = run_cli(["suppress", "list", "--config", str(config)])
    assert "not-duplicate SHOP-3 ~ SHOP-1 by Dana" in listed.stdout and "via ticket" in listed.stdout
    scan = run_cli(["scan", "--config", str(config), "--format", "json"], env={TOKEN_ENV: _secret(site)})
    assert not [f for f in json.loads(scan.stdout) if f["rule"] == "duplicate-candidate"]

    # A typo is answered with "Unknown command" and the usage line, in the same comment.
    _answer(site, "SHOP-2", "Thanks!", "refinebot snoze 2w")
    typo = _digest(site, config)
    assert typo.code == 0, typo.stderr
    (comment,) = _bot_comments(site, "SHOP-2")
    shown = _text(site, comment)
    assert "Unknown command" in shown and "snoze" in shown and "Usage: refinebot snooze" in shown

    # SHOP-2 gets its acceptance criteria: the comment is edited once to "ready now", then left alone.
    site.touch("SHOP-2", datetime.now(UTC), description=_good_description(site))
    ready = _digest(site, config)
    assert ready.code == 0, ready.stderr
    (comment,) = _bot_comments(site, "SHOP-2")
    assert "ready now" in _text(site, comment) and "1 ready" in ready.stdout
    mark = len(site.log)
    assert _digest(site, config).code == 0
    assert _writes_since(site, mark) == []

    secret = _secret(site)
    for result in (first, again, fixed, answered, typo, ready):
        assert secret not in result.stdout + result.stderr
    assert secret.encode() not in (tmp_path / "refinebot.db").read_bytes()


def test_dry_run_prints_the_comments_and_writes_nowhere(server: FakeJiraServer, tmp_path: Path) -> None:
    site = server.new_site(cloud=True)
    _backlog(site)
    config = _config(tmp_path, site)
    assert _digest(site, config).code == 0  # a database with history to compare
    site.touch("SHOP-3", datetime.now(UTC), **{site.field_ids.story_points: 3.0})
    make_issue(site, 4, points=40.0)
    before = _dump(tmp_path / "refinebot.db")
    mark = len(site.log)

    dry = _digest(site, config, "--dry-run")

    assert dry.code == 0, dry.stderr
    assert _writes_since(site, mark) == []
    assert _dump(tmp_path / "refinebot.db") == before
    assert "--- SHOP-4 (post) ---" in dry.stdout and "--- SHOP-3 (edit) ---" in dry.stdout
    planned_edit = dry.stdout.split("--- SHOP-3 (edit) ---")[1].split("\n--- ")[0]
    assert "oversized-story" not in planned_edit and "duplicate-candidate" in planned_edit
    assert _bot_comments(site, "SHOP-4") == []


def test_scan_leaves_every_record_unchanged_and_reads_the_digest_sync_state(
    server: FakeJiraServer, tmp_path: Path
) -> None:
    site = server.new_site(cloud=True)
    _backlog(site)
    config = _config(tmp_path, site)
    assert _digest(site, config).code == 0
    records = _records(tmp_path / "refinebot.db")
    mark = len(site.log)

    scan = run_cli(["scan", "--config", str(config), "--format", "json"], env={TOKEN_ENV: site.token})

    assert scan.code == 0, scan.stderr
    assert {f["issue"] for f in json.loads(scan.stdout)} == {"SHOP-2", "SHOP-3"}
    assert _writes_since(site, mark) == []
    assert _records(tmp_path / "refinebot.db") == records
    searches = [e for e in site.log[mark:] if "/search" in e.path]
    assert 1 <= len(searches) <= 3  # incremental from the digest's sync state, in a new process


@pytest.mark.parametrize("cloud", [True, False], ids=["cloud", "dc"])
def test_killed_after_the_first_comment_post_the_rerun_still_leaves_one_comment_per_ticket(
    server: FakeJiraServer, tmp_path: Path, cloud: bool
) -> None:
    site = server.new_site(cloud=cloud)
    _backlog(site)
    config = _config(tmp_path, site)

    killed = _digest(site, config, env={"REFINEBOT_TEST_CRASH_AFTER": "comment-post"})
    assert killed.code == -9  # SIGKILL right after the tracker accepted the first POST
    assert sum(len(_bot_comments(site, f"SHOP-{n}")) for n in (2, 3)) == 1

    rerun = _digest(site, config)

    assert rerun.code == 0, rerun.stderr
    assert [len(_bot_comments(site, f"SHOP-{n}")) for n in (1, 2, 3)] == [0, 1, 1]
    assert "1 recovered" in rerun.stdout or "1 unchanged" in rerun.stdout


# What scan may write: caches of the tracker's data and of the duplicate index, which change no outcome and
# let the next scan or digest sync and vectorise only what changed (#11 and #14).
CACHE_TABLES = ("sync_state", "sync_items", "rule_cache")


def _records(database: Path) -> list[str]:
    """The database dump without the cache tables' rows: findings, suppressions, comments, digests..."""
    return [line for line in _dump(database) if not any(f'"{table}"' in line for table in CACHE_TABLES)]


def _rows(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as connection:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: connection.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def test_agenda_honours_the_stored_suppressions_and_last_cycles_share_and_writes_nothing(
    server: FakeJiraServer, tmp_path: Path
) -> None:
    site = server.new_site(cloud=True)
    _backlog(site)
    make_issue(site, 4, summary="Tidy the CSV export", description=adf(para("Tidy it.")))  # no criteria
    label_printer = adf(
        para("As a packer I want labels printed in one batch so that parcels leave on time."),
        heading("Acceptance criteria"),
        bullets("Given 50 orders, when I print, then 50 labels come out"),
    )
    make_issue(site, 5, summary="Warehouse label printer", description=label_printer, points=40.0)  # big
    config = _config(tmp_path, site)
    last_week = (datetime.now(UTC) - timedelta(days=7)).isoformat()
    assert _digest(site, config, "--now", last_week).code == 0  # readiness of the previous cycle
    for args in (
        ["snooze", "SHOP-2", "--for", "2w"],
        ["not_duplicate", "SHOP-3", "--other", "SHOP-1"],
        ["snooze", "SHOP-4", "--for", "3d", "--reason", "removed from agenda"],
        ["ignore", "SHOP-5", "--rule", "oversized-story", "--reason", "an epic on purpose"],
    ):
        added = run_cli(["suppress", "add", "SHOP", *args, "--config", str(config), "--by", "maya"])
        assert added.code == 0, added.stderr
    database = tmp_path / "refinebot.db"
    with sqlite3.connect(database) as connection:
        (previous,) = connection.execute("SELECT share FROM readiness").fetchone()
    before, rows, dump = database.read_bytes(), _rows(database), _dump(database)
    mark = len(site.log)

    shown = run_cli(["agenda", "--config", str(config), "--format", "json"], env={TOKEN_ENV: site.token})

    assert shown.code == 0, shown.stderr
    (agenda,) = json.loads(shown.stdout)
    assert set(agenda) == {"project", "cycle", "readiness", "items", "more"}
    assert set(agenda["readiness"]) == {"ready", "top_n", "share", "previous_share"}
    assert agenda["readiness"]["previous_share"] == previous
    # Snoozed (SHOP-2), removed from the agenda (SHOP-4), its one finding ignored (SHOP-5): not listed.
    assert [item["issue"] for item in agenda["items"]] == ["SHOP-3"]
    (item,) = agenda["items"]
    assert set(item) == {"issue", "title", "url", "points", "minutes", "reasons"}
    assert not [r for r in item["reasons"] if "duplicate" in r.lower()]  # the pair is not a duplicate
    text = run_cli(["agenda", "--config", str(config)], env={TOKEN_ENV: site.token})
    assert "Removed from this agenda: SHOP-4" in text.stdout, text.stdout
    assert _writes_since(site, mark) == []
    assert (database.read_bytes(), _rows(database), _dump(database)) == (before, rows, dump)


def test_agenda_without_a_database_yet_creates_none(server: FakeJiraServer, tmp_path: Path) -> None:
    site = server.new_site(cloud=True)
    _backlog(site)
    config = _config(tmp_path, site)
    shown = run_cli(["agenda", "--config", str(config), "--format", "json"], env={TOKEN_ENV: site.token})
    assert shown.code == 0, shown.stderr
    (agenda,) = json.loads(shown.stdout)
    assert agenda["readiness"]["previous_share"] is None
    assert {item["issue"] for item in agenda["items"]} >= {"SHOP-2", "SHOP-3"}
    assert not (tmp_path / "refinebot.db").exists()


def test_first_digest_comments_each_flagged_ticket_once_and_the_rerun_writes_nothing(
    server: FakeJiraServer, tmp_path: Path, database_url: str | None
) -> None:
    site = server.new_site(cloud=True)
    _backlog(site)
    config = _config(tmp_path, site, database_url=database_url)

    first = _digest(site, config)

    assert first.code == 0, first.stderr
    assert [len(_bot_comments(site, f"SHOP-{n}")) for n in (1, 2, 3)] == [0, 1, 1]
    assert [w.split()[0] for w in _writes_since(site, 0)] == ["POST", "POST"]
    mark = len(site.log)
    again = _digest(site, config)
    assert again.code == 0, again.stderr
    assert _writes_since(site, mark) == []
    assert "2 unchanged" in again.stdout
    if database_url is None:
        assert (tmp_path / "refinebot.db").exists()
        return
    assert not (tmp_path / "refinebot.db").exists()  # the PostgreSQL database holds it all
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            ledger = connection.execute(text("SELECT issue FROM bot_comments ORDER BY issue")).scalars()
            assert list(ledger) == ["SHOP-2", "SHOP-3"]
    finally:
        engine.dispose()


def test_edits_skip_the_author_read_and_a_deleted_comment_is_posted_again_once(
    server: FakeJiraServer, tmp_path: Path
) -> None:
    site = server.new_site(cloud=True)
    _backlog(site)
    config = _config(tmp_path, site)
    assert _digest(site, config).code == 0
    (gone,) = _bot_comments(site, "SHOP-2")
    site.delete_comment("SHOP-2", str(gone["id"]))  # a person deletes the bot's comment
    later = datetime.now(UTC)
    site.touch("SHOP-2", later, **{site.field_ids.story_points: 21.0})  # SHOP-2's findings change
    site.touch("SHOP-3", later, **{site.field_ids.story_points: 3.0})  # and SHOP-3's
    mark = len(site.log)

    rerun = _digest(site, config)

    assert rerun.code == 0, rerun.stderr
    writes = _writes_since(site, mark)
    on = [(w.split()[0], re.search(r"/issue/([^/]+)/comment", w).group(1)) for w in writes]  # type: ignore[union-attr]
    assert sorted(f"{method} {key}" for method, key in on) == [
        "POST SHOP-2",  # posted again after its PUT answered 404
        "PUT SHOP-2",
        "PUT SHOP-3",
    ]
    author_reads = [e for e in site.log[mark:] if e.method == "GET" and re.search(r"/comment/\d+$", e.path)]
    assert author_reads == []  # the ledger knows these comments are the bot's
    assert [len(_bot_comments(site, key)) for key in ("SHOP-2", "SHOP-3")] == [1, 1]
    assert "oversized-story" in _text(site, _bot_comments(site, "SHOP-2")[0])
    mark = len(site.log)
    assert _digest(site, config).code == 0
    assert _writes_since(site, mark) == []


def test_the_next_digest_does_not_read_the_bots_own_comments_again_but_sees_an_edit_right_after_one(
    server: FakeJiraServer, tmp_path: Path
) -> None:
    site = server.new_site(cloud=True)
    vague = adf(para("Make it faster."))
    for number in range(1, 251):  # 250 flagged: the bot's comments bump 250 tickets, 100 a page
        make_issue(
            site, number, summary=f"Part {number} of the {number * 7919 % 1000} flow", description=vague
        )
    make_issue(site, 251)  # ready
    config = _config(tmp_path, site)
    assert _digest(site, config).code == 0
    assert len([k for k in site.comments if _bot_comments(site, k)]) == 250
    # The team fixes SHOP-5 a millisecond after the bot's comment on it: the same minute and second.
    (posted,) = _bot_comments(site, "SHOP-5")
    right_after = datetime.fromisoformat(str(posted["updated"])) + timedelta(milliseconds=1)
    site.touch("SHOP-5", right_after, description=_good_description(site))
    mark = len(site.log)

    second = _digest(site, config)

    assert second.code == 0, second.stderr
    searches = [e for e in site.log[mark:] if "/search" in e.path]
    # One page of ids and times for the backlog, one read of the one ticket changed (before: the
    # 250 tickets the bot commented on, 3 pages, and the id listing).
    assert len(searches) == 2
    assert [w.split()[0] for w in _writes_since(site, mark)] == ["PUT"]
    (comment,) = _bot_comments(site, "SHOP-5")
    assert "ready now" in _text(site, comment)
