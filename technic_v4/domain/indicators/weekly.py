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


def week_last(bars: Bars) -> np.ndarray:
    """(T, N) True on each symbol's last valid bar of a calendar week (its last bar overall included)."""
    week = bars.week
    if week is None:
        raise ValueError("weekly indicators need the bars' dates: build Bars with Bars.from_panel (or week=week_ids)")
    last = np.isfinite(bars.close)
    last[:-1] &= week[1:] != week[:-1]  # the next valid bar is in another week (NaN != x: no next bar)
    return last


def weekly_at(bars: Bars, rows: np.ndarray, cols: np.ndarray, first_rows: np.ndarray | None = None) -> dict:
    """RSI14_w, SMA10w, SMA40w as of compacted cells (rows[k], cols[k]) of `bars`: weekly bars end at each week's last
    valid bar before the cell's week, plus the cell's own close as its (partial) week's bar. With `first_rows`, weekly
    bars that end above that compacted row are not seen (the evaluation's point-in-time window)."""
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    ends = week_last(bars)
    before = np.cumsum(ends, axis=0, dtype=np.int64) - ends  # weekly bars that ended strictly above each row
    # Left-aligned per symbol: the m-th weekly bar's close and the compacted row it ended on.
    end_r, end_c = np.nonzero(ends)
    slot = before[end_r, end_c]
    closes = np.full(bars.shape, np.nan)
    closes[slot, end_c] = bars.close[end_r, end_c]
    end_row = np.full(bars.shape, -1, dtype=np.int64)
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
        window = np.vstack([window, bars.close[r, c][None, :]])
        weekly = Bars.from_arrays(window, window, window, window, window)
        out["RSI14_w"][start : start + r.size] = RSI(14).latest(weekly)[0]
        out["SMA10w"][start : start + r.size] = SMA(10).latest(weekly)
        out["SMA40w"][start : start + r.size] = SMA(40).latest(weekly)
    return out


def weekly_latest(bars: Bars) -> dict:
    """The weekly columns on each symbol's last valid bar (the scan's row)."""
    n_rows, n_cols = bars.shape
    return weekly_at(bars, np.full(n_cols, n_rows - 1), np.arange(n_cols))
