"""Running async code from synchronous callers, also when the caller already runs inside an event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def run_sync(make_coro: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from synchronous code. Inside a running event loop (Jupyter, an async Prefect task) asyncio.run
    is not allowed, so the coroutine runs in a fresh loop on a worker thread and we wait for it. The caller's loop is
    blocked meanwhile (this is a sync function), so whatever the coroutine talks to must not be served by that loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="technic-sync") as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()
