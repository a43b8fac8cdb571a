"""Bounded fan-out: run one coroutine per item with at most `limit` alive at once, results in input order.

A worker pool rather than `gather(*all)`: 8,000 symbols make 8,000 coroutines only `limit` at a time, so memory stays
flat and the first failure stops the rest (workers stop taking new items; running ones finish or are cancelled).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def bounded_map(fn: Callable[[T], Awaitable[R]], items: Iterable[T], limit: int) -> list[R]:
    """[await fn(x) for x in items] with at most `limit` in flight. The first exception propagates."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    todo = list(items)
    results: list = [None] * len(todo)
    cursor = iter(range(len(todo)))

    async def worker() -> None:
        for i in cursor:  # a shared iterator: each index is taken by exactly one worker
            results[i] = await fn(todo[i])

    workers = [asyncio.ensure_future(worker()) for _ in range(min(limit, len(todo)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)  # let them finish cancelling; no stray warnings
        raise
    return results
