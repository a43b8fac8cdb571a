"""The scan's indicator catalogue: result column name(s) -> indicator, how much history it needs, latest values."""

from __future__ import annotations

import numpy as np

from technic_v4.domain.indicators.base import Bars, Indicator
from technic_v4.domain.indicators.momentum import RSI, Returns
from technic_v4.domain.indicators.patterns import HighestHigh, LaggedSMA, LowestLow, PriorMinRange, SMACross
from technic_v4.domain.indicators.price import LastBar, MeanGap, PctFromHigh
from technic_v4.domain.indicators.trend import EMA, MACD, SMA
from technic_v4.domain.indicators.volatility import ATR, ATRPercent, RealizedVolatility
from technic_v4.domain.indicators.weekly import WEEKLY_COLUMNS, WEEKLY_HISTORY_BARS, weekly_latest
from technic_v4.domain.indicators.volume import AverageVolume, DollarVolume, UpDownVolume, VolumeSpike

# Keys are result columns; a tuple key names a multi-output indicator's outputs in order. Lower-case keys that are not
# result columns (avg gain/loss, up/down volume) are intermediates the scores need.
CATALOGUE: dict[str | tuple[str, ...], Indicator] = {
    "Close": LastBar("close"),
    "Volume": LastBar("volume"),
    "AvgVolume20": AverageVolume(20),
    "DollarVolume20": DollarVolume(20),
    "ret_1d": Returns(1),
    "ret_5d": Returns(5),
    "ret_21d": Returns(21),
    "ret_63d": Returns(63),
    ("RSI14", "rsi14_avg_gain", "rsi14_avg_loss"): RSI(14),
    "ATR14": ATR(14),
    "ATR14_pct": ATRPercent(14),
    "SMA20": SMA(20),
    "SMA50": SMA(50),
    "SMA200": SMA(200),
    "EMA20": EMA(20),
    ("MACD", "MACD_signal", "MACD_hist"): MACD(12, 26, 9),
    "pct_from_high20": PctFromHigh(20),
    "pct_from_52w_high": PctFromHigh(252),
    "vol_realized_20": RealizedVolatility(20),
    "vol_spike_ratio": VolumeSpike(20),
    "gap_mean_10": MeanGap(10),
    "updown_volume_20": UpDownVolume(20),
    # Relative strength's longer returns (the 3/6/9/12-month composite; ranked across the day's universe later).
    "ret_126d": Returns(126),
    "ret_189d": Returns(189),
    "ret_252d": Returns(252),
    # What the pattern flags and the structure trade plans read (patterns.pattern_flags, scoring.plans).
    "last_open": LastBar("open"),
    "last_high": LastBar("high"),
    "last_low": LastBar("low"),
    "prior_high_1": HighestHigh(1, skip=1),
    "prior_low_1": LowestLow(1, skip=1),
    "prior_high_20": HighestHigh(20, skip=1),
    "prior_low_20": LowestLow(20, skip=1),
    "prior_high_251": HighestHigh(251, skip=1),
    "prior_low_251": LowestLow(251, skip=1),
    "prior_min_range_6": PriorMinRange(6),
    "vol_ratio_50": VolumeSpike(50),
    ("golden_cross_5", "death_cross_5"): SMACross(50, 200, 5),
    "sma150": SMA(150),
    "sma200_lag21": LaggedSMA(200, 21),
    "swing_low_10": LowestLow(10),
    "swing_high_10": HighestHigh(10),
}


def required_history(catalogue: dict | None = None) -> int:
    """Valid bars of history the scan must load so every indicator is defined and converged (max lookback), and the
    weekly columns see their whole 52-week window."""
    return max(WEEKLY_HISTORY_BARS, *(ind.lookback for ind in (catalogue or CATALOGUE).values()))


def compute_latest(panel, catalogue: dict | None = None) -> dict[str, np.ndarray]:
    """Every catalogue value on each symbol's last valid bar, as (N,) float64 arrays keyed by column name.

    Also returns `bars` (valid bars per symbol) and `last_row` (panel row of the last valid bar, -1 if none), from
    which the caller derives AsOf. `panel` is a Panel or already-compacted Bars.
    """
    bars = panel if isinstance(panel, Bars) else Bars.from_panel(panel)
    out: dict[str, np.ndarray] = {}
    for key, indicator in (catalogue or CATALOGUE).items():
        values = indicator.latest(bars)
        if isinstance(key, tuple):
            out.update(zip(key, values, strict=True))
        else:
            out[key] = values
    if bars.row_week is not None:
        out.update(weekly_latest(bars))
    else:  # Bars built without dates: no calendar weeks to form
        out.update({name: np.full(bars.shape[1], np.nan) for name in WEEKLY_COLUMNS})
    out["bars"] = bars.n_valid.astype(np.float64)
    out["last_row"] = bars.last_row
    return out
