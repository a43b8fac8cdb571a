"""Issue 13: real Polygon operation within budget, measured with the loopback server's request log.

The real PolygonClient drives a loopback server whose market lists 6,000 CS/ADRC/ETF symbols (plus liquid preferreds
that trade but are not listed). Each "scan" is the scan's data stages as plain pipeline functions, in the flow's
order: listing (weekly) -> grouped daily bars (settle-aware) -> splits -> panel -> ticker details on a budget ->
prescreen. Calls are what the server received, per endpoint; the clock is injected (21:00 New York, settled).
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from technic_v4.calendar import trading_days
from technic_v4.store.bar_store import BarStore
from tests.support.listed_market import OTHER_TYPE, ListedMarket
from tests.support.polygon_server import PolygonServer
from tests.support.budget_scan import KEY, LOOKBACK, budget_scan

slow = pytest.mark.slow  # the cold 300-day backfill of 6,400 simulated symbols takes about a minute

END = dt.date(2026, 10, 30)


@pytest.fixture(scope="module")
def market():
    return ListedMarket(6000, end=END)


@pytest.fixture(scope="module")
def ten_scans(market, tmp_path_factory):
    """A fresh data dir, then ten daily scans one session apart (the first is the cold one)."""
    sessions = trading_days(END - dt.timedelta(days=30), END)[-10:]
    store = BarStore(tmp_path_factory.mktemp("budget"))
    with PolygonServer(market, api_key=KEY, today=sessions[0]) as server:
        return [asyncio.run(budget_scan(server, store, day)) for day in sessions], store


@slow
def test_market_lists_6000_symbols_and_trades_unlisted_preferreds(market):
    ref = market.reference()
    assert len(ref[ref["type"].isin(["CS", "ADRC", "ETF"])]) == 6000
    traded = set(market.day(END)["symbol"])
    assert set(market.other_type_symbols) <= traded and len(market.other_type_symbols) > 0


@slow
def test_first_scan_within_420_calls_and_every_daily_scan_within_100(ten_scans):
    scans, _ = ten_scans
    for s in scans:
        print(s.as_of, s.total, dict(s.calls), "unknown-cap kept", s.unknown_cap_kept, "fetched", s.details_fetched,
              "still missing", s.details_still_missing)
    first = scans[0]
    assert first.calls["grouped_daily"] == LOOKBACK and first.calls["splits"] == 1
    assert first.calls["ticker_details"] == 0  # cold: the auto budget waits for the next scan
    assert first.total <= 420
    for s in scans[1:]:
        assert s.calls["grouped_daily"] == 1, s
        assert s.total <= 100, s
        assert s.calls["ticker_details"] > 80, s  # the rest of the budget goes to details
    assert sum(s.calls["tickers"] for s in scans) == 2 * first.calls["tickers"]  # one weekly refresh, in budget


@slow
def test_details_go_to_the_most_liquid_candidates_first_and_unknown_caps_shrink(ten_scans):
    scans, store = ten_scans
    unknown = [s.unknown_cap_kept for s in scans]
    assert unknown[0] > 1000 and all(b < a for a, b in zip(unknown[1:], unknown[2:]))
    reference, _ = store.read_reference()
    have = reference[reference["details_fetched_at"].notna()]
    assert len(have) == sum(s.details_fetched for s in scans) - len(store.read_state("unlisted_details") or {})


@slow
def test_liquid_unlisted_symbols_are_asked_once_and_remembered_by_type(ten_scans, market):
    _, store = ten_scans
    unlisted = store.read_state("unlisted_details")
    assert unlisted and {v["type"] for v in unlisted.values()} == {OTHER_TYPE}
    assert set(unlisted) <= set(market.other_type_symbols)


def test_flow_reports_unknown_caps_and_spends_the_details_budget(prefect_api, use_loopback_polygon, tmp_path):
    """The real scan flow over a small loopback market: cold scan no details, next session the budget's worth."""
    from technic_v4.api import ScanConfig, run_scan_output
    from technic_v4.data.simulated import SimulatedMarket

    day1, day2 = dt.date(2026, 10, 13), dt.date(2026, 10, 14)
    market = SimulatedMarket(seed=7, n_symbols=400, end=day2)
    with PolygonServer(market, api_key=KEY, today=day1) as server:
        use_loopback_polygon(server, KEY)
        config = dict(lookback_days=40, allow_short_history=True)
        cold = run_scan_output(ScanConfig.build(as_of=day1, **config))
        assert cold.summary["metrics"]["api_calls_by_endpoint"].get("ticker_details", 0) == 0
        unknown = cold.summary["prescreen"]["kept_flagged"]["market_cap_unknown"]
        assert unknown > 20 and f"market cap unknown for {unknown} symbols" in cold.message
        assert cold.results["MarketCapUnknown"].sum() == unknown and cold.results["MarketCap"].isna().sum() >= unknown

        server.endpoints.today = day2
        warm = run_scan_output(ScanConfig.build(as_of=day2, **config))
        m = warm.summary["metrics"]
        assert m["api_calls"] <= 100 and m["api_calls_by_endpoint"]["grouped_daily"] == 1
        fetched = m["api_calls_by_endpoint"]["ticker_details"]
        assert fetched == warm.summary["reference"]["details_fetched"] > 0
        assert f"{fetched} details fetched this scan" in warm.message
        assert warm.summary["prescreen"]["kept_flagged"]["market_cap_unknown"] < unknown


@slow
def test_flow_first_scan_and_five_daily_scans_within_budget(prefect_api, use_loopback_polygon, market):
    """The real scan flow, default settings, 6,000 listed symbols: cold scan <= 420 calls, then five daily scans
    (as_of one session later each time) <= 100 calls each, counted by the server."""
    from technic_v4.api import ScanConfig, run_scan_output

    sessions = trading_days(END - dt.timedelta(days=14), END)[-6:]
    with PolygonServer(market, api_key=KEY, today=sessions[0]) as server:
        use_loopback_polygon(server, KEY)
        totals = []
        for day in sessions:
            server.endpoints.today, mark = day, server.requests.mark()
            out = run_scan_output(ScanConfig.build(as_of=day))
            calls = server.requests.since(mark)
            totals.append(sum(calls.values()))
            print(day, sum(calls.values()), dict(calls), out.message.splitlines()[-2])
            assert out.summary["metrics"]["api_calls"] == sum(calls.values())  # the flow counts what the server saw
    assert totals[0] <= 420 and all(t <= 100 for t in totals[1:]), totals


@slow
def test_market_caps_known_for_all_kept_symbols_after_37_scans(market, tmp_path):
    """Scan every session from a fresh data dir until no kept symbol has an unknown market cap. A 30-session lookback
    keeps the test short: the candidates come from the 20-day window, so the count is the 300-day one's."""
    store = BarStore(tmp_path)
    sessions = trading_days(dt.date(2026, 9, 1), END)
    with PolygonServer(market, api_key=KEY, today=sessions[0]) as server:
        for n, day in enumerate(sessions, 1):
            scan = asyncio.run(budget_scan(server, store, day, lookback=30))
            assert scan.total <= 100 or n == 1
            if n > 1 and scan.unknown_cap_kept == 0:
                break
    print(f"market caps known for every kept symbol after {n} scans ({scan.kept} kept)")
    assert scan.unknown_cap_kept == 0 and n == 37
