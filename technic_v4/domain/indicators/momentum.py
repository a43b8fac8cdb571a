"""Momentum indicators: k-bar returns and Wilder's RSI (TA-Lib's seeding)."""

from __future__ import annotations

import numpy as np

from technic_v4.domain.indicators.base import (
    Bars,
    WilderIndicator,
    WindowIndicator,
    check_input,
    check_int,
    seeded_smoothing,
)

# TA-Lib treats |avg gain + avg loss| below this as zero (TA_IS_ZERO) and reports RSI 0 there.
TALIB_ZERO = 1e-8


class Returns(WindowIndicator):
    """Simple return over `bars` valid bars: close / close `bars` bars earlier - 1 (a fraction); needs bars + 1 bars."""

    def __init__(self, bars: int, input: str = "close"):  # noqa: A002
        self.bars = check_int("Returns", "bars", bars, 1, "a return needs at least one bar of history")
        self.window = self.bars + 1
        self.inputs = (check_input("Returns", input),)
        super().__init__(input=input, bars=self.bars)

    def reduce(self, x: np.ndarray) -> np.ndarray:
        return x[-1] / x[0] - 1.0


class RSI(WilderIndicator):
    """Wilder's RSI as talib.RSI, plus its smoothed average gain and loss.

    Seed: the plain means of the first `period` gains/losses (bar-to-bar close changes), reported on the symbol's
    (period+1)-th valid bar; then Wilder smoothing avg = avg + (x - avg)/period. RSI = 100·gain/(gain+loss). When
    gain + loss is ~0 (a flat series) TA-Lib reports 0, and so do we — the `avg_gain`/`avg_loss` outputs let a
    consumer tell "no movement" from "oversold".
    """

    outputs = ("rsi", "avg_gain", "avg_loss")

    def __init__(self, period: int = 14, input: str = "close"):  # noqa: A002
        self.period = check_int("RSI", "period", period, 2, "Wilder's RSI is defined for periods of 2 bars or more")
        self.inputs = (check_input("RSI", input),)
        super().__init__(input=input, period=self.period)

    def series(self, bars: Bars) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._rsi(bars, series=True)

    def latest_values(self, bars: Bars) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._rsi(bars, series=False)

    def _rsi(self, bars: Bars, series: bool):
        x = bars.field(self.inputs[0])
        n = x.shape[1]
        # Gains and losses side by side in one (T, 2N) array, so both smoothings share one time loop; np.maximum
        # keeps the NaN of rows before the listing.
        moves = np.empty((x.shape[0], 2 * n))
        change = np.subtract(x[1:], x[:-1])
        moves[0] = np.nan
        np.maximum(change, 0.0, out=moves[1:, :n])
        np.maximum(-change, 0.0, out=moves[1:, n:])
        first = np.concatenate([bars.start, bars.start]) + 1
        avg = seeded_smoothing(moves, 1.0 / self.period, first, self.period, series=series)
        avg_gain, avg_loss = avg[..., :n], avg[..., n:]
        total = avg_gain + avg_loss
        with np.errstate(divide="ignore", invalid="ignore"):
            rsi = np.where(np.abs(total) < TALIB_ZERO, 0.0, 100.0 * avg_gain / total)
        rsi[np.isnan(total)] = np.nan
        return rsi, avg_gain, avg_loss
