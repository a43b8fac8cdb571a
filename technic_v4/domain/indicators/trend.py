"""Trend indicators: SMA, EMA and MACD with TA-Lib's definitions (seeding and output alignment included)."""

from __future__ import annotations

import numpy as np

from technic_v4.domain.indicators.base import (
    Bars,
    Indicator,
    WindowIndicator,
    check_input,
    check_int,
    convergence_bars,
    seeded_smoothing,
)


class SMA(WindowIndicator):
    """Simple moving average of the last `period` valid bars (talib.SMA); needs `period` bars."""

    def __init__(self, period: int, input: str = "close"):  # noqa: A002 - zipline's word
        self.window = check_int("SMA", "period", period, 2, "a 1-bar average is the price itself")
        self.inputs = (check_input("SMA", input),)
        super().__init__(input=input, period=self.window)

    def reduce(self, x: np.ndarray) -> np.ndarray:
        return x.mean(axis=0)


class EMA(Indicator):
    """Exponential moving average as talib.EMA: k = 2/(period+1), seeded with the SMA of the first `period` bars.

    First value on the symbol's `period`-th valid bar. `lookback` adds the bars needed for the seed to fade below 0.1 %.
    """

    def __init__(self, period: int, input: str = "close"):  # noqa: A002
        self.period = check_int("EMA", "period", period, 2, "a 1-bar EMA is the price itself")
        self.inputs = (check_input("EMA", input),)
        super().__init__(input=input, period=self.period)

    @property
    def alpha(self) -> float:
        return 2.0 / (self.period + 1)

    @property
    def min_bars(self) -> int:
        return self.period

    @property
    def lookback(self) -> int:
        return self.period + convergence_bars(self.alpha)

    def series(self, bars: Bars) -> np.ndarray:
        return seeded_smoothing(bars.field(self.inputs[0]), self.alpha, bars.start, self.period)

    def latest_values(self, bars: Bars) -> np.ndarray:
        return seeded_smoothing(bars.field(self.inputs[0]), self.alpha, bars.start, self.period, series=False)


class MACD(Indicator):
    """MACD(fast, slow, signal) exactly as talib.MACD.

    TA-Lib starts BOTH EMAs on the slow EMA's first bar: the slow EMA is seeded with the SMA of bars [0, slow), the fast
    EMA with the SMA of the `fast` bars ending on bar slow-1 (not of the first `fast` bars). The MACD line starts there;
    the signal is an EMA of the line seeded with the SMA of its first `signal` values; all three outputs (line, signal,
    histogram = line - signal) are reported from bar slow + signal - 2 on, i.e. the symbol needs slow + signal - 1 bars.
    """

    outputs = ("macd", "signal", "hist")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9, input: str = "close"):  # noqa: A002
        fast = check_int("MACD", "fast", fast, 2, "use a fast EMA period of at least 2 bars")
        slow = check_int("MACD", "slow", slow, 2, "use a slow EMA period of at least 2 bars")
        self.signal = check_int("MACD", "signal", signal, 1, "use a signal period of at least 1 bar")
        if fast >= slow:
            raise ValueError(f"MACD needs fast < slow (got fast={fast}, slow={slow}); the usual choice is 12/26/9")
        self.fast, self.slow = fast, slow
        self.inputs = (check_input("MACD", input),)
        super().__init__(input=input, fast=fast, slow=slow, signal=self.signal)

    @property
    def min_bars(self) -> int:
        return self.slow + self.signal - 1

    @property
    def lookback(self) -> int:
        return self.min_bars + convergence_bars(2.0 / (self.slow + 1))

    def series(self, bars: Bars) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = bars.field(self.inputs[0])
        start = bars.start
        slow = seeded_smoothing(x, 2.0 / (self.slow + 1), start, self.slow)
        fast = seeded_smoothing(x, 2.0 / (self.fast + 1), start + self.slow - self.fast, self.fast)
        line = fast - slow
        signal = seeded_smoothing(line, 2.0 / (self.signal + 1), start + self.slow - 1, self.signal)
        # TA-Lib reports nothing before the signal's first value.
        line[np.isnan(signal)] = np.nan
        return line, signal, line - signal
