"""A tiny, hand-checkable market with SimulatedMarket's interface, for fast server/client tests.

Prices are simple formulas of (symbol index, session index), so a test can compute the expected bar by hand:
close = 10·(i+1) + 0.01·t, open = close - 0.5, high = close + 1, low = open - 1, volume = 1000·(i+1) + t.
Symbol i = "ZZZ" (the last one) does not trade on even session indexes (a thin name with missing days).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from technic_v4.calendar import trading_days
from technic_v4.data.columns import DAY_COLUMNS, RANGE_COLUMNS, REFERENCE_COLUMNS, SPLIT_COLUMNS, conform, empty_frame
from technic_v4.data.polygon.sectors import industry_for, sector_for_sic

# symbol, name, type, primary exchange, SIC code, SIC description, shares outstanding
TINY_UNIVERSE = (
    ("AAA", "Alpha Computers Inc.", "CS", "XNAS", "3571", "ELECTRONIC COMPUTERS", 1.0e9),
    ("BBB", "Beta Bank Corp", "CS", "XNYS", "6022", "STATE COMMERCIAL BANKS", 5.0e8),
    ("CCC", "Gamma Pharma PLC ADR", "ADRC", "XNYS", "2834", "PHARMACEUTICAL PREPARATIONS", 2.0e8),
    ("SPY", "SPDR S&P 500 ETF Trust", "ETF", "ARCX", None, None, 9.0e8),
    ("WWW", "Warrant Holdings WS", "WARRANT", "XNAS", None, None, None),
    ("ZZZ", "Zeta Thin Co", "CS", "XNAS", "1311", "CRUDE PETROLEUM & NATURAL GAS", 3.0e7),
)
# (symbol, split_from, split_to, session index): AAA splits 1 -> 2 mid-way, ZZZ does a 10 -> 1 reverse split early.
SPLITS = (("AAA", 1.0, 2.0, None), ("ZZZ", 10.0, 1.0, 5))


class TinyMarket:
    """A few symbols over real XNYS sessions in [start, end]; raw prices halve for AAA from `split_day` on."""

    splits_table: list[tuple[str, float, float, dt.date]]

    def __init__(self, start: dt.date = dt.date(2024, 1, 2), end: dt.date = dt.date(2024, 3, 28)):
        self.sessions: list[dt.date] = trading_days(start, end)
        self.symbols = np.array([row[0] for row in TINY_UNIVERSE], dtype=object)
        self.split_day = self.sessions[len(self.sessions) // 2]
        self.splits_table = [
            (sym, f, to, self.split_day if t is None else self.sessions[t]) for sym, f, to, t in SPLITS
        ]
        self._index = {d: t for t, d in enumerate(self.sessions)}

    def _bar(self, i: int, t: int, adjusted: bool) -> dict | None:
        symbol = self.symbols[i]
        if symbol == "ZZZ" and t % 2 == 0:
            return None
        close = 10.0 * (i + 1) + 0.01 * t
        factor = 1.0  # raw price / economic price: split_from/split_to for every split executed by then
        for sym, split_from, split_to, day in self.splits_table:
            if sym == symbol and (adjusted or self.sessions[t] >= day):
                factor *= split_from / split_to
        bar = {"open": close - 0.5, "high": close + 1.0, "low": close - 1.5, "close": close}
        bar = {k: round(v * factor, 4) for k, v in bar.items()}
        bar["volume"] = float(round((1000 * (i + 1) + t) / factor))
        bar["vwap"] = round((bar["high"] + bar["low"] + 2 * bar["close"]) / 4, 4)
        bar["transactions"] = float(10 * (i + 1) + t)
        return bar

    def day(self, day: dt.date, adjusted: bool = False) -> pd.DataFrame:
        t = self._index.get(day)
        if t is None:
            return empty_frame(DAY_COLUMNS)
        rows = [{"symbol": s, **b} for i, s in enumerate(self.symbols) if (b := self._bar(i, t, adjusted))]
        return conform(pd.DataFrame(rows), DAY_COLUMNS)

    def ticker_range(self, symbol: str, start: dt.date, end: dt.date, adjusted: bool = False) -> pd.DataFrame:
        if symbol not in set(self.symbols):
            return empty_frame(RANGE_COLUMNS)
        i = list(self.symbols).index(symbol)
        rows = [
            {"date": pd.Timestamp(d), **b}
            for d in self.sessions
            if start <= d <= end and (b := self._bar(i, self._index[d], adjusted))
        ]
        return conform(pd.DataFrame(rows), RANGE_COLUMNS) if rows else empty_frame(RANGE_COLUMNS)

    def snapshot(self, day: dt.date, fraction: float = 0.5) -> pd.DataFrame:
        full = self.day(day)
        part = full.copy()
        part["volume"] = np.round(full["volume"] * fraction)
        return part

    def reference(self, as_of: dt.date | None = None) -> pd.DataFrame:
        rows = [
            {"symbol": s, "name": n, "type": ty, "active": True, "primary_exchange": ex, "sic_code": sic,
             "sector": sector_for_sic(sic), "industry": industry_for(desc), "list_date": "2000-01-03",
             "shares_outstanding": np.nan if shares is None else shares, "sic_description": desc}
            for s, n, ty, ex, sic, desc, shares in TINY_UNIVERSE
        ]
        df = pd.DataFrame(rows)
        out = conform(df, REFERENCE_COLUMNS)
        out["sic_description"] = df["sic_description"]
        return out

    def ticker_details(self, symbol: str, as_of: dt.date | None = None) -> dict | None:
        for s, n, ty, ex, sic, desc, shares in TINY_UNIVERSE:
            if s == symbol:
                d = {"ticker": s, "name": n, "market": "stocks", "locale": "us", "primary_exchange": ex, "type": ty,
                     "active": True, "currency_name": "usd", "list_date": "2000-01-03"}
                if shares is not None:
                    d["share_class_shares_outstanding"] = d["weighted_shares_outstanding"] = shares
                if sic is not None:
                    d["sic_code"], d["sic_description"] = sic, desc
                return d
        return None

    def splits(self, since: dt.date | None = None, until: dt.date | None = None) -> pd.DataFrame:
        df = pd.DataFrame(
            [(sym, pd.Timestamp(day), f, to) for sym, f, to, day in self.splits_table],
            columns=["symbol", "execution_date", "split_from", "split_to"],
        )
        if since is not None:
            df = df[df["execution_date"] >= pd.Timestamp(since)]
        if until is not None:
            df = df[df["execution_date"] <= pd.Timestamp(until)]
        return conform(df.reset_index(drop=True), SPLIT_COLUMNS) if len(df) else empty_frame(SPLIT_COLUMNS)
