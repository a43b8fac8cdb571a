"""Weekly bars from the daily ones: RSI14_w (Wilder, talib.RSI), SMA10w and SMA40w on weekly closes.

A symbol's weekly bar is its last valid daily bar of each calendar week (Monday to Sunday, `base.week_ids`): the
Friday, or the Thursday when the Friday is a holiday, or whatever day it last traded that week. Weeks without a valid
bar are skipped, like missing days (valid-bar semantics). The current week counts as the last weekly bar even when it
is not finished: as of a Wednesday, the last weekly close is Wednesday's close (what TradingView's weekly chart shows
mid-week).

The values are computed over the last WEEKLY_WINDOW (52) weekly closes only, today's partial week last: RSI14_w is
talib.RSI on those closes (seeded on the window's first 14 changes), SMA10w/SMA40w their last 10/40 means. A fixed
window makes the value independent of how much history was loaded (a scan's 300 sessions or the evaluation's years),
so a scan as of day d and the evaluation's day d agree exactly; a converged weekly RSI would need ~2 years of
sessions. RSI14_w needs 15 weekly bars, SMA10w 10, SMA40w 40; fewer -> NaN.
"""

from __future__ import annotations

import numpy as np

from technic_v4.domain.indicators.base import Bars
from technic_v4.domain.indicators.momentum import RSI
from technic_v4.domain.indicators.trend import SMA

WEEKLY_COLUMNS = ["RSI14_w", "SMA10w", "SMA40w"]
WEEKLY_WINDOW = 52  # weekly closes each value looks at
WEEKLY_HISTORY_BARS = 5 * WEEKLY_WINDOW  # daily bars a scan needs to hold the whole window
_CELLS_PER_BLOCK = 100_000  # bounds the (52, cells) work arrays of an evaluation


def week_last(bars: Bars, cols: np.ndarray) -> np.ndarray:
    """(T, len(cols)) True on each symbol's last valid bar of a calendar week (its last bar overall included)."""
    week = bars.week_of(cols)
    last = np.isfinite(bars.close[:, cols])
    last[:-1] &= week[1:] != week[:-1]  # the next valid bar is in another week (NaN != x: no next bar)
    return last


def weekly_values(window: np.ndarray) -> dict:
    """The weekly columns from (WEEKLY_WINDOW, K) weekly closes per cell, oldest first, NaN above a cell's first."""
    weekly = Bars.from_arrays(window, window, window, window, window)
    return {"RSI14_w": RSI(14).latest(weekly)[0], "SMA10w": SMA(10).latest(weekly), "SMA40w": SMA(40).latest(weekly)}


def weekly_at(bars: Bars, rows: np.ndarray, cols: np.ndarray, first_rows: np.ndarray | None = None) -> dict:
    """RSI14_w, SMA10w, SMA40w as of compacted cells (rows[k], cols[k]) of `bars`: weekly bars end at each week's last
    valid bar before the cell's week, plus the cell's own close as its (partial) week's bar. With `first_rows`, weekly
    bars that end above that compacted row are not seen (the evaluation's point-in-time window)."""
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    used, cols = np.unique(cols, return_inverse=True)  # work on the columns asked about only
    close = bars.close[:, used]
    ends = week_last(bars, used)
    before = np.cumsum(ends, axis=0, dtype=np.int32) - ends  # weekly bars that ended strictly above each row
    # Left-aligned per symbol: the m-th weekly bar's close and the compacted row it ended on.
    end_r, end_c = np.nonzero(ends)
    slot = before[end_r, end_c]
    closes = np.full(close.shape, np.nan)
    closes[slot, end_c] = close[end_r, end_c]
    if first_rows is not None:
        end_row = np.full(close.shape, -1, dtype=np.int32)
        end_row[slot, end_c] = end_r
    out = {name: np.full(rows.size, np.nan) for name in WEEKLY_COLUMNS}
    back = np.arange(WEEKLY_WINDOW - 1, 0, -1)[:, None]  # 51 .. 1 weekly bars back
    for start in range(0, rows.size, _CELLS_PER_BLOCK):
        r, c = rows[start : start + _CELLS_PER_BLOCK], cols[start : start + _CELLS_PER_BLOCK]
        m = before[r, c][None, :] - back
        seen = m >= 0
        idx = np.maximum(m, 0)
        window = np.where(seen, closes[idx, c], np.nan)
        if first_rows is not None:
            window[end_row[idx, c] < first_rows[start : start + _CELLS_PER_BLOCK]] = np.nan
        values = weekly_values(np.vstack([window, close[r, c][None, :]]))
        for name in WEEKLY_COLUMNS:
            out[name][start : start + r.size] = values[name]
    return out


def weekly_latest(bars: Bars) -> dict:
    """The weekly columns on each symbol's last valid bar (the scan's row).

    Columns whose compacted rows are their panel rows (`Bars.aligned`: most symbols) share the panel's week ends, so
    their 51 previous weekly closes are one (51, N) gather; the others (halts, delistings) take `weekly_at`."""
    n_rows, n_cols = bars.shape
    out = {name: np.full(n_cols, np.nan) for name in WEEKLY_COLUMNS}
    fast = np.zeros(n_cols, dtype=bool) if bars.aligned is None or bars.row_week is None else bars.aligned
    if fast.any():
        week = bars.row_week
        ends = np.flatnonzero(week[1:] != week[:-1])[-(WEEKLY_WINDOW - 1) :]  # rows that end a week, before the last
        cols = np.flatnonzero(fast)
        window = np.full((WEEKLY_WINDOW, cols.size), np.nan)
        window[WEEKLY_WINDOW - 1 - ends.size : -1] = bars.close[ends][:, cols]  # NaN above each symbol's first bar
        window[-1] = bars.close[-1, cols]
        for name, values in weekly_values(window).items():
            out[name][cols] = values
    slow = np.flatnonzero(~fast)
    if slow.size:
        for name, values in weekly_at(bars, np.full(slow.size, n_rows - 1), slow).items():
            out[name][slow] = values
    return out
