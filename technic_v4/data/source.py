"""The one async interface every market-data source implements, and the request counter behind "API calls"."""

from __future__ import annotations

import abc
import datetime as dt
import threading
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class RequestCounter:
    """Counts every real request a source makes. The scan's "API calls" metric is read from here, never estimated.

    `attempts` counts every request sent (first tries and retries); `retries` counts only the repeats;
    `by_endpoint` splits attempts by endpoint kind (grouped_daily, snapshot, range, tickers, ticker_details, splits).
    """

    attempts: int = 0
    retries: int = 0
    by_endpoint: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, endpoint: str, *, retry: bool, status: int | str | None = None) -> None:
        with self._lock:
            self.attempts += 1
            self.by_endpoint[endpoint] += 1
            if retry:
                self.retries += 1
            if status is not None:
                self.by_status[str(status)] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "attempts": self.attempts,
                "retries": self.retries,
                "by_endpoint": dict(self.by_endpoint),
                "by_status": dict(self.by_status),
            }

    def since(self, before: dict) -> dict:
        """Counts accumulated after an earlier `snapshot()`."""
        now = self.snapshot()
        return {
            "attempts": now["attempts"] - before["attempts"],
            "retries": now["retries"] - before["retries"],
            "by_endpoint": {
                k: v - before["by_endpoint"].get(k, 0)
                for k, v in now["by_endpoint"].items()
                if v - before["by_endpoint"].get(k, 0)
            },
        }


class MarketDataSource(abc.ABC):
    """Async market data. All frames follow technic_v4.data.columns (DAY/RANGE/REFERENCE/SPLIT columns).

    Prices are raw (unadjusted); the bar store applies split factors. A market holiday or weekend gives an
    empty day frame, not an error. Failures raise technic_v4.errors exceptions; nothing returns empty to hide one.
    """

    name: str = "abstract"
    simulated: bool = False  # outputs from a simulated source are labelled SIMULATED
    listing_has_details: bool = True  # False: shares outstanding/SIC cost one ticker_details call per symbol

    def __init__(self) -> None:
        self.counter = RequestCounter()

    @abc.abstractmethod
    async def grouped_daily(self, day: dt.date) -> pd.DataFrame:
        """All symbols' bars for one trading day (DAY_COLUMNS). One request."""

    @abc.abstractmethod
    async def reference(self) -> pd.DataFrame:
        """The listed universe (REFERENCE_COLUMNS), including shares outstanding and sector/industry."""

    async def listing(self) -> pd.DataFrame:
        """The listed universe as cheaply as the source can give it (REFERENCE_COLUMNS); without per-symbol details
        (NaN shares outstanding, no SIC) when `listing_has_details` is False."""
        return await self.reference()

    async def ticker_details(self, symbols: list[str]) -> pd.DataFrame:
        """Per-symbol details (REFERENCE_COLUMNS + sic_description + details_status), one request per symbol."""
        raise NotImplementedError(f"{self.name} has no per-symbol ticker details")

    @abc.abstractmethod
    async def splits(self, since: dt.date | None = None) -> pd.DataFrame:
        """Splits executed on or after `since` (all known when None), SPLIT_COLUMNS."""

    async def snapshot(self) -> pd.DataFrame:
        """Today's bars so far for all symbols (DAY_COLUMNS). Sources without intraday data raise."""
        raise NotImplementedError(f"{self.name} has no intraday snapshot")

    async def ticker_range(self, symbol: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """One symbol's daily bars in [start, end] (RANGE_COLUMNS). The slow per-symbol path."""
        raise NotImplementedError(f"{self.name} has no per-ticker range endpoint")

    async def aclose(self) -> None:
        """Release sessions/files. Safe to call twice."""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
