"""Pattern flags: new highs/lows, unusual volume, gaps, inside day, NR7, breakout, SMA crosses, Minervini's trend template.

The flags are derived by `pattern_flags(values)` from catalogue values (window indicators below plus LastBar, SMA,
VolumeSpike), so a scan's last bar and the evaluation's every session use the same arithmetic. Definitions (all on
the symbol's own valid bars, "prior N" = the N bars before today, today excluded):

  new_high_20d / new_low_20d   today's high > the highest high of the prior 20 bars / today's low < the lowest low
  new_high_52w / new_low_52w   the same against the prior 251 bars: today is the strict extreme of the 252-bar
                               (52-week) window that pct_from_52w_high uses
  unusual_volume               today's volume >= 2 × the mean volume of the prior 50 bars
  gap_up / gap_down            a full gap: today's open > yesterday's high / today's open < yesterday's low
  inside_day                   today's high < yesterday's high and today's low > yesterday's low (strict)
  nr7                          today's high - low < the range of each of the prior 6 bars (strict: ties are not NR7)
  breakout                     close > the highest high of the prior 20 bars, on volume >= 1.5 × the prior 50 bars' mean
  golden_cross / death_cross   SMA50 crossed above / below SMA200 on one of the last 5 bars (today included): on some
                               bar k, SMA50 > SMA200 (golden; < for death) while on bar k-1 it was <= (>=)
  tt_1 .. tt_7                 Minervini's trend template: 1 close > SMA150 and > SMA200; 2 SMA150 > SMA200;
                               3 SMA200 above its value 21 bars ago (rising for a month); 4 SMA50 > SMA150 and > SMA200;
                               5 close > SMA50; 6 close >= 1.3 × the 52-week low; 7 close >= 0.75 × the 52-week high
                               (52-week = the 252 bars ending today, lows/highs). tt_8 (RS_rating >= 70), tt_count and
                               trend_template need the day's universe: `domain.scoring.relative_strength` adds them.

Flags are plain booleans: False when the symbol has too few bars to tell (e.g. new_high_52w needs 252 bars,
golden_cross 205, tt_3 221), never missing, so a screen `breakout and ...` needs no NaN handling; the numbers behind
them (SMA200, pct_from_52w_high, ...) stay NaN there.
"""

from __future__ import annotations

import numpy as np

from technic_v4.domain.indicators.base import Bars, WindowIndicator, check_int

FLAG_COLUMNS = [
    "new_high_20d", "new_low_20d", "new_high_52w", "new_low_52w", "unusual_volume", "gap_up", "gap_down",
    "inside_day", "nr7", "breakout", "golden_cross", "death_cross",
]  # fmt: skip
TREND_TEMPLATE_PER_SYMBOL = [f"tt_{i}" for i in range(1, 8)]
UNUSUAL_VOLUME, BREAKOUT_VOLUME = 2.0, 1.5  # × the prior 50 bars' mean volume
TT_ABOVE_LOW, TT_NEAR_HIGH = 1.30, 0.75
CROSS_SESSIONS = 5
NR_BARS = 7


