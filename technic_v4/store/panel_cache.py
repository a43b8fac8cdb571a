"""Columnar panel cache: the lookback window's raw bars as one memory-mapped .npy file per field.

A warm scan reads the window from here instead of decoding 300 parquet day files. Layout under the store root:

    panel_cache/current.json          {"gen": "gen-<id>"}: the generation readers use (replaced atomically)
    panel_cache/gen-<id>/meta.json    days, each day's store meta (its signature), duplicate cells, symbols count
    panel_cache/gen-<id>/<field>.npy  (days x symbols) float64, raw (unadjusted) bars, NaN = no bar or duplicate
    panel_cache/gen-<id>/present.npy  (days x symbols) bool: a bar was stored (also when its values are NaN)
    panel_cache/gen-<id>/symbols.npy  sorted symbols

Each cached day is keyed on its stored meta.json (fetched_at, final, rows, checksum, ...), so a day refetched or
turned from provisional to final is re-read; a new day is read alone and merged with the still-valid rows. Split
adjustment is not cached: callers adjust the copy-on-write arrays, so a new split never invalidates anything here.

Verified before use: a generation's meta holds the checksum of every file in it and a fingerprint of the day metas
it was built from; a file whose bytes changed (random bytes with the header kept included) or a meta that does not
match itself makes the generation invalid, and it is rebuilt from the (verified) day files. Any unreadable
generation falls back to reading the day files, so the cache can only cost time, never change a result.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from technic_v4.data.columns import BAR_FIELDS
from technic_v4.store.atomic import atomic_write_text, bytes_digest, file_digest, matches_digest, remember_digest, write_error
from technic_v4.store.bar_store import BarStore

log = logging.getLogger(__name__)
FORMAT = 2  # 2: checksums of every file and the fingerprint of the day metas it was built from
CACHE_DIR = "panel_cache"


@dataclass
class RawBars:
    """Raw (unadjusted) bars for T days x N symbols; `duplicates` lists the (symbol, iso date) cells stored twice,
    which are NaN in every field."""

    dates: np.ndarray  # datetime64[D], (T,)
    symbols: np.ndarray  # str objects, (N,), sorted unless a caller asked for its own order
    fields: dict[str, np.ndarray]
    present: np.ndarray  # bool (T, N)
    duplicates: list[tuple[str, str]] = field(default_factory=list)


# ---- the uncached read: one pyarrow read of the day files, a vectorized scatter -------------------------------------


DAYS_PER_READ = 50  # day files decoded at once: the Arrow table of 300 days of 60,000 symbols alone is 860 MB


def read_raw_bars(store: BarStore, days: list[dt.date], symbols=None) -> RawBars:
    """The stored `days` (missing days skipped) as arrays, from the day files. `symbols` fixes the columns and
    their order (unknown symbols get all-NaN columns); by default every symbol seen, sorted.

    Memory: the symbols are read first (two columns), then the bars DAYS_PER_READ days at a time straight into the
    window's arrays, with int32 cell indices. At 60,000 symbols x 300 days the peak is ~1.4 GB below one whole-table
    read."""
    days, table = store.read_bars(days, ())
    if symbols is None:
        symbols = np.sort(np.asarray(table.column("symbol").chunk(0).dictionary.to_pylist() if table.num_rows else [],
                                     dtype=object).astype(str)).astype(object)
    else:
        symbols = np.asarray(list(symbols), dtype=object)
    del table
    dates = np.array(days, dtype="datetime64[D]")
    shape = (len(dates), len(symbols))
    fields = {f: np.full(shape, np.nan) for f in BAR_FIELDS}
    present = np.zeros(shape, dtype=bool)
    flat_type = np.int32 if shape[0] * shape[1] < 2**31 else np.int64
    flats = []
    for start in range(0, len(days), DAYS_PER_READ):
        _, table = store.read_bars(days[start : start + DAYS_PER_READ], BAR_FIELDS)
        flat, ok = _cells(table, dates, symbols, flat_type)
        for f in BAR_FIELDS:
            values = table.column(f).to_numpy(zero_copy_only=False)
            fields[f].ravel()[flat] = values[ok]
        present.ravel()[flat] = True
        flats.append(flat)
        del table
    dup_cells = _duplicate_cells(np.concatenate(flats) if flats else np.array([], flat_type), shape[0] * shape[1])
    del flats
    for f in BAR_FIELDS:
        fields[f].ravel()[dup_cells] = np.nan
    r, c = np.divmod(dup_cells, max(shape[1], 1))
    duplicates = [(symbols[ci], str(dates[ri])) for ri, ci in zip(r, c)]
    return RawBars(dates, symbols, fields, present, duplicates)


def _cells(table: pa.Table, dates: np.ndarray, symbols: np.ndarray, flat_type) -> tuple[np.ndarray, np.ndarray]:
    """(flat row * N + col index of each bar whose symbol is a column, which bars those are)."""
    sym = table.column("symbol")
    names = np.asarray(sym.chunk(0).dictionary.to_pylist() if sym.num_chunks else [], dtype=object)
    codes = (np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in sym.chunks]) if sym.num_chunks
             else np.array([], np.int32))
    col = _indexer(symbols, names).astype(flat_type)[codes]
    ok = col >= 0
    day_numbers = pa.compute.cast(table.column("date"), pa.int32()).to_numpy()
    row = np.searchsorted(dates.astype(np.int64), day_numbers).astype(flat_type)
    flat = row * flat_type(len(symbols)) + col
    return flat[ok], ok


def _indexer(wanted: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Position of each of `names` in `wanted` (-1 when absent)."""
    import pandas as pd

    return pd.Index(wanted).get_indexer(names)


