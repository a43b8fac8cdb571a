"""Indicator machinery: valid-bar compaction, the Indicator base class and the two array kernels.

Each symbol's series is its own sequence of *valid bars*. A bar is valid when open, high, low and close are all finite;
a day without one (before an IPO, a halt, after a delisting, a quarantined bad bar) is skipped, not filled. `Bars`
compacts the panel per symbol with one stable argsort of the validity mask, so every symbol's valid bars end up
right-aligned, oldest first, in the last `n_valid` rows, with NaN above them. Consequences a trader can rely on:

* an indicator's latest value is TA-Lib's last value on that symbol's bars with the missing days removed;
* "N bars" means N of the symbol's own trading bars (a 5-bar return across a halt spans more calendar days);
* a symbol with too few valid bars gets NaN, never an extrapolated value; an all-NaN column is NaN everywhere;
* a valid bar with a NaN volume makes the volume indicators whose window includes it NaN (nothing is invented).

Indicators follow zipline's factor declaration (inputs, window, params validated at construction) but compute over the
whole (T, N) compacted panel at once. Recursive ones (EMA, Wilder smoothing) loop over time, vectorized across all
symbols; nothing here loops over symbols.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from technic_v4.domain.panel import FIELDS, Panel

PRICE_FIELDS = ("open", "high", "low", "close")
# A recursive indicator counts as converged once its seed's weight has decayed below this.
CONVERGENCE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Bars:
    """Per-symbol compacted bars: (T, N) arrays, each symbol's valid bars right-aligned in its last n_valid rows."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    n_valid: np.ndarray  # (N,) number of valid bars per symbol
    last_row: np.ndarray  # (N,) panel row of each symbol's last valid bar, -1 when it has none
    # Full series already computed on these bars, keyed by the indicator's canonical string (MACD/ATR% reuse them).
    cache: dict = field(default_factory=dict, compare=False, repr=False)
    # Calendar weeks (`week_ids`), None without dates: (T,) week of each panel row; (N,) True for the columns whose
    # compacted rows ARE their panel rows (valid bars in one block ending on the last row: most symbols), whose bars'
    # weeks are row_week itself; (T, n) compacted weeks of the other columns, in column order (NaN above their bars).
    row_week: np.ndarray | None = field(default=None, compare=False, repr=False)
    aligned: np.ndarray | None = field(default=None, compare=False, repr=False)
    misaligned_week: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.close.shape

    @property
    def start(self) -> np.ndarray:
        """(N,) compacted row of each symbol's first valid bar (== T when it has none)."""
        return self.close.shape[0] - self.n_valid

    def field(self, name: str) -> np.ndarray:
        return getattr(self, name)

    @classmethod
    def from_panel(cls, panel: Panel) -> Bars:
        return cls.from_arrays(**{f: getattr(panel, f) for f in FIELDS}, week=week_ids(panel.dates))

    @classmethod
    def from_arrays(cls, open, high, low, close, volume, week=None) -> Bars:  # noqa: A002 - field names
        """`week` (T,) optional calendar week per row (`week_ids`); the weekly indicators need it."""
        arrays = {"open": open, "high": high, "low": low, "close": close, "volume": volume}
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
        n_rows = arrays["close"].shape[0]
        valid = np.isfinite(arrays["open"])
        for name in PRICE_FIELDS[1:]:
            valid &= np.isfinite(arrays[name])
        n_valid = valid.sum(axis=0)
        # A column is already compact when its valid bars are one block ending on the last row (the common case:
        # listed for the whole window, or IPO'd inside it); only the others (halts, delistings) are reordered.
        first_valid = np.argmax(valid, axis=0)
        misaligned = np.flatnonzero((n_valid > 0) & (first_valid != n_rows - n_valid))
        # Stable argsort of the mask moves each column's invalid rows to the top, keeping bar order; as flat indices
        # into the (T, N) array, so each field is reordered with one gather.
        source = None
        if misaligned.size:
            order = np.argsort(valid[:, misaligned], axis=0, kind="stable")
            source = order * valid.shape[1] + misaligned
        compacted = {}
        for name, arr in arrays.items():
            out = np.where(valid, arr, np.nan)  # a field of an invalid bar (e.g. a lone volume) is not data
            if source is not None:
                if misaligned.size == out.shape[1]:
                    out = out.ravel()[source]
                else:
                    out[:, misaligned] = out.ravel()[source]
            compacted[name] = out
        last_row = np.where(n_valid > 0, n_rows - 1 - np.argmax(valid[::-1], axis=0), -1)
        aligned = np.ones(valid.shape[1], dtype=bool)
        aligned[misaligned] = False
        row_week = misaligned_week = None
        if week is not None:
            row_week = np.asarray(week, dtype=np.float64)
            misaligned_week = np.where(valid[:, misaligned], row_week[:, None], np.nan)
            if source is not None:
                misaligned_week = np.take_along_axis(misaligned_week, order, axis=0)
        return cls(**compacted, n_valid=n_valid, last_row=last_row, row_week=row_week, aligned=aligned,
                   misaligned_week=misaligned_week)

    def week_of(self, cols: np.ndarray) -> np.ndarray:
        """(T, len(cols)) calendar week of each compacted bar of these columns, NaN above their valid bars."""
        if self.row_week is None:
            raise ValueError("weekly indicators need the bars' dates: build Bars with Bars.from_panel (or week=...)")
        cols = np.asarray(cols, dtype=np.int64)
        out = np.where(np.isfinite(self.close[:, cols]), self.row_week[:, None], np.nan)
        odd = ~self.aligned[cols]
        if odd.any():
            slot = np.cumsum(~self.aligned) - 1  # column -> its position among the misaligned ones
            out[:, odd] = self.misaligned_week[:, slot[cols[odd]]]
        return out


