"""Per-symbol CSV files (`SYMBOL.csv` or `SYMBOL.csv.gz`, one file a symbol) as a market-data source.

The format people actually have (Yahoo/Kaggle downloads, broker exports; zipline's `csvdir` bundle is the model):

    Date,Open,High,Low,Close,Volume[,Adj Close][,Name]
    2012-08-13,92.29,92.59,91.74,92.4,2075391.0,MMM

Headers are matched case-insensitively, ignoring spaces, `_`, `-`, `/` and `.` (see HEADER_ALIASES): Date/timestamp/
datetime, Open/High/Low/Close (Close/Last too), Volume/vol, optional Adj Close (read and checked, not used: prices are
taken as given, split-adjusted as such downloads are), optional Name/ticker/symbol (the ticker: it must agree with the
file name). The symbol is the file name's stem in upper case; other files (README, LICENSE, names that are not tickers)
are skipped and listed. Beside the files an optional reference file REFERENCE_FILE (`_reference.csv`: symbol, name,
sector, industry, shares_outstanding, optionally type) gives what bars cannot; without it names, sectors and shares
outstanding are unknown (market cap unknown: kept and flagged by the prescreen, never invented).

Rows that cannot become a bar of a session are rejected here with their rule (REJECT_RULES: a date that does not parse,
a date that is no XNYS session, a second row for a date, a field that is text but not a number — the last becomes NaN
and stays). Every other row goes into the bar store as given, empty fields as NaN, so the bar schema quarantines it
with the check it breaks exactly as for Polygon bars (technic_v4.domain.bar_quality). A file that cannot be read as
such a CSV (not gzip, no header, a required column missing, not one parseable date) raises DataSourceError naming it.

Per-day bars: the scan asks a source for one day at a time (`grouped_daily`), so the files are turned into one table
of every bar sorted by date (`CsvBars`) and each day is a slice of it. `CsvDirSource` builds that table in memory on
first use; the scan's runtime attaches the incremental import instead (technic_v4.store.csv_import: only new or changed
files are parsed again). No request is ever sent: the request counter stays at 0 API calls.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import gzip
import io
import re
import threading
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from technic_v4.calendar import is_trading_day, xnys
from technic_v4.data.columns import DAY_COLUMNS, SPLIT_COLUMNS, conform, empty_frame
from technic_v4.data.csvref import TICKER, header_columns, read_text, listing_frame, read_reference_file
from technic_v4.data.source import MarketDataSource
from technic_v4.errors import DataSourceError

REFERENCE_FILE = "_reference.csv"  # the leading "_" can never be a ticker, so it never passes for a symbol file
# (its format: technic_v4.data.csvref)
SUFFIXES = (".csv.gz", ".csv")
PRICE_FIELDS = ("open", "high", "low", "close")
BAR_COLUMNS = ("date", "open", "high", "low", "close", "volume")  # what a symbol file gives the store
REQUIRED = BAR_COLUMNS

# normalised header -> field; a header is normalised by lower-casing and dropping " _-/." characters
HEADER_ALIASES: dict[str, str] = {
    **dict.fromkeys(("date", "timestamp", "datetime", "time", "day", "tradedate"), "date"),
    **dict.fromkeys(("open", "o", "openprice"), "open"),
    **dict.fromkeys(("high", "h", "highprice"), "high"),
    **dict.fromkeys(("low", "l", "lowprice"), "low"),
    **dict.fromkeys(("close", "c", "closelast", "last", "closeprice"), "close"),
    **dict.fromkeys(("adjclose", "adjustedclose", "adjclosing"), "adj_close"),
    **dict.fromkeys(("volume", "vol", "v"), "volume"),
    **dict.fromkeys(("name", "ticker", "symbol"), "symbol"),
}
# rows rejected at import (they never reach the store), by rule
BAD_DATE, NOT_A_SESSION, DUPLICATE_DATE, NOT_A_NUMBER = "bad_date", "not_a_session", "duplicate_date", "not_a_number"
OUTSIDE_CALENDAR = "outside_calendar"  # before/after the XNYS calendar's range (exchange-calendars: ~20 years back)
REJECT_RULES = (BAD_DATE, OUTSIDE_CALENDAR, NOT_A_SESSION, DUPLICATE_DATE, NOT_A_NUMBER)
NA_TEXT = ("", "NaN", "nan", "NA", "N/A", "null", "NULL", "None", "-")  # an empty field, as exports write it


def ticker(text: str) -> str:
    """`nyse:lmt` -> LMT: an exchange prefix (as some exports write it, in file names and the Name column) is dropped."""
    return text.strip().upper().rpartition(":")[2]


def symbol_for(path: Path) -> str | None:
    """The ticker a file holds (`brk.b.csv.gz` -> BRK.B, `NYSE:LMT.csv.gz` -> LMT), or None when the name is not
    [EXCHANGE:]SYMBOL.csv[.gz]."""
    name = path.name
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):
            stem = ticker(name[: -len(suffix)])
            return stem if TICKER.match(stem) else None
    return None


@dataclass
class FolderListing:
    files: dict[str, Path]  # symbol -> file
    reference: Path | None
    skipped: list[str]  # files that are neither a symbol file nor the reference file


def list_folder(folder: Path) -> FolderListing:
    """The symbol files of a folder (not recursive); two files of one symbol (A.csv and A.csv.gz) are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataSourceError(f"CSV folder {folder} does not exist (TECHNIC_CSV_DIR / --csv-dir)")
    files: dict[str, Path] = {}
    skipped, reference = [], None
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        if path.name.lower() == REFERENCE_FILE:
            reference = path
            continue
        symbol = symbol_for(path)
        if symbol is None:
            skipped.append(path.name)
        elif symbol in files:
            raise DataSourceError(f"two files for {symbol} in {folder}: {files[symbol].name} and {path.name}; keep one")
        else:
            files[symbol] = path
    return FolderListing(files, reference, skipped)


