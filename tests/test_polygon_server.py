"""The loopback server speaks Polygon: raw JSON shapes and status codes, fault injection, the CLI, and the official
`massive` client (Polygon's own) reading it without complaint. Also the real SimulatedMarket behind it."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from zoneinfo import ZoneInfo

import aiohttp
import numpy as np
import pandas as pd
import pytest

from technic_v4.data.polygon import PolygonClient
from tests.support.fake_market import TinyMarket
from tests.support.polygon_server import MSG_403, MSG_429, PolygonServer

KEY = "srv-key-42"
AUTH = {"Authorization": f"Bearer {KEY}"}
NY = ZoneInfo("America/New_York")
HOLIDAY = dt.date(2024, 1, 15)


@pytest.fixture
def market():
    return TinyMarket()


@pytest.fixture
async def server(market):
    async with PolygonServer(market, api_key=KEY, today=market.sessions[-1], retry_after=0.5) as srv:
        yield srv


async def get(server, path: str, headers=AUTH, **params) -> tuple[int, dict | bytes, dict]:
    async with aiohttp.ClientSession() as s, s.get(server.url + path, params=params, headers=headers) as r:
        body = await r.read()
        try:
            return r.status, await r.json(content_type=None), dict(r.headers)
        except ValueError:
            return r.status, body, dict(r.headers)


# ---- shapes ------------------------------------------------------------------------------------------------------


async def test_grouped_daily_shape(server, market):
    day = market.sessions[4]
    status, body, _ = await get(server, f"/v2/aggs/grouped/locale/us/market/stocks/{day}", adjusted="false")
    assert status == 200
    assert set(body) == {"queryCount", "resultsCount", "adjusted", "results", "status", "request_id", "count"}
    assert body["status"] == "OK" and body["adjusted"] is False and body["resultsCount"] == len(body["results"]) == 5
    bar = body["results"][0]
    assert set(bar) == {"T", "o", "h", "l", "c", "v", "vw", "t", "n"} and isinstance(bar["v"], int)
    stamp = dt.datetime.fromtimestamp(bar["t"] / 1000, NY)
    assert (stamp.date(), stamp.hour) == (day, 16)  # grouped bars are stamped at the session close


async def test_holiday_has_no_results_key(server):
    status, body, _ = await get(server, f"/v2/aggs/grouped/locale/us/market/stocks/{HOLIDAY}")
    assert status == 200 and body["resultsCount"] == 0 and "results" not in body and body["status"] == "OK"


async def test_range_shape_and_cursor_pagination(server, market):
    start, end = market.sessions[0], market.sessions[9]
    path = f"/v2/aggs/ticker/AAA/range/1/day/{start}/{end}"
    status, body, _ = await get(server, path, adjusted="false", limit="4")
    assert status == 200 and body["ticker"] == "AAA" and body["resultsCount"] == 4
    stamp = dt.datetime.fromtimestamp(body["results"][0]["t"] / 1000, NY)
    assert (stamp.date(), stamp.hour) == (start, 0)  # range bars are stamped at the window start
    seen = len(body["results"])
    while "next_url" in body:
        assert body["next_url"].startswith(server.url + path + "?cursor=")
        status, body, _ = await get(server, body["next_url"][len(server.url):])
        seen += len(body["results"])
    assert seen == 10


async def test_reference_shapes(server):
    status, body, _ = await get(server, "/v3/reference/tickers", type="CS", limit="2")
    assert status == 200 and body["count"] == 2 and "next_url" in body
    assert {"ticker", "name", "market", "locale", "primary_exchange", "type", "active", "currency_name"} <= set(body["results"][0])
    status, body, _ = await get(server, "/v3/reference/tickers/BBB")
    assert status == 200 and body["status"] == "OK" and body["results"]["sic_code"] == "6022"
    status, body, _ = await get(server, "/v3/reference/splits", ticker="AAA")
    assert body["results"][0]["split_from"] == 1 and body["results"][0]["split_to"] == 2
    status, body, _ = await get(server, "/v2/snapshot/locale/us/markets/stocks/tickers")
    item = body["tickers"][0]
    assert {"ticker", "day", "min", "prevDay", "updated", "todaysChange", "todaysChangePerc"} <= set(item)


async def test_error_shapes(server, market):
    status, body, _ = await get(server, "/v3/reference/tickers/NOPE")
    assert status == 404 and body["status"] == "NOT_FOUND" and body["message"] == "Ticker not found."
    status, body, _ = await get(server, "/v2/aggs/grouped/locale/us/market/stocks/not-a-date")
    assert status == 400 and body["status"] == "ERROR" and "date" in body["error"]
    status, body, _ = await get(server, "/v9/nothing/here")
    assert status == 404 and body["status"] == "NOT_FOUND"
    status, body, _ = await get(server, "/v3/reference/tickers", headers={"Authorization": "Bearer nope"})
    assert status == 401 and body == {"status": "ERROR", "request_id": body["request_id"], "error": "Unknown API Key"}
    status, body, _ = await get(server, "/v3/reference/tickers", headers={}, apiKey=KEY)  # query-parameter auth
    assert status == 200
    server.not_authorized.add("splits")
    status, body, _ = await get(server, "/v3/reference/splits")
    assert status == 403 and body["status"] == "NOT_AUTHORIZED" and body["message"] == MSG_403 and body["request_id"]


async def test_fault_answers(server, market):
    path = f"/v2/aggs/grouped/locale/us/market/stocks/{market.sessions[1]}"
    server.fail(path, 429, times=1)
    status, body, headers = await get(server, path)
    assert status == 429 and body["status"] == "ERROR" and body["error"] == MSG_429 and headers["Retry-After"] == "0.5"
    server.fail(path, "null", times=1)
    status, body, _ = await get(server, path)
    assert status == 200 and body["results"] is None
    server.fail(path, "truncate", times=1)
    status, body, _ = await get(server, path)
    assert status == 200 and isinstance(body, bytes) and body.startswith(b"{")  # not parseable JSON
    server.fail(path, 502, times=1)
    status, body, _ = await get(server, path)
    assert status == 502 and b"Bad Gateway" in body
    server.fail(path, "drop", times=1)
    with pytest.raises(aiohttp.ClientPayloadError):
        await get(server, path)
    assert server.requests.count() == 5
    assert server.requests.count("grouped_daily", "truncate") == 1 and server.requests.count(status=429) == 1


async def test_latency_knob(server, market):
    server.faults.latency_ms = 150
    t0 = time.perf_counter()
    await get(server, "/v3/reference/tickers/AAA")
    assert time.perf_counter() - t0 >= 0.15


async def test_leaked_key_in_next_url_knob(server):
    server.leak_key_in_next_url = True
    _, body, _ = await get(server, "/v3/reference/tickers", limit="2")
    assert body["next_url"].endswith(f"&apiKey={KEY}")


# ---- the real simulated market behind it ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_market():
    from technic_v4.data.simulated import SimulatedMarket

    return SimulatedMarket(seed=11, n_symbols=300, start=dt.date(2025, 6, 2), end=dt.date(2025, 9, 30))


async def test_simulated_market_over_http_round_trips(sim_market):
    async with PolygonServer(sim_market, api_key=KEY, today=sim_market.end) as server:
        async with PolygonClient(KEY, server.url) as c:
            day = sim_market.sessions[20]
            pd.testing.assert_frame_equal(await c.get_grouped_daily(day), sim_market.day(day))
            symbol = sim_market.day(day)["symbol"].iloc[7]
            got = await c.get_ticker_range(symbol, sim_market.sessions[0], sim_market.end)
            pd.testing.assert_frame_equal(got, sim_market.ticker_range(symbol, sim_market.sessions[0], sim_market.end))
            listing = await c.list_tickers()
            assert set(listing["symbol"]) == set(sim_market.reference(as_of=sim_market.end)["symbol"])
            details = await c.get_ticker_details(symbol)
            assert details.shares_outstanding == sim_market.ticker_details(symbol)["share_class_shares_outstanding"]
            splits = await c.list_splits()
            pd.testing.assert_frame_equal(splits, sim_market.splits(until=sim_market.end), check_like=True)
        # nothing is served after the server's today (our client would retry an empty closed session, so ask raw)
        _, body, _ = await get(server, f"/v2/aggs/grouped/locale/us/market/stocks/{sim_market.end + dt.timedelta(days=1)}")
        assert body["resultsCount"] == 0 and "results" not in body


# ---- the official client reads it --------------------------------------------------------------------------------


def test_official_massive_client_reads_the_server(market):
    from massive import RESTClient

    with PolygonServer(market, api_key=KEY, today=market.sessions[-1], page_cap=2) as server:
        rest = RESTClient(api_key=KEY, base=server.url, retries=0)
        day = market.sessions[6]
        bars = rest.get_grouped_daily_aggs(day.isoformat(), adjusted=False)
        expected = market.day(day).set_index("symbol")
        assert sorted(b.ticker for b in bars) == sorted(expected.index)
        for b in bars:
            row = expected.loc[b.ticker]
            assert (b.open, b.high, b.low, b.close, b.volume, b.vwap) == tuple(row[["open", "high", "low", "close", "volume", "vwap"]])
        tickers = list(rest.list_tickers(market="stocks", limit=2))
        assert [t.ticker for t in tickers] == sorted(market.symbols) and server.requests.count("tickers") == 3
        details = rest.get_ticker_details("AAA")
        assert (details.sic_code, details.share_class_shares_outstanding) == ("3571", 1.0e9)
        splits = list(rest.list_splits(limit=1))
        assert [(s.ticker, s.split_from, s.split_to) for s in splits] == [("ZZZ", 10, 1), ("AAA", 1, 2)]
        aggs = list(rest.list_aggs("BBB", 1, "day", market.sessions[0].isoformat(), market.sessions[4].isoformat()))
        assert [a.close for a in aggs] == list(market.ticker_range("BBB", market.sessions[0], market.sessions[4])["close"])
        snap = rest.get_snapshot_all("stocks")
        assert {s.ticker for s in snap} == set(market.day(market.sessions[-1])["symbol"])


# ---- the command line --------------------------------------------------------------------------------------------


def test_cli_serves_a_simulated_market():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.polygon_server", "--port", "0", "--symbols", "200", "--seed", "3",
         "--start", "2025-01-02", "--today", "2025-03-31", "--latency-ms", "5", "--fail-rate", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "SIMULATED" in line and "http://127.0.0.1:" in line, line
        url = line.rsplit(" ", 1)[-1].strip()
        from massive import RESTClient

        bars = RESTClient(api_key="any", base=url, retries=5).get_grouped_daily_aggs("2025-03-31", adjusted=False)
        assert len(bars) > 100 and np.isfinite([b.close for b in bars]).all()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_polygon_source_reference_over_the_simulated_market(sim_market):
    from technic_v4.data.polygon.source import PolygonSource

    async with PolygonServer(sim_market, api_key=KEY, today=sim_market.end) as server:
        async with PolygonSource(PolygonClient(KEY, server.url)) as source:
            ref = await source.reference()
        assert server.requests.count("ticker_details") == len(ref) and source.counter.attempts == server.requests.total
    expected = sim_market.reference(as_of=sim_market.end)
    expected = expected[expected["type"].isin(["CS", "ADRC", "ETF"])].reset_index(drop=True)
    for col in ("symbol", "name", "type", "primary_exchange", "sic_code", "shares_outstanding", "list_date"):
        assert ref[col].fillna(-1).tolist() == expected[col].fillna(-1).tolist(), col
    # SIC -> sector is lossy (SIC 7370 holds both software and interactive media), but close to the simulator's GICS
    assert (ref["sector"].fillna("-") == expected["sector"].fillna("-")).mean() > 0.95
