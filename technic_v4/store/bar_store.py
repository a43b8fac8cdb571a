"""The bar store: one parquet file per trading day under TECHNIC_DATA_DIR, read back many days at a time.

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

from technic_v4.data.columns import BAR_FIELDS, DAY_COLUMNS, REFERENCE_COLUMNS, SPLIT_COLUMNS, conform
from technic_v4.errors import StoreLockTimeout
from technic_v4.store.atomic import atomic_write, atomic_write_text

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
        df = conform(frame, DAY_COLUMNS)
        repeated = df["symbol"].duplicated(keep="last")
        if repeated.any():  # a copy of every column only when there is something to drop
            df = df.loc[~repeated.to_numpy()]
        table = pa.Table.from_pandas(
            df.assign(date=pd.Timestamp(day).date())[DAY_SCHEMA.names], schema=DAY_SCHEMA, preserve_index=False
        )
        folder = self._day_dir(day)
        # no dictionary pages: a day's symbols are unique and its floats rarely repeat (2.3x faster writes, 25 % smaller files)
        atomic_write(folder / "bars.parquet", lambda p: pq.write_table(table, p, compression="zstd", use_dictionary=False))
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

    # ---- bars of many days ---------------------------------------------------------------------------------------

    def read_bars(self, days: list[dt.date], columns: tuple[str, ...] = BAR_FIELDS) -> tuple[list[dt.date], pa.Table]:
        """(the stored days among `days`, one table of their bars): one multi-threaded pyarrow read of all day files,
        symbols dictionary-encoded straight from the parquet pages so no millions of Python strings are built."""
        days = sorted({pd.Timestamp(d).date() for d in days if self.has_day(d, final_only=False)})
        if not days:
            raise KeyError(f"none of the requested days are in the bar store {self.root}")
        files = [str(self._day_dir(d) / "bars.parquet") for d in days]
        table = ds.dataset(files, format=_DICT_FORMAT, schema=_READ_SCHEMA).to_table(columns=["date", "symbol", *columns])
        return days, table.unify_dictionaries()

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

    def drop_reference(self) -> None:
        """Forget the cached listing (its meta first), so the next scan lists the universe again."""
        (self.root / "reference" / "meta.json").unlink(missing_ok=True)
        (self.root / "reference" / "reference.parquet").unlink(missing_ok=True)

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

    def state_names(self, prefix: str = "") -> list[str]:
        return sorted(p.stem for p in (self.root / "state").glob(f"{prefix}*.json"))