# ---- one symbol file ---------------------------------------------------------------------------------------------------


@dataclass
class ParsedFile:
    symbol: str
    bars: pd.DataFrame  # BAR_COLUMNS, date as datetime64[ns], one row per session, sorted
    rows: int  # data rows in the file
    rejects: list[dict] = field(default_factory=list)  # {line, date, rule, value}: rows kept out of the store
    not_numbers: list[dict] = field(default_factory=list)  # {line, date, rule, value}: fields read as NaN


_AWARE = re.compile(r"(?:[+-]\d\d:?\d\d|Z)$")


def _to_dates(text: pd.Series, **how) -> pd.Series:
    """Session dates (midnight); a timestamp with a UTC offset counts in New York time (05:00Z is that day's midnight)."""
    parsed = None
    if not (len(text) and (_AWARE.search(text.iat[0]) or _AWARE.search(text.iat[-1]))):
        try:  # the common case, plain dates: one vectorized parse
            parsed = pd.to_datetime(text, errors="coerce", **how)
        except (ValueError, TypeError):
            parsed = None
        if parsed is not None and parsed.dtype.kind != "M":  # naive and aware values mixed
            parsed = None
    if parsed is None:
        aware = text.str.contains(_AWARE)
        parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
        parsed[~aware] = pd.to_datetime(text[~aware], errors="coerce", **how).astype("datetime64[ns]")
        parsed[aware] = (pd.to_datetime(text[aware], errors="coerce", utc=True, **how)
                         .dt.tz_convert("America/New_York").dt.tz_localize(None))
    days = parsed.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype("datetime64[ns]")  # midnight
    return pd.Series(days, index=text.index)


def _session_dates(values: pd.Series) -> pd.Series:
    """Dates (datetime64[ns], midnight) from ISO dates or timestamps; NaT when unparseable."""
    text = values.astype(str)
    parsed = _to_dates(text, format="ISO8601")
    retry = parsed.isna() & (text.str.strip() != "") if parsed.isna().any() else None
    if retry is not None and retry.any():  # 08/13/2012, 13-Aug-2012 ...: the slow parser only for what ISO 8601 missed
        parsed[retry] = _to_dates(text[retry].str.strip(), format="mixed")
    return parsed


@lru_cache(maxsize=1)
def _all_sessions() -> np.ndarray:
    """Every XNYS session the calendar knows, datetime64[ns] (sorted)."""
    return np.asarray(xnys().sessions.tz_localize(None).values, dtype="datetime64[ns]")


