"""The universe on a budget (issue 13), unit level: listing cache and merge, the details plan and budget, and what a
details answer does to the stored reference. A small in-memory source counts its calls."""

from __future__ import annotations

import asyncio
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from technic_v4.data.columns import REFERENCE_COLUMNS, conform
from technic_v4.data.source import MarketDataSource
from technic_v4.pipeline import universe
from technic_v4.store.bar_store import BarStore

NOW = dt.datetime(2026, 10, 14, 21, 0, tzinfo=dt.timezone.utc)
SYMBOLS = ("AAA", "BBB", "CCC", "DDD")


def ref_rows(symbols, shares=np.nan, type_="CS") -> pd.DataFrame:
    df = pd.DataFrame({"symbol": list(symbols), "name": [s + " Inc" for s in symbols], "type": type_, "active": True,
                       "primary_exchange": "XNAS", "sic_code": None, "sector": None, "industry": None,
                       "shares_outstanding": shares, "list_date": None})
    return conform(df, REFERENCE_COLUMNS)


class FakeSource(MarketDataSource):
    """Listing without details; details from a table (type, shares), missing symbols answer not_found."""

    name = "fake"
    listing_has_details = False

    def __init__(self, listed=SYMBOLS, details=None):
        super().__init__()
        self.listed = list(listed)
        self.details = details or {s: ("CS", 1e9 + i) for i, s in enumerate(SYMBOLS)}
        self.asked: list[str] = []

    async def grouped_daily(self, day):
        raise NotImplementedError

    async def reference(self):
        raise NotImplementedError

    async def splits(self, since=None):
        raise NotImplementedError

    async def listing(self):
        self.counter.record("tickers", retry=False)
        return ref_rows(self.listed)

    async def ticker_details(self, symbols):
        self.asked += list(symbols)
        rows = []
        for s in symbols:
            self.counter.record("ticker_details", retry=False)
            kind, shares = self.details.get(s, (None, np.nan))
            row = ref_rows([s], shares, kind).assign(details_status="ok" if kind else "not_found",
                                                      sic_description=None)
            rows.append(row)
        return pd.concat(rows, ignore_index=True)


def test_details_budget_auto_fills_the_scan_to_95_calls_and_waits_on_a_cold_scan():
    assert universe.details_budget("auto", calls_so_far=0, cold=True) == 0
    assert universe.details_budget("auto", calls_so_far=2, cold=False) == 93
    assert universe.details_budget("auto", calls_so_far=10, cold=False) == 85  # weekly listing refresh day
    assert universe.details_budget("auto", calls_so_far=140, cold=False) == 0
    assert universe.details_budget(40, calls_so_far=300, cold=True) == 40
    assert universe.details_budget("all", calls_so_far=300, cold=True) is None


def test_plan_missing_most_liquid_first_then_stale_oldest_first_within_budget():
    ref = ref_rows(["AAA", "BBB", "DDD", "EEE"]).assign(details_fetched_at=[
        "2026-09-01T00:00:00+00:00",  # AAA: recent, but split since
        None,  # BBB: never
        "2026-05-01T00:00:00+00:00",  # DDD: older than 90 days
        "2026-10-01T00:00:00+00:00",  # EEE: fresh
    ])
    splits = pd.DataFrame({"symbol": ["AAA"], "execution_date": pd.to_datetime(["2026-09-15"]), "split_from": [1.0],
                           "split_to": [2.0]})
    liquidity = pd.Series({"AAA": 9.0, "BBB": 3.0, "CCC": 5.0, "DDD": 1.0, "EEE": 8.0})
    unlisted = {"CCC": {"type": "PFD", "fetched_at": "2026-10-10T00:00:00+00:00"}}
    plan = universe.plan_detail_fetches(ref, liquidity, now=NOW, budget=None, splits=splits, unlisted=unlisted)
    assert plan.missing == ["BBB"] and plan.stale == ["DDD", "AAA"]  # CCC asked 4 days ago: not again
    plan = universe.plan_detail_fetches(ref, liquidity, now=NOW, budget=2, splits=splits)
    assert plan.missing == ["CCC", "BBB"] and plan.to_fetch == ["CCC", "BBB"] and plan.missing_after == 0
    assert universe.plan_detail_fetches(ref, liquidity, now=NOW, budget=1).missing_after == 1


