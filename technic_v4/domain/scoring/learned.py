"""The learned rating's features and the fitted model applied to them (numpy only: no I/O, no fitting here).

Features of one (session, symbol) row, all point in time (what a scan as of that session shows):
* raw: the scale-free indicators the sub-scores read (returns, RSI, ATR %, distances from highs and averages, the
  MACD histogram per unit of price, the volume spike), the six sub-scores and TechRating;
* rank_*: each raw feature's percentile rank within the row's own session (ties averaged), centred on 0 (-0.5 ..
  +0.5; NaN = no value -> 0, the middle);
* regime: one-hot of the session's SPY trend (TRENDS) plus a HIGH_VOL flag.
The same function builds them for a scan's results (one session) and for an evaluation's rows (many sessions), so the
model sees the very same features in both.

A `LearnedModel` is what pipeline/evaluation/learned.py fitted and the store persisted: a kind ("ridge": an intercept
and coefficients; "lgbm": any object with `predict(X)`, the LightGBM booster loaded by the pipeline), the feature
names it was fitted on, and its Signal cut-offs. Signals come from the predicted score's percentile within its own
session (day_percentile_ranks): the model ranks names within a day, so the level of its scores means nothing (a
regime term shifts a whole day). The cut-offs are the training window's percentiles at the quantiles that give each
label TechRating's share of that window (`signal_cutoffs`): a percentile >= the Strong Long cut-off is Strong Long,
else >= the Long cut-off Long, <= the Strong Short cut-off Strong Short, else <= the Short cut-off Short, else Avoid;
NaN is Avoid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from technic_v4.domain.regime import HIGH_VOL_SUFFIX, TRENDS
from technic_v4.domain.scoring.score import AVOID, LONG, SCORE_COLUMNS, SHORT, SIGNALS, STRONG_LONG, STRONG_SHORT

DEFAULT_HORIZON = 21  # sessions: the scan's model predicts the 21-session forward return's within-day rank
RATING_KINDS = ("tech", "learned")
MODEL_KINDS = ("ridge", "lgbm")

RAW_INDICATORS = ("ret_1d", "ret_21d", "ret_63d", "RSI14", "ATR14_pct", "pct_from_high20", "pct_from_52w_high",
                  "vol_spike_ratio")  # fmt: skip
RATIOS = {"close_vs_sma20": ("Close", "SMA20", 1.0), "close_vs_sma50": ("Close", "SMA50", 1.0),
          "close_vs_sma200": ("Close", "SMA200", 1.0), "macd_hist_vs_close": ("MACD_hist", "Close", 0.0)}  # fmt: skip
# numerator / denominator - offset
RAW_FEATURES = (*RAW_INDICATORS, *RATIOS, *SCORE_COLUMNS, "TechRating")
RANK_FEATURES = tuple(f"rank_{name}" for name in RAW_FEATURES)
REGIME_FEATURES = (*(f"regime_{t}" for t in TRENDS), "regime_HIGH_VOL")
FEATURES = (*RAW_FEATURES, *RANK_FEATURES, *REGIME_FEATURES)
# The columns a values mapping must hold (the scan's result columns / the evaluation's score_cells output).
FEATURE_INPUTS = tuple(dict.fromkeys((*RAW_INDICATORS, *(c for num, den, _ in RATIOS.values() for c in (num, den)),
                                      *SCORE_COLUMNS, "TechRating")))  # fmt: skip


def raw_features(values: Mapping[str, np.ndarray]) -> np.ndarray:
    """(n, len(RAW_FEATURES)) float32 from the indicator/score columns; a ratio with a zero denominator is NaN."""
    n = len(values["TechRating"])
    out = np.empty((n, len(RAW_FEATURES)), dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, name in enumerate(RAW_FEATURES):
            if name in RATIOS:
                num, den, offset = RATIOS[name]
                col = np.asarray(values[num], dtype=np.float64) / np.asarray(values[den], dtype=np.float64) - offset
                col = np.where(np.isfinite(col), col, np.nan)
            else:
                col = values[name]
            out[:, j] = col
    return out


F16_MAX = 65000.0
FEATURE_PREFIX = "f_"  # an evaluation row's raw feature columns: f_ret_1d, ... (dropped once the model has run)


def raw_feature_frame(values: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """raw_features as float16 columns FEATURE_PREFIX + name: the evaluation's chunks carry them through the join of
    millions of rows (held up to three times there), where float32 took the peak past 3 GB at 6,000 x 500 (measured
    3.0-3.2 GB, float16 ~2.7). Three significant digits are finer than LightGBM's 63 bins and than any rank that
    matters; a scan's features stay float32."""
    raw = np.clip(raw_features(values), -F16_MAX, F16_MAX)  # no overflow to inf (NaN stays NaN)
    return pd.DataFrame({FEATURE_PREFIX + name: raw[:, j].astype(np.float16) for j, name in enumerate(RAW_FEATURES)})


