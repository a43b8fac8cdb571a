"""A dates x symbols panel: one float64 array per field, NaN where a symbol has no bar that day."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from technic_v4.data.columns import BAR_FIELDS as FIELDS


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
        if self._is_everything(pos) and all(getattr(self, f).flags.c_contiguous for f in FIELDS):
            return self
        return replace(
            self, symbols=self.symbols[pos], **{f: np.ascontiguousarray(getattr(self, f)[:, pos]) for f in FIELDS}
        )

    def take_columns(self, idx: np.ndarray) -> Panel:
        if self._is_everything(idx):
            return self
        return replace(self, symbols=self.symbols[idx], **{f: getattr(self, f)[:, idx] for f in FIELDS})

    def _is_everything(self, idx) -> bool:
        """Every column in order: selecting it would copy the whole panel (72 MB at 6,000 x 300) for nothing."""
        idx = np.asarray(idx)
        return idx.dtype != bool and idx.shape == (self.shape[1],) and bool((idx == np.arange(self.shape[1])).all())

    def tail(self, n: int) -> Panel:
        return replace(self, dates=self.dates[-n:], **{f: getattr(self, f)[-n:] for f in FIELDS})

    def bars_available(self) -> np.ndarray:
        """Per symbol, how many dates have a close."""
        return np.isfinite(self.close).sum(axis=0)
