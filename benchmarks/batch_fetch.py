"""The fetch benchmark's baselines (benchmarks/bench_fetch.py): batch price fetching over the Polygon client, by
symbol (the seed's slow path, which the product no longer has) and by trading day (what the scan does).

Every request goes through PolygonClient / SyncPolygonClient, so limits, retries, errors and the request counter are
the same as the product's.

    fetch_grouped_days_async(days)            one request per trading day, every symbol
    batch_fetch_async(symbols, start, end)    one request per symbol, bounded concurrency
    batch_fetch_sync(symbols, start, end)     the same, sequential
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from technic_v4.calendar import is_trading_day, last_completed_session
from technic_v4.config import Settings, load_settings
from technic_v4.data.columns import DAY_COLUMNS
from technic_v4.data.polygon.aggs import as_date
from technic_v4.data.polygon.client import PolygonClient, SyncPolygonClient, settings_options
from technic_v4.data.polygon.concurrency import bounded_map
from technic_v4.errors import AuthError, DataSourceError

DEFAULT_LOOKBACK = dt.timedelta(days=365)


@dataclass
class BatchResult:
    """Per-symbol bars plus what it cost. `requests` is the client counter's delta for this batch (real attempts)."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)  # symbol -> RANGE_COLUMNS
    failed: dict[str, str] = field(default_factory=dict)  # symbol -> error message (never the key)
    requests: dict = field(default_factory=dict)  # {"attempts", "retries", "by_endpoint"}
    seconds: float = 0.0

    @property
    def bars(self) -> int:
        return sum(len(f) for f in self.frames.values())

    def __repr__(self) -> str:  # short: asyncio reprs a finished task's result (Python 3.11 does on every asyncio.run)
        return (f"BatchResult({len(self.frames)} symbols, {self.bars} bars, {len(self.failed)} failed, "
                f"{self.requests.get('attempts', 0)} requests, {self.seconds:.3f}s)")


@dataclass
class GroupedDays:
    """Bars by trading day. `frames`: day -> DAY_COLUMNS; `long()`: one frame with a `date` column."""

    frames: dict[dt.date, pd.DataFrame] = field(default_factory=dict)
    skipped: list[dt.date] = field(default_factory=list)  # weekends/holidays: no request sent
    requests: dict = field(default_factory=dict)
    seconds: float = 0.0

    def __repr__(self) -> str:
        bars = sum(len(f) for f in self.frames.values())
        return (f"GroupedDays({len(self.frames)} days, {bars} bars, {len(self.skipped)} skipped, "
                f"{self.requests.get('attempts', 0)} requests, {self.seconds:.3f}s)")

    def long(self) -> pd.DataFrame:
        parts = [f.assign(date=pd.Timestamp(d)) for d, f in sorted(self.frames.items()) if len(f)]
        if not parts:
            return pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]"), **{c: pd.Series(dtype=t) for c, t in DAY_COLUMNS.items()}})
        out = pd.concat(parts, ignore_index=True)
        return out[["date", *DAY_COLUMNS]]


# ---- clients -------------------------------------------------------------------------------------------------------


def _client_options(api_key: str | None, settings: Settings | None, overrides: dict) -> dict:
    """Settings (env) as the base; an explicit api_key and keyword overrides win."""
    settings = settings or load_settings()
    if api_key is not None:
        settings = settings.model_copy(update={"polygon_api_key": _secret(api_key)})
    return {**settings_options(settings), **{k: v for k, v in overrides.items() if v is not None}}


def _secret(key: str):
    from pydantic import SecretStr

    return SecretStr(key)


def _window(start, end) -> tuple[dt.date, dt.date]:
    end = as_date(end) if end is not None else last_completed_session()
    start = as_date(start) if start is not None else end - DEFAULT_LOOKBACK
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return start, end


# ---- per-symbol path -------------------------------------------------------------------------------------------------


