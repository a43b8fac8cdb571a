"""A sliding-window rate limiter: at most `limit` requests start in any `period` seconds.

The limiter only does the arithmetic (`reserve()` returns how long the caller must wait before sending); the async and
sync transports do the sleeping. Reservations are handed out in order and never overlap, so N callers racing for
slots get distinct start times: request k+limit starts no earlier than `period` after request k.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """`limit` requests per `period` seconds (sliding window); `limit <= 0` means unlimited.

    Polygon's free tier is 5 requests per minute: `RateLimiter(5, 60)`. The window is measured at send time on the
    client's monotonic clock; a small `margin` absorbs scheduling jitter so the server never sees limit+1 in a window.
    """

    def __init__(
        self, limit: float, period: float = 60.0, *, margin: float = 0.01, clock: Callable[[], float] = time.monotonic
    ):
        if period <= 0:
            raise ValueError(f"RateLimiter period must be > 0 seconds, got {period}")
        self.limit = int(limit) if limit and limit > 0 else 0
        if limit and 0 < limit < 1:
            raise ValueError(f"RateLimiter limit must be >= 1 request per period (or 0 = unlimited), got {limit}")
        self.period = float(period)
        self.margin = margin
        self._clock = clock
        self._starts: deque[float] = deque(maxlen=self.limit or 1)
        self._lock = threading.Lock()  # held for microseconds only, never across a sleep

    @property
    def unlimited(self) -> bool:
        return self.limit == 0

    def reserve(self) -> float:
        """Claim the next free slot; return the seconds to wait before sending (0 when a slot is free now)."""
        if self.unlimited:
            return 0.0
        with self._lock:
            now = self._clock()
            start = now
            if len(self._starts) == self.limit:
                # the oldest of the last `limit` starts must leave the window first
                start = max(now, self._starts[0] + self.period + self.margin)
            self._starts.append(start)
            return start - now

    def take_now(self) -> float:
        """Take a slot at the current time if the window has one (returns 0), else return the seconds until the oldest
        start leaves the window, taking nothing. Slots are stamped when granted, not when planned: a stalled event
        loop then only delays sends, it never lets the reserved ones go out in a burst."""
        if self.unlimited:
            return 0.0
        with self._lock:
            now = self._clock()
            free_at = self._starts[0] + self.period + self.margin if len(self._starts) == self.limit else now
            if now >= free_at:
                self._starts.append(now)
                return 0.0
            return free_at - now

    async def acquire(self) -> None:
        while (wait := self.take_now()) > 0:
            await asyncio.sleep(wait)

    def acquire_sync(self) -> None:
        delay = self.reserve()
        if delay > 0:
            time.sleep(delay)

    def __repr__(self) -> str:
        return "RateLimiter(unlimited)" if self.unlimited else f"RateLimiter({self.limit}/{self.period:g}s)"


def per_minute(requests_per_minute: float, *, period: float = 60.0) -> RateLimiter:
    """The limiter for TECHNIC_RATE_LIMIT (requests per minute, 0 = unlimited); `period` rescales the minute in tests."""
    return RateLimiter(requests_per_minute, period)
