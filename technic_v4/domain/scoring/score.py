"""Sub-scores, TechRating, signal and trade plan for every symbol of a panel at once.

`score_panel(panel, reference, regime)` is a pure function of its inputs (no I/O, no global state, no cross-sectional
ranks), so the flow can run it on column chunks in parallel and concatenate. Every score below is NaN when an input is
NaN (too little history); a NaN TechRating is classified Avoid. Fractions, not percents: ret_*, ATR14_pct,
pct_from_*, vol_realized_20 and gap_mean_10 are 0.05 for 5 %.

Sub-scores, each clipped to [-3, 3] (s(x) = sign):
  Trend       0.5·s(C-SMA20) + 0.75·s(C-SMA50) + 0.75·s(C-SMA200) + alignment, alignment = +1 if SMA20 > SMA50 > SMA200,
              -1 if SMA20 < SMA50 < SMA200, else 0. Above all three averages = 2, stacked averages on top = 3.
  Momentum    clip(ret_21d / 10 %, ±1) + clip(ret_63d / 20 %, ±1) + clip(MACD_hist / (0.2·ATR14), ±1)
              (the histogram in ATR units so it is comparable across price levels).
  Volume      s(ret_1d)·clip(2·(vol_spike_ratio - 1), 0, 2) + updown_volume_20: a heavy-volume day counts in its own
              direction (2x normal volume = ±2), plus the 20-day up-volume/down-volume balance in [-1, 1].
  Volatility  quality(ATR14_pct)·s(TrendScore): quality interpolates ATR% knots 0/1/3/5/8/12 % -> 2/3/3/1/-2/-3, so an
              orderly 1-3 % ATR adds conviction to the trend's direction and extreme volatility takes it away (both
              ways: a wild downtrend scores positive, i.e. against the short). No trend -> 0.
  Oscillator  RSI14 interpolated over knots 0/10/20/30/40/50/60/70/80/90/100 -> 3/2/-1/-3/-2/0/2/3/1/-2/-3:
              50-70 is healthy bullish momentum, 80+ overbought (extended, turning negative), mirrored below 50 so that
              oversold extremes lean against further shorting. 0 when the RSI has no movement to measure (flat series,
              where TA-Lib reports RSI 0).
  Breakout    interp(pct_from_high20: -10/-5/-2/0 % -> -1.5/-0.5/0.5/1.5)
              + interp(pct_from_52w_high: -40/-20/-10/-3/0 % -> -1.5/-0.75/0/1/1.5).
TechRating = 3·Trend + 3·Momentum + 2·Volume + Volatility + Oscillator + Breakout (bound ±33), then regime-adjusted
  (`regime_factors`): HIGH_VOL lowers conviction both ways, |rating| × 0.85 (a long needs raw ≥ 25.9 instead of 22 to be
  Strong, a short ≤ -25.9), because setups fail more often when the whole market swings; TRENDING_DOWN: positive ratings
  × 0.9 (longs fight the tape); TRENDING_UP: negative ratings × 0.9 (shorts fight the tape); SIDEWAYS/UNKNOWN: none.
  Factors multiply. The Signal thresholds below apply to the adjusted rating.
Signal: Strong Long if TechRating >= 22 and Trend >= 2 and Momentum >= 1; else Long if TechRating >= 16 and Trend >= 1;
  Strong Short if TechRating <= -22 and Trend <= -2 and Momentum <= -1; else Short if TechRating <= -16 and Trend <= -1;
  Avoid otherwise, and Avoid whenever a trade plan is impossible (NaN rating, ATR14 NaN or <= 0, a long's stop <= 0,
  a short's target <= 0).
Trade plan (`plans`): Entry/Stop/Target/RewardRisk/PlanRule/PlanOK by the ATR rule (stop 2·ATR, 2.5·ATR in HIGH_VOL,
  target 3·ATR) or the structure rule (swing low/high stop with an ATR floor and cap, next resistance or 2R target),
  chosen by `plan_rule`; Avoid rows have NaN prices.
Pattern flags (`indicators.patterns`), weekly columns (`indicators.weekly`) and the long returns come from the
  catalogue; the relative-strength columns, tt_8, tt_count and trend_template are cross-sectional: NaN/False here,
  filled by `relative_strength.add_relative_strength` on the joined table.
RiskScore in [0, 10], higher = riskier, absolute (chunk-independent):
  10·(0.30·clip(vol_realized_20 / 80 %) + 0.25·clip(ATR14_pct / 8 %) + 0.20·clip(log10($100M / DollarVolume20) / 3)
      + 0.15·clip(-pct_from_52w_high / 50 %) + 0.10·clip(|gap_mean_10| / 1 %)), each clip to [0, 1].
Reference: Name/Sector/Industry come from `reference` (symbol, name, sector, industry, shares_outstanding); symbols
missing there (or with empty values) get "Unknown" and MarketCap NaN. MarketCap = shares_outstanding × Close.
Every panel symbol gets a row; AsOf is its last bar's date (earlier than the panel's last date for a halted or delisted
symbol, NaT with no bar at all) — the flow decides what to drop. Rows are sorted by TechRating descending (NaN last),
then Symbol.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from technic_v4.domain.indicators import compute_latest
from technic_v4.domain.indicators.patterns import pattern_flags
from technic_v4.domain.indicators.weekly import WEEKLY_COLUMNS
from technic_v4.domain.regime import TRENDING_DOWN, TRENDING_UP, Regime
from technic_v4.domain.panel import Panel
from technic_v4.domain.scoring.columns import (  # noqa: F401 - re-exported: the column lists' one home is `columns`
    INDICATOR_COLUMNS, LONG_RETURN_COLUMNS, PLAN_COLUMNS, RESULT_COLUMNS, RS_COLUMNS, SCORE_COLUMNS,
    TREND_TEMPLATE_COLUMNS,
)
from technic_v4.domain.scoring.plan_rules import ATR_RULE, DEFAULT_MIN_REWARD_RISK
from technic_v4.domain.scoring.plans import STOP_ATR, STOP_ATR_HIGH_VOL, TARGET_ATR, plan_levels  # noqa: F401
from technic_v4.domain.scoring.relative_strength import trend_template
from technic_v4.domain.scoring.signals import (  # noqa: F401  (re-exported: score.SIGNALS etc.)
    AVOID, LONG, LONG_SIGNALS, SHORT, SHORT_SIGNALS, SIGNALS, STRONG_LONG, STRONG_SHORT,
)


TECH_WEIGHTS = {"TrendScore": 3, "MomentumScore": 3, "VolumeScore": 2, "VolatilityScore": 1, "OscillatorScore": 1,
                "BreakoutScore": 1}  # fmt: skip
SUBSCORE_BOUND = 3.0
TECH_RATING_BOUND = SUBSCORE_BOUND * sum(TECH_WEIGHTS.values())  # 33

STRONG_RATING, RATING = 22.0, 16.0
STRONG_TREND, TREND, STRONG_MOMENTUM = 2.0, 1.0, 1.0
HIGH_VOL_FACTOR, COUNTER_TREND_FACTOR = 0.85, 0.9
UNKNOWN = "Unknown"

_VOL_QUALITY_ATR = [0.0, 0.01, 0.03, 0.05, 0.08, 0.12]
_VOL_QUALITY = [2.0, 3.0, 3.0, 1.0, -2.0, -3.0]
_RSI_KNOTS = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
_RSI_SCORE = [3, 2, -1, -3, -2, 0, 2, 3, 1, -2, -3]
_HIGH20_KNOTS, _HIGH20_SCORE = [-0.10, -0.05, -0.02, 0.0], [-1.5, -0.5, 0.5, 1.5]
_HIGH52_KNOTS, _HIGH52_SCORE = [-0.40, -0.20, -0.10, -0.03, 0.0], [-1.5, -0.75, 0.0, 1.0, 1.5]
_RSI_ZERO = 1e-8  # TA-Lib's threshold for "no movement"


def _interp(x: np.ndarray, knots, values) -> np.ndarray:
    """np.interp (flat beyond the end knots) that keeps NaN inputs NaN."""
    return np.where(np.isnan(x), np.nan, np.interp(x, knots, values))


def _clip(x: np.ndarray, bound: float = 1.0) -> np.ndarray:
    return np.clip(x, -bound, bound)


def trend_score(v: dict) -> np.ndarray:
    c, s20, s50, s200 = v["Close"], v["SMA20"], v["SMA50"], v["SMA200"]
    alignment = np.where((s20 > s50) & (s50 > s200), 1.0, np.where((s20 < s50) & (s50 < s200), -1.0, 0.0))
    score = 0.5 * np.sign(c - s20) + 0.75 * np.sign(c - s50) + 0.75 * np.sign(c - s200) + alignment
    return score  # NaN propagates through np.sign; the maximum is exactly 3


def momentum_score(v: dict) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        macd_in_atr = v["MACD_hist"] / (0.2 * v["ATR14"])
    macd_in_atr[np.isinf(macd_in_atr)] = np.nan
    return _clip(v["ret_21d"] / 0.10) + _clip(v["ret_63d"] / 0.20) + _clip(macd_in_atr)


def volume_score(v: dict) -> np.ndarray:
    spike = np.clip(2.0 * (v["vol_spike_ratio"] - 1.0), 0.0, 2.0)
    return np.sign(v["ret_1d"]) * spike + v["updown_volume_20"]


def volatility_score(v: dict, trend: np.ndarray) -> np.ndarray:
    return _interp(v["ATR14_pct"], _VOL_QUALITY_ATR, _VOL_QUALITY) * np.sign(trend)


def oscillator_score(v: dict) -> np.ndarray:
    score = _interp(v["RSI14"], _RSI_KNOTS, _RSI_SCORE)
    no_movement = np.abs(v["rsi14_avg_gain"] + v["rsi14_avg_loss"]) < _RSI_ZERO
    return np.where(no_movement, 0.0, score)


def breakout_score(v: dict) -> np.ndarray:
    return _interp(v["pct_from_high20"], _HIGH20_KNOTS, _HIGH20_SCORE) + _interp(
        v["pct_from_52w_high"], _HIGH52_KNOTS, _HIGH52_SCORE
    )


def sub_scores(v: dict) -> dict[str, np.ndarray]:
    """The six sub-scores from compute_latest's values, each clipped to [-3, 3]."""
    trend = trend_score(v)
    raw = {
        "TrendScore": trend,
        "MomentumScore": momentum_score(v),
        "VolumeScore": volume_score(v),
        "VolatilityScore": volatility_score(v, trend),
        "OscillatorScore": oscillator_score(v),
        "BreakoutScore": breakout_score(v),
    }
    return {k: np.clip(s, -SUBSCORE_BOUND, SUBSCORE_BOUND) for k, s in raw.items()}


