"""Regime labels from constructed SPY paths, macro ratios, and missing ETFs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from technic_v4.domain.regime import (
    SIDEWAYS, TRENDING_DOWN, TRENDING_UP, UNKNOWN, Regime, classify_trend, compute_regime, ratio_trend,
)
from technic_v4.domain.panel import Panel

T = 300


def panel_of(closes: dict[str, np.ndarray]) -> Panel:
    c = np.column_stack(list(closes.values()))
    return Panel(dates=np.datetime64("2024-01-01") + np.arange(len(c)), symbols=np.array(list(closes), dtype=object),
                 open=c, high=c * 1.001, low=c * 0.999, close=c, volume=np.full(c.shape, 1e6))


def calm_noise(seed=1, scale=0.004):
    return np.random.default_rng(seed).normal(0, scale, T)


def spy(drift, noise=None):
    return 400 * np.exp(np.cumsum(drift + (calm_noise() if noise is None else noise)))


def test_rising_spy_is_trending_up():
    r = compute_regime(panel_of({"SPY": spy(0.001)}))
    assert r.trend == TRENDING_UP and r.label == "TRENDING_UP" and not r.high_vol
    assert r.spy_close > r.spy_sma50 > r.spy_sma200


def test_falling_spy_is_trending_down():
    assert compute_regime(panel_of({"SPY": spy(-0.001)})).label == TRENDING_DOWN


def test_rally_then_drop_below_the_50_day_is_sideways():
    path = spy(0.002)
    path[-10:] = path[-11] * 0.85  # a 15 % drop: close < SMA50, but SMA50 still > SMA200
    r = compute_regime(panel_of({"SPY": path}))
    assert r.spy_close < r.spy_sma50 and r.spy_sma50 > r.spy_sma200 and r.trend == SIDEWAYS


def test_volatility_burst_adds_high_vol_to_the_label():
    noise = calm_noise()
    noise[-20:] = np.random.default_rng(2).normal(0, 0.02, 20) + 0.003
    r = compute_regime(panel_of({"SPY": spy(0.001, noise)}))
    assert r.high_vol and r.spy_vol20 > 1.25 * r.spy_vol60
    assert r.label == f"{r.trend}+HIGH_VOL"


def test_high_vol_threshold_is_1_25x():
    from technic_v4.domain.regime import is_high_vol

    assert not is_high_vol(1.25, 1.0) and is_high_vol(1.25 + 1e-9, 1.0) and not is_high_vol(np.nan, 1.0)


def test_classify_trend_is_strict():
    assert classify_trend(101, 100, 99) == TRENDING_UP and classify_trend(100, 100, 99) == SIDEWAYS
    assert classify_trend(99, 100, 101) == TRENDING_DOWN and classify_trend(99, 99, 101) == SIDEWAYS
    assert classify_trend(np.nan, 100, 99) == UNKNOWN


def test_missing_spy_is_unknown_and_json_safe():
    r = compute_regime(panel_of({"AAPL": spy(0.001)}))
    assert r.label == UNKNOWN and not r.high_vol and r.qqq_spy_label == UNKNOWN
    json.dumps(r.as_dict(), allow_nan=False)
    assert r.as_dict()["spy_close"] is None and r.as_dict()["label"] == "UNKNOWN"


def test_short_spy_history_is_unknown_but_can_be_high_vol():
    path = spy(0.001)
    path[:150] = np.nan  # listed 150 bars ago: no SMA200
    noise_path = path.copy()
    r = compute_regime(panel_of({"SPY": noise_path}))
    assert r.trend == UNKNOWN and np.isfinite(r.spy_vol60)


def test_macro_ratios_and_vixy():
    base = spy(0.0005)
    rising = base * np.exp(np.linspace(0, 0.2, T))  # QQQ outperforms SPY: ratio trending up
    falling = base * np.exp(np.linspace(0, -0.2, T))
    vixy = np.linspace(30, 10, T)
    r = compute_regime(panel_of({"SPY": base, "QQQ": rising, "HYG": falling, "LQD": base, "VIXY": vixy}))
    assert r.qqq_spy_label == "RISK_ON" and r.qqq_spy_trend > 0.005
    assert r.hyg_lqd_label == "RISK_OFF" and r.shy_tlt_label == UNKNOWN and np.isnan(r.shy_tlt_trend)
    assert r.vixy_level == pytest.approx(10) and r.vixy_percentile == pytest.approx(1 / 252)
    json.dumps(r.as_dict(), allow_nan=False)


def test_ratio_needs_50_common_bars():
    a = np.full(60, 2.0)
    b = np.full(60, 1.0)
    b[:15] = np.nan
    assert np.isnan(ratio_trend(a, b)) and ratio_trend(a[10:], np.ones(50)) == 0.0


def test_regime_rejects_unknown_trend():
    with pytest.raises(ValueError, match="Regime.trend"):
        Regime(trend="BULL")


def test_without_spy_the_trend_comes_from_the_equal_weighted_index_and_says_so():
    from technic_v4.domain.market_proxy import equal_weighted_index

    names = {f"S{i:02d}": spy(drift, calm_noise(seed=i)) for i, drift in enumerate(np.linspace(-0.0005, 0.003, 24))}
    r = compute_regime(panel_of(names))
    assert r.market == "equal-weighted index of 24 symbols" and r.trend == TRENDING_UP  # the average name rises
    index = equal_weighted_index(np.column_stack(list(names.values())))
    alone = compute_regime(panel_of({"SPY": index}))  # the same series read as SPY gives the same readings
    assert alone.market == "SPY" and (alone.trend, alone.high_vol) == (r.trend, r.high_vol)
    assert alone.spy_sma200 == pytest.approx(r.spy_sma200, rel=1e-12)
    falling = compute_regime(panel_of({k: v[::-1] for k, v in names.items()}))
    assert falling.trend == TRENDING_DOWN and json.loads(json.dumps(falling.as_dict()))["market"].startswith("equal")


def test_spy_wins_over_the_index_and_too_few_names_make_no_index():
    names = {f"S{i:02d}": spy(-0.002, calm_noise(seed=i)) for i in range(24)}
    assert compute_regime(panel_of({**names, "SPY": spy(0.001)})).market == "SPY"
    few = compute_regime(panel_of({k: names[k] for k in list(names)[:5]}))
    assert few.market == "none" and few.label == UNKNOWN