def rolling_extreme(x: np.ndarray, k: int, ufunc=np.maximum) -> np.ndarray:
    """(T, N) max (ufunc=np.maximum) or min (np.minimum) of the k rows ending at each row; NaN for the first k - 1 rows
    and wherever the window holds a NaN. Van Herk / Gil-Werman: prefix and suffix extremes within blocks of k rows, so
    the cost does not grow with k (a sliding window of 251 highs would read each value 251 times). Exact."""
    n_rows, n_cols = x.shape
    out = np.full((n_rows, n_cols), np.nan)
    if n_rows < k:
        return out
    fill = -np.inf if ufunc is np.maximum else np.inf
    holes = np.isnan(x)
    padded = np.full((-(-n_rows // k) * k, n_cols), fill)
    padded[:n_rows] = np.where(holes, fill, x)
    blocks = padded.reshape(-1, k, n_cols)
    prefix = ufunc.accumulate(blocks, axis=1).reshape(-1, n_cols)
    suffix = ufunc.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].reshape(-1, n_cols)
    out[k - 1 :] = ufunc(suffix[: n_rows - k + 1], prefix[k - 1 : n_rows])
    count = np.cumsum(holes, axis=0, dtype=np.int32)
    in_window = count[k - 1 :].copy()
    in_window[1:] -= count[: n_rows - k]
    out[k - 1 :][in_window > 0] = np.nan
    return out


def shifted(x: np.ndarray, rows: int) -> np.ndarray:
    """x moved down `rows` rows (the value `rows` bars earlier), NaN on top."""
    out = np.full(x.shape, np.nan)
    if rows < x.shape[0]:
        out[rows:] = x[: x.shape[0] - rows]
    return out


class HighestHigh(WindowIndicator):
    """Highest high of the `period` bars ending `skip` bars before today (skip=1: the prior bars, today excluded)."""

    inputs = ("high",)
    _ufunc = np.maximum

    def __init__(self, period: int, skip: int = 0):
        self.period = check_int("HighestHigh", "period", period, 1, "look at least at one bar")
        self.skip = check_int("HighestHigh", "skip", skip, 0, "skip counts bars before today")
        self.window = self.period + self.skip
        super().__init__(period=self.period, skip=self.skip)

    def reduce(self, x: np.ndarray) -> np.ndarray:
        return x[: self.period].max(axis=0)

    def series(self, bars: Bars) -> np.ndarray:
        if self.period <= 20:  # short windows: the plain sliding window is as fast
            return super().series(bars)
        return shifted(rolling_extreme(bars.field(self.inputs[0]), self.period, type(self)._ufunc), self.skip)


class LowestLow(HighestHigh):
    """Lowest low of the `period` bars ending `skip` bars before today."""

    inputs = ("low",)
    _ufunc = np.minimum

    def reduce(self, x: np.ndarray) -> np.ndarray:
        return x[: self.period].min(axis=0)


class PriorMinRange(WindowIndicator):
    """Smallest high - low among the `period` bars before today (NR7 compares today's range with it)."""

    inputs = ("high", "low")

    def __init__(self, period: int = NR_BARS - 1):
        self.period = check_int("PriorMinRange", "period", period, 1, "compare with at least one bar")
        self.window = self.period + 1
        super().__init__(period=self.period)

    def reduce(self, high: np.ndarray, low: np.ndarray) -> np.ndarray:
        return (high[:-1] - low[:-1]).min(axis=0)

    def series(self, bars: Bars) -> np.ndarray:
        return shifted(rolling_extreme(bars.high - bars.low, self.period, np.minimum), 1)


class LaggedSMA(WindowIndicator):
    """SMA(period) as it was `lag` bars ago (trend template criterion 3 compares SMA200 with its value a month ago)."""

    def __init__(self, period: int, lag: int):
        self.period = check_int("LaggedSMA", "period", period, 2, "a 1-bar average is the price itself")
        self.lag = check_int("LaggedSMA", "lag", lag, 1, "lag 0 is the SMA itself")
        self.window = self.period + self.lag
        super().__init__(period=self.period, lag=self.lag)

    def reduce(self, x: np.ndarray) -> np.ndarray:
        return x[: self.period].mean(axis=0)

    def series(self, bars: Bars) -> np.ndarray:
        from technic_v4.domain.indicators.trend import SMA

        return shifted(SMA(self.period, self.inputs[0]).compute(bars), self.lag)  # the cached SMA series, moved


class SMACross(WindowIndicator):
    """(golden, death): 1.0 when SMA(fast) crossed above / below SMA(slow) on one of the last `sessions` bars, else 0;
    NaN with fewer than slow + sessions bars (the slow SMA of the bar before the oldest one is needed)."""

    outputs = ("golden", "death")

    def __init__(self, fast: int = 50, slow: int = 200, sessions: int = CROSS_SESSIONS):
        self.fast = check_int("SMACross", "fast", fast, 2, "a 1-bar average is the price itself")
        self.slow = check_int("SMACross", "slow", slow, self.fast + 1, "the slow average must be longer")
        self.sessions = check_int("SMACross", "sessions", sessions, 1, "look at least at today")
        self.window = self.slow + self.sessions
        super().__init__(fast=self.fast, slow=self.slow, sessions=self.sessions)

    def _diffs(self, x: np.ndarray) -> np.ndarray:
        """SMA(fast) - SMA(slow) on the last sessions + 1 bars of each window, oldest first."""
        k = x.shape[0]
        return np.stack([x[end - self.fast : end].mean(axis=0) - x[end - self.slow : end].mean(axis=0)
                         for end in range(k - self.sessions, k + 1)])

    def _crosses(self, diff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        before, after = diff[:-1], diff[1:]
        golden = ((after > 0) & (before <= 0)).any(axis=0)
        death = ((after < 0) & (before >= 0)).any(axis=0)
        known = np.isfinite(diff).all(axis=0)
        return np.where(known, golden, np.nan), np.where(known, death, np.nan)

    def latest_values(self, bars: Bars):
        return self._crosses(self._diffs(bars.close[-self.window :]))

    def series(self, bars: Bars):
        # From the two (cached) SMA series: a cross event per bar, then "any event among the last `sessions` bars"
        # as a rolling count, known where the diff `sessions` bars back is (the compacted SMAs are NaN only on top).
        from technic_v4.domain.indicators.trend import SMA

        diff = SMA(self.fast).compute(bars) - SMA(self.slow).compute(bars)
        out = []
        with np.errstate(invalid="ignore"):
            events = ((diff[1:] > 0) & (diff[:-1] <= 0), (diff[1:] < 0) & (diff[:-1] >= 0))
        known = np.isfinite(shifted(diff, self.sessions))
        for event in events:
            count = np.zeros(diff.shape, dtype=np.int32)
            count[1:] = np.cumsum(event, axis=0, dtype=np.int32)
            recent = count - shifted(count.astype(np.float64), self.sessions)
            out.append(np.where(known, recent > 0, np.nan))
        return tuple(out)


def _flag(x) -> np.ndarray:
    """Comparison results as booleans: NaN inputs compare False (too little history = not flagged)."""
    return np.asarray(x, dtype=bool)


def pattern_flags(v: dict) -> dict[str, np.ndarray]:
    """FLAG_COLUMNS and tt_1..tt_7 (bool arrays) from the catalogue values `v` (see the module docstring)."""
    high, low, close, open_ = v["last_high"], v["last_low"], v["Close"], v["last_open"]
    prior_high20, prior_low20 = v["prior_high_20"], v["prior_low_20"]
    vol_ratio = v["vol_ratio_50"]
    s50, s150, s200 = v["SMA50"], v["sma150"], v["SMA200"]
    high52, low52 = np.fmax(v["prior_high_251"], high), np.fmin(v["prior_low_251"], low)
    high52 = np.where(np.isfinite(v["prior_high_251"]), high52, np.nan)
    low52 = np.where(np.isfinite(v["prior_low_251"]), low52, np.nan)
    with np.errstate(invalid="ignore"):
        flags = {
            "new_high_20d": high > prior_high20,
            "new_low_20d": low < prior_low20,
            "new_high_52w": high > v["prior_high_251"],
            "new_low_52w": low < v["prior_low_251"],
            "unusual_volume": vol_ratio >= UNUSUAL_VOLUME,
            "gap_up": open_ > v["prior_high_1"],
            "gap_down": open_ < v["prior_low_1"],
            "inside_day": (high < v["prior_high_1"]) & (low > v["prior_low_1"]),
            "nr7": (high - low) < v["prior_min_range_6"],
            "breakout": (close > prior_high20) & (vol_ratio >= BREAKOUT_VOLUME),
            "golden_cross": v["golden_cross_5"] == 1.0,
            "death_cross": v["death_cross_5"] == 1.0,
            "tt_1": (close > s150) & (close > s200),
            "tt_2": s150 > s200,
            "tt_3": s200 > v["sma200_lag21"],
            "tt_4": (s50 > s150) & (s50 > s200),
            "tt_5": close > s50,
            "tt_6": close >= TT_ABOVE_LOW * low52,
            "tt_7": close >= TT_NEAR_HIGH * high52,
        }
    return {k: _flag(f) for k, f in flags.items()}