def regime_factors(regime: Regime) -> tuple[float, float]:
    """(factor for positive ratings, factor for negative ratings) in this regime; see the module docstring."""
    vol = HIGH_VOL_FACTOR if regime.high_vol else 1.0
    long_factor = vol * (COUNTER_TREND_FACTOR if regime.trend == TRENDING_DOWN else 1.0)
    short_factor = vol * (COUNTER_TREND_FACTOR if regime.trend == TRENDING_UP else 1.0)
    return long_factor, short_factor


def tech_rating(scores: dict[str, np.ndarray], regime: Regime) -> np.ndarray:
    """Weighted sum of the sub-scores, then the regime factors."""
    rating = sum(w * scores[k] for k, w in TECH_WEIGHTS.items())
    long_factor, short_factor = regime_factors(regime)
    return np.where(rating > 0, rating * long_factor, rating * short_factor)


def classify_signal(rating: np.ndarray, trend: np.ndarray, momentum: np.ndarray) -> np.ndarray:
    """Signal per the thresholds in the module docstring (inclusive); NaN inputs fall through to Avoid."""
    rating, trend, momentum = (np.asarray(a, dtype=np.float64) for a in (rating, trend, momentum))
    conditions = [
        (rating >= STRONG_RATING) & (trend >= STRONG_TREND) & (momentum >= STRONG_MOMENTUM),
        (rating >= RATING) & (trend >= TREND),
        (rating <= -STRONG_RATING) & (trend <= -STRONG_TREND) & (momentum <= -STRONG_MOMENTUM),
        (rating <= -RATING) & (trend <= -TREND),
    ]
    return np.select(conditions, [STRONG_LONG, LONG, STRONG_SHORT, SHORT], default=AVOID).astype(object)


