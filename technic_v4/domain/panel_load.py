"""Loading a Panel from the bar store: one read of every needed day, a vectorized scatter, split adjustment."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from technic_v4.domain.panel import FIELDS, Panel
from technic_v4.store.bar_store import BarStore


def load_panel(
    store: BarStore, days: list[dt.date], symbols=None, splits: pd.DataFrame | None = None, duplicates: list | None = None
) -> Panel:
    """A dates x symbols panel of the stored `days` (missing days are skipped), split-adjusted as of the last day.

    One multi-threaded pyarrow read of all day files, then a vectorized scatter into (T, N) arrays. A (date,
    symbol) stored twice cannot be told apart, so its bar becomes NaN and, when `duplicates` is a list, a record
    {symbol, date, check, details} per duplicate is appended to it for the quarantine report.
    """
    days, table = store.read_bars(days, FIELDS)
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