def read_symbol_file(path: Path, symbol: str | None = None, data: bytes | None = None) -> ParsedFile:
    """Parse one SYMBOL.csv[.gz] (`data`: its bytes, when already read) -> ParsedFile; DataSourceError naming the file
    when it cannot be read as a per-symbol bar file."""
    path = Path(path)
    symbol = symbol or symbol_for(path)
    try:
        text = read_text(path, data)
        if not text.strip():
            raise pd.errors.EmptyDataError("no header")
        headers = next(csv.reader([text.partition("\n")[0].strip()]), [])
        cols = header_columns(headers, HEADER_ALIASES, path)
        missing = [c for c in REQUIRED if c not in cols]
        if missing:
            raise DataSourceError(f"{path}: no column for {missing}; found {headers} (expected "
                                  "Date,Open,High,Low,Close,Volume; see technic_v4.data.csvdir.HEADER_ALIASES)")
        labels, cols = cols, {f: f"c{headers.index(h)}" for f, h in cols.items()}  # by position: " Low " is Low
        as_text = {cols[c]: str for c in ("date", "symbol") if c in cols}
        # the C parser reads the numbers; a column holding text that is not a number stays text (handled below)
        raw = pd.read_csv(io.StringIO(text), header=0, names=[f"c{i}" for i in range(len(headers))],
                          usecols=list(cols.values()), dtype=as_text, skipinitialspace=True, keep_default_na=False,
                          na_values=list(NA_TEXT), index_col=False)
    except pd.errors.EmptyDataError:
        raise DataSourceError(f"{path}: empty file (expected a header such as Date,Open,High,Low,Close,Volume)") from None
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError, pd.errors.ParserError, ValueError) as exc:
        raise DataSourceError(f"{path}: not a readable CSV file ({type(exc).__name__}: {exc})") from None
    lines = np.arange(len(raw)) + 2  # the file's line numbers (line 1 is the header)
    if "symbol" in cols and not (raw[cols["symbol"]] == symbol).all():
        given = raw[cols["symbol"]].map(ticker)
        wrong = (given != "") & (given != symbol)
        if wrong.any():
            i = int(np.flatnonzero(wrong.to_numpy())[0])
            raise DataSourceError(f"{path}: line {lines[i]} is a row of {given.iat[i]!r}, not of {symbol} "
                                  f"({int(wrong.sum())} such rows): one file per symbol, named after it")
    dates = _session_dates(raw[cols["date"]])
    rejects: list[dict] = []

    def reject(mask: np.ndarray, rule: str, values) -> None:
        for i in np.flatnonzero(mask):
            rejects.append({"line": int(lines[i]), "date": raw[cols["date"]].iat[i].strip(), "rule": rule,
                            "value": str(values.iat[i])})

    bad_date = dates.isna().to_numpy()
    if len(raw) and bad_date.all():
        example = raw[cols["date"]].iat[0]
        raise DataSourceError(f"{path}: no parseable date in column {labels['date']!r} (line 2: {example!r})")
    reject(bad_date, BAD_DATE, raw[cols["date"]])
    ok = ~bad_date
    if ok.any():
        sessions = _all_sessions()
        values = dates.to_numpy()
        outside = ok & ((values < sessions[0]) | (values > sessions[-1]))  # the exchange calendar knows no sessions there
        reject(outside, OUTSIDE_CALENDAR, raw[cols["date"]])
        ok &= ~outside
        at = np.clip(np.searchsorted(sessions, values), 0, len(sessions) - 1)
        not_session = ok & (sessions[at] != values)
        reject(not_session, NOT_A_SESSION, raw[cols["date"]])
        ok &= ~not_session
    repeated = ok & dates.where(ok).duplicated(keep="first").to_numpy()
    reject(repeated, DUPLICATE_DATE, raw[cols["date"]])
    ok &= ~repeated

    numbers, not_numbers = {}, []
    for name in BAR_COLUMNS[1:] + (("adj_close",) if "adj_close" in cols else ()):
        column = raw[cols[name]]
        if column.dtype == object:  # some field is text: a number with thousands separators, or not a number
            given = column.astype(str).str.strip()
            column = pd.to_numeric(given.str.replace(",", "", regex=False), errors="coerce")
            for i in np.flatnonzero(column.isna().to_numpy() & ok
                                    & ~given.isin(["nan", *NA_TEXT]).to_numpy()):
                not_numbers.append({"line": int(lines[i]), "date": raw[cols["date"]].iat[i].strip(),
                                    "rule": NOT_A_NUMBER, "value": f"{name}={given.iat[i]!r}"})
        numbers[name] = column.to_numpy(dtype=float)
    bars = pd.DataFrame({"date": dates.to_numpy()[ok], **{c: numbers[c][ok] for c in BAR_COLUMNS[1:]}})
    bars = bars.sort_values("date", kind="stable", ignore_index=True)
    rejects.sort(key=lambda r: r["line"])
    return ParsedFile(symbol=symbol, bars=bars, rows=len(raw), rejects=rejects, not_numbers=not_numbers)


