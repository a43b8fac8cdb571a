"""The rate limiter: arithmetic on a fake clock (5 requests/minute), then measured at the server over real HTTP."""

from __future__ import annotations

import asyncio

import pytest

from technic_v4.data.polygon import PolygonClient, RateLimiter, SyncPolygonClient
from technic_v4.data.polygon.ratelimit import per_minute
from tests.support.fake_market import TinyMarket
from tests.support.polygon_server import PolygonServer

KEY = "rate-key"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_free_tier_five_per_minute_schedule():
    clock = FakeClock()
    limiter = RateLimiter(5, 60, margin=0.0, clock=clock)
    waits = [limiter.reserve() for _ in range(12)]
    # five now, the next five one minute after, the rest two minutes after: never six in any 60 s
    assert waits == [0, 0, 0, 0, 0, 60, 60, 60, 60, 60, 120, 120]


def test_slots_free_up_as_time_passes():
    clock = FakeClock()
    limiter = RateLimiter(5, 60, margin=0.0, clock=clock)
    for _ in range(5):
        limiter.reserve()
    clock.now += 30
    assert limiter.reserve() == pytest.approx(30)  # the first slot frees at t=60
    clock.now += 100
    assert limiter.reserve() == 0


def test_unlimited_and_invalid_limits():
    assert per_minute(0).unlimited and RateLimiter(0).reserve() == 0
    assert repr(per_minute(5)) == "RateLimiter(5/60s)"
    with pytest.raises(ValueError, match="period"):
        RateLimiter(5, 0)
    with pytest.raises(ValueError, match=">= 1 request"):
        RateLimiter(0.5)


def windows_respected(times: list[float], limit: int, period: float, tolerance: float = 0.02) -> bool:
    """No `limit + 1` arrivals within any `period` seconds (as seen by the server)."""
    times = sorted(times)
    return all(b - a >= period - tolerance for a, b in zip(times, times[limit:]))


async def test_async_client_rate_limit_measured_at_the_server():
    market = TinyMarket()
    async with PolygonServer(market, api_key=KEY, today=market.sessions[-1]) as server:
        async with PolygonClient(KEY, server.url, rate_limit=5, rate_period=1.0, max_concurrency=16) as c:
            await asyncio.gather(*(c.get_grouped_daily(d) for d in market.sessions[:11]))
        times = server.requests.times()
    assert len(times) == 11
    assert windows_respected(times, limit=5, period=1.0)
    assert max(times) - min(times) >= 2.0 - 0.02  # 11 requests at 5 per second need two full windows
    assert not windows_respected(times, limit=6, period=1.0, tolerance=-0.5)  # and the limiter is not over-cautious


async def test_retries_count_against_the_rate_limit():
    market = TinyMarket()
    async with PolygonServer(market, api_key=KEY, today=market.sessions[-1], retry_after=0) as server:
        server.fail("grouped_daily", 503, times=3)
        async with PolygonClient(KEY, server.url, rate_limit=2, rate_period=0.5, backoff_base=0.001) as c:
            await asyncio.gather(*(c.get_grouped_daily(d) for d in market.sessions[:3]))
        times = server.requests.times()
    assert len(times) == 6 and c.counter.retries == 3
    assert windows_respected(times, limit=2, period=0.5)


def test_sync_client_rate_limit_measured_at_the_server():
    market = TinyMarket()
    with PolygonServer(market, api_key=KEY, today=market.sessions[-1]) as server:
        with SyncPolygonClient(KEY, server.url, rate_limit=3, rate_period=0.5) as c:
            for d in market.sessions[:7]:
                c.get_grouped_daily(d)
        times = server.requests.times()
    assert len(times) == 7 and windows_respected(times, limit=3, period=0.5)
