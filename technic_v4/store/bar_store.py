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
shared state goes through `lock()`, a file lock with a timeout; a backfill goes through `fetch_lock()`, so two cold
scans fetch each day once.

Every day file is verified before its bytes are used: meta.json holds the parquet file's checksum (and size), so a
truncated, overwritten or bit-flipped file, or a parquet replaced without its meta (a kill between the two renames),
fails `damaged(day)`. Such a day is set aside (bars.damaged.parquet, meta removed) and refetched by the fetch stage;
a read that meets one raises StoreCorruption naming the file. A file is hashed once per process while its
(inode, size, mtime) stays the same. The splits file carries its own `checked_through` (parquet metadata), so
deleting reference/ can never leave a state claiming coverage.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from technic_v4.data.columns import BAR_FIELDS, DAY_COLUMNS, REFERENCE_COLUMNS, SPLIT_COLUMNS, conform
from technic_v4.errors import StoreCorruption, StoreLockTimeout
from technic_v4.store.atomic import atomic_write, atomic_write_text, file_digest, matches_digest, remember_digest

log = logging.getLogger(__name__)
DAMAGED_NAME = "bars.damaged.parquet"
SPLITS_CHECKED_KEY = b"technic.checked_through"

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

    def acquire_fetch_lock(self, on_wait=None, poll: float = 2.0) -> FileLock:
        """The backfill lock, held (release it when the days are stored): a second scan that needs the same days
        waits here, then finds them stored. The wait is bounded but patient: it lasts while the holder keeps storing
        days (a free-tier backfill takes an hour); `lock_timeout` seconds without a new day raise StoreLockTimeout.
        `on_wait(seconds_waited, days_stored)` is called every `poll` seconds of waiting."""
        lock = FileLock(str(self.root / ".fetch.lock"), thread_local=False)
        started = idle_since = time.monotonic()
        seen = self._day_count()
        while True:
            try:
                lock.acquire(timeout=poll)
                return lock
            except Timeout:
                now, count = time.monotonic(), self._day_count()
                if count != seen:
                    seen, idle_since = count, now
                if now - idle_since > self.lock_timeout:
                    raise StoreLockTimeout(
                        f"another scan holds the backfill lock {lock.lock_file} and stored no day for more than "
                        f"{self.lock_timeout:g} s; set TECHNIC_LOCK_TIMEOUT higher or check for a stuck process"
                    ) from None
                if on_wait is not None:
                    on_wait(now - started, count)

    def _day_count(self) -> int:
        return sum(1 for _ in self.bars_dir.glob("date=*/meta.json"))

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
        digest: list[str] = []

        def write(p: Path) -> None:
            # no dictionary pages: a day's symbols are unique and its floats rarely repeat (2.3x faster writes, 25 %
            # smaller files)
            pq.write_table(table, p, compression="zstd", use_dictionary=False)
            digest.append(file_digest(p))  # of the bytes renamed into place, still in the page cache

        path = atomic_write(folder / "bars.parquet", write)
        meta = {
            "day": _iso(day),
            "rows": int(table.num_rows),
            "fetched_at": (fetched_at or dt.datetime.now(dt.timezone.utc)).isoformat(),
            "final": bool(final),
            "source": source,
            "bytes": path.stat().st_size,
            "checksum": digest[0],
        }
        atomic_write_text(folder / "meta.json", json.dumps(meta))
        remember_digest(path, digest[0])
        return table.num_rows

    def day_file(self, day) -> Path:
        return self._day_dir(day) / "bars.parquet"

    def damaged(self, day) -> str | None:
        """Why the stored day's file fails its check (None when it passes or the day is not stored): checksum and
        size from its meta; a day stored before checksums, its row count from the parquet footer."""
        path = self.day_file(day)
        try:
            meta = json.loads((self._day_dir(day) / "meta.json").read_text())
            st = path.stat()
        except FileNotFoundError:
            return None
        except ValueError as exc:
            return f"its meta.json is unreadable ({exc})"
        if "checksum" in meta:
            if st.st_size != meta["bytes"]:
                return f"size {st.st_size:,} bytes, {meta['bytes']:,} when stored (truncated or overwritten)"
            if not matches_digest(path, meta["checksum"]):
                return "checksum mismatch (bytes changed since it was stored)"
        else:
            try:
                rows = pq.read_metadata(path).num_rows
            except (OSError, pa.ArrowException) as exc:
                return f"not a readable parquet file ({type(exc).__name__}: {exc})"
            if rows != meta.get("rows"):
                return f"{rows:,} rows, {meta.get('rows')} when stored"
        return None

    def set_aside(self, day, problem: str) -> Path:
        """Take a damaged day out of the store (meta removed, file kept as bars.damaged.parquet): it is missing now,
        so the fetch stage refetches it."""
        folder = self._day_dir(day)
        (folder / "meta.json").unlink(missing_ok=True)
        kept = folder / DAMAGED_NAME
        with contextlib.suppress(FileNotFoundError):
            os.replace(folder / "bars.parquet", kept)
        log.warning("bar store: %s %s; set aside as %s, to be refetched", self.day_file(day), problem, kept.name)
        return kept

    def check_days(self, days) -> None:
        """Raise StoreCorruption, naming each file, when a stored day among `days` fails its check (those days are
        set aside first, so the next scan refetches them)."""
        bad = {d: p for d in days if (p := self.damaged(d)) is not None}
        if bad:
            for d, p in bad.items():
                self.set_aside(d, p)
            raise StoreCorruption(self.corruption_message(bad))

    def corruption_message(self, bad: dict, *, refetch_failed: dict | None = None) -> str:
        """What is wrong with which day file, and the fix."""
        listed = "; ".join(f"{self.day_file(d)}: {p}" for d, p in sorted(bad.items()))
        if refetch_failed:
            why = "; ".join(f"{d}: {m}" for d, m in sorted(refetch_failed.items()))
            return (f"damaged day file(s) in the bar store: {listed}. Set aside as {DAMAGED_NAME}; the source could "
                    f"not give the day again ({why}). Fix: restore the day from a backup, or run again once the "
                    "source answers; delete the day's folder to scan without it")
        return (f"damaged day file(s) in the bar store: {listed}. Set aside as {DAMAGED_NAME}: run the scan again "
                "and it refetches the day (1 call per day)")

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
        self.check_days([day])
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
        self.check_days(days)
        files = [str(self._day_dir(d) / "bars.parquet") for d in days]
        try:
            table = ds.dataset(files, format=_DICT_FORMAT, schema=_READ_SCHEMA).to_table(
                columns=["date", "symbol", *columns])
        except (OSError, pa.ArrowException) as exc:  # bytes that match their checksum but do not decode
            raise StoreCorruption(f"day files of {days[0]} .. {days[-1]} in {self.bars_dir} do not decode "
                                  f"({type(exc).__name__}: {exc})") from exc
        return days, table.unify_dictionaries()

    # ---- reference data, splits and state ------------------------------------------------------------------------

    def write_reference(self, df: pd.DataFrame, fetched_at: dt.datetime | None = None) -> None:
        extra = [c for c in df.columns if c not in REFERENCE_COLUMNS]
        table = pa.Table.from_pandas(conform(df, REFERENCE_COLUMNS).join(df[extra].reset_index(drop=True)), preserve_index=False)
        atomic_write(self.root / "reference" / "reference.parquet", lambda p: pq.write_table(table, p))
        when = (fetched_at or dt.datetime.now(dt.timezone.utc)).isoformat()
        atomic_write_text(self.root / "reference" / "meta.json", json.dumps({"fetched_at": when, "rows": len(df)}))

    def read_reference(self) -> tuple[pd.DataFrame, dt.datetime] | None:
        """The cached universe and when it was listed; None (so it is listed again) when either file is missing, or
        unreadable, or the two do not match (rows)."""
        path = self.root / "reference" / "reference.parquet"
        try:
            meta = json.loads((self.root / "reference" / "meta.json").read_text())
            df = pq.read_table(path).to_pandas()
        except FileNotFoundError:
            return None
        except (ValueError, OSError, pa.ArrowException) as exc:
            log.warning("reference cache %s is unreadable (%s); listing the universe again", path, exc)
            return None
        if meta.get("rows", len(df)) != len(df):
            log.warning("reference cache %s has %d rows, its meta.json %s; listing the universe again", path,
                        len(df), meta.get("rows"))
            return None
        return df, dt.datetime.fromisoformat(meta["fetched_at"])

    def drop_reference(self) -> None:
        """Forget the cached listing (its meta first), so the next scan lists the universe again."""
        (self.root / "reference" / "meta.json").unlink(missing_ok=True)
        (self.root / "reference" / "reference.parquet").unlink(missing_ok=True)

    def write_splits(self, df: pd.DataFrame, checked_through: dt.date | None = None) -> None:
        """Every known split, with the day through which the source was asked (in the same file, so the claim of
        coverage goes wherever the splits go)."""
        table = pa.Table.from_pandas(conform(df, SPLIT_COLUMNS), preserve_index=False)
        if checked_through is not None:
            table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                                   SPLITS_CHECKED_KEY: _iso(checked_through).encode()})
        atomic_write(self.root / "reference" / "splits.parquet", lambda p: pq.write_table(table, p))

    def splits_checked_through(self) -> dt.date | None:
        """The day through which the stored splits are complete; None without a splits file (or one that predates
        this record): then the next refresh asks for every split."""
        try:
            meta = pq.read_schema(self.root / "reference" / "splits.parquet").metadata or {}
        except (FileNotFoundError, pa.ArrowException, OSError):
            return None
        value = meta.get(SPLITS_CHECKED_KEY)
        return dt.date.fromisoformat(value.decode()) if value else None

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

