"""Market regime from the index/macro ETFs already in the panel (no extra data), computed once per scan.

Trend, from SPY's valid bars (`Regime.trend`), or, when the panel has no SPY (a per-symbol CSV folder), from the
equal-weighted index of the panel (technic_v4.domain.market_proxy); `Regime.market` names which, and the report shows it:
    TRENDING_UP    close > SMA50 > SMA200 (strict inequalities on SPY's last bar)
    TRENDING_DOWN  close < SMA50 < SMA200
    SIDEWAYS       any other ordering
    UNKNOWN        neither SPY nor an index of enough symbols, or fewer than 200 readings: we do not guess.
High volatility (`Regime.high_vol`): SPY's 20-day realized vol > 1.25 × its 60-day realized vol (annualized stdev of
log returns, ddof=1); False when either is NaN (SPY missing or shorter than 61 bars).

`Regime.label` is the one string the scan reports, stores and fingerprints: the trend, plus "+HIGH_VOL" when flagged —
"TRENDING_UP", "SIDEWAYS+HIGH_VOL", "UNKNOWN". Scoring treats UNKNOWN like SIDEWAYS (no trend factor).

Macro ratios (numerator close / denominator close on the dates both traded): `trend` = last ratio / mean of the last 50
ratios - 1. Labels use a ±0.5 % dead band, otherwise NEUTRAL; a missing ETF or fewer than 50 common bars gives NaN and
"UNKNOWN". Readings: QQQ/SPY up = growth leading (RISK_ON); HYG/LQD up = credit bid over quality (RISK_ON); SHY/TLT up =
long bonds lagging short ones, i.e. no flight to duration (RISK_ON), down = flight to safety (RISK_OFF).
VIXY: last close and its percentile rank among its last 252 closes (VIXY decays through contango, so the rank
understates stress after long calm spells; read it with the level).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from technic_v4.domain.indicators.base import Bars
from technic_v4.domain.indicators.trend import SMA
from technic_v4.domain.indicators.volatility import RealizedVolatility
from technic_v4.domain.market_proxy import MARKET_SYMBOL, MarketProxy, market_proxy
from technic_v4.domain.panel import Panel

TRENDING_UP, TRENDING_DOWN, SIDEWAYS, UNKNOWN = "TRENDING_UP", "TRENDING_DOWN", "SIDEWAYS", "UNKNOWN"
TRENDS = (TRENDING_UP, TRENDING_DOWN, SIDEWAYS, UNKNOWN)
HIGH_VOL_SUFFIX = "+HIGH_VOL"
HIGH_VOL_RATIO = 1.25
RATIO_MEAN_BARS = 50
RATIO_DEAD_BAND = 0.005
VIXY_RANK_BARS = 252
MACRO_RATIOS = {"qqq_spy": ("QQQ", "SPY"), "hyg_lqd": ("HYG", "LQD"), "shy_tlt": ("SHY", "TLT")}


@dataclass(frozen=True)
class Regime:
    trend: str = UNKNOWN
    market: str = MARKET_SYMBOL  # what the spy_* readings come from: "SPY", "equal-weighted index of N symbols", "none"
    high_vol: bool = False
    spy_close: float = math.nan
    spy_sma50: float = math.nan
    spy_sma200: float = math.nan
    spy_vol20: float = math.nan
    spy_vol60: float = math.nan
    qqq_spy_trend: float = math.nan
    qqq_spy_label: str = UNKNOWN
    hyg_lqd_trend: float = math.nan
    hyg_lqd_label: str = UNKNOWN
    shy_tlt_trend: float = math.nan
    shy_tlt_label: str = UNKNOWN
    vixy_level: float = math.nan
    vixy_percentile: float = math.nan

    def __post_init__(self) -> None:
        if self.trend not in TRENDS:
            raise ValueError(f"Regime.trend must be one of {TRENDS}, got {self.trend!r}")

    @property
    def label(self) -> str:
        """The reported regime, e.g. "TRENDING_UP" or "TRENDING_UP+HIGH_VOL" (see the module docstring)."""
        return self.trend + (HIGH_VOL_SUFFIX if self.high_vol else "")

    def as_dict(self) -> dict:
        """JSON-safe: NaN readings become None."""
        fields = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}
        return {"label": self.label, **fields}


def classify_trend(close: float, sma50: float, sma200: float) -> str:
    """The strict ordering rule above; UNKNOWN when any reading is NaN (too little SPY history)."""
    if not all(math.isfinite(v) for v in (close, sma50, sma200)):
        return UNKNOWN
    if close > sma50 > sma200:
        return TRENDING_UP
    if close < sma50 < sma200:
        return TRENDING_DOWN
    return SIDEWAYS


def is_high_vol(vol20: float, vol60: float) -> bool:
    return bool(vol20 > HIGH_VOL_RATIO * vol60)


def ratio_label(trend: float) -> str:
    if not np.isfinite(trend):
        return UNKNOWN
    if trend > RATIO_DEAD_BAND:
        return "RISK_ON"
    if trend < -RATIO_DEAD_BAND:
        return "RISK_OFF"
    return "NEUTRAL"


def _closes(panel: Panel, symbol: str) -> np.ndarray | None:
    """The symbol's close column (panel dates), or None when it is not in the panel."""
    hits = np.flatnonzero(panel.symbols == symbol)
    return panel.close[:, hits[0]] if hits.size else None


