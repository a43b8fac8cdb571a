"""Volatility indicators: Wilder's ATR (TA-Lib), ATR as a fraction of price, realized volatility."""

from __future__ import annotations

import numpy as np

from technic_v4.domain.indicators.base import (
    Bars,
    WilderIndicator,
    WindowIndicator,
    finite_or_nan,
    check_int,
    previous,
    seeded_smoothing,
)

TRADING_DAYS_PER_YEAR = 252


def true_range(bars: Bars) -> np.ndarray:
    """max(high - low, |high - prev close|, |low - prev close|); NaN on each symbol's first bar (no previous close)."""
    prev_close = previous(bars.close)
    gap_range = np.maximum(np.abs(bars.high - prev_close), np.abs(bars.low - prev_close))
    return np.maximum(bars.high - bars.low, gap_range)  # np.maximum propagates the NaN of the first bar


class ATR(WilderIndicator):
    """Average true range as talib.ATR: the first value, on the symbol's (period+1)-th bar, is the mean of the true
    ranges of bars 2..period+1 (the first bar has no true range); then Wilder smoothing with alpha = 1/period."""

    inputs = ("high", "low", "close")

    def __init__(self, period: int = 14):
        self.period = check_int("ATR", "period", period, 2, "use talib.TRANGE semantics for a 1-bar range")
        super().__init__(period=self.period)

    def series(self, bars: Bars) -> np.ndarray:
        return seeded_smoothing(true_range(bars), 1.0 / self.period, bars.start + 1, self.period)

    def latest_values(self, bars: Bars) -> np.ndarray:
        return seeded_smoothing(true_range(bars), 1.0 / self.period, bars.start + 1, self.period, series=False)


class ATRPercent(ATR):
    """ATR / close on the same bar, as a fraction (0.025 = 2.5 % of price)."""

    def series(self, bars: Bars) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return finite_or_nan(ATR(self.period).compute(bars) / bars.close)

    def latest_values(self, bars: Bars) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return finite_or_nan(ATR(self.period).latest(bars) / bars.close[-1])


class RealizedVolatility(WindowIndicator):
    """Annualized sample stdev (ddof=1) of the last `period` log returns × sqrt(252); needs period + 1 bars."""

    def __init__(self, period: int = 20):
        self.period = check_int("RealizedVolatility", "period", period, 2, "a sample stdev needs at least 2 returns")
        self.window = self.period + 1
        super().__init__(period=self.period)

    def reduce(self, close: np.ndarray) -> np.ndarray:
        log_returns = np.diff(np.log(close), axis=0)
        return log_returns.std(axis=0, ddof=1) * np.sqrt(TRADING_DAYS_PER_YEAR)
