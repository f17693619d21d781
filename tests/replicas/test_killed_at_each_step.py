"""A ``refinebot digest`` killed (SIGKILL, from the fault hook) at each step of the cycle, then run again,
leaves exactly one bot comment per flagged ticket and one digest message in the channel, on SQLite and on
PostgreSQL; the rerun takes the dead process's claim over at once.

Every step in ``refinebot.faults.STEPS`` is covered (a new fault point joins the matrix by itself). Steps a
first run passes are killed on a fresh database; ``comment-edit`` (only an edit passes it) is killed on the
run after the team changed a ticket; ``reply-applied`` (only a team's answer passes it) on the run after
Dana answered ``refinebot snooze 2w`` on a ticket, and the rerun leaves one snooze, acknowledged once. The runs are forked from a warm parent (``warm_cli``) to keep the
forty-odd processes cheap; each is still a process of its own, killed for real.
"""

from __future__ import annotations

import signal

import pytest

from refinebot.faults import CRASH_ENV, STEPS
from tests.replicas.scenario import Shop, answer, suppressions
from tests.replicas.warm_cli import WarmCli

EDIT_ONLY = {"comment-edit"}  # steps a first run never reaches
REPLY_ONLY = {"reply-applied"}  # reached only by a run that reads a team's answer
# Steps this scenario (no pm_slack_user) never passes, each killed by its own test:
# tests/cycle/test_digest_slack.py::test_the_pm_gets_the_digest_as_a_dm_once_per_cycle_even_after_a_crash.
ELSEWHERE = {"digest-dm-post"}


@pytest.mark.parametrize("step", [step for step in STEPS if step not in ELSEWHERE])
def test_killed_at_a_step_then_rerun_leaves_one_comment_per_ticket_and_one_digest(
    shop: Shop, warm_cli: WarmCli, step: str
) -> None:
    if step in EDIT_ONLY | REPLY_ONLY:
        first = warm_cli.run(shop.digest_args(), env=shop.env())
        assert first.code == 0, first.stdout + first.stderr
        if step in EDIT_ONLY:
            shop.change()
        else:
            answer(shop, "SHOP-2", "refinebot snooze 2w")
    oversized_before = step in EDIT_ONLY

    killed = warm_cli.run(shop.digest_args(), env=shop.env(**{CRASH_ENV: step}))
    assert killed.code == -signal.SIGKILL, f"never reached {step}: {killed.stdout}{killed.stderr}"

    rerun = warm_cli.run(shop.digest_args(), env=shop.env())

    assert rerun.code == 0, rerun.stdout + rerun.stderr
    assert "is being run by another process" not in rerun.stdout  # the dead process's claim is taken over
    keys = 4 if oversized_before else 3
    assert shop.comment_counts(keys) == ([0, 1, 1, 1] if oversized_before else [0, 1, 1])
    assert shop.posts() == 1 and shop.messages() == 1
    if oversized_before:
        assert "oversized-story" not in shop.comment_text("SHOP-3")  # the interrupted edit landed
    if step in REPLY_ONLY:
        # The killed run's snooze was rolled back with its read mark; the rerun applied the answer once.
        (snooze,) = suppressions(shop)
        assert (snooze.issue, snooze.kind.value) == ("SHOP-2", "snooze") and "Dana" in snooze.by
        assert shop.comment_text("SHOP-2").count("Snoozed until") == 1