def _trend_readings(panel: Panel, proxy: MarketProxy | None) -> tuple[dict[str, float] | None, str]:
    """(close, SMA50/200, 20/60-day vol of the market series, its name): SPY's bars, else the equal-weighted index."""
    proxy = proxy or market_proxy(panel)
    if proxy.is_spy:
        bars = Bars.from_panel(panel.select([MARKET_SYMBOL]))
    elif proxy.source == "none":
        return None, proxy.source
    else:  # an index has one level a session: it stands for every price field, no volume
        level = proxy.close[:, None]
        bars = Bars.from_arrays(open=level, high=level, low=level, close=level, volume=np.full_like(level, np.nan))
    return {
        "close": float(bars.close[-1, 0]),  # NaN when SPY has no valid bar at all
        "sma50": float(SMA(50).latest(bars)[0]),
        "sma200": float(SMA(200).latest(bars)[0]),
        "vol20": float(RealizedVolatility(20).latest(bars)[0]),
        "vol60": float(RealizedVolatility(60).latest(bars)[0]),
    }, proxy.source


def ratio_trend(numerator: np.ndarray | None, denominator: np.ndarray | None, bars: int = RATIO_MEAN_BARS) -> float:
    """Last ratio / mean of the last `bars` ratios - 1, over dates where both closes exist; NaN if not enough."""
    if numerator is None or denominator is None:
        return math.nan
    both = np.isfinite(numerator) & np.isfinite(denominator) & (denominator > 0)
    ratio = numerator[both] / denominator[both]
    if ratio.size < bars:
        return math.nan
    return float(ratio[-1] / ratio[-bars:].mean() - 1.0)


def percentile_rank(closes: np.ndarray | None, bars: int = VIXY_RANK_BARS) -> tuple[float, float]:
    """(last close, share of the last `bars` valid closes that are <= it); NaNs when the series is too short."""
    if closes is None:
        return math.nan, math.nan
    valid = closes[np.isfinite(closes)]
    if valid.size == 0:
        return math.nan, math.nan
    if valid.size < bars:
        return float(valid[-1]), math.nan
    window = valid[-bars:]
    return float(valid[-1]), float((window <= valid[-1]).mean())


def compute_regime(panel: Panel, market: MarketProxy | None = None) -> Regime:
    """Read the regime from SPY/QQQ/HYG/LQD/SHY/TLT/VIXY columns of `panel` (the trend from the equal-weighted index
    when there is no SPY; `market`: that index already computed, aligned with `panel.dates`); missing ETFs give
    NaN/UNKNOWN fields."""
    spy, source = _trend_readings(panel, market)
    fields: dict = {"market": source}
    if spy is not None:
        fields.update({f"spy_{k}": v for k, v in spy.items()})
        fields["trend"] = classify_trend(spy["close"], spy["sma50"], spy["sma200"])
        fields["high_vol"] = is_high_vol(spy["vol20"], spy["vol60"])
    for name, (num, den) in MACRO_RATIOS.items():
        value = ratio_trend(_closes(panel, num), _closes(panel, den))
        fields[f"{name}_trend"] = value
        fields[f"{name}_label"] = ratio_label(value)
    fields["vixy_level"], fields["vixy_percentile"] = percentile_rank(_closes(panel, "VIXY"))
    return Regime(**fields)
