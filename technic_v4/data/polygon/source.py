"""Polygon REST behind the one MarketDataSource interface.

Bars are raw (`adjusted=false`): the bar store applies split factors itself, so a closed day never changes.
A weekend or market holiday (per the XNYS calendar) returns an empty frame without sending a request: at 5 requests a
minute on the free tier, asking Polygon about a day the exchange was closed is a wasted call. The client itself still
accepts an empty answer for such a day when asked directly (see aggs.expects_bars).

`counter` is the client's own RequestCounter, so the scan's "API calls" are the HTTP attempts actually sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading

import numpy as np
import pandas as pd

from technic_v4.calendar import is_trading_day
from technic_v4.config import Settings
from technic_v4.data.columns import DAY_COLUMNS, REFERENCE_COLUMNS, conform, empty_frame
from technic_v4.data.polygon.aggs import as_date
from technic_v4.data.polygon.client import PolygonClient, SyncPolygonClient
from technic_v4.data.polygon.concurrency import bounded_map
from technic_v4.data.polygon.records import TickerDetails
from technic_v4.data.polygon.policy import NotFound
from technic_v4.data.polygon.sectors import industry_for, sector_for_sic
from technic_v4.data.source import MarketDataSource
from technic_v4.errors import AuthError

log = logging.getLogger(__name__)

# Common stock, ADRs and ETFs: what the scanner ranks (warrants, units, preferreds and rights are left out).
REFERENCE_TYPES = ("CS", "ADRC", "ETF")


class PolygonSource(MarketDataSource):
    """Polygon REST (or the loopback server) as a market-data source. One aiohttp session, closed by `aclose()`."""

    name = "polygon"
    simulated = False
    listing_has_details = False

    def __init__(self, client: PolygonClient, *, reference_types: tuple[str, ...] = REFERENCE_TYPES, details: bool = True):
        super().__init__()
        self.client = client
        self.counter = client.counter  # the very counter the HTTP layer records every attempt into
        self.reference_types = tuple(reference_types)
        self.details = details  # False: listing only (no shares outstanding/SIC), one request per page instead of per symbol

    @classmethod
    def from_settings(cls, settings: Settings, **client_overrides) -> PolygonSource:
        """From POLYGON_API_KEY, POLYGON_BASE_URL, TECHNIC_MAX_CONCURRENCY, _RATE_LIMIT, _REQUEST_TIMEOUT, _MAX_RETRIES.

        TECHNIC_ASYNC_IO=0 (rollback) swaps in the synchronous client, one request at a time on a worker thread."""
        if not settings.async_io:
            return cls(SyncClientAsAsync(SyncPolygonClient.from_settings(settings, **client_overrides)))
        return cls(PolygonClient.from_settings(settings, **client_overrides))

    def __repr__(self) -> str:
        return f"PolygonSource({self.client!r})"

    async def grouped_daily(self, day: dt.date) -> pd.DataFrame:
        day = as_date(day)
        if not is_trading_day(day):
            return empty_frame(DAY_COLUMNS)
        return await self.client.get_grouped_daily(day, adjusted=False)

    async def reference(self) -> pd.DataFrame:
        """Listing of REFERENCE_TYPES (paginated), then ticker details per symbol for shares outstanding and SIC.

        The details fan-out is bounded by the client's max_concurrency; a symbol Polygon has no details for (404)
        keeps NaN shares and no sector rather than failing the whole refresh. Any other error propagates.
        Cost: one request per listing page plus one per symbol (~8,000 for the full market): seconds on a paid plan,
        more than a day at the free tier's 5/min, hence the weekly reference cache (or `details=False`).
        """
        listings = [await self.client.list_tickers(ticker_type=t) for t in self.reference_types]
        listing = pd.concat(listings, ignore_index=True).drop_duplicates("symbol", keep="last")
        listing = listing.sort_values("symbol", ignore_index=True)
        if self.details:
            details = await bounded_map(self._details_or_none, list(listing["symbol"]), self.client.max_concurrency)
        else:
            details = [None] * len(listing)
        return reference_frame(listing, details)

    async def listing(self) -> pd.DataFrame:
        """The listing alone: one request per page (~8 for 6,000 symbols), no shares outstanding or SIC yet."""
        listings = [await self.client.list_tickers(ticker_type=t) for t in self.reference_types]
        listing = pd.concat(listings, ignore_index=True).drop_duplicates("symbol", keep="last")
        listing = listing.sort_values("symbol", ignore_index=True)
        return reference_frame(listing, [None] * len(listing))

    async def ticker_details(self, symbols: list[str]) -> pd.DataFrame:
        """One details request per symbol (bounded concurrency); a 404 gives a row with details_status not_found."""
        details = await bounded_map(self._details_or_none, list(symbols), self.client.max_concurrency)
        return details_frame(list(symbols), details)

    async def _details_or_none(self, symbol: str) -> TickerDetails | None:
        try:
            return await self.client.get_ticker_details(symbol)
        except NotFound:
            log.warning("no ticker details for %s (404); shares outstanding and sector left empty", symbol)
            return None

    async def splits(self, since: dt.date | None = None) -> pd.DataFrame:
        return await self.client.list_splits(since=since)

    async def snapshot(self) -> pd.DataFrame:
        try:
            return await self.client.get_snapshot()
        except AuthError as exc:
            if exc.status != 403:
                raise
            raise AuthError(
                "your Polygon plan lacks snapshots (HTTP 403 NOT_AUTHORIZED on the all-tickers snapshot): an intraday "
                "scan needs a plan with snapshot access; run the daily scan (intraday=false) instead. "
                f"Server said: {exc}", status=403, path=exc.path,
            ) from None

    async def ticker_range(self, symbol: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        return await self.client.get_ticker_range(symbol, start, end, adjusted=False)

    async def aclose(self) -> None:
        await self.client.aclose()


class SyncClientAsAsync:
    """The synchronous client behind the async verbs: each call runs on a worker thread, one at a time (the sync
    path is sequential by design), so the flow code is the same for both paths."""

    max_concurrency = 1

    def __init__(self, client: SyncPolygonClient):
        self._client = client
        self._one_at_a_time = threading.Lock()

    @property
    def counter(self):
        return self._client.counter

    def __getattr__(self, name: str):
        verb = getattr(self._client, name)

        async def call(*args, **kwargs):
            def locked():
                with self._one_at_a_time:
                    return verb(*args, **kwargs)

            return await asyncio.to_thread(locked)

        return call

    async def aclose(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"SyncClientAsAsync({self._client!r})"


def reference_frame(listing: pd.DataFrame, details: list[TickerDetails | None]) -> pd.DataFrame:
    """Listing rows + their details -> REFERENCE_COLUMNS (+ sic_description), sector/industry derived from SIC."""
    def pick(attr: str, default=None):
        return [getattr(d, attr) if d is not None and getattr(d, attr) is not None else default for d in details]

    sic_code = [None if c is None else str(c) for c in pick("sic_code")]
    sic_description = pick("sic_description")
    shares = [np.nan if d is None or d.shares_outstanding is None else float(d.shares_outstanding) for d in details]
    frame = pd.DataFrame(
        {
            "symbol": listing["symbol"].to_numpy(),
            "name": listing["name"].to_numpy(),
            "type": listing["type"].to_numpy(),
            "active": np.where(listing["active"].isna(), True, listing["active"]).astype(bool),  # missing: active
            "primary_exchange": listing["primary_exchange"].to_numpy(),
            "sic_code": sic_code,
            "sector": [sector_for_sic(c) for c in sic_code],
            "industry": [industry_for(d) for d in sic_description],
            "shares_outstanding": np.asarray(shares, dtype=float),
            "list_date": pick("list_date"),
        }
    )
    out = conform(frame, REFERENCE_COLUMNS)
    out["sic_description"] = sic_description
    return out


def details_frame(symbols: list[str], details: list[TickerDetails | None]) -> pd.DataFrame:
    """Ticker-details answers -> REFERENCE_COLUMNS + sic_description + details_status (ok / not_found)."""
    listing = pd.DataFrame(
        {
            "symbol": symbols,
            "name": [d.name if d is not None else None for d in details],
            "type": [d.type if d is not None else None for d in details],
            "active": [bool(d.active) if d is not None and d.active is not None else True for d in details],
            "primary_exchange": [d.primary_exchange if d is not None else None for d in details],
        }
    )
    out = reference_frame(listing, details)
    out["details_status"] = ["ok" if d is not None else "not_found" for d in details]
    return out
