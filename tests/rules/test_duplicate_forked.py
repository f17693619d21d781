"""The slices of a job shared with forked workers: results in order or as they come, a worker takes slices, a failure or an early stop anywhere stops the rest."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest

from rules.duplicates.forked import SharedSlices

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="workers are forked"
)


def _in_order(slices: SharedSlices[Any]) -> list[Any]:
    """The results of all slices, joined in the order of their starts."""
    return [result for _, results in sorted(slices, key=lambda part: part[0]) for result in results]


def _numbered(parent: int, pause: float) -> object:
    """Work that numbers its slice with the process that did it; slower in the parent, so that a
    worker surely claims some slices, and this process some after the worker's."""

    def work(start: int, stop: int) -> list[tuple[int, int]]:
        time.sleep(pause if os.getpid() == parent else pause / 2)
        return [(number, os.getpid()) for number in range(start, stop)]

    return work


def test_results_come_in_order_and_a_worker_did_some_slices() -> None:
    parent = os.getpid()
    slices = SharedSlices(_numbered(parent, 0.02), 203, 10, 2)  # type: ignore[arg-type]
    results, worker_cpu = _in_order(slices), slices.worker_cpu
    assert [number for number, _ in results] == list(range(203))  # the last slice is short
    doers = [pid for _, pid in results]
    assert parent in doers and len(set(doers)) == 2  # this process and one worker shared the slices
    # This process did a slice after one of the worker's: they took turns, yet come back in order.
    assert parent in doers[doers.index(next(pid for pid in doers if pid != parent)) :]
    # Each slice was done by one process from start to end.
    for start in range(0, 203, 10):
        assert len({pid for _, pid in results[start : start + 10]}) == 1
    assert worker_cpu >= 0.0


def test_one_process_or_one_slice_is_done_here() -> None:
    parent = os.getpid()
    for size, step, processes in ((50, 10, 1), (8, 10, 2), (10, 10, 4)):
        slices = SharedSlices(_numbered(parent, 0.0), size, step, processes)  # type: ignore[arg-type]
        results, worker_cpu = _in_order(slices), slices.worker_cpu
        assert results == [(number, parent) for number in range(size)]
        assert worker_cpu == 0.0
    empty = SharedSlices(_numbered(parent, 0.0), 0, 10, 2)  # type: ignore[arg-type]
    assert (_in_order(empty), empty.worker_cpu) == ([], 0.0)


def test_a_worker_failing_fails_the_map() -> None:
    parent = os.getpid()

    def work(start: int, stop: int) -> list[int]:
        if os.getpid() != parent:
            raise ValueError(f"slice {start} failed in a worker")
        time.sleep(0.02)
        return list(range(start, stop))

    with pytest.raises(ValueError, match="failed in a worker"):
        _in_order(SharedSlices(work, 400, 10, 2))


def test_a_failure_here_stops_the_workers_at_their_next_claim(tmp_path: Path) -> None:
    parent = os.getpid()
    done = tmp_path / "done"

    def work(start: int, stop: int) -> list[int]:
        time.sleep(0.05)
        if os.getpid() == parent:
            raise RuntimeError("stop")
        with done.open("a") as handle:  # a worker's slices, written where this process sees them
            handle.write(f"{start}\n")
        return list(range(start, stop))

    with pytest.raises(RuntimeError, match="stop"):
        _in_order(SharedSlices(work, 40 * 10, 10, 2))
    finished = done.read_text().split() if done.exists() else []
    # Without the stop the worker would go on through all 40 slices but the one this process took.
    assert len(finished) < 10


def test_slices_come_as_they_are_done_the_workers_between_this_process_s_own() -> None:
    parent = os.getpid()
    slices = SharedSlices(_numbered(parent, 0.02), 203, 10, 2)  # type: ignore[arg-type]
    came = [(start, results) for start, results in slices]
    assert sorted(start for start, _ in came) == list(range(0, 203, 10))  # each slice once
    for start, results in came:
        assert [number for number, _ in results] == list(range(start, min(start + 10, 203)))
    doers = [results[0][1] for _, results in came]
    # A worker's slice came to this process before this process's own last one: what the caller
    # does with a slice overlaps the worker's.
    assert parent in doers[[pid != parent for pid in doers].index(True) :]
    assert slices.worker_cpu > 0.0


