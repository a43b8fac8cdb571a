"""Reference data: the ticker listing (paginated), one ticker's details, and splits (paginated)."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import pandas as pd

from technic_v4.data.polygon.aggs import as_date
from technic_v4.data.polygon.records import TickerDetails, splits_frame
from technic_v4.data.polygon.policy import Call, Request

TICKERS_PATH = "/v3/reference/tickers"
DETAILS_PATH = "/v3/reference/tickers/{ticker}"
SPLITS_PATH = "/v3/reference/splits"
PAGE_LIMIT = 1000  # Polygon's maximum page size for both listings

# What the listing endpoint carries (no shares outstanding or SIC: those need ticker details).
LISTING_COLUMNS = ("symbol", "name", "type", "active", "primary_exchange", "market", "cik", "composite_figi")


def listing_frame(pages: list[dict]) -> pd.DataFrame:
    results = [r for page in pages for r in page.get("results") or ()]
    df = pd.DataFrame.from_records(results) if results else pd.DataFrame()
    df = df.rename(columns={"ticker": "symbol"})
    for col in LISTING_COLUMNS:
        if col not in df.columns:
            df[col] = None
    out = df[list(LISTING_COLUMNS)]
    # a listing that changes while we page through it can repeat a ticker at a page boundary
    return out.drop_duplicates("symbol", keep="last").sort_values("symbol", ignore_index=True)


def list_tickers(
    *,
    ticker_type: str | None = None,
    market: str = "stocks",
    active: bool = True,
    as_of: dt.date | str | None = None,
    limit: int = PAGE_LIMIT,
) -> Call[pd.DataFrame]:
    """Every listed ticker of `ticker_type` (CS, ETF, ADRC, ...; None = all), following next_url to the end."""
    params = [("market", market), ("active", "true" if active else "false"), ("limit", str(limit))]
    params += [("order", "asc"), ("sort", "ticker")]
    if ticker_type:
        params.append(("type", ticker_type))
    if as_of is not None:
        params.append(("date", as_date(as_of).isoformat()))
    request = Request(kind="tickers", path=TICKERS_PATH, params=tuple(params))
    return Call(request, listing_frame, paginated=True)


def ticker_details(ticker: str, *, as_of: dt.date | str | None = None) -> Call[TickerDetails]:
    params = (("date", as_date(as_of).isoformat()),) if as_of is not None else ()
    request = Request(
        kind="ticker_details", path=DETAILS_PATH.format(ticker=quote(ticker, safe=".-")), params=params, empty="retry"
    )
    return Call(request, lambda payload: TickerDetails.from_dict(payload["results"]))


def list_splits(
    *,
    since: dt.date | str | None = None,
    until: dt.date | str | None = None,
    ticker: str | None = None,
    limit: int = PAGE_LIMIT,
) -> Call[pd.DataFrame]:
    """Splits with execution_date in [since, until] as SPLIT_COLUMNS, oldest first, following next_url."""
    params = [("limit", str(limit)), ("order", "asc"), ("sort", "execution_date")]
    if since is not None:
        params.append(("execution_date.gte", as_date(since).isoformat()))
    if until is not None:
        params.append(("execution_date.lte", as_date(until).isoformat()))
    if ticker:
        params.append(("ticker", ticker))
    request = Request(kind="splits", path=SPLITS_PATH, params=tuple(params))
    return Call(request, lambda pages: splits_frame([r for page in pages for r in page.get("results") or ()]), paginated=True)
