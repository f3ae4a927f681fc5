"""Running calls at the same moment: threads released together by a barrier (the concurrency tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar, cast

T = TypeVar("T")


def at_once(calls: list[Callable[[], T]]) -> list[T]:
    """Each call's result, in order; fails naming every call that raised."""
    barrier = threading.Barrier(len(calls))
    results: list[T | BaseException] = [RuntimeError("not run")] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as error:  # noqa: BLE001 - reported below
            results[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    failures = [result for result in results if isinstance(result, BaseException)]
    assert not failures, failures
    return cast(list[T], results)
