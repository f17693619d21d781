"""``refinebot.store.claims`` in one process, on SQLite and PostgreSQL: who wins, what the loser is told,
leases (a controllable clock), a dead owner taken over at once, a dropped connection's lease respected,
a finished cycle run again, and the bounded migration lock."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from refinebot.store import Store, StoreError
from refinebot.store import migrate as migrate_module
from refinebot.store.claims import Owner, claim_cycle
from refinebot.store.engine import FileLock, advisory_key, create_store_engine, lock_file_for
from refinebot.store.migrate import MIGRATION_LOCK, migrate
from refinebot.store.schema import cycle_claims
from tests.store.conftest import Postgres

NOW = datetime(2026, 11, 30, 9, tzinfo=UTC)
A = Owner("host-a", 101, "aaaa")  # other hosts: their liveness is unknowable here, so leases count
B = Owner("host-b", 202, "bbbb")


def at(moment: datetime) -> Callable[[], datetime]:
    """A clock stopped at ``moment``."""
    return lambda: moment


@pytest.fixture
def store(engine_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A migrated store: a SQLite file, or a schema of its own in the run's PostgreSQL database (cheaper
    than a database; every claim here is let go, so the database-wide advisory locks start free)."""
    if engine_name == "sqlite":
        url = f"sqlite:///{tmp_path / 'refinebot.db'}"
    else:
        server: Postgres = request.getfixturevalue("postgres")
        url = server.new_schema().render_as_string(hide_password=False)
    with Store.open(url) as opened:
        yield opened


def _row(engine: Engine, project: str = "SHOP", cycle: str = "2026-W49") -> dict[str, object]:
    with engine.connect() as connection:
        row = connection.execute(
            cycle_claims.select().where(cycle_claims.c.project == project, cycle_claims.c.cycle == cycle)
        ).one()
    return dict(row._mapping)


def _insert(engine: Engine, owner: str, lease_until: datetime) -> None:
    with engine.begin() as connection:
        connection.execute(
            cycle_claims.insert(),
            {"project": "SHOP", "cycle": "2026-W49", "owner": owner, "claimed_at": NOW,
             "lease_until": lease_until, "finished_at": None},
        )  # fmt: skip


def test_the_second_claimer_is_told_who_holds_the_project(store: Store) -> None:
    with claim_cycle(store.engine, "SHOP", "2026-W49", owner=A, clock=at(NOW)) as first:
        assert first.won
        with claim_cycle(store.engine, "SHOP", "2026-W49", owner=B, clock=at(NOW)) as second:
            assert not second.won
            assert second.message == (
                "project SHOP: cycle 2026-W49 is being run by another process (host-a/101); skipped"
            )
        with claim_cycle(store.engine, "SHOP", "2026-W50", owner=B, clock=at(NOW)) as other_cycle:
            assert not other_cycle.won  # one project runs one cycle at a time, whichever week
        with claim_cycle(store.engine, "WEB", "2026-W49", owner=B, clock=at(NOW)) as other_project:
            assert other_project.won
        assert _row(store.engine)["owner"] == str(A)
    with claim_cycle(store.engine, "SHOP", "2026-W49", owner=B, clock=at(NOW)) as after:
        assert after.won  # A let go: its lease ended with its block
        assert _row(store.engine)["owner"] == str(B)


def test_a_finished_cycle_can_run_again_and_stays_finished(store: Store) -> None:
    with claim_cycle(store.engine, "SHOP", "2026-W49", owner=A, clock=at(NOW)) as claim:
        claim.finish()
    done = _row(store.engine)
    assert done["finished_at"] == NOW and done["lease_until"] == NOW
    later = NOW + timedelta(hours=2)
    with claim_cycle(store.engine, "SHOP", "2026-W49", owner=B, clock=at(later)) as again:
        assert again.won  # `refinebot digest` twice in a week: the rerun is idempotent, not refused
        assert _row(store.engine)["lease_until"] == later + timedelta(minutes=30)
    assert _row(store.engine)["finished_at"] == NOW  # not finished again (no finish()), not forgotten


def test_a_raising_block_lets_the_claim_go_unfinished(store: Store) -> None:
    with pytest.raises(RuntimeError), claim_cycle(store.engine, "SHOP", "2026-W49", owner=A, clock=at(NOW)):
        raise RuntimeError("the cycle broke")
    assert _row(store.engine)["finished_at"] is None
    with claim_cycle(store.engine, "SHOP", "2026-W49", owner=B, clock=at(NOW)) as claim:
        assert claim.won


