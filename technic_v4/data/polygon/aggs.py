"""Aggregate bars: grouped daily (every symbol, one day, one request) and the per-ticker daily range."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import pandas as pd

from technic_v4.calendar import is_trading_day, last_completed_session
from technic_v4.data.polygon.records import day_frame, range_frame
from technic_v4.data.polygon.policy import Call, Request

GROUPED_DAILY_PATH = "/v2/aggs/grouped/locale/us/market/stocks/{day}"
RANGE_PATH = "/v2/aggs/ticker/{ticker}/range/1/day/{start}/{end}"
MAX_RANGE_LIMIT = 50_000  # Polygon's cap on base aggregates per range request


def as_date(value: dt.date | str | pd.Timestamp) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()


def _flag(value: bool) -> str:
    return "true" if value else "false"


def expects_bars(day: dt.date) -> bool:
    """A closed trading session must have bars, so an empty answer for it is a hiccup worth retrying.

    Weekends, holidays and sessions that have not closed yet legitimately come back with `resultsCount: 0`.
    """
    return is_trading_day(day) and day <= last_completed_session()


def grouped_daily(day: dt.date | str, *, adjusted: bool = False, include_otc: bool = False) -> Call[pd.DataFrame]:
    """All US stocks' bars for `day` as DAY_COLUMNS (empty on weekends/holidays). Raw prices unless `adjusted`."""
    day = as_date(day)
    request = Request(
        kind="grouped_daily",
        path=GROUPED_DAILY_PATH.format(day=day.isoformat()),
        params=(("adjusted", _flag(adjusted)), ("include_otc", _flag(include_otc))),
        empty="retry" if expects_bars(day) else "ok",
    )
    return Call(request, lambda payload: day_frame(payload.get("results")))


def ticker_range(
    ticker: str, start: dt.date | str, end: dt.date | str, *, adjusted: bool = False
) -> Call[pd.DataFrame]:
    """One ticker's daily bars in [start, end] as RANGE_COLUMNS (empty when it did not trade then)."""
    start, end = as_date(start), as_date(end)
    if end < start:
        raise ValueError(f"ticker_range({ticker!r}): end {end} is before start {start}")
    request = Request(
        kind="range",
        path=RANGE_PATH.format(ticker=quote(ticker, safe=".-"), start=start.isoformat(), end=end.isoformat()),
        params=(("adjusted", _flag(adjusted)), ("sort", "asc"), ("limit", str(MAX_RANGE_LIMIT))),
    )
    # a range longer than the limit comes back with next_url; follow it rather than drop bars
    return Call(request, lambda pages: range_frame([r for p in pages for r in p.get("results") or ()]), paginated=True)
