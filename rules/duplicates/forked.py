"""A map over the slices of a job shared by this process and forked workers, each claiming the next slice when free.

The duplicate rule's explanations are one pure function of many slices (the terms the two
documents of each pair share); a fixed split left a core idle whenever one part ran longer (a
worker forked late, a core busy with another process) and the parent waited doing nothing. Here
every process, this one included, takes the next unclaimed slice from a counter in shared memory,
so all finish within one slice of each other, and the parent's own slices are never copied.
Workers are forked (they read the job from the parent's memory, nothing of it is pickled), or,
given a job that holds what the work needs, forked from the fork server and sent the job (then this
process's pages are not shared, and its own writes cost no copies). Only their results come back,
slice by slice (``SharedSlices``): the parent uses each one between its own claims (the rule makes
its findings), so that work overlaps the workers' slices too. Where processes cannot fork, or there
is one slice, the parent does it all.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import pickle
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Generic, TypeVar

Result = TypeVar("Result")

logger = logging.getLogger(__name__)

# The job of the pool being forked: (work, size, step, next slice's start in shared memory). Set
# before the workers fork, so they find it in their copy of this module (or, in a worker started
# by the fork server, by ``_start_job``).
_JOB: tuple[Callable[[int, int], list[Any]], int, int, Any] | None = None

# A job a process that shares nothing with this one can do: a picklable function, and a function
# of no arguments that gives its arguments (called in a thread here, so that gathering them
# overlaps this process's other work); the first, called with them, builds the work (the function
# of a slice's start and stop).
Job = tuple[Callable[..., Callable[[int, int], list[Any]]], Callable[[], tuple[Any, ...]]]

# Modules the fork server imports before it forks a worker (its workers start with them loaded).
_SERVER_MODULES: list[str] = []


def start_server(modules: Sequence[str]) -> bool:
    """Start the fork server in the background, ``modules`` imported in it; False where there is none.

    A worker forked from this process shares every page of its memory: each page this process
    then writes (a reference count, an allocation) is copied, and making the findings beside a
    forked worker wrote to about 90,000 of them, more time in the kernel than the worker saved. A
    worker forked from the small server shares nothing; it is sent its job instead (``Job``). Start
    it early (its imports take a few tenths of a second, overlapping the caller's work).
    """
    if "forkserver" not in mp.get_all_start_methods():
        return False
    # What starting a worker from it imports, imported now rather than when the work waits for it.
    import concurrent.futures.process  # noqa: F401
    import multiprocessing.popen_forkserver
    import multiprocessing.synchronize  # noqa: F401
    from multiprocessing import forkserver

    wanted = sorted(set(_SERVER_MODULES) | set(modules))
    if wanted != _SERVER_MODULES:
        _SERVER_MODULES[:] = wanted
        mp.get_context("forkserver").set_forkserver_preload(wanted)
    forkserver.ensure_running()
    return True


def server_started() -> bool:
    """Whether ``start_server`` started the fork server (for a caller that only uses it warm)."""
    return bool(_SERVER_MODULES)


def _send(jobs: Any, job: Job, copies: int) -> None:
    """Write ``job`` (its arguments gathered now) into the pipe ``jobs``, once for each worker (each
    reads one). A pipe closed meanwhile (the workers stopped) ends it; a failure is logged and
    closes the pipe, and the workers then take no slice (this process does them all)."""
    build, arguments = job
    try:
        data = pickle.dumps((build, arguments()), protocol=pickle.HIGHEST_PROTOCOL)
        for _ in range(copies):
            jobs.send_bytes(data)
    except OSError:
        pass
    except Exception:
        logger.exception("the job for the workers could not be sent; this process does every slice")
        jobs.close()


def _start_job(jobs: Any, size: int, step: int, counter: Any) -> None:
    """In a worker started by the fork server: read the job from the pipe ``jobs`` and build the
    work from it, once."""
    global _JOB
    try:
        build, arguments = pickle.loads(jobs.recv_bytes())
    except (EOFError, OSError):
        return  # no job came: this worker takes no slice (``_in_worker``)
    finally:
        jobs.close()
    _JOB = (build(*arguments), size, step, counter)


def _claim(
    work: Callable[[int, int], list[Result]], size: int, step: int, counter: Any
) -> tuple[int, list[Result]] | None:
    """The next unclaimed slice's start and ``work`` of it; None when every slice is claimed."""
    with counter.get_lock():
        start = counter.value
        counter.value = start + step
    if start >= size:
        return None
    return start, work(start, min(start + step, size))


def _in_worker() -> tuple[tuple[int, list[Any]] | None, float]:
    """In a forked worker: one slice of the job (or None), and the CPU time it took. (A worker of
    the fork server that got no job takes none.)"""
    if _JOB is None:
        return None, 0.0
    cpu = time.process_time()
    done = _claim(*_JOB)
    return done, time.process_time() - cpu


class SharedSlices(Generic[Result]):
    """``(start, work(start, stop))`` of each slice of ``range(size)`` ``step`` long, as soon as this
    process has it: its own slices right after it did each, the workers' between its claims (so
    what the caller does with a slice overlaps the workers' slices), in no set order.

    ``processes`` counts this one: ``processes - 1`` workers are forked. ``work`` must depend only on
    its slice and on what it reads (a worker's changes to its memory are its own). With ``job``
    (the same work, built from what it holds), the workers come from the fork server
    (``start_server``) and build their work from it instead of sharing this process's memory.
    Leaving the loop early, or an error here or in a worker, stops the workers at their next claim.
    """

    def __init__(
        self,
        work: Callable[[int, int], list[Result]],
        size: int,
        step: int,
        processes: int,
        job: Job | None = None,
    ) -> None:
        self._work, self._size, self._step, self._processes = work, size, step, processes
        self._job = job if job is not None and "forkserver" in mp.get_all_start_methods() else None
        # CPU time the forked workers spent on the slices they sent back so far (this process's
        # own is not in it), and how many slices they sent.
        self.worker_cpu = 0.0
        self.worker_slices = 0
        self._pool: ProcessPoolExecutor | None = None
        self._waiting: list[Any] = []
        self._counter: Any = None
        self._jobs: Any = None  # this process's end of the pipe the job goes through

    def _parallel(self) -> bool:
        return self._processes > 1 and self._size > self._step and "fork" in mp.get_all_start_methods()

    def start(self) -> None:
        """Start the workers now, so that their slices go on while this process does something
        else before it iterates (iterating starts them otherwise). ``close`` stops them."""
        if self._pool is not None or not self._parallel():
            return
        global _JOB
        context = mp.get_context("fork" if self._job is None else "forkserver")
        counter = self._counter = context.Value("q", 0)
        _JOB = (self._work, self._size, self._step, counter)
        served: dict[str, Any] = {}
        if self._job is not None:
            start_server(())
            # The job goes through a pipe, written by a thread: given to the process as it starts,
            # its megabytes were written while this process waited for the worker to read them.
            jobs, self._jobs = context.Pipe(duplex=False)
            served = {"initializer": _start_job, "initargs": (jobs, self._size, self._step, counter)}
            writer = threading.Thread(
                target=_send, args=(self._jobs, self._job, self._processes - 1), daemon=True
            )
            writer.start()
        self._pool = ProcessPoolExecutor(max_workers=self._processes - 1, mp_context=context, **served)
        # One task per slice: a worker's results come back (pickled, read by the pool's thread)
        # slice by slice while the work goes on, not all at the end. Tasks that find every slice
        # claimed return at once.
        self._waiting = [self._pool.submit(_in_worker) for _ in range(-(-self._size // self._step))]

    def close(self) -> None:
        """Stop the workers at their next claim and wait for them (again: nothing)."""
        global _JOB
        if self._pool is None:
            return
        with self._counter.get_lock():
            self._counter.value = self._size
        self._pool.shutdown(wait=True)
        self._pool, self._waiting, _JOB = None, [], None
        if self._jobs is not None:
            self._jobs.close()
            self._jobs = None

    def __iter__(self) -> Iterator[tuple[int, list[Result]]]:
        work, size, step = self._work, self._size, self._step
        if not self._parallel():
            for start in range(0, size, step):
                yield start, work(start, min(start + step, size))
            return
        self.start()
        try:
            while True:
                # The workers' slices done meanwhile come first (what the caller does with them is
                # work only this process can do); this process claims a slice only when none is
                # ready, and once every slice is claimed it waits for the rest.
                ready = [future for future in self._waiting if future.done()]
                if not ready:
                    claimed = _claim(work, size, step, self._counter)
                    if claimed is not None:
                        yield claimed
                        continue
                    ready, exhausted = self._waiting, True
                else:
                    exhausted = False
                self._waiting = [future for future in self._waiting if future not in ready]
                for future in ready:
                    done, cpu = future.result()
                    self.worker_cpu += cpu
                    if done is not None:
                        self.worker_slices += 1
                        yield done
                if exhausted:
                    return
        finally:
            # Here, in a worker or in the caller's loop, or at the end: the others stop at their
            # next claim instead of doing the rest for nothing.
            self.close()