def trade_plan(signal: np.ndarray, v: dict, regime: Regime, rule: str = ATR_RULE,
               min_reward_risk: float = DEFAULT_MIN_REWARD_RISK) -> tuple[np.ndarray, dict]:
    """(signal, PLAN_COLUMNS) by `rule` (see `plans`); signals without a possible plan are downgraded to Avoid."""
    direction = np.where(np.isin(signal, LONG_SIGNALS), 1.0, np.where(np.isin(signal, SHORT_SIGNALS), -1.0, np.nan))
    no_plan, plan = plan_levels(direction, v, regime, rule, min_reward_risk)
    return np.where(no_plan & np.isfinite(direction), AVOID, signal).astype(object), plan


def risk_score(v: dict) -> np.ndarray:
    def unit(x):
        return np.clip(x, 0.0, 1.0)

    with np.errstate(divide="ignore"):
        illiquidity = np.log10(1e8 / v["DollarVolume20"]) / 3.0
    return 10.0 * (
        0.30 * unit(v["vol_realized_20"] / 0.80)
        + 0.25 * unit(v["ATR14_pct"] / 0.08)
        + 0.20 * unit(illiquidity)
        + 0.15 * unit(-v["pct_from_52w_high"] / 0.50)
        + 0.10 * unit(np.abs(v["gap_mean_10"]) / 0.01)
    )