def week_ids(dates: np.ndarray) -> np.ndarray:
    """(T,) calendar week (Monday to Sunday) of each date, as an integer count of weeks since 1969-12-29: a week's
    bars end on its Friday, or on its last session when the Friday is a holiday."""
    days = np.asarray(dates, dtype="datetime64[D]").astype(np.int64)
    return (days + 3) // 7  # 1970-01-01 was a Thursday: +3 makes Mondays start the weeks


def check_int(owner: str, name: str, value, minimum: int, why: str) -> int:
    """Validate an integer parameter at construction time with a message that says how to fix it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: {name} must be an int (got {value!r} of type {type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{owner} needs {name} >= {minimum} (got {value}): {why}")
    return int(value)


def check_input(owner: str, value: str) -> str:
    if value not in FIELDS:
        raise ValueError(f"{owner}: input {value!r} is not a panel field; use one of {FIELDS}")
    return value


def convergence_bars(alpha: float) -> int:
    """Bars after the seed until the seed's weight (1 - alpha)^n drops below CONVERGENCE_TOLERANCE."""
    return math.ceil(math.log(CONVERGENCE_TOLERANCE) / math.log(1.0 - alpha))


class Indicator:
    """A declared, parameter-validated computation over compacted bars.

    Subclasses set `inputs` and `outputs`, validate their params in `__init__`, define `min_bars` (valid bars needed for a
    first non-NaN value, TA-Lib's lookback + 1) and `lookback` (bars needed for a converged value; larger than min_bars
    only for recursive indicators), and implement `series(bars)` -> (T, N) array, or a tuple of them when there are
    several outputs. `latest(bars)` gives the last row; window indicators override it to avoid computing the full series.
    """

    inputs: ClassVar[tuple[str, ...]] = ("close",)
    outputs: ClassVar[tuple[str, ...]] = ("value",)

    def __init__(self, **params):
        self.params = params

    @property
    def min_bars(self) -> int:
        raise NotImplementedError

    @property
    def lookback(self) -> int:
        return self.min_bars

    def series(self, bars: Bars):
        raise NotImplementedError

    def compute(self, bars: Bars):
        """`series(bars)`, memoized on `bars` so indicators sharing an intermediate compute it once."""
        key = repr(self)
        if key not in bars.cache:
            bars.cache[key] = self.series(bars)
        return bars.cache[key]

    def latest(self, bars: Bars):
        """Values on each symbol's last valid bar: (N,) array, or a tuple of them for several outputs."""
        key = repr(self) + "@latest"
        if key not in bars.cache:
            out = self.latest_values(bars)
            bars.cache[key] = out
        return bars.cache[key]

    def latest_values(self, bars: Bars):
        """Override when the last row is cheaper than the full series (recursive indicators keep one state row)."""
        out = self.compute(bars)
        return tuple(o[-1] for o in out) if isinstance(out, tuple) else out[-1]

    def __repr__(self) -> str:
        # Canonical form doubles as a cache key (Qlib's expression strings).
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{type(self).__name__}({params})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.params == other.params

    def __hash__(self) -> int:
        return hash(repr(self))