# ---- every bar of the folder, served a day at a time ---------------------------------------------------------------------


class CsvBars:
    """Every imported bar (symbol, date, open, high, low, close, volume), sorted by date then symbol, and the listing.

    `load` builds the table when first needed (the import's cached parquet, or the files themselves), so a warm scan
    whose days are all in the bar store never reads it."""

    def __init__(self, load, listing: pd.DataFrame, first: dt.date | None, last: dt.date | None):
        self._load, self._table, self._starts = load, None, None
        self._lock = threading.Lock()
        self.listing, self.first_session, self.last_session = listing, first, last

    def table(self) -> pd.DataFrame:
        with self._lock:
            if self._table is None:
                table = self._load()
                self._starts = table["date"].to_numpy(dtype="datetime64[D]")
                self._table = table
            return self._table

    def day(self, day: dt.date) -> pd.DataFrame:
        """DAY_COLUMNS for one session (empty when no file has a row for it)."""
        table = self.table()
        key = np.datetime64(day, "D")
        lo, hi = np.searchsorted(self._starts, key, "left"), np.searchsorted(self._starts, key, "right")
        return conform(table.iloc[lo:hi].drop(columns="date").reset_index(drop=True), DAY_COLUMNS)


def bars_in_memory(folder: Path) -> tuple[CsvBars, list[ParsedFile]]:
    """Parse every file of `folder` (no cache): CsvBars and the parsed files (for their rejects)."""
    listing = list_folder(folder)
    parsed = [read_symbol_file(p, s) for s, p in listing.files.items()]
    reference = read_reference_file(listing.reference) if listing.reference else None
    table = combine({p.symbol: p.bars for p in parsed})
    first, last = (table["date"].min().date(), table["date"].max().date()) if len(table) else (None, None)
    return CsvBars(lambda: table, listing_frame(list(listing.files), reference), first, last), parsed


def combine(frames: dict[str, pd.DataFrame], table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-symbol bar frames (and an already combined `table`) -> one table, symbol first, sorted by date then symbol."""
    parts = [f.assign(symbol=s) for s, f in frames.items() if len(f)] + ([table] if table is not None and len(table) else [])
    if not parts:
        return pd.DataFrame({"symbol": pd.Series(dtype=object), **{c: pd.Series(dtype="float64") for c in BAR_COLUMNS}})
    table = pd.concat(parts, ignore_index=True)[["symbol", *BAR_COLUMNS]]
    return table.sort_values(["date", "symbol"], kind="stable", ignore_index=True)


class CsvDirSource(MarketDataSource):
    """Bars and the listing from a folder of per-symbol CSV files. No requests, no splits (prices as given)."""

    name = "csv"
    simulated = False
    listing_has_details = True  # the listing carries all there is (the reference file); no per-symbol calls

    def __init__(self, folder: str | Path):
        super().__init__()
        self.folder = Path(folder).expanduser()
        self.bars: CsvBars | None = None
        self.import_report: dict = {}

    def __repr__(self) -> str:
        return f"CsvDirSource({str(self.folder)!r})"

    def attach(self, bars: CsvBars, report: dict | None = None) -> None:
        """Serve from an import (technic_v4.store.csv_import) instead of parsing the folder in memory."""
        self.bars, self.import_report = bars, report or {}

    def _bars(self) -> CsvBars:
        if self.bars is None:
            bars, parsed = bars_in_memory(self.folder)
            self.attach(bars, {"files": len(parsed), "files_read": len(parsed),
                               "rows": sum(p.rows for p in parsed),
                               "rows_rejected": sum(len(p.rejects) for p in parsed)})
        return self.bars

    def last_session(self) -> dt.date | None:
        """The last session any file has a row for: the default as_of of a scan on this folder."""
        return self._bars().last_session

    async def grouped_daily(self, day: dt.date) -> pd.DataFrame:
        day = pd.Timestamp(day).date()
        bars = self._bars()
        frame = await asyncio.to_thread(bars.day, day)
        if frame.empty and bars.first_session is not None and is_trading_day(day):
            raise DataSourceError(f"no file in {self.folder} has a row for session {day} "
                                  f"(the files span {bars.first_session} to {bars.last_session})")
        return frame

    async def reference(self) -> pd.DataFrame:
        return self._bars().listing.copy()

    async def splits(self, since: dt.date | None = None) -> pd.DataFrame:
        return empty_frame(SPLIT_COLUMNS)  # per-symbol downloads are split-adjusted already
