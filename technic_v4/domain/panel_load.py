"""Loading a Panel from the bar store: raw bars from the columnar panel cache (or the day files), split adjustment."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from technic_v4.domain.panel import FIELDS, Panel
from technic_v4.store.bar_store import BarStore
from technic_v4.store.panel_cache import PanelCache, RawBars, read_raw_bars


def load_panel(
    store: BarStore,
    days: list[dt.date],
    symbols=None,
    splits: pd.DataFrame | None = None,
    duplicates: list | None = None,
    cache: bool = True,
) -> Panel:
    """A dates x symbols panel of the stored `days` (missing days are skipped), split-adjusted as of the last day.

    `symbols` picks the columns in that order (unknown ones all NaN); by default every symbol seen, sorted. Bars come
    from the panel cache, which reads only new or changed days from the store; `cache=False` reads every day file
    (the scan passes its TECHNIC_PANEL_CACHE setting: this layer reads no settings). A (date, symbol) stored twice cannot be told apart, so its bar becomes NaN
    and, when `duplicates` is a list, a record {symbol, date, check, details} per duplicate is appended to it.
    """
    raw = load_raw(store, days, cache)
    if symbols is not None:
        raw = _pick(raw, np.asarray(list(symbols), dtype=object))
    arrays = {f: raw.fields[f] for f in FIELDS}
    if duplicates is not None:
        duplicates.extend(
            {"symbol": s, "date": d, "check": "unique (symbol, date)", "details": "stored more than once; bar dropped"}
            for s, d in raw.duplicates
        )
    if splits is not None and len(splits):
        adjust_for_splits(arrays, raw.dates, raw.symbols, splits)
    return Panel(dates=raw.dates, symbols=raw.symbols, **arrays)


def load_raw(store: BarStore, days: list[dt.date], cache: bool = True) -> RawBars:
    """Raw (unadjusted) bars of every symbol seen in the stored `days`, sorted by symbol."""
    return PanelCache(store).load(days) if cache else read_raw_bars(store, days)


def _pick(raw: RawBars, symbols: np.ndarray) -> RawBars:
    """Columns for `symbols` in that order; a symbol without bars gets an all-NaN column."""
    pos = pd.Index(raw.symbols).get_indexer(symbols)
    found = pos >= 0
    shape = (len(raw.dates), len(symbols))
    fields = {}
    for f in FIELDS:
        a = np.full(shape, np.nan)
        a[:, found] = raw.fields[f][:, pos[found]]
        fields[f] = a
    present = np.zeros(shape, dtype=bool)
    present[:, found] = raw.present[:, pos[found]]
    order = {s: i for i, s in enumerate(symbols)}
    dups = sorted((dup for dup in raw.duplicates if dup[0] in order), key=lambda dup: (dup[1], order[dup[0]]))
    return RawBars(raw.dates, symbols, fields, present, dups)


def adjust_for_splits(arrays: dict[str, np.ndarray], dates: np.ndarray, symbols: np.ndarray, splits: pd.DataFrame) -> None:
    """In place: bars before each split's execution date scaled to post-split shares (prices × from/to, volume ×
    to/from). Only splits executed within the panel's dates apply; later ones are not known as of its last day."""
    adjust_fields(arrays, dates, symbols, splits, ("open", "high", "low", "close"), ("volume",))


def adjust_fields(arrays, dates, symbols, splits, prices: tuple[str, ...], volumes: tuple[str, ...]) -> None:
    """adjust_for_splits on the given price and volume fields only."""
    pos = pd.Index(symbols).get_indexer(splits["symbol"])
    when = pd.to_datetime(splits["execution_date"]).values.astype("datetime64[D]")
    ratio = (splits["split_from"] / splits["split_to"]).to_numpy(dtype=float)
    applies = (pos >= 0) & (when > dates[0]) & (when <= dates[-1]) & np.isfinite(ratio) & (ratio > 0)
    for p, w, r in zip(pos[applies], when[applies], ratio[applies]):  # one pass per split (tens), not per symbol
        rows = dates < w
        for f in prices:
            arrays[f][rows, p] *= r
        for f in volumes:
            arrays[f][rows, p] /= r
