"""The Polygon client (async and sync) and PolygonSource against the loopback server over a tiny hand-checkable market.

Every count asserted here is read from the server's request log and the client's counter, never assumed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import socket

import numpy as np
import pandas as pd
import pytest

from technic_v4.config import load_settings
from technic_v4.data.columns import DAY_COLUMNS, REFERENCE_COLUMNS
from technic_v4.data.polygon import NotFound, PolygonClient, SyncPolygonClient
from technic_v4.data.polygon.policy import Request, next_page
from technic_v4.data.polygon.source import PolygonSource
from technic_v4.errors import AuthError, RetryExhausted
from tests.support.fake_market import TinyMarket
from tests.support.polygon_server import MSG_403, PolygonServer

KEY = "k3y-5ecret-0123456789"
HOLIDAY = dt.date(2024, 1, 15)  # Martin Luther King Jr. Day: XNYS closed
SATURDAY = dt.date(2024, 1, 6)


@pytest.fixture
def market():
    return TinyMarket()


@pytest.fixture
async def server(market):
    async with PolygonServer(market, api_key=KEY, today=market.sessions[-1], page_cap=2, retry_after=0.01) as srv:
        yield srv


@pytest.fixture
async def client(server):
    async with PolygonClient(KEY, server.url, backoff_base=0.002, timeout=5) as c:
        yield c


def same_counts(client, server) -> None:
    """The client counted exactly the requests the server received, per endpoint."""
    assert client.counter.attempts == server.requests.total
    assert dict(client.counter.by_endpoint) == dict(server.requests.received)


# ---- parsing, one endpoint at a time --------------------------------------------------------------------------------


async def test_grouped_daily_is_raw_and_matches_the_market(client, server, market):
    before_split = market.sessions[3]
    got = await client.get_grouped_daily(before_split)
    pd.testing.assert_frame_equal(got, market.day(before_split, adjusted=False))
    assert list(got.columns) == list(DAY_COLUMNS)
    adjusted_close = market.day(before_split, adjusted=True).set_index("symbol").loc["AAA", "close"]
    assert got.set_index("symbol").loc["AAA", "close"] == pytest.approx(2 * adjusted_close)  # raw = pre-split price
    assert server.requests.paths("grouped_daily") == [f"/v2/aggs/grouped/locale/us/market/stocks/{before_split}"]
    same_counts(client, server)


@pytest.mark.parametrize("closed", [HOLIDAY, SATURDAY])
async def test_closed_day_is_empty_after_one_request_without_retry(client, server, closed):
    got = await client.get_grouped_daily(closed)
    assert got.empty and list(got.columns) == list(DAY_COLUMNS)
    assert server.requests.total == 1 and client.counter.retries == 0


async def test_source_skips_closed_days_without_a_request(server, client):
    source = PolygonSource(client)
    assert (await source.grouped_daily(HOLIDAY)).empty
    assert (await source.grouped_daily(SATURDAY)).empty
    assert server.requests.total == 0 and source.counter.attempts == 0


async def test_ticker_range_follows_next_url(client, server, market):
    start, end = market.sessions[0], market.sessions[11]
    got = await client.get_ticker_range("ZZZ", start, end)
    expected = market.ticker_range("ZZZ", start, end)
    pd.testing.assert_frame_equal(got, expected)
    assert len(expected) == 6  # ZZZ trades on odd sessions only; its 10 -> 1 reverse split shows in raw prices
    assert got["close"].iloc[-1] > 5 * got["close"].iloc[0]
    assert server.requests.count("range") == math.ceil(len(expected) / 2)  # page_cap=2
    same_counts(client, server)


async def test_range_of_unknown_ticker_is_empty(client):
    got = await client.get_ticker_range("NOPE", dt.date(2024, 1, 2), dt.date(2024, 1, 31))
    assert got.empty


async def test_list_tickers_pages_through_next_url(client, server, market):
    listing = await client.list_tickers()
    assert list(listing["symbol"]) == sorted(market.symbols)
    assert server.requests.count("tickers") == 3  # 6 tickers, 2 per page
    common = await client.list_tickers(ticker_type="CS")
    assert list(common["symbol"]) == ["AAA", "BBB", "ZZZ"]
    same_counts(client, server)


async def test_ticker_details_and_not_found(client, server):
    details = await client.get_ticker_details("AAA")
    assert (details.ticker, details.sic_code, details.shares_outstanding) == ("AAA", "3571", 1.0e9)
    with pytest.raises(NotFound, match="Ticker not found"):
        await client.get_ticker_details("NOPE")
    assert server.requests.count("ticker_details") == 2  # a 404 is an answer, not retried


async def test_splits_since(client, market):
    all_splits = await client.list_splits()
    assert list(all_splits["symbol"]) == ["ZZZ", "AAA"] and list(all_splits["split_from"]) == [10.0, 1.0]
    recent = await client.list_splits(since=market.split_day)
    assert list(recent["symbol"]) == ["AAA"] and recent["split_to"].iloc[0] == 2.0


async def test_snapshot(client, market):
    snap = await client.get_snapshot()
    expected = market.snapshot(market.sessions[-1], fraction=1.0)
    assert list(snap["symbol"]) == list(expected["symbol"])
    np.testing.assert_allclose(snap["close"], expected["close"])
    np.testing.assert_allclose(snap["volume"], expected["volume"])
    assert snap.attrs["bar_source"] == {"day": len(expected)}


# ---- retries ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [429, 500, 502, 503, 504, "null", "truncate", "drop"])
async def test_transient_faults_are_retried(client, server, market, fault):
    day = market.sessions[5]
    server.fail(server.grouped_path(day), fault, times=2)
    got = await client.get_grouped_daily(day)
    pd.testing.assert_frame_equal(got, market.day(day))
    assert server.requests.total == 3
    assert (client.counter.attempts, client.counter.retries) == (3, 2)


async def test_a_hanging_answer_times_out_and_is_retried(server, market):
    server.faults.hang_seconds = 5
    server.fail("grouped_daily", "hang", times=1)
    async with PolygonClient(KEY, server.url, backoff_base=0.002, timeout=0.3) as c:
        got = await c.get_grouped_daily(market.sessions[2])
    assert len(got) == len(market.day(market.sessions[2]))
    assert c.counter.by_status["timeout"] == 1 and c.counter.attempts == 2 == server.requests.total


async def test_connection_refused_is_retried_then_exhausted():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with PolygonClient(KEY, f"http://127.0.0.1:{port}", backoff_base=0.001, max_retries=2) as c:
        with pytest.raises(RetryExhausted, match="connection_error") as info:
            await c.get_grouped_daily(dt.date(2024, 1, 3))
    assert c.counter.attempts == 3 and c.counter.retries == 2
    assert KEY not in str(info.value)


async def test_persistent_5xx_exhausts_the_retry_budget(server, market):
    server.fail("grouped_daily", 503)
    async with PolygonClient(KEY, server.url, backoff_base=0.001, max_retries=3) as c:
        with pytest.raises(RetryExhausted, match="4 attempts") as info:
            await c.get_grouped_daily(market.sessions[1])
    assert info.value.status == 503 and info.value.path.endswith(str(market.sessions[1]))
    assert server.requests.total == 4 and (c.counter.attempts, c.counter.retries) == (4, 3)


async def test_retry_after_is_honoured(client, server, market):
    server.fail("grouped_daily", 429, times=1, retry_after=0.4)
    await client.get_grouped_daily(market.sessions[1])
    first, second = server.requests.times("grouped_daily")
    assert second - first >= 0.4  # the client's own backoff here is ~2 ms


# ---- auth: never retried, server's words, no key anywhere -------------------------------------------------------------


async def test_unknown_key_is_401_auth_error_without_retry(server, market):
    async with PolygonClient("wrong-key", server.url, backoff_base=0.001) as c:
        with pytest.raises(AuthError, match="HTTP 401 Unknown API Key") as info:
            await c.get_grouped_daily(market.sessions[1])
    assert info.value.status == 401 and server.requests.total == 1 and c.counter.retries == 0


async def test_not_authorized_is_403_auth_error_with_the_servers_message(client, server):
    server.not_authorized.add("snapshot")
    with pytest.raises(AuthError) as info:
        await client.get_snapshot()
    assert info.value.status == 403 and MSG_403 in str(info.value)
    assert server.requests.total == 1 and client.counter.retries == 0


@pytest.mark.parametrize("auth", ["header", "query"])
async def test_the_key_never_shows_in_errors_reprs_or_logs(server, market, caplog, auth):
    caplog.set_level(logging.DEBUG)
    server.leak_key_in_next_url = True  # a proxy echoing apiKey into next_url must not make us log or resend it
    server.fail("splits", 500, times=1)
    errors = []
    async with PolygonClient(KEY, server.url, backoff_base=0.001, max_retries=1, auth=auth) as c:
        source = PolygonSource(c)
        assert len(await c.list_tickers()) == 6 and len(await c.list_splits()) == 2
        server.fail("grouped_daily", 429)
        server.not_authorized.add("snapshot")
        for call in (c.get_grouped_daily(market.sessions[1]), c.get_snapshot(), c.get_ticker_details("NOPE")):
            with pytest.raises(Exception) as info:
                await call
            errors.append(info.value)
        texts = [repr(c), repr(source), repr(c._http), str(c.counter.snapshot()), caplog.text]
    texts += [str(e) for e in errors] + [repr(e) for e in errors]
    assert [type(e).__name__ for e in errors] == ["RetryExhausted", "AuthError", "NotFound"]
    assert "retry 1/1" in caplog.text  # the logs were captured, and they are clean
    for text in texts:
        assert KEY not in text


def test_next_page_drops_a_leaked_key_and_keeps_our_base():
    first = Request(kind="tickers", path="/v3/reference/tickers", params=(("limit", "2"),))
    following = next_page(first, {"next_url": f"https://api.polygon.io/v3/reference/tickers?cursor=abc&apiKey={KEY}"})
    assert following.path == "/v3/reference/tickers" and following.params == (("cursor", "abc"),)
    assert next_page(following, {"results": []}) is None


# ---- counting and concurrency ------------------------------------------------------------------------------------------


async def test_counter_matches_the_server_log_under_random_faults(server, market):
    faults = server.faults
    faults.fail_rate, faults.null_rate, faults.truncate_rate, faults.drop_rate = 0.25, 0.1, 0.1, 0.05
    faults.hang_rate, faults.hang_seconds = 0.03, 1.0
    server.fail("grouped_daily", "hang", times=1)  # at least one of each kind whatever the random draws
    server.fail("grouped_daily", "drop", times=1)
    days = market.sessions[:40]
    async with PolygonClient(KEY, server.url, backoff_base=0.001, max_retries=12, max_concurrency=8, timeout=0.5) as c:
        frames = await asyncio.gather(*(c.get_grouped_daily(d) for d in days))
    assert [len(f) for f in frames] == [len(market.day(d)) for d in days]
    same_counts(c, server)
    assert c.counter.retries == server.requests.total - len(days) > 0
    assert sum(n for (kind, status), n in server.requests.by_status.items() if status != 200) == c.counter.retries
    assert c.counter.by_status["timeout"] >= 1 and c.counter.by_status["payload_error"] >= 1


async def test_concurrency_is_bounded(server, market):
    server.faults.latency_ms = 50
    async with PolygonClient(KEY, server.url, max_concurrency=3) as c:
        await asyncio.gather(*(c.get_ticker_range("AAA", d, d) for d in market.sessions[:12]))
    assert server.requests.peak_in_flight == 3


# ---- PolygonSource --------------------------------------------------------------------------------------------------


async def test_source_reference_combines_listing_and_details(server, client):
    source = PolygonSource(client)
    ref = await source.reference()
    assert list(ref.columns[: len(REFERENCE_COLUMNS)]) == list(REFERENCE_COLUMNS)
    assert list(ref["symbol"]) == ["AAA", "BBB", "CCC", "SPY", "ZZZ"]  # CS, ADRC, ETF; the warrant is left out
    row = ref.set_index("symbol")
    assert row.loc["AAA", "sector"] == "Information Technology" and row.loc["AAA", "industry"] == "Electronic Computers"
    assert row.loc["CCC", "sector"] == "Health Care" and row.loc["ZZZ", "sector"] == "Energy"
    assert row.loc["SPY", "sector"] is None and row.loc["BBB", "shares_outstanding"] == 5.0e8
    # 3 listings (CS: 2 pages, ADRC: 1, ETF: 1) + one details request per symbol
    assert server.requests.received == {"tickers": 4, "ticker_details": 5}
    assert source.counter is client.counter and source.counter.attempts == 9


async def test_source_from_settings_shares_the_http_counter(server, market):
    settings = load_settings(POLYGON_API_KEY=KEY, POLYGON_BASE_URL=server.url, TECHNIC_MAX_RETRIES=2)
    async with PolygonSource.from_settings(settings) as source:
        assert source.name == "polygon" and source.simulated is False
        assert source.counter is source.client._http.counter
        server.fail("grouped_daily", 500, times=1)
        assert len(await source.grouped_daily(market.sessions[1])) > 0
        assert len(await source.splits(since=market.split_day)) == 1
        assert len(await source.ticker_range("BBB", market.sessions[0], market.sessions[4])) == 5
        assert len(await source.snapshot()) > 0
    # grouped 2 (one retry) + splits 1 + range 3 pages (page_cap=2) + snapshot 1
    assert source.counter.attempts == server.requests.total == 7 and source.counter.retries == 1


# ---- the synchronous twin --------------------------------------------------------------------------------------------


def test_sync_client_parses_retries_and_fails_like_the_async_one():
    market = TinyMarket()
    with PolygonServer(market, api_key=KEY, today=market.sessions[-1], page_cap=2, retry_after=0.01) as server:
        server.faults.hang_seconds = 2
        with SyncPolygonClient(KEY, server.url, backoff_base=0.001, timeout=0.3) as c:
            for fault in ("truncate", 429, "drop", "hang"):
                server.fail("grouped_daily", fault, times=1)
            pd.testing.assert_frame_equal(c.get_grouped_daily(market.sessions[2]), market.day(market.sessions[2]))
            assert len(c.list_tickers()) == 6
            assert c.get_ticker_range("ZZZ", market.sessions[0], market.sessions[5]).shape[0] == 3
            with pytest.raises(AuthError, match="HTTP 403"):
                server.not_authorized.add("splits")
                c.list_splits()
        assert c.counter.attempts == server.requests.total and c.counter.retries == 4
        assert c.counter.by_status["timeout"] == 1 and c.counter.by_status["payload_error"] == 1
        with SyncPolygonClient("bad", server.url) as bad, pytest.raises(AuthError, match="Unknown API Key"):
            bad.get_grouped_daily(market.sessions[2])


@pytest.mark.parametrize(
    "sic, sector",
    [("3571", "Information Technology"), ("2834", "Health Care"), ("1311", "Energy"), ("6022", "Financials"),
     ("6798", "Real Estate"), ("4911", "Utilities"), ("4922", "Energy"), ("1531", "Consumer Discretionary"),
     ("3634", "Consumer Discretionary"), ("3621", "Industrials"), ("7372", "Information Technology"), (None, None),
     ("abc", None), ("9999", None)],
)
def test_sector_from_sic(sic, sector):
    from technic_v4.data.polygon.sectors import sector_for_sic

    assert sector_for_sic(sic) == sector


def test_one_client_across_two_asyncio_runs():
    market = TinyMarket()
    with PolygonServer(market, api_key=KEY, today=market.sessions[-1]) as server:
        client = PolygonClient(KEY, server.url)
        first = asyncio.run(client.get_grouped_daily(market.sessions[1]))  # session left open when that loop closed
        second = asyncio.run(client.get_grouped_daily(market.sessions[2]))
        asyncio.run(client.aclose())
    assert len(first) and len(second) and client.counter.attempts == server.requests.total == 2


# ---- Polygon's documented answers (fixtures mirroring the URL), parsed without HTTP -------------------------------------

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "polygon"


def replay(call, *pages: str):
    """Judge each stored body as the transport would (policy.classify), then parse it with the call's parser."""
    from technic_v4.data.polygon.policy import RawResponse, Redactor, classify

    payloads = [classify(call.request, RawResponse(200, (FIXTURES / p).read_bytes()), Redactor(KEY)) for p in pages]
    return call.parse(payloads if call.paginated else payloads[0])