REFERENCE_FIELDS = {"Name": "name", "Sector": "sector", "Industry": "industry"}


def _reference_columns(symbols: np.ndarray, reference: pd.DataFrame, close: np.ndarray) -> dict[str, np.ndarray]:
    """Name/Sector/Industry ("Unknown" when missing or empty), MarketCap, and MarketCapUnknown: true while the symbol's
    shares outstanding are not fetched yet (MarketCap NaN; the prescreen kept it, flagged, see prescreen)."""
    wanted = ["symbol", *REFERENCE_FIELDS.values(), "shares_outstanding"]
    ref = reference.reindex(columns=wanted)  # a reference without some column gives Unknown/NaN, not a KeyError
    ref = ref.drop_duplicates("symbol", keep="first").set_index("symbol").reindex(symbols)
    out = {}
    for column, source in REFERENCE_FIELDS.items():
        values = ref[source].to_numpy(dtype=object)
        out[column] = np.where(pd.notna(values) & (values != ""), values, UNKNOWN).astype(object)
    shares = pd.to_numeric(ref["shares_outstanding"], errors="coerce").to_numpy(dtype=np.float64)
    out["MarketCap"] = np.where(shares > 0, shares, np.nan) * close
    out["MarketCapUnknown"] = ~(shares > 0)
    return out


def per_symbol_extras(values: dict) -> dict[str, np.ndarray]:
    """Pattern flags, tt_1..tt_7 and tt_count of the per-symbol criteria (tt_8 and trend_template: False until the
    cross-sectional step), from the catalogue values."""
    flags = pattern_flags(values)
    n = len(values["Close"])
    return flags | trend_template(flags, np.full(n, np.nan))


def score_panel(panel: Panel, reference: pd.DataFrame, regime: Regime, plan_rule: str = ATR_RULE,
                min_reward_risk: float = DEFAULT_MIN_REWARD_RISK) -> pd.DataFrame:
    """RESULT_COLUMNS for every symbol of `panel` on its last bar, best TechRating first (see the module docstring)."""
    values = compute_latest(panel)
    scores = sub_scores(values)
    rating = tech_rating(scores, regime)
    signal = classify_signal(rating, scores["TrendScore"], scores["MomentumScore"])
    signal, plan = trade_plan(signal, values, regime, plan_rule, min_reward_risk)
    last_row = values["last_row"]
    as_of = np.where(last_row >= 0, panel.dates[np.maximum(last_row, 0)], np.datetime64("NaT"))
    columns = {
        "Symbol": np.asarray(panel.symbols, dtype=object),
        **_reference_columns(np.asarray(panel.symbols, dtype=object), reference, values["Close"]),
        "AsOf": as_of.astype("datetime64[ns]"),
        **{k: values[k] for k in ("Close", "Volume", "AvgVolume20", "DollarVolume20", *INDICATOR_COLUMNS,
                                  *LONG_RETURN_COLUMNS, *WEEKLY_COLUMNS)},
        **scores,
        "TechRating": rating,
        "RiskScore": risk_score(values),
        "Signal": signal,
        **plan,
        "Regime": np.full(len(panel.symbols), regime.label, dtype=object),
        **per_symbol_extras(values),
        **{k: np.full(len(panel.symbols), np.nan) for k in RS_COLUMNS},
    }
    frame = pd.DataFrame({k: columns[k] for k in RESULT_COLUMNS})
    frame = frame.sort_values(["TechRating", "Symbol"], ascending=[False, True], na_position="last", kind="stable")
    return frame.reset_index(drop=True)
