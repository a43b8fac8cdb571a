"""Price-structure indicators: the last bar, distance from a recent high, mean overnight gap."""

from __future__ import annotations

import numpy as np

from technic_v4.domain.indicators.base import WindowIndicator, check_input, check_int


class LastBar(WindowIndicator):
    """The field's value on the symbol's last valid bar (its AsOf date), NaN when it has no bar."""

    window = 1

    def __init__(self, input: str = "close"):  # noqa: A002
        self.inputs = (check_input("LastBar", input),)
        super().__init__(input=input)

    def reduce(self, x: np.ndarray) -> np.ndarray:
        return x[-1]


class PctFromHigh(WindowIndicator):
    """close / highest high of the last `period` valid bars (today included) - 1: a fraction <= 0, 0 = at the high.
    Needs `period` bars: PctFromHigh(252) is NaN for a stock listed less than a year (its 52-week high is unknown)."""

    inputs = ("close", "high")

    def __init__(self, period: int):
        self.window = check_int("PctFromHigh", "period", period, 1, "look at least at one bar")
        super().__init__(period=self.window)

    def reduce(self, close: np.ndarray, high: np.ndarray) -> np.ndarray:
        return close[-1] / high.max(axis=0) - 1.0


class MeanGap(WindowIndicator):
    """Mean over the last `period` bars of (open - previous close) / previous close, signed (a fraction); needs
    period + 1 bars. Positive = the stock has tended to open above the prior close."""

    inputs = ("open", "close")

    def __init__(self, period: int = 10):
        self.period = check_int("MeanGap", "period", period, 1, "average at least one gap")
        self.window = self.period + 1
        super().__init__(period=self.period)

    def reduce(self, open_: np.ndarray, close: np.ndarray) -> np.ndarray:
        prev_close = close[:-1]
        return ((open_[1:] - prev_close) / prev_close).mean(axis=0)