def test_leaving_the_loop_early_stops_the_workers(tmp_path: Path) -> None:
    parent = os.getpid()
    done = tmp_path / "done"

    def work(start: int, stop: int) -> list[int]:
        time.sleep(0.05)
        if os.getpid() != parent:
            with done.open("a") as handle:
                handle.write(f"{start}\n")
        return list(range(start, stop))

    for _ in SharedSlices(work, 40 * 10, 10, 2):
        break
    finished = done.read_text().split() if done.exists() else []
    assert len(finished) < 10  # not the 39 slices it would have gone on to


def _served_numbers(marks: str) -> Any:
    """Built in a worker of the fork server from this job: numbers its slice with its process and
    that process's parent, and leaves a mark for each slice."""

    def work(start: int, stop: int) -> list[tuple[int, int, int]]:
        with open(marks, "a") as handle:
            handle.write(f"{start}\n")
        return [(number, os.getpid(), os.getppid()) for number in range(start, stop)]

    return work


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="no fork server")
def test_a_job_goes_to_a_worker_of_the_fork_server_which_shares_nothing_with_this_process(
    tmp_path: Path,
) -> None:
    from rules.duplicates.forked import start_server

    assert start_server(["rules.duplicates.forked"])
    parent, marks = os.getpid(), tmp_path / "marks"

    def here(start: int, stop: int) -> list[tuple[int, int, int]]:
        # This process waits (at most 20 s) for the worker's first slice, so that it surely did one.
        deadline = time.monotonic() + 20
        while not marks.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return [(number, parent, os.getppid()) for number in range(start, stop)]

    slices = SharedSlices(here, 157, 10, 2, job=(_served_numbers, lambda: (str(marks),)))
    results = _in_order(slices)
    assert [number for number, _, _ in results] == list(range(157))
    workers = {(pid, ppid) for _, pid, ppid in results if pid != parent}
    assert workers and slices.worker_slices > 0  # a worker did some
    assert all(ppid != parent for _, ppid in workers)  # not forked from this process
    assert sum(pid == parent for _, pid, _ in results) > 0  # and this process some


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="no fork server")
def test_a_job_whose_arguments_fail_leaves_every_slice_to_this_process(tmp_path: Path) -> None:
    from rules.duplicates.forked import start_server

    assert start_server(["rules.duplicates.forked"])
    parent, marks = os.getpid(), tmp_path / "marks"

    def broken() -> tuple[Any, ...]:
        raise RuntimeError("no arguments")

    def here(start: int, stop: int) -> list[tuple[int, int, int]]:
        time.sleep(0.005)
        return [(number, parent, 0) for number in range(start, stop)]

    slices = SharedSlices(here, 157, 10, 2, job=(_served_numbers, broken))
    assert [pid for _, pid, _ in _in_order(slices)] == [parent] * 157
    assert slices.worker_slices == 0 and not marks.exists()


def test_started_workers_work_before_the_loop_and_closing_stops_them(tmp_path: Path) -> None:
    """``start`` sets the worker on the slices while this process does something else; ``close``
    (without a loop) stops it at its next claim, and the loop after a ``start`` gets every slice."""
    parent, marks = os.getpid(), tmp_path / "marks"

    def work(start: int, stop: int) -> list[int]:
        if os.getpid() != parent:
            with marks.open("a") as handle:
                handle.write(f"{start}\n")
        time.sleep(0.02)
        return list(range(start, stop))

    slices = SharedSlices(work, 400, 4, 2)
    slices.start()
    time.sleep(0.3)  # this process's other work
    assert marks.exists()  # the worker began before the loop
    assert _in_order(slices) == list(range(400))
    stopped = SharedSlices(work, 4000, 4, 2)
    marks.unlink()
    stopped.start()
    time.sleep(0.2)
    stopped.close()
    stopped.close()  # again: nothing
    done = len(marks.read_text().split())
    time.sleep(0.1)
    assert 0 < done == len(marks.read_text().split()) < 100  # of 1,000 slices, and no more since
