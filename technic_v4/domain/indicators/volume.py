"""Volume indicators: average volume, average dollar volume, volume spike, up/down volume balance."""

from __future__ import annotations

import numpy as np

from technic_v4.domain.indicators.base import WindowIndicator, check_int


class AverageVolume(WindowIndicator):
    """Mean share volume of the last `period` valid bars, today included; needs `period` bars."""

    inputs = ("volume",)

    def __init__(self, period: int = 20):
        self.window = check_int("AverageVolume", "period", period, 1, "average over at least one bar")
        super().__init__(period=self.window)

    def reduce(self, volume: np.ndarray) -> np.ndarray:
        return volume.mean(axis=0)


class DollarVolume(WindowIndicator):
    """Mean of close × volume over the last `period` valid bars (dollars traded per day), today included."""

    inputs = ("close", "volume")

    def __init__(self, period: int = 20):
        self.window = check_int("DollarVolume", "period", period, 1, "average over at least one bar")
        super().__init__(period=self.window)

    def reduce(self, close: np.ndarray, volume: np.ndarray) -> np.ndarray:
        return (close * volume).mean(axis=0)


class VolumeSpike(WindowIndicator):
    """Today's volume / mean volume of the `period` bars BEFORE today (today excluded so a spike cannot dilute its
    own baseline). 1.0 = a normal day, 2.0 = twice the usual volume. Needs period + 1 bars; NaN if the baseline is 0."""

    inputs = ("volume",)

    def __init__(self, period: int = 20):
        self.period = check_int("VolumeSpike", "period", period, 1, "the baseline needs at least one earlier bar")
        self.window = self.period + 1
        super().__init__(period=self.period)

    def reduce(self, volume: np.ndarray) -> np.ndarray:
        return volume[-1] / volume[:-1].mean(axis=0)


class UpDownVolume(WindowIndicator):
    """Accumulation balance over the last `period` bars: (volume on up-closes - volume on down-closes) / total volume,
    in [-1, 1]; an up/down close is judged against the previous bar's close. Needs period + 1 bars."""

    inputs = ("close", "volume")

    def __init__(self, period: int = 20):
        self.period = check_int("UpDownVolume", "period", period, 1, "judge at least one bar")
        self.window = self.period + 1
        super().__init__(period=self.period)

    def reduce(self, close: np.ndarray, volume: np.ndarray) -> np.ndarray:
        direction = np.sign(np.diff(close, axis=0))
        recent = volume[1:]
        return (direction * recent).sum(axis=0) / recent.sum(axis=0)

    def series(self, bars) -> np.ndarray:
        """The whole (T, N) series by rolling sums (the sliding-window `reduce` materializes window x T x N
        differences: half of a walk-forward evaluation's scoring time). Same values up to summation order."""
        close, volume = bars.field("close"), bars.field("volume")
        signed = np.full(close.shape, np.nan)
        signed[1:] = np.sign(np.diff(close, axis=0)) * volume[1:]
        k = self.period
        out = np.full(close.shape, np.nan)
        if close.shape[0] > k:
            def rolling(x):  # sum of the k rows ending at each row >= k; NaN when any of them is NaN
                total = np.cumsum(np.nan_to_num(x), axis=0)
                gaps = np.cumsum(np.isnan(x), axis=0)
                return total[k:] - total[:-k], gaps[k:] - gaps[:-k]

            (num, num_gaps), (den, den_gaps) = rolling(signed), rolling(volume)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[k:] = np.where((num_gaps == 0) & (den_gaps == 0), num / den, np.nan)
        out[np.isinf(out)] = np.nan
        return out
