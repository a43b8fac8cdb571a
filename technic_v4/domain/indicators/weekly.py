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
from technic_v4.domain.indicators.momentum import RSI, TALIB_ZERO
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


def _right_aligned(window: np.ndarray) -> Bars:
    """Bars over (rows, K) weekly closes that are already right-aligned (NaN only above each column's first close)."""
    n_valid = np.isfinite(window).sum(axis=0)
    last_row = np.where(n_valid > 0, window.shape[0] - 1, -1)
    return Bars(open=window, high=window, low=window, close=window, volume=window, n_valid=n_valid, last_row=last_row)


def weekly_values(window: np.ndarray) -> dict:
    """The weekly columns from (WEEKLY_WINDOW, K) weekly closes per cell, oldest first, NaN above a cell's first."""
    weekly = _right_aligned(window)
    return {"RSI14_w": RSI(14).latest(weekly)[0], "SMA10w": SMA(10).latest(weekly), "SMA40w": SMA(40).latest(weekly)}


def _extend(completed: np.ndarray, partial: np.ndarray, of: np.ndarray) -> dict:
    """The weekly columns of cells whose window is the (WEEKLY_WINDOW - 1, U) completed closes `completed[:, of]`
    followed by the cell's own `partial` close: the recursion over the completed closes runs once per distinct window
    (an evaluation has ~5 sessions per week), then one Wilder step and one addition per cell — the same arithmetic, in
    the same order, as `weekly_values` on the whole window."""
    n_completed = np.isfinite(completed).sum(axis=0)
    _, avg_gain, avg_loss = RSI(14).latest(_right_aligned(completed))
    alpha = 1.0 / 14
    change = partial - completed[-1, of]
    gain = avg_gain[of] + (np.maximum(change, 0.0) - avg_gain[of]) * alpha
    loss = avg_loss[of] + (np.maximum(-change, 0.0) - avg_loss[of]) * alpha
    total = gain + loss
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = np.where(np.abs(total) < TALIB_ZERO, 0.0, 100.0 * gain / total)
    rsi[np.isnan(total)] = np.nan
    rows = completed.shape[0]
    sums = {k: completed[rows - (k - 1) :].sum(axis=0)[of] for k in (10, 40)}  # NaN unless k - 1 completed closes
    out = {"RSI14_w": rsi, "SMA10w": (sums[10] + partial) / 10, "SMA40w": (sums[40] + partial) / 40}
    out["young"] = n_completed[of] < 15  # the seed would include the partial week: computed on the whole window
    return out


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
    out = {name: np.full(rows.size, np.nan) for name in WEEKLY_COLUMNS}
    back = np.arange(WEEKLY_WINDOW - 1, 0, -1)[:, None]  # 51 .. 1 weekly bars back
    for start in range(0, rows.size, _CELLS_PER_BLOCK):
        r, c = rows[start : start + _CELLS_PER_BLOCK], cols[start : start + _CELLS_PER_BLOCK]
        m = before[r, c]
        visible = m.astype(np.int64)
        if first_rows is not None:  # weekly bars that ended above the window's first row are not seen
            first = np.clip(first_rows[start : start + _CELLS_PER_BLOCK], 0, close.shape[0] - 1)
            visible = visible - before[first, c]
        hidden = WEEKLY_WINDOW - 1 - np.minimum(visible, WEEKLY_WINDOW - 1)  # leading completed weeks not seen
        # Cells of the same symbol, week and visibility share their completed closes.
        key = (c.astype(np.int64) * (close.shape[0] + 1) + m) * WEEKLY_WINDOW + hidden
        _, first, of = np.unique(key, return_index=True, return_inverse=True)
        uc, um, uh = c[first], m[first], hidden[first]
        completed = closes[np.maximum(um[None, :] - back, 0), uc]
        completed[np.arange(WEEKLY_WINDOW - 1)[:, None] < uh[None, :]] = np.nan
        partial = close[r, c]
        values = _extend(completed, partial, of)
        young = np.flatnonzero(values.pop("young"))
        if young.size:
            whole = weekly_values(np.vstack([completed[:, of[young]], partial[young][None, :]]))
            for name in WEEKLY_COLUMNS:
                values[name][young] = whole[name]
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
