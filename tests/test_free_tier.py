"""Polygon's free tier and flat files on day one (issue 13), against the loopback server with its request log.

The free tier allows 5 requests a minute. The limiter is the client's own RateLimiter with the minute scaled down to
PERIOD seconds, so the first scan's pacing is measured from the server's arrival timestamps without sleeping through
real minutes; the wall time at a real minute is computed from the measured request count.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from technic_v4.calendar import previous_trading_days
from technic_v4.data.flatfiles import FlatFileSource, write_flat_file
from technic_v4.data.polygon.client import PolygonClient
from technic_v4.data.polygon.source import PolygonSource
from technic_v4.domain.indicators import required_history
from technic_v4.data.simulated import SimulatedMarket
from technic_v4.errors import AuthError
from technic_v4.store.bar_store import BarStore
from tests.support.polygon_server import PolygonServer
from tests.support.budget_scan import KEY, LOOKBACK, budget_scan

AS_OF = dt.date(2026, 10, 14)
FREE_TIER = 5  # requests per minute
PERIOD = 0.1  # seconds standing in for the minute
JITTER = 0.005  # timer slack of asyncio.sleep


@pytest.fixture(scope="module")
def market():
    return SimulatedMarket(seed=7, n_symbols=300, end=AS_OF + dt.timedelta(days=7))


@pytest.fixture
def server(market):
    with PolygonServer(market, api_key=KEY, today=AS_OF) as srv:
        yield srv


def stamp_sends(client, sends: list[float]) -> None:
    """Record when each request leaves: the moment the limiter lets it go (the send follows without another await).
    The server's arrival stamps are not used: in one process the server thread waits on the GIL and stamps late."""
    limiter, acquire = client._http.limiter, client._http.limiter.acquire

    async def acquire_and_stamp():
        await acquire()
        sends.append(time.monotonic())

    limiter.acquire = acquire_and_stamp


def test_first_scan_at_5_per_minute_is_paced_and_takes_about_an_hour(server, tmp_path):
    server.prewarm(previous_trading_days(AS_OF, LOOKBACK))  # the simulator must not hold the GIL mid-scan
    sends: list[float] = []
    scan = asyncio.run(budget_scan(server, BarStore(tmp_path), AS_OF, rate_limit=FREE_TIER, rate_period=PERIOD,
                                   on_client=lambda c: stamp_sends(c, sends)))
    # rate-limited and cold: the sessions the indicators need (260: 52 weekly bars), not all 300 (first_scan_history)
    need = required_history()
    assert len(sends) == scan.total and scan.calls["grouped_daily"] == need and scan.calls["ticker_details"] == 0
    gaps = [later - earlier for earlier, later in zip(sends, sends[FREE_TIER:])]
    assert min(gaps) >= PERIOD - JITTER  # never more than 5 requests sent within one (scaled) minute
    elapsed = sends[-1] - sends[0]
    windows = (scan.total - 1) // FREE_TIER  # full windows the limiter must wait out
    assert elapsed >= windows * PERIOD
    minutes = scan.total / FREE_TIER  # computed: at 5 requests per real minute
    print(f"free tier first scan: {scan.total} requests {dict(scan.calls)}; measured {elapsed:.2f} s at "
          f"{FREE_TIER}/{PERIOD}s ({windows} windows); computed at 5/min: {minutes:.1f} min")
    assert 45 <= minutes <= 65  # about an hour (52 min with the 6,000-symbol listing's 8 pages)


def test_intraday_scan_without_snapshot_entitlement_fails_fast_saying_so(server):
    server.not_authorized.add("snapshot")

    async def go():
        async with PolygonSource(PolygonClient(KEY, server.url, max_retries=5)) as source:
            await source.snapshot()

    with pytest.raises(AuthError, match="plan lacks snapshots") as info:
        asyncio.run(go())
    assert info.value.status == 403 and "intraday=false" in str(info.value)
    assert server.requests.count("snapshot") == 1  # not retried


@pytest.mark.slow  # ~38 s under load; flat files are not a main path (the 5/min pacing test stays default)
def test_flat_files_backfill_leaves_reference_and_splits_to_the_api(server, market, tmp_path):
    """Files for every day but the newest (Polygon publishes a day's file the next morning): the cold scan pays the
    listing pages, splits and one grouped-daily call; the next day's scan stays in the daily budget."""
    days = previous_trading_days(AS_OF, LOOKBACK)
    for day in days[:-1]:
        write_flat_file(tmp_path / "flat", market.day(day), day)
    store = BarStore(tmp_path / "data")

    def files_first(rest):
        return FlatFileSource(tmp_path / "flat", reference_source=rest, rest_fallback=True)

    cold = asyncio.run(budget_scan(server, store, AS_OF, wrap=files_first))
    print("flat-file cold scan:", cold.total, dict(cold.calls))
    assert cold.calls["grouped_daily"] == 1 and cold.calls["splits"] == 1 and cold.calls["ticker_details"] == 0
    assert cold.total <= 30
    assert len(store.stored_days()) == LOOKBACK

    write_flat_file(tmp_path / "flat", market.day(AS_OF), AS_OF)  # published the next morning
    next_day = previous_trading_days(AS_OF + dt.timedelta(days=1), 1)[-1]
    warm = asyncio.run(budget_scan(server, store, next_day, wrap=files_first))
    assert warm.calls["grouped_daily"] == 1 and 0 < warm.total <= 100


def test_fetch_progress_says_how_long_the_backfill_has_left():
    from flows.fetch import FetchProgress

    now = [0.0]
    progress = FetchProgress(300, clock=lambda: now[0])
    for _ in range(30):  # 30 days at the free tier's pace: 5 a minute
        now[0] += 12.0
        progress(0, 300)
    assert progress.eta_text() == "fetched 30 of 300 trading days; about 54 min left"


@pytest.mark.slow  # ~38 s under load; tests/test_reliability_api.py keeps a Polygon-key scan in the default suite
def test_rate_limited_first_scan_loads_what_the_indicators_need_and_the_next_fetches_the_rest(
        prefect_api, use_loopback_polygon, market, server):
    """A rate limit configured (here far above the free tier, so the test does not wait) makes the cold scan load only
    the sessions the indicators need (required_history, 260); the next session's scan fetches the older ones within
    100 calls."""
    need = required_history()
    from technic_v4.api import ScanConfig, run_scan_output

    use_loopback_polygon(server, KEY, TECHNIC_RATE_LIMIT="6000")
    cold = run_scan_output(ScanConfig.build(as_of=AS_OF))
    calls = cold.summary["metrics"]["api_calls_by_endpoint"]
    assert calls["grouped_daily"] == need and server.requests.count("grouped_daily") == need
    short = cold.summary["short_history"]
    assert short["sessions"] == need and short["lookback_days"] == LOOKBACK
    assert short["rows"] == int(cold.results["pct_from_52w_high"].isna().sum()) > 0
    assert f"loaded {need} of 300 sessions" in cold.message

    next_day = previous_trading_days(AS_OF + dt.timedelta(days=1), 1)[-1]
    server.endpoints.today = next_day
    warm = run_scan_output(ScanConfig.build(as_of=next_day))
    m = warm.summary["metrics"]
    # the window moved a session: the older sessions + the new one
    assert m["api_calls_by_endpoint"]["grouped_daily"] == LOOKBACK - need and m["api_calls"] <= 100
    assert warm.summary["short_history"] == {} and warm.results["pct_from_52w_high"].notna().sum() > short["rows"]
