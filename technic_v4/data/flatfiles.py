"""Polygon day-aggregate flat files (`YYYY-MM-DD.csv.gz`) from a local folder, as a market-data source.

Polygon's S3 layout `us_stocks_sip/day_aggs_v1/YYYY/MM/YYYY-MM-DD.csv.gz` and a flat folder of such files both work
(the folder is searched recursively). Columns: ticker,volume,open,close,high,low,window_start,transactions, with
window_start the bar start in Unix nanoseconds (midnight New York). Flat files carry no VWAP (NaN) and no reference
data: reference(), listing(), ticker_details() and splits() go to `reference_source` (Polygon REST), or fail clearly
when there is none. With `rest_fallback`, a trading day without a file (Polygon publishes a day's file the next
morning) comes from the reference source's grouped-daily endpoint: files for the backfill, one call for the newest day.

A file that does not match that format raises DataSourceError naming the file, the number of bad rows and examples:
a half-parsed day would be stored as if complete.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from technic_v4.calendar import NY, is_trading_day
from technic_v4.data.columns import DAY_COLUMNS, conform, empty_frame
from technic_v4.data.source import MarketDataSource
from technic_v4.errors import DataSourceError

FLAT_COLUMNS = ("ticker", "volume", "open", "close", "high", "low", "window_start", "transactions")
NUMERIC_COLUMNS = ("volume", "open", "close", "high", "low", "window_start", "transactions")
FILE_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.csv\.gz$")
MAX_EXAMPLES = 3


def flat_file_name(day: dt.date) -> str:
    return f"{day.isoformat()}.csv.gz"


def window_start_ns(day: dt.date) -> int:
    """Midnight New York of `day` in Unix nanoseconds: a day aggregate's window_start."""
    return int(dt.datetime.combine(day, dt.time(), tzinfo=NY).timestamp()) * 1_000_000_000


def write_flat_file(path: str | Path, day_frame: pd.DataFrame, day: dt.date) -> Path:
    """Write DAY_COLUMNS bars for `day` in Polygon's day-aggregate format. `path` may be a folder (file named by day)."""
    path = Path(path)
    if path.is_dir() or not path.name.endswith(".csv.gz"):
        path = path / flat_file_name(day)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = pd.DataFrame(
        {
            "ticker": day_frame["symbol"].to_numpy(),
            "volume": np.round(day_frame["volume"].to_numpy(dtype=float)).astype("int64"),
            "open": day_frame["open"].to_numpy(),
            "close": day_frame["close"].to_numpy(),
            "high": day_frame["high"].to_numpy(),
            "low": day_frame["low"].to_numpy(),
            "window_start": np.full(len(day_frame), window_start_ns(day), dtype="int64"),
            "transactions": np.nan_to_num(day_frame["transactions"].to_numpy(dtype=float)).astype("int64"),
        },
        columns=list(FLAT_COLUMNS),
    )
    # mtime=0: the same bars give the same bytes (reproducible fixtures)
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        fh.write(out.to_csv(index=False).encode())
    return path