class WilderIndicator(Indicator):
    """A Wilder-smoothed indicator (RSI, ATR): first value on the (period+1)-th valid bar, converged `period`-alpha
    later. Subclasses set `self.period` before calling `super().__init__`."""

    period: int

    @property
    def min_bars(self) -> int:
        return self.period + 1

    @property
    def lookback(self) -> int:
        return self.min_bars + convergence_bars(1.0 / self.period)


class WindowIndicator(Indicator):
    """An indicator that reduces the last `window` valid bars (zipline's CustomFactor).

    `reduce(*windows)` receives one array per input with the window on axis 0 — shape (window, N) for the latest value,
    (window, T', N) for the full series — and must return NaN when any bar in the window is missing.
    """

    window: int

    @property
    def min_bars(self) -> int:
        return self.window

    def reduce(self, *windows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def latest_values(self, bars: Bars) -> np.ndarray:
        k = self.window
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self.reduce(*(bars.field(name)[-k:] for name in self.inputs))
        return finite_or_nan(out)

    def series(self, bars: Bars) -> np.ndarray:
        k = self.window
        n_rows, n_cols = bars.shape
        out = np.full((n_rows, n_cols), np.nan)
        if n_rows >= k:
            views = [
                np.moveaxis(np.lib.stride_tricks.sliding_window_view(bars.field(n), k, axis=0), -1, 0)
                for n in self.inputs
            ]
            with np.errstate(divide="ignore", invalid="ignore"):
                out[k - 1 :] = self.reduce(*views)
        return finite_or_nan(out)


def finite_or_nan(a: np.ndarray) -> np.ndarray:
    """Division by a zero average/price gives inf; report it as 'undefined' (NaN), never as a number."""
    a = np.asarray(a, dtype=np.float64)
    a[np.isinf(a)] = np.nan
    return a


def window_mean_at(x: np.ndarray, first_row: np.ndarray, period: int) -> np.ndarray:
    """(N,) mean of x[first_row : first_row + period] per column, summed oldest first like TA-Lib; NaN if it overruns."""
    n_rows = x.shape[0]
    idx = first_row[None, :] + np.arange(period)[:, None]
    fits = idx[-1] < n_rows
    values = np.take_along_axis(x, np.minimum(idx, n_rows - 1), axis=0)
    return np.where(fits, values.sum(axis=0) / period, np.nan)


def seeded_smoothing(x: np.ndarray, alpha: float, first_row: np.ndarray, period: int, series: bool = True):
    """TA-Lib's seeded exponential smoothing, vectorized across columns, looping over time.

    Per column j the output is NaN before row s = first_row[j] + period - 1, the simple mean of x[first_row..s] at s,
    then y[t] = y[t-1] + alpha * (x[t] - y[t-1]). alpha = 2/(period+1) gives TA-Lib's EMA, alpha = 1/period Wilder's
    smoothing (RSI, ATR). Columns that never reach their seed stay NaN. With `series=False` only the (N,) last row is
    returned, and no (T, N) output is allocated (the latest-value path of EMA, RSI and ATR).
    """
    n_rows, n_cols = x.shape
    state = np.full(n_cols, np.nan)
    out = np.full((n_rows, n_cols), np.nan) if series else None
    seed_row = first_row + period - 1
    seeded = np.flatnonzero(seed_row < n_rows)
    if seeded.size == 0:
        return out if series else state
    seed_value = window_mean_at(x, first_row, period)
    # Group columns by seed row so that each time step places its seeds with one fancy assignment. Compacted panels
    # have few distinct seed rows (most symbols have the full window), so this dict stays small.
    by_row = seeded[np.argsort(seed_row[seeded], kind="stable")]
    rows, first_pos = np.unique(seed_row[by_row], return_index=True)
    seeds_at = dict(zip(rows.tolist(), np.split(by_row, first_pos[1:])))
    step = np.empty(n_cols)
    for t in range(int(rows[0]), n_rows):
        # Unseeded columns hold NaN and stay NaN through the update until their seed is placed.
        np.subtract(x[t], state, out=step)
        step *= alpha
        state += step
        cols = seeds_at.get(t)
        if cols is not None:
            state[cols] = seed_value[cols]
        if series:
            out[t] = state
    return out if series else state


def previous(x: np.ndarray) -> np.ndarray:
    """x shifted down one row (the previous valid bar's value), NaN on the first row."""
    out = np.empty_like(x)
    out[0] = np.nan
    out[1:] = x[:-1]
    return out