def _duplicate_cells(flat: np.ndarray, cells: int) -> np.ndarray:
    """Flat (row * N + col) indices hit by more than one stored bar. Each bar writes its position into its cell; a
    bar whose position did not survive shares the cell with a later one. O(bars), where sorting them (np.unique) took
    2.7 s at 60,000 symbols x 300 days."""
    if flat.size == 0:
        return flat
    last = np.empty(cells, dtype=np.int32 if flat.size < 2**31 else np.int64)
    position = np.arange(flat.size, dtype=last.dtype)
    last[flat] = position
    return np.unique(flat[last[flat] != position])


# ---- the cache -------------------------------------------------------------------------------------------------------


def day_signatures(store: BarStore, days: list[dt.date]) -> dict[dt.date, str]:
    """Stored days among `days` (same rule as BarStore.read_bars) -> their meta plus the day file's identity (inode,
    size, mtime), so a day rewritten under the same meta (a repair by hand) is re-read too."""
    out = {}
    for d in sorted(set(days)):
        info = store.day_info(d)
        try:
            st = (store._day_dir(d) / "bars.parquet").stat()
        except FileNotFoundError:
            continue
        if info is not None:
            out[d] = json.dumps([info, st.st_ino, st.st_size, st.st_mtime_ns], sort_keys=True, default=str)
    return out


def inputs_fingerprint(days: list[str], sigs: list[str]) -> str:
    """One digest of what a generation was built from: its days and each day's store meta and file identity."""
    return bytes_digest(json.dumps([days, sigs]).encode())


