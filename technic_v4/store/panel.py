"""A dates x symbols panel: one float64 array per field, NaN where a symbol has no bar that day."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Panel:
    """Bars for T dates (oldest first) x N symbols. Arrays are (T, N) float64, split-adjusted, NaN = no bar."""

    dates: np.ndarray  # datetime64[D], shape (T,)
    symbols: np.ndarray  # str objects, shape (N,)
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __post_init__(self) -> None:
        shape = (len(self.dates), len(self.symbols))
        for name in FIELDS:
            arr = getattr(self, name)
            if arr.shape != shape:
                raise ValueError(f"Panel.{name} has shape {arr.shape}, expected {shape} (dates x symbols)")

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.dates), len(self.symbols)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f).nbytes for f in FIELDS)

    def column(self, symbol: str) -> int:
        idx = np.flatnonzero(self.symbols == symbol)
        if idx.size == 0:
            raise KeyError(f"{symbol!r} is not in the panel")
        return int(idx[0])

    def select(self, symbols) -> Panel:
        """Columns for `symbols` (in that order); unknown symbols raise KeyError."""
        pos = pd.Index(self.symbols).get_indexer(list(symbols))
        if (pos < 0).any():
            missing = [s for s, p in zip(symbols, pos) if p < 0]
            raise KeyError(f"not in the panel: {missing[:10]}")
        return replace(
            self, symbols=self.symbols[pos], **{f: np.ascontiguousarray(getattr(self, f)[:, pos]) for f in FIELDS}
        )

    def take_columns(self, idx: np.ndarray) -> Panel:
        return replace(self, symbols=self.symbols[idx], **{f: getattr(self, f)[:, idx] for f in FIELDS})

    def tail(self, n: int) -> Panel:
        return replace(self, dates=self.dates[-n:], **{f: getattr(self, f)[-n:] for f in FIELDS})

    def bars_available(self) -> np.ndarray:
        """Per symbol, how many dates have a close."""
        return np.isfinite(self.close).sum(axis=0)

    @classmethod
    def from_long(cls, df: pd.DataFrame, dates=None, symbols=None) -> Panel:
        """Pivot long rows (date, symbol, open, high, low, close, volume) into a panel without a Python loop."""
        d = pd.to_datetime(df["date"]).values.astype("datetime64[D]")
        dates = np.unique(d) if dates is None else np.asarray(dates, dtype="datetime64[D]")
        symbols = np.unique(df["symbol"].to_numpy(dtype=object)) if symbols is None else np.asarray(symbols, dtype=object)
        ti = np.searchsorted(dates, d)
        si = pd.Index(symbols).get_indexer(df["symbol"])
        ok = (ti < len(dates)) & (si >= 0)
        ok[ok] &= dates[ti[ok]] == d[ok]
        arrays = {}
        for f in FIELDS:
            a = np.full((len(dates), len(symbols)), np.nan)
            a[ti[ok], si[ok]] = df[f].to_numpy(dtype=np.float64)[ok]
            arrays[f] = a
        return cls(dates=dates, symbols=symbols, **arrays)

    def to_long(self) -> pd.DataFrame:
        """Rows (date, symbol, fields...) for every finite close, e.g. for pandera bar validation."""
        t, n = np.nonzero(np.isfinite(self.close))
        out = {"date": self.dates[t], "symbol": self.symbols[n]}
        out.update({f: getattr(self, f)[t, n] for f in FIELDS})
        return pd.DataFrame(out)