def test_a_dead_process_on_this_host_is_taken_over_at_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is free now: the owner is provably gone
    _insert(store.engine, f"{socket.gethostname()}/{dead.pid}/dead", NOW + timedelta(minutes=30))
    with (
        caplog.at_level(logging.WARNING),
        claim_cycle(store.engine, "SHOP", "2026-W49", clock=at(NOW)) as claim,
    ):
        assert claim.won
    assert f"taking over cycle 2026-W49 from {socket.gethostname()}/{dead.pid}" in caplog.text


def test_a_live_lease_elsewhere_is_respected_until_it_runs_out(store: Store) -> None:
    # The mutex is free but host-a's lease runs: host-a lost its connection and may still be posting.
    _insert(store.engine, str(A), NOW + timedelta(minutes=30))
    with claim_cycle(
        store.engine, "SHOP", "2026-W49", owner=B, clock=at(NOW + timedelta(minutes=29))
    ) as early:
        assert not early.won
        assert "(host-a/101, lease until 2026-11-30 09:30 UTC); skipped" in early.message
    with claim_cycle(
        store.engine, "SHOP", "2026-W49", owner=B, clock=at(NOW + timedelta(minutes=31))
    ) as late:
        assert late.won
    assert _row(store.engine)["owner"] == str(B)


def test_an_in_memory_sqlite_has_nothing_to_exclude() -> None:
    engine = create_store_engine("sqlite://")
    try:
        with (
            claim_cycle(engine, "SHOP", "2026-W49", owner=A) as first,
            claim_cycle(engine, "SHOP", "2026-W49", owner=B) as second,
        ):
            assert first.won and second.won
    finally:
        engine.dispose()


def test_owner_names_round_trip_and_others_are_not_judged() -> None:
    assert Owner.parse(str(A)) == A
    assert Owner.parse("replica-a") is None  # another writer's name: never taken for dead
    me = Owner.this_process()
    assert Owner.parse(str(me)) == me and me.label == f"{socket.gethostname()}/{me.pid}"
    assert Owner(me.host, me.pid, "older").gone(me)  # this pid in an earlier life (a restarted container)
    assert not A.gone(me)


@pytest.mark.parametrize("engine_name", ["postgresql"], indirect=True)
def test_a_dropped_connection_keeps_its_lease_on_postgresql(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with claim_cycle(store.engine, "SHOP", "2026-W49", owner=A, clock=at(NOW)) as held:
        assert held.won
        with store.engine.connect() as admin:
            killed = (
                admin.execute(
                    text(
                        # With a timeout (ms) it returns once the backend is gone, not when it was
                        # signalled: without one, B's try-lock could still find the lock held (seen on a
                        # loaded CI machine).
                        "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks WHERE locktype = 'advisory'"
                        " AND granted AND objid = (:key & 4294967295) AND objsubid = 1"
                        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                    ),
                    {"key": advisory_key("refinebot.cycle:SHOP")},
                )
                .scalars()
                .all()
            )
            admin.commit()
        assert killed == [True]
        with claim_cycle(store.engine, "SHOP", "2026-W49", owner=B, clock=at(NOW)) as other:
            assert not other.won and "lease until" in other.message
    assert "could not end the claim" in caplog.text  # host-a's ending found its session gone; no crash


def test_a_held_migration_lock_is_a_clear_error_not_a_hang(
    database_url: str, engine_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrate_module, "MIGRATION_LOCK_WAIT_SECONDS", 0.2)
    engine = create_store_engine(database_url)
    try:
        if engine_name == "sqlite":
            path = lock_file_for(engine.url)
            assert path is not None and path.name == "refinebot.db.lock"
            holder = FileLock(path)
            assert holder.try_acquire()
            try:
                with pytest.raises(StoreError, match=r"another process has held .*refinebot\.db\.lock"):
                    migrate(engine)
            finally:
                holder.release()
        else:
            other = create_engine(engine.url)
            with other.connect() as connection, connection.begin():
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key(MIGRATION_LOCK)}
                )
                with pytest.raises(StoreError, match="another process has held the lock"):
                    migrate(engine)
            other.dispose()
        assert migrate(engine).after is not None  # once let go, it migrates
    finally:
        engine.dispose()
