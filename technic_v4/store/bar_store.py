"""The bar store: one parquet file per trading day under TECHNIC_DATA_DIR, loaded as a dates x symbols panel.

Layout (hive-style, readable by any parquet tool):

    bars/date=2025-03-03/bars.parquet   raw (unadjusted) bars of every symbol that day
    bars/date=2025-03-03/meta.json      rows, fetched_at (UTC), final, source — written after the parquet
    reference/reference.parquet         the universe (+ reference/meta.json with fetched_at)
    reference/splits.parquet            every known split
    state/<name>.json                   small scan state (blacklist, last signals, splits checked-through)

A day exists only when its meta.json exists, and both files are written atomically (temp + rename), so a scan
killed mid-write leaves either nothing or a whole day — never half a file that a later scan would read. Day files
need no lock (a rename is atomic and two writers of one closed day write the same bars); read-modify-write of
shared state goes through `lock()`, a file lock with a timeout.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from technic_v4.data.models import DAY_COLUMNS, REFERENCE_COLUMNS, SPLIT_COLUMNS, conform
from technic_v4.errors import StoreLockTimeout
from technic_v4.store.atomic import atomic_write, atomic_write_text
from technic_v4.store.panel import FIELDS, Panel

DAY_SCHEMA = pa.schema(
    [("date", pa.date32()), ("symbol", pa.string())] + [(c, pa.float64()) for c in DAY_COLUMNS if c != "symbol"]
)

_READ_SCHEMA = pa.schema([("date", pa.date32()), ("symbol", pa.dictionary(pa.int32(), pa.string()))] + list(DAY_SCHEMA)[2:])
_DICT_FORMAT = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=["symbol"]))


def _iso(day: dt.date | str) -> str:
    return pd.Timestamp(day).date().isoformat()


class BarStore:
    def __init__(self, data_dir: Path | str, lock_timeout: float = 60.0):
        self.root = Path(data_dir).expanduser()
        self.bars_dir = self.root / "bars"
        self.lock_timeout = lock_timeout
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.root / ".store.lock"), timeout=lock_timeout)

    def __repr__(self) -> str:
        return f"BarStore({str(self.root)!r})"

    # ---- locking -----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self):
        """Exclusive across processes; raises StoreLockTimeout (naming the lock file) instead of waiting forever."""
        try:
            self._lock.acquire()
        except Timeout as exc:
            raise StoreLockTimeout(
                f"bar store {self.root} is locked by another scan for more than {self.lock_timeout:g} s "
                f"({self._lock.lock_file}); set TECHNIC_LOCK_TIMEOUT higher or check for a stuck process"
            ) from exc
        try:
            yield self
        finally:
            self._lock.release()

    # ---- days --------------------------------------------------------------------------------------------------

    def _day_dir(self, day) -> Path:
        return self.bars_dir / f"date={_iso(day)}"

    def write_day(
        self, day: dt.date, frame: pd.DataFrame, *, source: str, final: bool = True, fetched_at: dt.datetime | None = None
    ) -> int:
        """Store one day's bars (DAY_COLUMNS; duplicate symbols keep the last row). Returns the row count."""
        df = conform(frame, DAY_COLUMNS).drop_duplicates(subset="symbol", keep="last")
        table = pa.Table.from_pandas(
            df.assign(date=pd.Timestamp(day).date())[DAY_SCHEMA.names], schema=DAY_SCHEMA, preserve_index=False
        )
        folder = self._day_dir(day)
        atomic_write(folder / "bars.parquet", lambda p: pq.write_table(table, p, compression="zstd"))
        meta = {
            "day": _iso(day),
            "rows": int(table.num_rows),
            "fetched_at": (fetched_at or dt.datetime.now(dt.timezone.utc)).isoformat(),
            "final": bool(final),
            "source": source,
        }
        atomic_write_text(folder / "meta.json", json.dumps(meta))
        return table.num_rows

    def day_info(self, day) -> dict | None:
        """Metadata of a stored day (rows, fetched_at as aware datetime, final, source), or None."""
        try:
            meta = json.loads((self._day_dir(day) / "meta.json").read_text())
        except FileNotFoundError:
            return None
        meta["fetched_at"] = dt.datetime.fromisoformat(meta["fetched_at"])
        return meta

    def has_day(self, day, final_only: bool = True) -> bool:
        info = self.day_info(day)
        return info is not None and (info["final"] or not final_only) and (self._day_dir(day) / "bars.parquet").exists()

    def stored_days(self, final_only: bool = False) -> list[dt.date]:
        days = []
        for meta in self.bars_dir.glob("date=*/meta.json"):
            d = dt.date.fromisoformat(meta.parent.name.removeprefix("date="))
            if self.has_day(d, final_only=final_only):
                days.append(d)
        return sorted(days)

    def read_day(self, day) -> pd.DataFrame:
        if not self.has_day(day, final_only=False):
            raise KeyError(f"{_iso(day)} is not in the bar store {self.root}")
        return pq.read_table(self._day_dir(day) / "bars.parquet").to_pandas().drop(columns="date")

    def delete_day(self, day) -> None:
        folder = self._day_dir(day)
        (folder / "meta.json").unlink(missing_ok=True)  # meta first: the day stops existing before its bars go
        (folder / "bars.parquet").unlink(missing_ok=True)

    # ---- the panel ---------------------------------------------------------------------------------------------

    def load_panel(
        self, days: list[dt.date], symbols=None, splits: pd.DataFrame | None = None, duplicates: list | None = None
    ) -> Panel:
        """A dates x symbols panel of the stored `days` (missing days are skipped), split-adjusted as of the last day.

        One multi-threaded pyarrow read of all day files, then a vectorized scatter into (T, N) arrays. A (date,
        symbol) stored twice cannot be told apart, so its bar becomes NaN and, when `duplicates` is a list, a record
        {symbol, date, check, details} per duplicate is appended to it for the quarantine report.
        """
        days = sorted({pd.Timestamp(d).date() for d in days if self.has_day(d, final_only=False)})
        if not days:
            raise KeyError(f"none of the requested days are in the bar store {self.root}")
        files = [str(self._day_dir(d) / "bars.parquet") for d in days]
        # Symbols come back dictionary-encoded straight from the parquet pages: no 2M Python strings are built.
        table = ds.dataset(files, format=_DICT_FORMAT, schema=_READ_SCHEMA).to_table(columns=["date", "symbol", *FIELDS])
        table = table.unify_dictionaries()
        sym = table.column("symbol")
        names = np.asarray(sym.chunk(0).dictionary.to_pylist() if sym.num_chunks else [], dtype=object)
        codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in sym.chunks]) if sym.num_chunks else np.array([], int)
        if symbols is None:
            order = np.argsort(names.astype(str), kind="stable")
            cols = np.empty(len(names), dtype=np.int64)
            cols[order] = np.arange(len(names))
            symbols = names[order]
        else:
            symbols = np.asarray(list(symbols), dtype=object)
            cols = pd.Index(symbols).get_indexer(names)
        col = cols[codes]
        dates = np.array(days, dtype="datetime64[D]")
        day_numbers = pa.compute.cast(table.column("date"), pa.int32()).to_numpy()
        row = np.searchsorted(dates.astype(np.int64), day_numbers)
        ok = col >= 0
        dup_cells = _duplicate_cells(row[ok], col[ok], len(symbols))
        arrays = {}
        for f in FIELDS:
            a = np.full((len(dates), len(symbols)), np.nan)
            a[row[ok], col[ok]] = table.column(f).to_numpy(zero_copy_only=False)[ok]
            a.ravel()[dup_cells] = np.nan
            arrays[f] = a
        if dup_cells.size and duplicates is not None:
            r, c = np.divmod(dup_cells, len(symbols))
            duplicates.extend(
                {"symbol": symbols[ci], "date": str(dates[ri]), "check": "unique (symbol, date)",
                 "details": "stored more than once; bar dropped"}
                for ri, ci in zip(r, c)
            )
        if splits is not None and len(splits):
            adjust_for_splits(arrays, dates, symbols, splits)
        return Panel(dates=dates, symbols=symbols, **arrays)

    # ---- reference data, splits and state ------------------------------------------------------------------------

    def write_reference(self, df: pd.DataFrame, fetched_at: dt.datetime | None = None) -> None:
        extra = [c for c in df.columns if c not in REFERENCE_COLUMNS]
        table = pa.Table.from_pandas(conform(df, REFERENCE_COLUMNS).join(df[extra].reset_index(drop=True)), preserve_index=False)
        atomic_write(self.root / "reference" / "reference.parquet", lambda p: pq.write_table(table, p))
        when = (fetched_at or dt.datetime.now(dt.timezone.utc)).isoformat()
        atomic_write_text(self.root / "reference" / "meta.json", json.dumps({"fetched_at": when, "rows": len(df)}))

    def read_reference(self) -> tuple[pd.DataFrame, dt.datetime] | None:
        try:
            meta = json.loads((self.root / "reference" / "meta.json").read_text())
            df = pq.read_table(self.root / "reference" / "reference.parquet").to_pandas()
        except FileNotFoundError:
            return None
        return df, dt.datetime.fromisoformat(meta["fetched_at"])

    def write_splits(self, df: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(conform(df, SPLIT_COLUMNS), preserve_index=False)
        atomic_write(self.root / "reference" / "splits.parquet", lambda p: pq.write_table(table, p))

    def read_splits(self) -> pd.DataFrame | None:
        path = self.root / "reference" / "splits.parquet"
        return conform(pq.read_table(path).to_pandas(), SPLIT_COLUMNS) if path.exists() else None

    def read_state(self, name: str) -> dict | None:
        try:
            return json.loads((self.root / "state" / f"{name}.json").read_text())
        except FileNotFoundError:
            return None

    def write_state(self, name: str, state: dict) -> None:
        atomic_write_text(self.root / "state" / f"{name}.json", json.dumps(state, indent=1, sort_keys=True, default=str))


def _duplicate_cells(rows: np.ndarray, cols: np.ndarray, n_symbols: int) -> np.ndarray:
    """Flat (row * N + col) indices hit by more than one stored bar."""
    flat = rows.astype(np.int64) * n_symbols + cols
    uniq, counts = np.unique(flat, return_counts=True)
    return uniq[counts > 1]


def adjust_for_splits(arrays: dict[str, np.ndarray], dates: np.ndarray, symbols: np.ndarray, splits: pd.DataFrame) -> None:
    """In place: bars before each split's execution date scaled to post-split shares (prices × from/to, volume ×
    to/from). Only splits executed within the panel's dates apply; later ones are not known as of its last day."""
    pos = pd.Index(symbols).get_indexer(splits["symbol"])
    when = pd.to_datetime(splits["execution_date"]).values.astype("datetime64[D]")
    ratio = (splits["split_from"] / splits["split_to"]).to_numpy(dtype=float)
    applies = (pos >= 0) & (when > dates[0]) & (when <= dates[-1]) & np.isfinite(ratio) & (ratio > 0)
    for p, w, r in zip(pos[applies], when[applies], ratio[applies]):  # one pass per split (tens), not per symbol
        rows = dates < w
        for f in ("open", "high", "low", "close"):
            arrays[f][rows, p] *= r
        arrays["volume"][rows, p] /= r