def day_percentile_ranks(values: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Percentile rank within each day (ties averaged) centred on 0: (rank - 0.5) / n_finite - 0.5; NaN -> 0."""
    n = len(values)
    out = np.zeros(n, dtype=np.float32)
    if n == 0:
        return out
    if n > 1 and (np.diff(day) >= 0).all():
        return _grid_ranks(values, day)
    finite = np.isfinite(values)
    keyed = np.where(finite, values, np.inf)
    by_value = np.argsort(keyed, kind="stable")
    order = by_value[np.argsort(day[by_value], kind="stable")]
    v, d = keyed[order], day[order]
    starts = np.flatnonzero(np.r_[True, (v[1:] != v[:-1]) | (d[1:] != d[:-1])])
    ends = np.r_[starts[1:], n]
    mid = np.repeat((starts + ends - 1) / 2.0, ends - starts)  # the average 0-based position of each tie group
    first = np.r_[0, np.cumsum(np.bincount(d))[:-1]]
    count = np.bincount(day, weights=finite.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = (mid - first[d] + 0.5) / count[d] - 0.5
    ok = np.isfinite(v)
    out[order[ok]] = pct[ok]
    return out


def _grid_ranks(values: np.ndarray, day: np.ndarray) -> np.ndarray:
    """day_percentile_ranks for rows sorted by day: one (days x largest day) grid sorted along its rows, ~3x faster
    than sorting the flat array by (day, value)."""
    sizes = np.bincount(day)
    first = np.r_[0, np.cumsum(sizes)[:-1]]
    pos = np.arange(len(values)) - first[day]
    grid = np.full((len(sizes), sizes.max()), np.inf, dtype=np.float32)
    grid[day, pos] = np.where(np.isfinite(values), values, np.inf)
    order = np.argsort(grid, axis=1)
    v = np.take_along_axis(grid, order, axis=1)
    width = v.shape[1]
    col = np.broadcast_to(np.arange(width), v.shape)
    new = np.ones(v.shape, bool)
    new[:, 1:] = v[:, 1:] != v[:, :-1]
    start = np.maximum.accumulate(np.where(new, col, 0), axis=1)  # first position of each tie group
    last = np.ones(v.shape, bool)
    last[:, :-1] = new[:, 1:]
    end = np.minimum.accumulate(np.where(last, col, width)[:, ::-1], axis=1)[:, ::-1]  # last position of the group
    count = np.isfinite(v).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(np.isfinite(v), ((start + end) / 2.0 + 0.5) / count - 0.5, 0.0)
    ranked = np.empty_like(pct)
    np.put_along_axis(ranked, order, pct, axis=1)
    return ranked[day, pos].astype(np.float32)


def regime_one_hot(labels: np.ndarray) -> np.ndarray:
    """(n, len(REGIME_FEATURES)) float32: the trend of a label like "TRENDING_UP+HIGH_VOL", and its HIGH_VOL flag."""
    labels = np.asarray(labels, dtype=object).astype(str)
    high_vol = np.char.endswith(labels, HIGH_VOL_SUFFIX)
    trend = np.where(high_vol, np.char.replace(labels, HIGH_VOL_SUFFIX, ""), labels)
    return np.column_stack([trend == t for t in TRENDS] + [high_vol]).astype(np.float32)


def feature_matrix(raw, day: np.ndarray, regime_labels) -> np.ndarray:
    """(n, len(FEATURES)) float32: raw, their within-day ranks, regime one-hot. `raw`: raw_features' (n, k) array or
    {name: column} in RAW_FEATURES order (taken out one by one, so it is never held twice); `day`: int codes, one per
    session; `regime_labels`: one label per row (array or pandas Categorical)."""
    day = np.asarray(day)
    columns = raw if isinstance(raw, dict) else {name: raw[:, j] for j, name in enumerate(RAW_FEATURES)}
    out = np.empty((len(day), len(FEATURES)), dtype=np.float32)
    k = len(RAW_FEATURES)
    for j, name in enumerate(RAW_FEATURES):
        column = np.asarray(columns.pop(name) if isinstance(raw, dict) else columns[name], dtype=np.float32)
        out[:, j] = column
        out[:, k + j] = day_percentile_ranks(column, day)
        del column
    if isinstance(regime_labels, pd.Categorical):  # one-hot of each category, then indexed by the codes
        table = np.vstack([regime_one_hot(np.asarray(regime_labels.categories, dtype=object)),
                           np.zeros((1, len(REGIME_FEATURES)), np.float32)])
        out[:, 2 * k:] = table[regime_labels.codes]  # code -1 (missing) -> the zero row
    else:
        out[:, 2 * k:] = regime_one_hot(regime_labels)
    return out


@dataclass
class LearnedModel:
    """A fitted model ready to apply: see the module docstring."""

    kind: str
    features: tuple[str, ...]
    cutoffs: dict[str, float]  # signal -> cut-off on the predicted score (signal_cutoffs)
    intercept: float = 0.0
    coef: np.ndarray | None = None  # ridge
    booster: Any = None  # lgbm: an object with predict(X) -> scores
    manifest: dict = field(default_factory=dict)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.kind == "ridge":
            return (X.astype(np.float64) @ self.coef + self.intercept).astype(np.float64)
        # one thread: OpenMP's spin-waits on a busy 2-core box cost more than a second thread gains
        return np.asarray(self.booster.predict(X, num_threads=1), dtype=np.float64)


def model_columns(features: tuple[str, ...]) -> np.ndarray:
    """Column positions of `features` in FEATURES (a model fitted on a subset applies to the full matrix)."""
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise ValueError(f"model features not built by this version: {unknown}")
    return np.array([FEATURES.index(f) for f in features], dtype=int)


def predict(model: LearnedModel, X: np.ndarray) -> np.ndarray:
    """The model's score for each row of the full feature matrix X (columns FEATURES)."""
    return model.predict(np.ascontiguousarray(X[:, model_columns(model.features)]))


def signal_cutoffs(predicted: np.ndarray, tech_signals: np.ndarray) -> dict[str, float]:
    """Cut-offs on the predicted score that give each Signal TechRating's share of the same (training) rows."""
    p = predicted[np.isfinite(predicted)]
    share = {s: float(np.mean(tech_signals == s)) for s in SIGNALS}
    if p.size == 0:
        return {s: float("nan") for s in (STRONG_LONG, LONG, SHORT, STRONG_SHORT)}
    q = lambda x: float(np.quantile(p, min(max(x, 0.0), 1.0)))  # noqa: E731
    return {
        STRONG_LONG: q(1.0 - share[STRONG_LONG]) if share[STRONG_LONG] > 0 else float("inf"),
        LONG: q(1.0 - share[STRONG_LONG] - share[LONG]) if share[LONG] > 0 else float("inf"),
        STRONG_SHORT: q(share[STRONG_SHORT]) if share[STRONG_SHORT] > 0 else float("-inf"),
        SHORT: q(share[STRONG_SHORT] + share[SHORT]) if share[SHORT] > 0 else float("-inf"),
    }


def classify_learned(score: np.ndarray, cutoffs: Mapping[str, float]) -> np.ndarray:
    """Signal labels from the predicted score and the cut-offs (see the module docstring)."""
    score = np.asarray(score, dtype=np.float64)
    long_cut = min(cutoffs[LONG], cutoffs[STRONG_LONG])
    short_cut = max(cutoffs[SHORT], cutoffs[STRONG_SHORT])
    conditions = [score >= cutoffs[STRONG_LONG], score >= long_cut, score <= cutoffs[STRONG_SHORT], score <= short_cut]
    out = np.select(conditions, [STRONG_LONG, LONG, STRONG_SHORT, SHORT], default=AVOID).astype(object)
    out[~np.isfinite(score)] = AVOID
    return out