async def batch_fetch_async(
    symbols: Iterable[str],
    start=None,
    end=None,
    *,
    client: PolygonClient | None = None,
    api_key: str | None = None,
    settings: Settings | None = None,
    max_concurrency: int | None = None,
    adjusted: bool = False,
    **client_overrides,
) -> BatchResult:
    """Per-symbol ranges with at most `max_concurrency` requests in flight (default: the client's).

    A symbol that fails after retries is reported in `failed` and the batch goes on; an AuthError stops the batch
    (every other symbol would fail the same way). Pass `client` to reuse a session; else one is opened and closed.
    """
    start, end = _window(start, end)
    symbols = list(dict.fromkeys(symbols))
    own = client is None
    if own:
        options = _client_options(api_key, settings, {"max_concurrency": max_concurrency, **client_overrides})
        client = PolygonClient(**options)
    limit = max_concurrency or client.max_concurrency
    before, t0 = client.counter.snapshot(), time.perf_counter()
    result = BatchResult()

    async def one(symbol: str) -> None:
        try:
            result.frames[symbol] = await client.get_ticker_range(symbol, start, end, adjusted=adjusted)
        except AuthError:
            raise
        except DataSourceError as exc:
            result.failed[symbol] = str(exc)

    try:
        await bounded_map(one, symbols, limit)
        result.frames = {s: result.frames[s] for s in symbols if s in result.frames}  # input order, not finish order
    finally:
        result.requests = client.counter.since(before)
        result.seconds = time.perf_counter() - t0
        if own:
            await client.aclose()
    return result


def batch_fetch_sync(
    symbols: Iterable[str],
    start=None,
    end=None,
    *,
    client: SyncPolygonClient | None = None,
    api_key: str | None = None,
    settings: Settings | None = None,
    adjusted: bool = False,
    **client_overrides,
) -> BatchResult:
    """The same requests, one at a time (the synchronous client)."""
    start, end = _window(start, end)
    own = client is None
    if own:
        client_overrides.pop("max_concurrency", None)
        client = SyncPolygonClient(**_client_options(api_key, settings, client_overrides))
    before, t0 = client.counter.snapshot(), time.perf_counter()
    result = BatchResult()
    try:
        for symbol in dict.fromkeys(symbols):
            try:
                result.frames[symbol] = client.get_ticker_range(symbol, start, end, adjusted=adjusted)
            except AuthError:
                raise
            except DataSourceError as exc:
                result.failed[symbol] = str(exc)
    finally:
        result.requests = client.counter.since(before)
        result.seconds = time.perf_counter() - t0
        if own:
            client.close()
    return result


# ---- per-day path (the scan's) -------------------------------------------------------------------------------------


async def fetch_grouped_days_async(
    days: Iterable[dt.date | str],
    *,
    client: PolygonClient | None = None,
    api_key: str | None = None,
    settings: Settings | None = None,
    max_concurrency: int | None = None,
    **client_overrides,
) -> GroupedDays:
    """One grouped-daily request per trading day in `days` (raw prices); weekends/holidays are skipped unrequested.

    Any day failing after retries raises: a backfill with a silent hole would be worse than a clear error.
    """
    wanted = sorted({as_date(d) for d in days})
    sessions = [d for d in wanted if is_trading_day(d)]
    own = client is None
    if own:
        client = PolygonClient(**_client_options(api_key, settings, {"max_concurrency": max_concurrency, **client_overrides}))
    before, t0 = client.counter.snapshot(), time.perf_counter()
    out = GroupedDays(skipped=[d for d in wanted if d not in set(sessions)])
    try:
        frames = await bounded_map(
            lambda d: client.get_grouped_daily(d, adjusted=False), sessions, max_concurrency or client.max_concurrency
        )
        out.frames = dict(zip(sessions, frames))
    finally:
        out.requests = client.counter.since(before)
        out.seconds = time.perf_counter() - t0
        if own:
            await client.aclose()
    return out