class FlatFileSource(MarketDataSource):
    """Bars from day-aggregate files; reference data and splits from `reference_source` (usually PolygonSource)."""

    name = "flatfiles"
    simulated = False

    def __init__(
        self, directory: str | Path, *, reference_source: MarketDataSource | None = None, rest_fallback: bool = False
    ):
        super().__init__()
        self.directory = Path(directory)
        self.reference_source = reference_source
        self.rest_fallback = rest_fallback and reference_source is not None
        self.listing_has_details = reference_source.listing_has_details if reference_source is not None else True
        if reference_source is not None:
            self.counter = reference_source.counter  # the REST calls reference data costs are this source's API calls
        self._index: dict[dt.date, Path] | None = None

    def __repr__(self) -> str:
        return f"FlatFileSource({str(self.directory)!r}, reference_source={self.reference_source!r})"

    # -- files ---------------------------------------------------------------------------------------------------------
    def files(self) -> dict[dt.date, Path]:
        """day -> file, found recursively (flat folder or us_stocks_sip/day_aggs_v1/YYYY/MM/). Cached after the first scan."""
        if self._index is None:
            if not self.directory.is_dir():
                raise DataSourceError(f"flat-file folder {self.directory} does not exist (TECHNIC_FLATFILES_DIR)")
            index: dict[dt.date, Path] = {}
            for path in sorted(self.directory.rglob("*.csv.gz")):
                match = FILE_NAME.match(path.name)
                if not match:
                    continue
                day = dt.date.fromisoformat(match.group(1))
                if day in index:
                    raise DataSourceError(f"two flat files for {day}: {index[day]} and {path}; keep one")
                index[day] = path
            self._index = index
        return self._index

    def path_for(self, day: dt.date) -> Path | None:
        found = self.files().get(day)
        if found is None:
            self._index = None  # files may have been added since the last scan of the folder
            found = self.files().get(day)
        return found

    async def grouped_daily(self, day: dt.date) -> pd.DataFrame:
        day = pd.Timestamp(day).date()
        if not is_trading_day(day):
            return empty_frame(DAY_COLUMNS)
        path = self.path_for(day)
        if path is None and self.rest_fallback:
            return await self.reference_source.grouped_daily(day)
        if path is None:
            raise DataSourceError(
                f"no flat file {flat_file_name(day)} for trading day {day} under {self.directory} "
                f"(looked for {flat_file_name(day)} in the folder and its subfolders)"
            )
        return await asyncio.to_thread(read_flat_file, path, day)

    # -- reference data --------------------------------------------------------------------------------------------------
    def _reference(self, what: str) -> MarketDataSource:
        if self.reference_source is None:
            raise DataSourceError(
                f"flat files carry bars only; {what} needs Polygon REST: set POLYGON_API_KEY "
                "(TECHNIC_DATA_SOURCE=flatfiles then uses it for reference data and splits)"
            )
        return self.reference_source

    async def reference(self) -> pd.DataFrame:
        return await self._reference("reference data (shares outstanding, sector)").reference()

    async def listing(self) -> pd.DataFrame:
        return await self._reference("the ticker listing").listing()

    async def ticker_details(self, symbols: list[str]) -> pd.DataFrame:
        return await self._reference("ticker details (shares outstanding, SIC)").ticker_details(symbols)

    async def splits(self, since: dt.date | None = None) -> pd.DataFrame:
        return await self._reference("split history").splits(since)

    async def snapshot(self) -> pd.DataFrame:
        return await self._reference("an intraday snapshot").snapshot()

    async def aclose(self) -> None:
        if self.reference_source is not None:
            await self.reference_source.aclose()


def read_flat_file(path: Path, day: dt.date) -> pd.DataFrame:
    """One day-aggregate file -> DAY_COLUMNS sorted by symbol; DataSourceError on anything malformed."""
    try:
        raw = pd.read_csv(path, compression="gzip", dtype=str, keep_default_na=False)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataSourceError(f"{path}: not a readable gzip CSV ({type(exc).__name__}: {exc})") from None
    except pd.errors.EmptyDataError:
        raise DataSourceError(f"{path}: empty file (expected a header {','.join(FLAT_COLUMNS)})") from None
    missing = [c for c in FLAT_COLUMNS if c not in raw.columns]
    if missing:
        raise DataSourceError(f"{path}: missing columns {missing}; found {list(raw.columns)}")
    numbers = {c: pd.to_numeric(raw[c].str.strip(), errors="coerce") for c in NUMERIC_COLUMNS}
    problems: list[tuple[int, str]] = []  # (row position, reason)
    for col, values in numbers.items():
        for i in np.flatnonzero(values.isna().to_numpy()):
            problems.append((i, f"{col}={raw[col].iat[i]!r} is not a number"))
    tickers = raw["ticker"].str.strip()
    for i in np.flatnonzero((tickers == "").to_numpy()):
        problems.append((i, "empty ticker"))
    for i in np.flatnonzero(tickers.duplicated(keep="first").to_numpy()):
        problems.append((i, f"ticker {tickers.iat[i]!r} appears twice"))
    starts = numbers["window_start"]
    ok = starts.notna()
    dates = pd.Series(pd.NaT, index=starts.index, dtype="datetime64[ns]")
    dates[ok] = pd.to_datetime(starts[ok].astype("int64"), unit="ns", utc=True).dt.tz_convert(NY).dt.tz_localize(None)
    for i in np.flatnonzero((ok & (dates.dt.date != day)).to_numpy()):
        problems.append((i, f"window_start {raw['window_start'].iat[i]} is {dates.iat[i].date()}, not {day}"))
    if problems:
        rows = sorted({i for i, _ in problems})
        examples = "; ".join(f"line {i + 2}: {why}" for i, why in sorted(problems)[:MAX_EXAMPLES])
        raise DataSourceError(f"{path}: {len(rows)} malformed row(s) of {len(raw)} ({examples})")
    frame = pd.DataFrame({"symbol": tickers.to_numpy(dtype=object), **{c: numbers[c] for c in NUMERIC_COLUMNS}})
    return conform(frame, DAY_COLUMNS).sort_values("symbol", kind="stable", ignore_index=True)
