"""Scores for every (session, symbol) of a history in one panel pass: what a scan as of each session would give.

A scan as of day d loads the `window` sessions ending at d and scores each symbol on its last valid bar. Here every
indicator's full series is computed once on the whole history (the catalogue's own `series`, no second copy of the
math) and read at each symbol's last valid bar on or before d. Point-in-time rules that make the two agree:

* a value is NaN when fewer than the indicator's `min_bars` valid bars fall inside d's window, exactly as the scan's
  shorter panel would make it; window indicators then see the very same bars;
* recursive indicators (EMA, Wilder RSI/ATR, MACD) are seeded earlier here than in a scan's window; a symbol that
  traded through the window has ~300 bars since the scan's seed, whose weight has decayed below 1e-9, so values agree
  to float noise (TechRating within 1e-6, measured ~2e-8), not bit for bit. A symbol halted for most of the window
  (fewer valid bars than an indicator's `lookback`, with older history before it) can differ more;
* prices are split-adjusted as of the history's last day; each day's rows are divided back by the factor of the splits
  after d (`asof_factor`), so Close/Entry/Stop/Target are the prices the scan showed on d. Sub-scores and TechRating
  are ratios and signs of prices, so they need no rescaling;
* the regime (SPY trend / high volatility) is d's own; `tech_rating` and `trade_plan` run once per regime label;
* pattern flags, tt_1..tt_7 and the long returns come from window indicators (exact); the weekly columns are computed
  on weekly bars that end inside d's window, today's partial week last (`weekly_at`), so they equal the scan's;
* the cross-sectional columns (RS_rating, sector ranks, tt_8, trend_template) need every symbol of the day: the
  evaluation adds them per session after its chunks are joined (`relative_strength`).
"""

from __future__ import annotations

import numpy as np

from technic_v4.domain.indicators import CATALOGUE, Bars, Indicator
from technic_v4.domain.indicators.weekly import weekly_at
from technic_v4.domain.panel import Panel
from technic_v4.domain.regime import Regime
from technic_v4.domain.scoring.columns import LONG_RETURN_COLUMNS, PLAN_COLUMNS
from technic_v4.domain.scoring.plan_rules import ATR_RULE, DEFAULT_MIN_REWARD_RISK
from technic_v4.domain.scoring.score import (
    SCORE_COLUMNS, classify_signal, per_symbol_extras, sub_scores, tech_rating, trade_plan,
)

# The catalogue values the sub-scores and the trade plan read (a KeyError in sub_scores means this list is short).
SCORING_INPUTS = (
    "Close", "ret_1d", "ret_21d", "ret_63d", ("RSI14", "rsi14_avg_gain", "rsi14_avg_loss"), "ATR14", "ATR14_pct",
    "SMA20", "SMA50", "SMA200", ("MACD", "MACD_signal", "MACD_hist"), "pct_from_high20", "pct_from_52w_high",
    "vol_spike_ratio", "updown_volume_20",
    # pattern flags, trend template, structure plans, relative strength's legs
    *LONG_RETURN_COLUMNS, "last_open", "last_high", "last_low", "prior_high_1", "prior_low_1", "prior_high_20",
    "prior_low_20", "prior_high_251", "prior_low_251", "prior_min_range_6", "vol_ratio_50",
    ("golden_cross_5", "death_cross_5"), "sma150", "sma200_lag21", "swing_low_10", "swing_high_10",
)  # fmt: skip


def _valid_bars(panel: Panel) -> np.ndarray:
    """(T, N) True where all four prices are finite: Bars' definition of a valid bar."""
    valid = np.isfinite(panel.open)
    for f in ("high", "low", "close"):
        valid &= np.isfinite(getattr(panel, f))
    return valid


def last_row_on_or_before(mask: np.ndarray) -> np.ndarray:
    """(T, N) panel row of the last True cell at or above each cell, -1 when none."""
    rows = np.where(mask, np.arange(mask.shape[0])[:, None], -1)
    return np.maximum.accumulate(rows, axis=0)


def count_in_window(mask: np.ndarray, window: int) -> np.ndarray:
    """(T, N) number of True cells among the `window` rows ending at each row."""
    total = np.cumsum(mask, axis=0, dtype=np.int32)
    out = total.copy()
    out[window:] -= total[:-window]
    return out


