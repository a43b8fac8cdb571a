"""One scan's data stages as plain pipeline functions, in the flow's order, for call-budget tests (issue 13):
listing (weekly) -> grouped daily bars (settle-aware) -> splits -> panel -> ticker details on a budget -> prescreen.
Calls are what the loopback server received, per endpoint; the clock is injected (21:00 New York: settled)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from technic_v4.calendar import NY, previous_trading_days
from technic_v4.data.polygon.client import PolygonClient
from technic_v4.data.polygon.source import PolygonSource
from technic_v4.domain.panel_load import load_panel
from technic_v4.pipeline import universe
from technic_v4.domain.indicators import required_history
from technic_v4.pipeline.fetch import ensure_days, first_scan_history
from technic_v4.pipeline.prescreen import PrescreenRules, details_candidates, prescreen
from technic_v4.store.bar_store import BarStore

LOOKBACK = 300
KEY = "pk_budget_TEST"


@dataclass
class ScanCalls:
    as_of: dt.date
    calls: Counter
    unknown_cap_kept: int
    details_still_missing: int
    details_fetched: int
    kept: int

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def evening(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(21, 0), tzinfo=NY)


async def budget_scan(server, store: BarStore, as_of: dt.date, *, setting="auto", rate_limit=0, rate_period=60.0,
                      lookback: int = LOOKBACK, wrap=None, on_client=None) -> ScanCalls:
    """One scan's data stages against the loopback server (see the module docstring)."""
    server.endpoints.today = as_of
    now, mark = evening(as_of), server.requests.mark()
    client = PolygonClient(KEY, server.url, max_concurrency=16, rate_limit=rate_limit, rate_period=rate_period)
    if on_client is not None:
        on_client(client)
    async with (wrap(PolygonSource(client)) if wrap else PolygonSource(client)) as source:
        reference, _ = await universe.load_reference(store, source, now=now)
        days = first_scan_history(store, previous_trading_days(as_of, lookback), rate_limited=rate_limit > 0,
                                  need=required_history())
        cold = not any(store.has_day(d, final_only=False) for d in days)
        await ensure_days(store, source, days, now=now)
        splits, _ = await universe.refresh_splits(store, source, as_of)
        panel = load_panel(store, days, splits=splits, cache=False)
        rules = PrescreenRules()
        liquidity = details_candidates(panel, rules, max_symbols=6000)
        reference, info = await universe.upkeep_details(
            store, source, reference, liquidity, setting=setting, calls_so_far=client.counter.snapshot()["attempts"],
            cold=cold, now=now, splits=splits)
    result = prescreen(panel, reference, rules)
    return ScanCalls(as_of, server.requests.since(mark), result.flagged["market_cap_unknown"],
                     info["details_still_missing"], info["details_fetched"], len(result.kept))
