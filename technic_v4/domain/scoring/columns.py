"""The result table's columns, in order: the one home of every list of result column names."""

from __future__ import annotations

from technic_v4.domain.indicators.patterns import FLAG_COLUMNS, TREND_TEMPLATE_PER_SYMBOL
from technic_v4.domain.indicators.weekly import WEEKLY_COLUMNS

INDICATOR_COLUMNS = [
    "ret_1d", "ret_5d", "ret_21d", "ret_63d", "RSI14", "ATR14", "ATR14_pct", "SMA20", "SMA50", "SMA200", "EMA20",
    "MACD", "MACD_signal", "MACD_hist", "pct_from_high20", "pct_from_52w_high", "vol_realized_20", "vol_spike_ratio",
    "gap_mean_10",
]  # fmt: skip
LONG_RETURN_COLUMNS = ["ret_126d", "ret_189d", "ret_252d"]  # relative strength's 6/9/12-month legs
SCORE_COLUMNS = ["TrendScore", "MomentumScore", "VolumeScore", "VolatilityScore", "OscillatorScore", "BreakoutScore"]
PLAN_COLUMNS = ["Entry", "Stop", "Target", "RewardRisk", "PlanRule", "PlanOK"]
TREND_TEMPLATE_COLUMNS = [*TREND_TEMPLATE_PER_SYMBOL, "tt_8", "trend_template"]
BOOL_COLUMNS = ["MarketCapUnknown", *FLAG_COLUMNS, *TREND_TEMPLATE_COLUMNS, "PlanOK"]
# Cross-sectional (domain.scoring.relative_strength, after the chunks are joined): NaN in score_panel's own frame.
RS_COLUMNS = ["RS_rating", "rs_vs_market_63d", "sector_rank", "rank_in_sector"]
INT_COLUMNS = ["tt_count"]  # 0..8, never missing
STR_COLUMNS = ["Symbol", "Name", "Sector", "Industry", "Signal", "PlanRule", "Regime"]
RESULT_COLUMNS = [
    "Symbol", "Name", "Sector", "Industry", "AsOf", "Close", "Volume", "AvgVolume20", "DollarVolume20", "MarketCap",
    "MarketCapUnknown", *INDICATOR_COLUMNS, *LONG_RETURN_COLUMNS, *WEEKLY_COLUMNS, *SCORE_COLUMNS, "TechRating",
    "RiskScore", "Signal", *PLAN_COLUMNS, "Regime", *FLAG_COLUMNS, *TREND_TEMPLATE_COLUMNS, "tt_count", *RS_COLUMNS,
]  # fmt: skip
FLOAT_RESULT_COLUMNS = [c for c in RESULT_COLUMNS if c not in {*STR_COLUMNS, *BOOL_COLUMNS, *INT_COLUMNS, "AsOf"}]
