"""A market for the loopback Polygon server built from imported CSV bars (technic_v4.data.csvdir.CsvBars), so the same
real bars can be scanned through the csv source and through the Polygon client over HTTP, and the tables compared."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from technic_v4.calendar import trading_days
from technic_v4.data.columns import RANGE_COLUMNS, SPLIT_COLUMNS, conform, empty_frame
from technic_v4.data.csvdir import CsvBars


class CsvMarket:
    """SimulatedMarket's interface (sessions, symbols, day, ticker_range, snapshot, reference, ticker_details, splits)
    over CSV bars: every session from the first file's first row to the last row of any file, no splits."""

    def __init__(self, bars: CsvBars):
        self.bars = bars
        self.sessions: list[dt.date] = trading_days(bars.first_session, bars.last_session)
        self.symbols = np.array(sorted(bars.listing["symbol"]), dtype=object)

    def day(self, day: dt.date, adjusted: bool = False) -> pd.DataFrame:
        return self.bars.day(day)  # split-adjusted files: raw and adjusted bars are the same

    def snapshot(self, day: dt.date, fraction: float = 1.0) -> pd.DataFrame:
        frame = self.day(day).copy()
        frame["volume"] = np.round(frame["volume"] * fraction)
        return frame

    def ticker_range(self, symbol: str, start: dt.date, end: dt.date, adjusted: bool = False) -> pd.DataFrame:
        table = self.bars.table()
        rows = table[(table["symbol"] == symbol) & (table["date"] >= pd.Timestamp(start))
                     & (table["date"] <= pd.Timestamp(end))]
        return conform(rows.drop(columns="symbol").reset_index(drop=True), RANGE_COLUMNS) if len(rows) \
            else empty_frame(RANGE_COLUMNS)

    def reference(self, as_of: dt.date | None = None, include_inactive: bool = False) -> pd.DataFrame:
        return self.bars.listing.copy()

    def ticker_details(self, symbol: str, as_of: dt.date | None = None) -> dict | None:
        hit = self.bars.listing[self.bars.listing["symbol"] == symbol]
        if hit.empty:
            return None
        row = hit.iloc[0]
        details = {"ticker": symbol, "name": row["name"], "market": "stocks", "locale": "us", "type": row["type"],
                   "active": True, "currency_name": "usd"}
        if np.isfinite(row["shares_outstanding"]):
            details["share_class_shares_outstanding"] = details["weighted_shares_outstanding"] = row["shares_outstanding"]
        return details

    def splits(self, since: dt.date | None = None, until: dt.date | None = None) -> pd.DataFrame:
        return empty_frame(SPLIT_COLUMNS)
