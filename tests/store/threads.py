"""Run one call from several threads released at the same moment, for the store's race tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_at_once(count: int, call: Callable[[int], T]) -> list[T]:
    """``call(0) … call(count - 1)`` in threads started together; their results, or the first error raised."""
    barrier = threading.Barrier(count)
    results: list[T] = []
    errors: list[BaseException] = []

    def run(number: int) -> None:
        try:
            barrier.wait(timeout=10)
            results.append(call(number))
        except BaseException as exc:  # re-raised below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    assert len(results) == count, "a thread did not finish in time"
    return results
