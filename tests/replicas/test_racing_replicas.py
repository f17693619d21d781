"""Several ``refinebot digest`` processes (real ``python -m refinebot``) started at the same moment on one
database: exactly one comment per flagged ticket and one digest per channel, every process exits 0, and
the ones that lost the project's claim say who holds it.

Three rounds on one database, first empty (the processes also race on creating the schema): all are let
go together from the fault hook's ``migrate`` barrier. In rounds 1 and 2 every process that gets past the
claim is held at ``store`` (findings committed, no comment posted yet) until the others have finished, then
all held ones are let go at once: with the claim, that is one process and the others said they lost; without
it, all of them would post at the same moment (the test fails on the fakes' counts first). Round 3 (next
week's cycle) races freely. PostgreSQL runs three processes a round, SQLite (one host, ``flock``) two.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from refinebot.faults import HOLD_DIR_ENV, HOLD_ENV
from refinebot.store import Store
from tests.cli_process import CliResult, finish_cli, start_cli
from tests.replicas.scenario import Shop

LIGHT_SHOP = True  # many fresh processes: leave out the duplicate rule's scikit-learn import
WAIT_SECONDS = 180.0  # a loaded CI machine can take this long to start a few Pythons; never a measure
RUN_LINE = re.compile(r"^SHOP (\S+): ", re.MULTILINE)


@dataclass(frozen=True)
class Round:
    """What one race produced: each process's result and the pids of those held at ``store``."""

    results: list[CliResult]
    pids: list[int]
    held: list[int]

    def winner_result(self) -> CliResult:
        """What the one process that got past the claim printed."""
        assert len(self.held) == 1, f"{len(self.held)} processes got past the claim"
        (winner,) = self.held
        assert winner in self.pids, f"the held process {winner} is not one of {self.pids}"
        return self.results[self.pids.index(winner)]


def _wait_for(condition: Callable[[], bool], procs: list[subprocess.Popen[str]], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            states = [p.poll() for p in procs]
            raise AssertionError(f"timed out waiting for {what}; exit codes so far {states}")
        time.sleep(0.02)


def _race(shop: Shop, count: int, folder: Path, *args: str, hold_at_store: bool) -> Round:
    folder.mkdir()
    holds = "migrate,store" if hold_at_store else "migrate"
    env = shop.env(**{HOLD_ENV: holds, HOLD_DIR_ENV: str(folder)})
    procs = [start_cli(shop.digest_args(*args), env=env) for _ in range(count)]

    def exited() -> int:
        return sum(p.poll() is not None for p in procs)

    def at(step: str) -> list[Path]:
        return sorted(folder.glob(f"{step}.*.arrived"))

    try:
        _wait_for(lambda: len(at("migrate")) == count or exited() > 0, procs, "all at the start line")
        assert exited() == 0, [finish_cli(p) for p in procs]
        (folder / "migrate.go").touch()  # all open the store, migrate and claim from here at once
        held: list[int] = []
        if hold_at_store:
            _wait_for(lambda: exited() + len(at("store")) == count, procs, "the losers to finish")
            held = [int(path.name.split(".")[1]) for path in at("store")]
            (folder / "store.go").touch()  # all that got past the claim go on to post at once
        return Round([finish_cli(p) for p in procs], [p.pid for p in procs], held)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _check_held_round(race: Round, count: int) -> str:
    """All exit 0; the held winner ran the cycle; every other one says it lost to it. The cycle's name."""
    assert [r.code for r in race.results] == [0] * count, [r.stdout + r.stderr for r in race.results]
    winner = race.winner_result()
    ran = RUN_LINE.search(winner.stdout)
    assert ran is not None, winner.stdout
    cycle = ran.group(1)
    lost = (
        f"project SHOP: cycle {cycle} is being run by another process "
        f"({socket.gethostname()}/{race.held[0]}); skipped"
    )
    losers = [r for r in race.results if r is not winner]
    assert all(r.stdout.strip() == lost for r in losers), [r.stdout for r in losers]
    return cycle


def _check_free_round(race: Round, count: int) -> None:
    """All exit 0; each either ran the cycle or said it lost it; at least one ran."""
    assert [r.code for r in race.results] == [0] * count, [r.stdout + r.stderr for r in race.results]
    ran = [r for r in race.results if RUN_LINE.search(r.stdout)]
    skipped = [r for r in race.results if "is being run by another process" in r.stdout]
    assert ran and len(ran) + len(skipped) == count, [r.stdout for r in race.results]


def test_replicas_started_together_post_once_and_the_losers_say_so(
    shop: Shop, engine_name: str, database_url: str, tmp_path: Path
) -> None:
    count = 3 if engine_name == "postgresql" else 2

    # Round 1, an empty database: they race on the schema, then on the claim.
    first = _race(shop, count, tmp_path / "round1", hold_at_store=True)
    cycle = _check_held_round(first, count)
    assert (
        "2 posted" in first.winner_result().stdout
        and "slack: posted in C0SHOP" in first.winner_result().stdout
    )
    assert shop.comment_counts() == [0, 1, 1]
    assert shop.posts() == 1

    # Round 2, the same cycle after the team's changes: SHOP-4 commented, SHOP-3's comment edited to
    # "ready now", the digest edited.
    shop.change()
    second = _race(shop, count, tmp_path / "round2", hold_at_store=True)
    assert shop.comment_counts(4) == [0, 1, 1, 1]
    assert shop.posts() == 1 and shop.messages() == 1
    assert _check_held_round(second, count) == cycle
    winner = second.winner_result().stdout
    assert "1 posted, 0 edited, 1 ready" in winner and "slack: updated in C0SHOP" in winner

    # Round 3, next week's cycle, a free race: one new digest, no new comment.
    next_week = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    third = _race(shop, count, tmp_path / "round3", "--now", next_week, hold_at_store=False)
    _check_free_round(third, count)
    assert shop.comment_counts(4) == [0, 1, 1, 1]
    assert shop.posts() == 2 and shop.messages() == 2

    with Store.open(database_url) as store:
        claim = store.cycles.get("SHOP", cycle)
    assert claim is not None and claim.finished_at is not None  # ended by its winner, lease let go
    assert claim.lease_until <= datetime.now(UTC)
    assert claim.owner.startswith(f"{socket.gethostname()}/{second.held[0]}/")