def test_listing_is_cached_a_week_and_a_refresh_keeps_stored_details(tmp_path):
    store, source = BarStore(tmp_path), FakeSource()
    ref, info = asyncio.run(universe.load_reference(store, source, now=NOW))
    assert info["reference"] == "fetched" and ref["details_fetched_at"].isna().all()
    ref, _ = asyncio.run(universe.fetch_details(store, source, ref, universe.DetailPlan(missing=["AAA", "BBB"]), now=NOW))
    assert source.counter.snapshot()["by_endpoint"] == {"tickers": 1, "ticker_details": 2}

    _, info = asyncio.run(universe.load_reference(store, source, now=NOW + dt.timedelta(days=6)))
    assert info["reference"] == "cache" and source.counter.by_endpoint["tickers"] == 1
    source.listed = ["BBB", "CCC", "DDD"]  # AAA delisted, CCC kept, BBB keeps its details
    ref, info = asyncio.run(universe.load_reference(store, source, now=NOW + dt.timedelta(days=8)))
    assert info["reference"] == "fetched" and source.counter.by_endpoint["tickers"] == 2
    row = ref.set_index("symbol")
    assert list(row.index) == ["BBB", "CCC", "DDD"]
    assert row.loc["BBB", "shares_outstanding"] == 1e9 + 1 and row.loc["BBB", "details_fetched_at"] == NOW.isoformat()
    assert np.isnan(row.loc["CCC", "shares_outstanding"]) and pd.isna(row.loc["CCC", "details_fetched_at"])


def test_details_answers_update_listed_rows_add_listed_types_and_remember_other_types(tmp_path):
    store = BarStore(tmp_path)
    source = FakeSource(listed=["AAA"], details={"AAA": ("CS", 5e8), "NEWC": ("CS", 2e8), "PREF": ("PFD", 1e7)})
    ref, _ = asyncio.run(universe.load_reference(store, source, now=NOW))
    plan = universe.DetailPlan(missing=["AAA", "NEWC", "PREF", "GONE"])
    ref, info = asyncio.run(universe.fetch_details(store, source, ref, plan, now=NOW))
    assert info["details_fetched"] == 4 and info["details_added_to_universe"] == ["NEWC"]
    assert info["details_unlisted_types"] == {"PREF": "PFD", "GONE": None}
    stored, fetched_at = store.read_reference()
    assert list(stored["symbol"]) == ["AAA", "NEWC"] and fetched_at == NOW  # the listing's own age is kept
    assert stored.set_index("symbol").loc["NEWC", "shares_outstanding"] == 2e8
    assert set(store.read_state(universe.UNLISTED_STATE)) == {"PREF", "GONE"}


def test_upkeep_asks_nothing_when_the_listing_carries_details(tmp_path):
    class Carrying(FakeSource):
        listing_has_details = True

    source = Carrying()
    ref, info = asyncio.run(universe.upkeep_details(BarStore(tmp_path), source, ref_rows(SYMBOLS, 1e9),
                                                    pd.Series({"AAA": 1.0}), setting="all", calls_so_far=0, cold=False))
    assert info["details_fetched"] == 0 and source.asked == []


@pytest.mark.parametrize("setting, expected", [("auto", 3), (2, 2), ("all", 4)])
def test_upkeep_spends_the_configured_budget(tmp_path, setting, expected):
    store, source = BarStore(tmp_path), FakeSource()
    ref, _ = asyncio.run(universe.load_reference(store, source, now=NOW))
    liquidity = pd.Series({"DDD": 4.0, "CCC": 3.0, "BBB": 2.0, "AAA": 1.0})
    _, info = asyncio.run(universe.upkeep_details(store, source, ref, liquidity, setting=setting,
                                                  calls_so_far=universe.SCAN_CALL_TARGET - 8, cold=False, now=NOW))
    assert source.asked == ["DDD", "CCC", "BBB", "AAA"][:expected] and info["details_fetched"] == expected


def test_a_reference_stored_before_details_had_ages_is_not_refetched(tmp_path):
    store = BarStore(tmp_path)
    old = ref_rows(["AAA", "BBB"], shares=[1e9, np.nan])  # the former format: full details, one age
    store.write_reference(old, fetched_at=NOW - dt.timedelta(days=2))
    ref, info = asyncio.run(universe.load_reference(store, FakeSource(), now=NOW))
    assert info["reference"] == "cache"
    plan = universe.plan_detail_fetches(ref, pd.Series({"AAA": 2.0, "BBB": 1.0}), now=NOW, budget=None)
    assert plan.missing == ["BBB"] and plan.stale == []
