"""`PolygonClient` (async, aiohttp) and `SyncPolygonClient` (requests): one client, many resources.

The verbs are written once in `_Verbs`: each builds a `Call` (request + parser, from aggs/snapshot/reference) and hands
it to the transport. With the async transport a verb returns a coroutine to await; with the sync one, the result.

    async with PolygonClient(api_key, max_concurrency=16, rate_limit=5) as client:
        bars = await client.get_grouped_daily(date(2025, 3, 3))     # DAY_COLUMNS, raw prices
        print(client.counter.snapshot())                            # every real request, retries separately
"""

from __future__ import annotations

import datetime as dt

from technic_v4.config import DEFAULT_BASE_URL, Settings
from technic_v4.data.polygon import aggs, reference, snapshot
from technic_v4.data.polygon.base import AsyncHTTP, AuthMode, SyncHTTP
from technic_v4.data.polygon.policy import RetryPolicy
from technic_v4.data.polygon.ratelimit import RateLimiter
from technic_v4.data.source import RequestCounter


class _Verbs:
    """The Polygon endpoints technic_v4 uses. `self._http` is an AsyncHTTP or a SyncHTTP (see `_transport`)."""

    _http: AsyncHTTP | SyncHTTP

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        max_concurrency: int = 16,
        rate_limit: float = 0,
        rate_period: float = 60.0,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        timeout: float = 30.0,
        deadline: float | None = 90.0,
        counter: RequestCounter | None = None,
        auth: AuthMode = "header",
    ):
        options = {
            "counter": counter,
            "limiter": RateLimiter(rate_limit, rate_period),
            "policy": RetryPolicy(max_retries=max_retries, backoff_base=backoff_base, deadline=deadline),
            "timeout": timeout,
            "auth": auth,
        }
        self._http = self._transport(api_key, base_url, max_concurrency, options)

    def _transport(self, api_key: str, base_url: str, max_concurrency: int, options: dict):
        raise NotImplementedError

    @classmethod
    def from_settings(cls, settings: Settings, **overrides):
        return cls(**{**settings_options(settings), **overrides})

    @property
    def counter(self) -> RequestCounter:
        return self._http.counter

    def get_grouped_daily(self, day: dt.date | str, *, adjusted: bool = False):
        """Every symbol's bar for one day (DAY_COLUMNS; empty on weekends/holidays). Raw prices by default."""
        return self._http.run(aggs.grouped_daily(day, adjusted=adjusted))

    def get_ticker_range(self, ticker: str, start: dt.date | str, end: dt.date | str, *, adjusted: bool = False):
        """One ticker's daily bars in [start, end] (RANGE_COLUMNS)."""
        return self._http.run(aggs.ticker_range(ticker, start, end, adjusted=adjusted))

    def get_snapshot(self, *, tickers: list[str] | None = None):
        """Today's bar so far for every symbol (DAY_COLUMNS); attrs['bar_source'] says day/min/prevDay counts."""
        return self._http.run(snapshot.all_tickers(tickers=tickers))

    def list_tickers(self, *, ticker_type: str | None = None, market: str = "stocks", active: bool = True, as_of=None):
        """The listing (symbol, name, type, active, primary_exchange, ...), all pages."""
        return self._http.run(reference.list_tickers(ticker_type=ticker_type, market=market, active=active, as_of=as_of))

    def get_ticker_details(self, ticker: str, *, as_of=None):
        """TickerDetails: shares outstanding, SIC code/description, list date. Raises NotFound for unknown tickers."""
        return self._http.run(reference.ticker_details(ticker, as_of=as_of))

    def list_splits(self, *, since=None, until=None, ticker: str | None = None):
        """Splits executed in [since, until] (SPLIT_COLUMNS), all pages."""
        return self._http.run(reference.list_splits(since=since, until=until, ticker=ticker))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._http!r})"


def settings_options(settings: Settings) -> dict:
    """Client keyword arguments from Settings (TECHNIC_MAX_CONCURRENCY, _RATE_LIMIT, _REQUEST_TIMEOUT,
    _REQUEST_DEADLINE, _MAX_RETRIES)."""
    return {
        "api_key": settings.api_key(),
        "base_url": settings.polygon_base_url,
        "max_concurrency": settings.max_concurrency,
        "rate_limit": settings.rate_limit,
        "timeout": settings.request_timeout,
        "deadline": settings.request_deadline or None,
        "max_retries": settings.max_retries,
    }


class PolygonClient(_Verbs):
    """Async Polygon REST client; one per scan (it owns the aiohttp session). Verbs are awaited."""

    def _transport(self, api_key: str, base_url: str, max_concurrency: int, options: dict) -> AsyncHTTP:
        return AsyncHTTP(api_key, base_url, max_concurrency=max_concurrency, **options)

    @property
    def max_concurrency(self) -> int:
        return self._http.max_concurrency

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> PolygonClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


class SyncPolygonClient(_Verbs):
    """Synchronous, sequential Polygon client (TECHNIC_ASYNC_IO=0). Same requests, parsing and retry policy;
    `max_concurrency` is accepted for symmetry and ignored."""

    def _transport(self, api_key: str, base_url: str, max_concurrency: int, options: dict) -> SyncHTTP:
        return SyncHTTP(api_key, base_url, **options)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SyncPolygonClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
