"""Settled vs provisional days (issue 13): an injected clock, the real Polygon client, the loopback server.

The server serves the last session as still being revised (late trades: 90 % of the volume, an earlier close) until the
test "settles" it; the store must keep that day provisional, refetch it once after the settle time (20:30 New York)
with the final close and volume, and never again.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from technic_v4.calendar import NY, previous_trading_days
from technic_v4.data.polygon.client import PolygonClient
from technic_v4.data.polygon.source import PolygonSource
from technic_v4.data.simulated import SimulatedMarket
from technic_v4.pipeline.fetch import ensure_days, is_settled, settles_at
from technic_v4.store.bar_store import BarStore
from tests.support.polygon_server import PolygonServer

DAY = dt.date(2026, 10, 14)
DAYS = previous_trading_days(DAY, 3)
KEY = "pk_settle_TEST"


def ny(day: dt.date, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm), tzinfo=NY)


@pytest.fixture(scope="module")
def market():
    return SimulatedMarket(seed=7, n_symbols=300, end=DAY)


def fetch(server, store, now):
    async def go():
        async with PolygonSource(PolygonClient(KEY, server.url)) as source:
            return await ensure_days(store, source, DAYS, now=now)

    mark = server.requests.mark()
    report = asyncio.run(go())
    return report, server.requests.since(mark)["grouped_daily"]


def closes(frame: pd.DataFrame) -> pd.Series:
    return frame.set_index("symbol")["close"].sort_index()


def test_settle_time_is_2030_new_york_on_the_session_date():
    assert settles_at(DAY) == ny(DAY, 20, 30)
    assert not is_settled(DAY, ny(DAY, 16, 15)) and is_settled(DAY, ny(DAY, 21))
    assert is_settled(DAY, dt.datetime(2026, 10, 15, 0, 31, tzinfo=dt.timezone.utc))  # 20:31 New York (EDT)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_settled(DAY, dt.datetime(2026, 10, 14, 21))


def test_provisional_day_is_refetched_once_after_settling_then_never(market, tmp_path):
    store = BarStore(tmp_path)
    final_day = market.day(DAY)
    with PolygonServer(market, api_key=KEY, today=DAY) as server:
        server.endpoints.provisional[DAY] = 0.9  # late trades still arriving

        report, calls = fetch(server, store, ny(DAY, 16, 15))
        assert calls == 3 and report.provisional == [DAY] and report.fetched == DAYS
        assert [store.day_info(d)["final"] for d in DAYS] == [True, True, False]
        early = store.read_day(DAY)
        assert early["volume"].sum() == pytest.approx(0.9 * final_day["volume"].sum(), rel=1e-3)
        assert (closes(early) != closes(final_day)).mean() > 0.9  # the close moved with the late trades
        assert store.day_info(DAY)["fetched_at"] == ny(DAY, 16, 15)

        # before the settle time a rescan fetches the day again (never a cache hit) and it stays provisional
        report, calls = fetch(server, store, ny(DAY, 19, 0))
        assert calls == 1 and report.provisional == [DAY] and report.settled == []

        del server.endpoints.provisional[DAY]  # the bar has settled at Polygon
        report, calls = fetch(server, store, ny(DAY, 21, 0))
        assert calls == 1 and report.fetched == [DAY] and report.settled == [DAY] and report.provisional == []
        info = store.day_info(DAY)
        assert info["final"] and info["fetched_at"] == ny(DAY, 21, 0)
        settled = store.read_day(DAY)
        np.testing.assert_allclose(closes(settled), closes(final_day))
        np.testing.assert_allclose(settled.set_index("symbol")["volume"].sort_index(),
                                   final_day.set_index("symbol")["volume"].sort_index())

        report, calls = fetch(server, store, ny(DAY + dt.timedelta(days=1), 16, 15))
        assert calls == 0 and report.fetched == [] and report.provisional == []


def test_flow_labels_a_provisional_day_and_settles_it_through_the_month_cache(
        prefect_api, use_loopback_polygon, market, monkeypatch):
    """The scan flow with the settle clock injected (pipeline.fetch.utcnow, read by ensure_days and the month cache
    key): 16:15 provisional and reported; 21:00 one grouped-daily call, final; the next morning none."""
    from technic_v4.api import ScanConfig, run_scan_output
    from technic_v4.pipeline import fetch

    clock = {"now": ny(DAY, 16, 15)}
    monkeypatch.setattr(fetch, "utcnow", lambda: clock["now"])
    with PolygonServer(market, api_key=KEY, today=DAY) as server:
        data_dir = use_loopback_polygon(server, KEY)
        server.endpoints.provisional[DAY] = 0.9

        def scan():
            mark = server.requests.mark()
            out = run_scan_output(ScanConfig.build(as_of=DAY, lookback_days=30, allow_short_history=True))
            return out, server.requests.since(mark)["grouped_daily"]

        early, calls = scan()
        assert calls == 30 and early.summary["provisional_days"] == [DAY.isoformat()]
        assert f"PROVISIONAL bars for {DAY}" in early.message
        assert not BarStore(data_dir).day_info(DAY)["final"]

        del server.endpoints.provisional[DAY]
        clock["now"] = ny(DAY, 21, 0)
        settled, calls = scan()
        assert calls == 1 and settled.summary["provisional_days"] == [] and "PROVISIONAL" not in settled.message
        assert settled.summary["metrics"]["bars_fetched"] == len(market.day(DAY))  # not counted as a cache hit
        assert BarStore(data_dir).day_info(DAY)["final"]

        clock["now"] = ny(DAY + dt.timedelta(days=1), 9, 0)
        _, calls = scan()
        assert calls == 0
