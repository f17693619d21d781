"""Run a big backlog's backlog rules in a forked process while this one runs the issue rules.

The two kinds of rules read the same issues and nothing of each other's results, and each is
single-threaded for most of its time: on a second scan of a 200k backlog the duplicate rule (index
read from the store and updated, about 5 s) and the issue rules (about 3 s) ran one after the other
on a two-core machine. Forked, the child starts with the issues and the imported modules in its
memory (copy-on-write), so nothing is sent to it.

What the child sends back is what the run keeps: its findings (as plain tuples: a ``Finding`` holds a
read-only mapping, which does not pickle), its rule failures, and every ``put`` / ``delete`` it made
on the rule cache, in order. The parent applies those to the real cache itself, so the cache's
semantics stay its own: a dry run's transaction still rolls them back, a read-through cache still
keeps them in memory. The child reads the cache directly; a cache that wraps a database connection
must say how to stop sharing the parent's (``after_fork``), and one that cannot is not used from a
child (the rules then run here, as before). When the child cannot start, dies, or sends something
unreadable, the backlog rules run again in this process and nothing the child did is kept.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import multiprocessing.util
import os
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol, runtime_checkable

from refinebot.models import Finding, Issue
from rules.base import BacklogRule, MemoryRuleCache, RuleCache, RuleContext

logger = logging.getLogger(__name__)

# Backlogs from this size on run their backlog rules in a child (under it the fork and the transfer
# cost more than the overlap saves: a 10k scan's issue rules take about 0.15 s).
FORK_MIN_ISSUES = 20_000


# Children started and not yet stopped. A process that exits while one still runs (an exception
# unwound past ``result``, or serve abandoning a cycle at shutdown) kills them first: multiprocessing
# joins every non-daemonic child at exit, and one blocked on sending to a parent that no longer
# reads would keep the parent from ever exiting. The child is not daemonic because the duplicate
# rule forks workers of its own, which a daemonic process may not. Registered after
# multiprocessing's own exit hook (imported above), so it runs before it.
_RUNNING: set[BaseProcess] = set()


@atexit.register
def _kill_running() -> None:
    for process in list(_RUNNING):
        if process.is_alive():
            process.kill()
            process.join(5)
    _RUNNING.clear()


@runtime_checkable
class ForkAwareCache(Protocol):
    """A rule cache that can be read from a forked child once ``after_fork`` has run there (the store's:
    the child opens its own database connections instead of sharing the parent's)."""

    def after_fork(self) -> None:
        """In the forked child: stop using anything shared with the parent (connections, sockets)."""
        ...


BacklogRun = Callable[[Sequence[Issue], Sequence[BacklogRule], RuleContext], tuple[list[Finding], list[Any]]]


def can_fork(issues: Sequence[Issue], rules: Sequence[BacklogRule], ctx: RuleContext) -> bool:
    """Whether the backlog rules of this run go to a child: a big backlog, two CPUs, ``fork`` available,
    a cache that can be read from a child, and no loaded PyTorch (its OpenMP thread pool, once used,
    does not survive ``fork``: a child embedding after the parent did could hang)."""
    if len(issues) < FORK_MIN_ISSUES or not rules:
        return False
    if "fork" not in multiprocessing.get_all_start_methods() or (os.cpu_count() or 1) < 2:
        return False
    if "torch" in sys.modules:
        return False
    if multiprocessing.current_process().daemon:
        return False  # multiprocessing does not let a daemonic process have children
    cache = ctx.cache
    return cache is None or isinstance(cache, (ForkAwareCache, MemoryRuleCache))


@dataclass
class _RecordingCache:
    """The child's cache: reads go to the real one (its own writes first), writes are kept to send back."""

    below: RuleCache
    writes: list[tuple[str, str, object]] = field(default_factory=list)
    _latest: dict[str, object] = field(default_factory=dict)

    def get(self, key: str) -> object | None:
        """What this child last put under ``key`` (None after a delete), else the real cache's value."""
        if key in self._latest:
            return self._latest[key]
        return self.below.get(key)

    def put(self, key: str, value: object) -> None:
        """Keep the write for the parent (and for this child's later reads)."""
        self.writes.append(("put", key, value))
        self._latest[key] = value

    def delete(self, key: str) -> None:
        """Keep the delete for the parent."""
        self.writes.append(("delete", key, None))
        self._latest[key] = None


def _child(
    sender: Connection,
    issues: Sequence[Issue],
    rules: Sequence[BacklogRule],
    ctx: RuleContext,
    run: BacklogRun,
) -> None:
    """In the forked child: run the rules, then send the cache writes one by one and the results last.

    Nothing is sent before the rules have finished: the parent reads only once its own issue rules are
    done, and a child blocked on a full pipe mid-rule would wait for it.
    """
    recording: _RecordingCache | None = None
    try:
        if ctx.cache is not None:
            if isinstance(ctx.cache, ForkAwareCache):
                ctx.cache.after_fork()
            recording = _RecordingCache(ctx.cache)
            ctx = replace(ctx, cache=recording)
        cpu = time.process_time()
        findings, failures = run(issues, rules, ctx)
        rows = [
            (f.project, f.issue, f.rule, f.code, f.severity, f.message, dict(f.details), f.subject)
            for f in findings
        ]
        del findings
        results = pickle.dumps((rows, failures, time.process_time() - cpu), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:  # the parent runs the rules itself and reports what they raise
        logger.debug("backlog rules in the child failed", exc_info=True)
        sender.send_bytes(b"")
        return
    for write in recording.writes if recording is not None else ():
        sender.send_bytes(pickle.dumps(write, protocol=pickle.HIGHEST_PROTOCOL))
    sender.send_bytes(b"R" + results)


class ForkedBacklogRules:
    """The backlog rules of one run, started in a forked child; ``result`` collects what it found."""

    def __init__(
        self, issues: Sequence[Issue], rules: Sequence[BacklogRule], ctx: RuleContext, run: BacklogRun
    ) -> None:
        self._issues, self._rules, self._ctx, self._run = issues, rules, ctx, run
        self._process: BaseProcess | None = None
        self._receiver: Connection | None = None
        context = multiprocessing.get_context("fork")
        try:
            receiver, sender = context.Pipe(duplex=False)
        except OSError as exc:
            logger.debug("no pipe to a child (%s): backlog rules run here", exc)
            return
        try:
            # Not daemonic: the duplicate rule forks workers of its own (see _RUNNING).
            process = context.Process(
                target=_child, args=(sender, issues, rules, ctx, run), daemon=False, name="backlog-rules"
            )
            process.start()
        except (OSError, AssertionError) as exc:
            logger.debug("no child process (%r): backlog rules run here", exc)
            receiver.close()
            return
        finally:
            sender.close()  # the child's end: only the child holds it open now
        self._process, self._receiver = process, receiver
        _RUNNING.add(process)

    def result(self) -> tuple[list[Finding], list[Any]]:
        """The findings and rule failures: the child's (its cache writes applied to the real cache), or,
        when it failed, those of running the rules here."""
        try:
            received = self._receive()
        finally:
            self.stop()
        if received is not None:
            return received
        logger.info("backlog rules in a child process failed; running them in this one")
        return self._run(self._issues, self._rules, self._ctx)

    def _receive(self) -> tuple[list[Finding], list[Any]] | None:
        if self._receiver is None:
            return None
        cache = self._ctx.cache
        try:
            while True:
                message = self._receiver.recv_bytes()
                if not message:
                    return None
                if message[:1] == b"R":
                    rows, failures, cpu = pickle.loads(memoryview(message)[1:])
                    break
                # Applied as they come, one value in memory at a time (a first scan's index is a few
                # hundred MiB). A child that dies half-way leaves some applied, as a rule that crashed
                # half-way in this process would have; the rules then run again here.
                action, key, value = pickle.loads(message)
                del message
                if cache is not None:
                    if action == "put":
                        cache.put(key, value)
                    else:
                        cache.delete(key)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            logger.debug("the backlog-rules child ended before sending its results (%r)", exc)
            return None
        logger.debug("backlog rules ran in a child: %d findings, cpu %.3f s", len(rows), cpu)
        return [Finding.owning(*row) for row in rows], list(failures)

    def stop(self) -> None:
        """End the child (if it still runs) and release it, keeping nothing it did; safe to call twice."""
        if self._receiver is not None:
            self._receiver.close()
            self._receiver = None
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join()
            self._process.close()
            _RUNNING.discard(self._process)
            self._process = None
