"""Technical indicators over a whole dates × symbols panel (valid-bar semantics: see `base`).

`compute_latest(panel)` gives every catalogue value (pattern-flag inputs and the weekly columns included) on each
symbol's last bar; `required_history()` says how many bars the scan must load for all of them to be defined and
converged.
"""

from technic_v4.domain.indicators.base import Bars, Indicator, WindowIndicator
from technic_v4.domain.indicators.catalogue import CATALOGUE, compute_latest, required_history
from technic_v4.domain.indicators.momentum import RSI, Returns
from technic_v4.domain.indicators.patterns import HighestHigh, LaggedSMA, LowestLow, PriorMinRange, SMACross
from technic_v4.domain.indicators.price import LastBar, MeanGap, PctFromHigh
from technic_v4.domain.indicators.trend import EMA, MACD, SMA
from technic_v4.domain.indicators.volatility import ATR, ATRPercent, RealizedVolatility, true_range
from technic_v4.domain.indicators.volume import AverageVolume, DollarVolume, UpDownVolume, VolumeSpike

__all__ = [
    "ATR",
    "ATRPercent",
    "AverageVolume",
    "Bars",
    "CATALOGUE",
    "DollarVolume",
    "EMA",
    "HighestHigh",
    "Indicator",
    "LaggedSMA",
    "LastBar",
    "LowestLow",
    "MACD",
    "MeanGap",
    "PctFromHigh",
    "PriorMinRange",
    "RSI",
    "RealizedVolatility",
    "Returns",
    "SMA",
    "SMACross",
    "UpDownVolume",
    "VolumeSpike",
    "WindowIndicator",
    "compute_latest",
    "required_history",
    "true_range",
]