def score_cells(panel: Panel, rows: np.ndarray, cols: np.ndarray, regimes: dict[int, Regime], window: int,
                plan_rule: str = ATR_RULE, min_reward_risk: float = DEFAULT_MIN_REWARD_RISK,
                extra: dict[str, Indicator] | None = None, keep: tuple[str, ...] = ()) -> dict:
    """Scores of the (row, col) cells of `panel` (clean, split-adjusted as of its last day) as of each cell's day.

    `regimes` maps a panel row to that day's Regime. Returns 1-D arrays per cell: TechRating, Signal, the sub-scores,
    Close/ATR14, the plan columns by `plan_rule` (prices in the panel's basis), the pattern flags and tt_1..tt_7, the
    weekly columns (SMA10w/SMA40w in the panel's basis), ret_63d..ret_252d and `last_row` (the bar the values come
    from, -1: none), plus one array per `extra` indicator (name -> indicator), read as of each day exactly as the
    scoring inputs are, and the computed values named in `keep` (the columns a screen's scorecard reads),
    and `indicators` (every SCORING_INPUTS value per cell: the learned rating's features read them).
    """
    bars = Bars.from_panel(panel)
    valid = _valid_bars(panel)
    n_rows = valid.shape[0]
    last = last_row_on_or_before(valid)[rows, cols]
    in_window = last > rows - window
    src = np.where(in_window, last, 0)
    compact = n_rows - bars.n_valid[cols] + np.cumsum(valid, axis=0)[src, cols] - 1
    have = count_in_window(valid, window)[rows, cols]
    values = {}
    wanted = [(key, CATALOGUE[key]) for key in SCORING_INPUTS] + list((extra or {}).items())
    for key, indicator in wanted:
        series = indicator.compute(bars)
        names, arrays = (key, series) if isinstance(key, tuple) else ((key,), (series,))
        enough = in_window & (have >= indicator.min_bars)
        for name, arr in zip(names, arrays):
            values[name] = np.where(enough, arr[compact, cols], np.nan)
    weekly = weekly_at(bars, np.where(in_window, compact, 0), cols, first_rows=compact - have + 1)
    values.update({k: np.where(in_window, w, np.nan) for k, w in weekly.items()})
    bars.cache.clear()  # the (T, N) series are not needed past this point
    label_of_row = np.full(n_rows, None, dtype=object)
    for r, regime in regimes.items():
        label_of_row[r] = regime.label
    by_label = {regime.label: regime for regime in regimes.values()}
    extras = per_symbol_extras(values)
    kept = {k: values[k] for k in ("ret_63d", *LONG_RETURN_COLUMNS, "RSI14_w", "SMA10w", "SMA40w")}
    scored = _score_by_regime(values, label_of_row[rows], by_label, plan_rule, min_reward_risk)
    return (scored | kept | extras | {name: values[name] for name in extra or {}}
            | {k: values[k] for k in keep if k in values} | {"last_row": np.where(in_window, last, -1)})


def _score_by_regime(values: dict, labels: np.ndarray, regimes: dict[str, Regime], plan_rule: str,
                     min_reward_risk: float) -> dict:
    """Sub-scores for all cells at once; the regime-dependent steps once per regime label."""
    scores = sub_scores(values)
    n = len(labels)
    out = {k: np.full(n, np.nan) for k in ("TechRating", "Entry", "Stop", "Target", "RewardRisk")}
    out["Signal"], out["PlanRule"] = np.empty(n, dtype=object), np.empty(n, dtype=object)
    out["PlanOK"] = np.zeros(n, dtype=bool)
    out["Regime"] = labels
    for label, regime in regimes.items():
        at = labels == label
        if not at.any():
            continue
        rating = tech_rating({k: s[at] for k, s in scores.items()}, regime)
        signal = classify_signal(rating, scores["TrendScore"][at], scores["MomentumScore"][at])
        signal, plan = trade_plan(signal, {k: a[at] for k, a in values.items()}, regime, plan_rule, min_reward_risk)
        out["TechRating"][at], out["Signal"][at] = rating, signal
        for k in PLAN_COLUMNS:
            out[k][at] = plan[k]
    return out | {k: scores[k] for k in SCORE_COLUMNS} | {"Close": values["Close"], "ATR14": values["ATR14"],
                                                         "indicators": values}
