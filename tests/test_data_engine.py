"""Seed API (technic_v4.data_engine, code in technic_v4.data.polygon.batch) against the loopback server: per-symbol (async, sync, wrapped) and per-day paths."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pandas as pd
import pytest

from technic_v4.data.polygon import batch as data_engine
from technic_v4.config import load_settings
from technic_v4.data.polygon import PolygonClient
from technic_v4.data.polygon.batch import (
    batch_fetch_async,
    batch_fetch_sync,
    fetch_grouped_days,
    fetch_grouped_days_async,
    fetch_price_async,
    get_prices,
    get_prices_async_wrapper,
)
from technic_v4.errors import AuthError, ConfigError
from tests.support.fake_market import TinyMarket
from tests.support.polygon_server import PolygonServer

KEY = "engine-key-77"
SYMBOLS = ["AAA", "BBB", "CCC", "SPY", "ZZZ"]


@pytest.fixture
def market():
    return TinyMarket()


@pytest.fixture
def threaded_server(market):
    """In its own thread: the sync paths and the wrapper (which blocks the calling loop) need that."""
    with PolygonServer(market, api_key=KEY, today=market.sessions[-1], retry_after=0.01) as srv:
        yield srv


def fast(server) -> dict:
    return {"api_key": KEY, "base_url": server.url, "backoff_base": 0.001}


def assert_matches_market(result, market, start, end, symbols=SYMBOLS):
    assert list(result.frames) == symbols and not result.failed
    for s in symbols:
        pd.testing.assert_frame_equal(result.frames[s], market.ticker_range(s, start, end))


async def test_fetch_price_async_takes_an_open_client(market, threaded_server):
    start, end = market.sessions[0], market.sessions[9]
    async with PolygonClient(KEY, threaded_server.url) as session:
        got = await fetch_price_async(session, "BBB", start, end)
    pd.testing.assert_frame_equal(got, market.ticker_range("BBB", start, end))


async def test_batch_fetch_async_one_request_per_symbol(market, threaded_server):
    start, end = market.sessions[0], market.sessions[-1]
    threaded_server.fail("/v2/aggs/ticker/CCC/*", 500, times=2)
    result = await batch_fetch_async(SYMBOLS, start, end, max_concurrency=3, **fast(threaded_server))
    assert_matches_market(result, market, start, end)
    assert result.requests["attempts"] == threaded_server.requests.total == len(SYMBOLS) + 2
    assert result.requests["retries"] == 2 and result.requests["by_endpoint"] == {"range": 7}
    assert threaded_server.requests.peak_in_flight <= 3


async def test_batch_fetch_async_reports_failed_symbols_and_goes_on(market, threaded_server):
    threaded_server.fail("/v2/aggs/ticker/BBB/*", 503)  # always
    result = await batch_fetch_async(SYMBOLS, market.sessions[0], market.sessions[5], max_retries=1, **fast(threaded_server))
    assert list(result.failed) == ["BBB"] and "gave up after 2 attempts" in result.failed["BBB"]
    assert sorted(result.frames) == sorted(set(SYMBOLS) - {"BBB"})
    assert KEY not in result.failed["BBB"]


async def test_batch_fetch_async_stops_on_auth_error(market, threaded_server):
    with pytest.raises(AuthError, match="Unknown API Key"):
        await batch_fetch_async(SYMBOLS, market.sessions[0], market.sessions[5], api_key="bad", base_url=threaded_server.url,
                                max_concurrency=1)
    assert threaded_server.requests.total == 1  # the first 401 stops the batch


def test_batch_fetch_sync_is_the_same_requests_sequentially(market, threaded_server):
    start, end = market.sessions[2], market.sessions[20]
    threaded_server.fail("/v2/aggs/ticker/SPY/*", "truncate", times=1)
    result = batch_fetch_sync(SYMBOLS, start, end, **fast(threaded_server))
    assert_matches_market(result, market, start, end)
    assert result.requests["attempts"] == threaded_server.requests.total == len(SYMBOLS) + 1
    assert threaded_server.requests.peak_in_flight == 1


def test_wrapper_outside_an_event_loop(market, threaded_server):
    start, end = market.sessions[0], market.sessions[7]
    result = get_prices_async_wrapper(SYMBOLS, KEY, start, end, base_url=threaded_server.url)
    assert_matches_market(result, market, start, end)


async def test_wrapper_inside_a_running_event_loop(market, threaded_server):
    start, end = market.sessions[0], market.sessions[7]
    caller = threading.get_ident()
    result = get_prices_async_wrapper(SYMBOLS, KEY, start, end, base_url=threaded_server.url)
    assert_matches_market(result, market, start, end)
    assert threading.get_ident() == caller
    await asyncio.sleep(0)  # this loop is still usable afterwards


def test_get_prices_follows_technic_async_io(market, threaded_server, monkeypatch):
    calls = []
    monkeypatch.setattr(data_engine, "batch_fetch_sync", lambda *a, **k: calls.append("sync") or "sync-result")
    settings = load_settings(POLYGON_API_KEY=KEY, POLYGON_BASE_URL=threaded_server.url, TECHNIC_ASYNC_IO="0")
    assert get_prices(SYMBOLS, market.sessions[0], market.sessions[3], settings=settings) == "sync-result"
    settings = load_settings(POLYGON_API_KEY=KEY, POLYGON_BASE_URL=threaded_server.url, TECHNIC_ASYNC_IO="1")
    result = get_prices(SYMBOLS, market.sessions[0], market.sessions[3], settings=settings)
    assert calls == ["sync"] and sorted(result.frames) == sorted(SYMBOLS)


def test_missing_key_is_a_config_error(monkeypatch):
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="POLYGON_API_KEY"):
        batch_fetch_sync(["AAA"], dt.date(2024, 1, 2), dt.date(2024, 1, 5))


def test_fetch_grouped_days_one_request_per_trading_day(market, threaded_server):
    calendar_days = [market.sessions[0] + dt.timedelta(days=i) for i in range(21)]  # three weeks, MLK day included
    trading = [d for d in calendar_days if d in set(market.sessions)]
    threaded_server.fail("grouped_daily", 429, times=2)
    got = fetch_grouped_days(calendar_days, **fast(threaded_server))
    assert sorted(got.frames) == trading and dt.date(2024, 1, 15) in got.skipped
    assert threaded_server.requests.count("grouped_daily") == len(trading) + 2 == got.requests["attempts"]
    long = got.long()
    assert list(long.columns[:2]) == ["date", "symbol"] and len(long) == sum(len(market.day(d)) for d in trading)
    day = trading[3]
    pd.testing.assert_frame_equal(
        long[long["date"] == pd.Timestamp(day)].drop(columns="date").reset_index(drop=True), market.day(day)
    )


async def test_fetch_grouped_days_async_reuses_a_client(market, threaded_server):
    async with PolygonClient(KEY, threaded_server.url, max_concurrency=4) as c:
        first = await fetch_grouped_days_async(market.sessions[:6], client=c)
        second = await fetch_grouped_days_async(market.sessions[6:10], client=c)
    assert first.requests["attempts"] == 6 and second.requests["attempts"] == 4 and c.counter.attempts == 10


@pytest.mark.benchmark
def test_bench_fetch_quick_run_is_consistent():
    """`make bench` material, never in the default suite: the quick benchmark runs and its figures hang together."""
    from benchmarks import bench_fetch

    result = bench_fetch.run(quick=True)
    a, b = result["async_vs_sync"], result["backfill"]
    assert a["sync"]["requests"] == a["async"]["requests"] == a["symbols"]
    assert b["grouped"]["requests"] == b["trading_days"] and b["per_symbol"]["requests"] == b["symbols"]
    assert "1-year backfill" in bench_fetch.markdown(result)


def test_seed_module_names_stay_importable():
    """The seed's names re-export the moved code: `technic_v4.data_engine` and `technic_v4.scanner_core`."""
    from technic_v4 import api, scanner_core
    from technic_v4 import data_engine as seed

    assert seed.get_prices is get_prices and seed.fetch_grouped_days is fetch_grouped_days
    assert scanner_core.run_scan is api.run_scan and scanner_core.ScanConfig is api.ScanConfig