def test_documented_answers_parse():
    from technic_v4.data.polygon import aggs, reference, snapshot

    grouped = replay(aggs.grouped_daily("2020-10-14"), "v2/aggs/grouped/locale/us/market/stocks/2020-10-14.json")
    assert list(grouped["symbol"]) == ["KIMpL", "TANH", "VSAT"] and grouped["volume"].iloc[1] == 25933.6
    weekend = replay(aggs.grouped_daily("2020-10-17"), "v2/aggs/grouped/locale/us/market/stocks/2020-10-17.json")
    assert weekend.empty
    bars = replay(aggs.ticker_range("AAPL", "2020-01-02", "2020-01-03"), "v2/aggs/ticker/AAPL/range/1/day/2020-01-02/2020-01-03.json")
    assert list(bars["date"].dt.date) == [dt.date(2020, 1, 2), dt.date(2020, 1, 3)] and bars["close"].iloc[0] == 75.0875
    snap = replay(snapshot.all_tickers(), "v2/snapshot/locale/us/markets/stocks/tickers.json")
    assert snap.set_index("symbol")["close"].to_dict() == {"BCAT": 20.506, "PREM": 12.5}  # pre-market: previous day
    assert snap.attrs["bar_source"] == {"day": 1, "prevDay": 1}
    details = replay(reference.ticker_details("AAPL"), "v3/reference/tickers/AAPL.json")
    assert (details.shares_outstanding, details.sic_code, details.list_date) == (16406400000, "3571", "1980-12-12")
    listing = replay(reference.list_tickers(), "v3/reference/tickers.json")
    assert listing.iloc[0][["symbol", "type", "primary_exchange"]].tolist() == ["A", "CS", "XNYS"]
    splits = replay(reference.list_splits(), "v3/reference/splits.json")
    assert splits["execution_date"].dt.date.tolist() == [dt.date(2005, 2, 28), dt.date(2020, 8, 31)]
    assert splits[["split_from", "split_to"]].iloc[1].tolist() == [1.0, 4.0]