class PanelCache:
    """Qlib-style: a wrapper over the bar store that only overrides how the window's bars are loaded."""

    def __init__(self, store: BarStore):
        self.store = store
        self.root = store.root / CACHE_DIR

    def load(self, days: list[dt.date]) -> RawBars:
        """Raw bars of the stored `days`, every symbol, sorted: from the cache when every day's meta matches,
        else the changed and new days are read from the store, merged in and written as a new generation."""
        sigs = day_signatures(self.store, days)
        if not sigs:
            raise KeyError(f"none of the requested days are in the bar store {self.store.root}")
        old = self._open_current()
        if old is not None and (served := _serve(old, sigs)) is not None:
            return served
        try:
            raw = self._merge(old, sigs)
        except (OSError, ValueError):  # the generation went away mid-read (a concurrent scan replaced it)
            raw = self._merge(None, sigs)
        self._write(raw, sigs)
        return raw

    def days_to_read(self, days: list[dt.date]) -> list[dt.date]:
        """The stored days among `days` that a load would read from their day files (not served by the cache)."""
        sigs = day_signatures(self.store, days)
        old = self._open_current()
        return [d for d in sorted(sigs) if old is None or old.sigs.get(d) != sigs[d]]

    # -- reading --

    def _open_current(self) -> _Generation | None:
        try:
            gen = json.loads((self.root / "current.json").read_text())["gen"]
            return _Generation.open(self.root / gen)
        except FileNotFoundError:  # no cache yet, or a generation removed under us
            return None
        except (OSError, ValueError, KeyError) as exc:  # damaged: rebuilt from the day files
            log.warning("panel cache %s is not valid (%s); rebuilding it from the day files", self.root, exc)
            return None

    def _merge(self, old: _Generation | None, sigs: dict[dt.date, str]) -> RawBars:
        """The window from the still-valid cached rows plus the day files of new or changed days."""
        days = sorted(sigs)
        reuse = {d: old.row[d] for d in days if old is not None and old.sigs.get(d) == sigs[d]}
        fresh_days = [d for d in days if d not in reuse]
        fresh = read_raw_bars(self.store, fresh_days) if fresh_days else None
        if not reuse and fresh is not None and len(fresh.dates) == len(days):
            # nothing cached to merge (a cold scan): the day files' arrays are the window as they are, sorted; a
            # second full-size copy would add 720 MB and 2 s at 60,000 symbols x 300 days
            fresh.duplicates.sort(key=lambda dup: (dup[1], dup[0]))
            return fresh
        parts = [] if fresh is None else [fresh.symbols]
        if reuse:
            old_rows = np.fromiter(reuse.values(), dtype=np.int64)
            parts.append(old.symbols[old.present[old_rows].any(axis=0)])
        symbols = np.unique(np.concatenate(parts).astype(str)).astype(object)
        dates = np.array(days, dtype="datetime64[D]")
        shape = (len(dates), len(symbols))
        fields = {f: np.full(shape, np.nan) for f in BAR_FIELDS}
        present = np.zeros(shape, dtype=bool)
        duplicates = []
        if reuse:
            _copy_block(old.arrays(), old.present, old_rows, old.symbols, fields, present, _rows(dates, reuse), symbols)
            duplicates += [dup for dup in old.duplicates if dt.date.fromisoformat(dup[1]) in reuse]
        if fresh is not None:
            rows = np.searchsorted(dates, fresh.dates)
            _copy_block(fresh.fields, fresh.present, np.arange(len(fresh.dates)), fresh.symbols, fields, present, rows, symbols)
            duplicates += fresh.duplicates
        duplicates.sort(key=lambda dup: (dup[1], dup[0]))
        return RawBars(dates, symbols, fields, present, duplicates)

    # -- writing --

    def _write(self, raw: RawBars, sigs: dict[dt.date, str]) -> None:
        """A new generation in a temp folder, renamed whole, then current.json is switched; the old one is removed.
        No fsync: the cache is derived data, and a torn generation fails np.load and is rebuilt."""
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"gen-{uuid.uuid4().hex[:12]}"
        tmp = self.root / f".tmp-{name}"
        tmp.mkdir()
        arrays = {**{f"{f}.npy": a for f, a in raw.fields.items()}, "present.npy": raw.present,
                  "symbols.npy": raw.symbols.astype(str)}
        checksums = {}
        try:
            for file, a in arrays.items():
                try:
                    np.save(tmp / file, a)
                except OSError as exc:
                    raise write_error(tmp / file, exc, need_bytes=a.nbytes) from exc
                checksums[file] = file_digest(tmp / file)
            days = [d.isoformat() for d in sorted(sigs)]
            day_sigs = [sigs[d] for d in sorted(sigs)]
            meta = {"format": FORMAT, "days": days, "sigs": day_sigs, "inputs": inputs_fingerprint(days, day_sigs),
                    "checksums": checksums, "duplicates": raw.duplicates}
            (tmp / "meta.json").write_text(json.dumps(meta))
            tmp.rename(self.root / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for file, digest in checksums.items():  # this process just hashed them: its next open costs a stat each
            remember_digest(self.root / name / file, digest)
        atomic_write_text(self.root / "current.json", json.dumps({"gen": name}))
        for stale in self.root.glob("gen-*"):  # readers that mapped an old file keep it until they close it
            if stale.name != name:
                shutil.rmtree(stale, ignore_errors=True)


def _rows(dates: np.ndarray, reuse: dict[dt.date, int]) -> np.ndarray:
    return np.searchsorted(dates, np.array(list(reuse), dtype="datetime64[D]"))


def _copy_block(src_fields, src_present, src_rows, src_symbols, dst_fields, dst_present, dst_rows, dst_symbols) -> None:
    """dst[dst_rows, cols of src_symbols] = src[src_rows, :] for the source columns that exist in dst."""
    cols = np.searchsorted(dst_symbols.astype(str), src_symbols.astype(str))
    cols = np.minimum(cols, len(dst_symbols) - 1)
    keep = np.flatnonzero(dst_symbols[cols] == src_symbols)
    dst_ix = np.ix_(dst_rows, cols[keep])
    src_ix = np.ix_(src_rows, keep)
    for f in BAR_FIELDS:
        dst_fields[f][dst_ix] = src_fields[f][src_ix]
    dst_present[dst_ix] = src_present[src_ix]


@dataclass
class _Generation:
    path: Path
    days: list[dt.date]
    sigs: dict[dt.date, str]
    row: dict[dt.date, int]
    symbols: np.ndarray
    present: np.ndarray
    duplicates: list[tuple[str, str]]

    @classmethod
    def open(cls, path: Path) -> _Generation:
        """The generation, verified: its meta matches the inputs it names and every file its checksum (ValueError
        naming the file otherwise)."""
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"panel cache format {meta.get('format')} != {FORMAT}")
        if meta["inputs"] != inputs_fingerprint(meta["days"], meta["sigs"]):
            raise ValueError(f"{path / 'meta.json'} does not match the day files it lists")
        wanted = {f"{f}.npy" for f in BAR_FIELDS} | {"present.npy", "symbols.npy"}
        if set(meta["checksums"]) != wanted:
            raise ValueError(f"{path / 'meta.json'} lists {sorted(meta['checksums'])}, not {sorted(wanted)}")
        for file, digest in meta["checksums"].items():
            if not matches_digest(path / file, digest):
                raise ValueError(f"{path / file} failed its checksum (bytes changed since it was written)")
        days = [dt.date.fromisoformat(d) for d in meta["days"]]
        return cls(
            path=path, days=days, sigs=dict(zip(days, meta["sigs"])), row={d: i for i, d in enumerate(days)},
            symbols=np.load(path / "symbols.npy").astype(object), present=np.load(path / "present.npy", mmap_mode="r"),
            duplicates=[tuple(dup) for dup in meta["duplicates"]],
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """Copy-on-write maps: callers may adjust them in place (splits) without touching the files."""
        return {f: np.load(self.path / f"{f}.npy", mmap_mode="c") for f in BAR_FIELDS}


def _serve(gen: _Generation, sigs: dict[dt.date, str]) -> RawBars | None:
    """The window straight from a generation when it holds every day unchanged (None otherwise): zero-copy views
    when the window is the whole generation, else its rows and the symbols seen in them."""
    if any(gen.sigs.get(d) != s for d, s in sigs.items()):
        return None
    rows = np.array([gen.row[d] for d in sorted(sigs)], dtype=np.int64)
    contiguous = rows[-1] - rows[0] + 1 == len(rows)
    take_rows = slice(int(rows[0]), int(rows[-1]) + 1) if contiguous else rows
    present = gen.present[take_rows]
    seen = present.any(axis=0)
    try:
        arrays = gen.arrays()
        if seen.all():
            fields = {f: np.asarray(a[take_rows]) for f, a in arrays.items()}
        else:  # symbols not traded inside this (shorter) window drop out, as in a read of the day files
            cols = np.flatnonzero(seen)
            fields = {f: np.asarray(a[take_rows][:, cols]) for f, a in arrays.items()}
            present = present[:, cols]
    except (OSError, ValueError):
        return None
    days = {d.isoformat() for d in sigs}
    symbols = gen.symbols[seen]
    dups = [dup for dup in gen.duplicates if dup[1] in days]
    return RawBars(np.array(sorted(sigs), dtype="datetime64[D]"), symbols, fields, np.asarray(present), dups)
