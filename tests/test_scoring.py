"""Every score, signal and trade-plan rule at its threshold, regime factors, and score_panel's contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from technic_v4.domain.scoring import score as sc
from technic_v4.domain.regime import SIDEWAYS, TRENDING_DOWN, TRENDING_UP, UNKNOWN, Regime
from technic_v4.domain.panel import Panel

EPS = 1e-9


def values(**overrides) -> dict[str, np.ndarray]:
    """A neutral one-symbol indicator dict; overrides set single values."""
    base = {
        "Close": 100.0, "SMA20": 100.0, "SMA50": 100.0, "SMA200": 100.0, "ret_1d": 0.0, "ret_21d": 0.0,
        "ret_63d": 0.0, "MACD_hist": 0.0, "ATR14": 2.0, "ATR14_pct": 0.02, "vol_spike_ratio": 1.0,
        "updown_volume_20": 0.0, "RSI14": 50.0, "rsi14_avg_gain": 1.0, "rsi14_avg_loss": 1.0,
        "pct_from_high20": -0.05, "pct_from_52w_high": -0.10, "vol_realized_20": 0.2, "DollarVolume20": 1e9,
        "gap_mean_10": 0.0,
    }
    base.update(overrides)
    return {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in base.items()}


def one(x):
    return float(np.asarray(x)[0])


# ---- sub-scores ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("close", "s20", "s50", "s200", "expected"),
    [
        (110, 105, 100, 95, 3.0),  # above all, stacked: the maximum
        (110, 100, 105, 95, 2.0),  # above all, not stacked
        (90, 95, 100, 105, -3.0),
        (100 + EPS, 100, 100, 100, 2.0),  # just above every average, no alignment (equal averages)
        (100, 100, 100, 100, 0.0),
        (101, 100, 102, 99, 0.5 - 0.75 + 0.75),
    ],
)
def test_trend_score(close, s20, s50, s200, expected):
    assert one(sc.trend_score(values(Close=close, SMA20=s20, SMA50=s50, SMA200=s200))) == pytest.approx(expected)


def test_momentum_score_caps_each_term_at_one():
    assert one(sc.momentum_score(values(ret_21d=0.10))) == pytest.approx(1.0)
    assert one(sc.momentum_score(values(ret_21d=0.50))) == pytest.approx(1.0)
    assert one(sc.momentum_score(values(ret_21d=0.05, ret_63d=-0.10))) == pytest.approx(0.5 - 0.5)
    assert one(sc.momentum_score(values(MACD_hist=0.2, ATR14=2.0))) == pytest.approx(0.5)  # 0.2 / (0.2·2)
    assert one(sc.momentum_score(values(ret_21d=1, ret_63d=1, MACD_hist=10))) == pytest.approx(3.0)
    assert np.isnan(one(sc.momentum_score(values(MACD_hist=1.0, ATR14=0.0))))  # undefined, not inf


def test_volume_score_counts_heavy_days_in_their_direction():
    assert one(sc.volume_score(values(vol_spike_ratio=1.0, ret_1d=0.02))) == 0.0  # normal volume: no vote
    assert one(sc.volume_score(values(vol_spike_ratio=1.5, ret_1d=0.02))) == pytest.approx(1.0)
    assert one(sc.volume_score(values(vol_spike_ratio=2.0, ret_1d=-0.02))) == pytest.approx(-2.0)
    assert one(sc.volume_score(values(vol_spike_ratio=5.0, ret_1d=0.02, updown_volume_20=1.0))) == pytest.approx(3)


@pytest.mark.parametrize(("atr_pct", "quality"), [(0.0, 2), (0.01, 3), (0.03, 3), (0.05, 1), (0.08, -2), (0.2, -3)])
def test_volatility_score_knots_follow_the_trend_sign(atr_pct, quality):
    for trend in (3.0, -2.0):
        got = one(sc.volatility_score(values(ATR14_pct=atr_pct), np.array([trend])))
        assert got == pytest.approx(quality * np.sign(trend))
    assert one(sc.volatility_score(values(ATR14_pct=0.02), np.array([0.0]))) == 0.0


@pytest.mark.parametrize(("rsi", "score"), [(50, 0), (60, 2), (70, 3), (80, 1), (90, -2), (30, -3), (10, 2), (65, 2.5)])
def test_oscillator_score_knots(rsi, score):
    assert one(sc.oscillator_score(values(RSI14=rsi))) == pytest.approx(score)


def test_oscillator_is_zero_without_movement():
    assert one(sc.oscillator_score(values(RSI14=0.0, rsi14_avg_gain=0.0, rsi14_avg_loss=0.0))) == 0.0


def test_breakout_score_knots():
    assert one(sc.breakout_score(values(pct_from_high20=0.0, pct_from_52w_high=0.0))) == pytest.approx(3.0)
    assert one(sc.breakout_score(values(pct_from_high20=-0.02, pct_from_52w_high=-0.10))) == pytest.approx(0.5)
    assert one(sc.breakout_score(values(pct_from_high20=-0.5, pct_from_52w_high=-0.9))) == pytest.approx(-3.0)
    assert np.isnan(one(sc.breakout_score(values(pct_from_52w_high=np.nan))))  # a young stock: unknown, not 0


def test_sub_scores_are_clipped_and_nan_propagates():
    scores = sc.sub_scores(values(Close=[110, np.nan], SMA20=105, SMA50=100, SMA200=95, vol_spike_ratio=9,
                                  ret_1d=0.05, updown_volume_20=1.0))
    assert all(np.nanmax(np.abs(s)) <= 3 for s in scores.values())
    assert scores["VolumeScore"][0] == 3.0 and np.isnan(scores["TrendScore"][1])


# ---- rating, regime factors, signal -------------------------------------------------------------------------------


def test_tech_rating_weights():
    scores = {k: np.array([1.0]) for k in sc.SCORE_COLUMNS}
    assert one(sc.tech_rating(scores, Regime(trend=SIDEWAYS))) == 11.0  # 3+3+2+1+1+1
    scores["TrendScore"] = np.array([3.0])
    assert one(sc.tech_rating(scores, Regime(trend=SIDEWAYS))) == 17.0


@pytest.mark.parametrize(
    ("regime", "long_factor", "short_factor"),
    [
        (Regime(trend=SIDEWAYS), 1.0, 1.0),
        (Regime(trend=UNKNOWN), 1.0, 1.0),
        (Regime(trend=TRENDING_UP), 1.0, 0.9),
        (Regime(trend=TRENDING_DOWN), 0.9, 1.0),
        (Regime(trend=SIDEWAYS, high_vol=True), 0.85, 0.85),
        (Regime(trend=TRENDING_UP, high_vol=True), 0.85, 0.85 * 0.9),
    ],
)
def test_regime_factors(regime, long_factor, short_factor):
    assert sc.regime_factors(regime) == pytest.approx((long_factor, short_factor))
    scores = {k: np.array([2.0, -2.0]) for k in sc.SCORE_COLUMNS}
    assert sc.tech_rating(scores, regime) == pytest.approx([22 * long_factor, -22 * short_factor])


def test_high_vol_turns_a_threshold_strong_long_into_a_long():
    scores = {k: np.array([2.0]) for k in sc.SCORE_COLUMNS}  # raw rating 22, trend 2, momentum 2
    calm = sc.tech_rating(scores, Regime(trend=SIDEWAYS))
    wild = sc.tech_rating(scores, Regime(trend=SIDEWAYS, high_vol=True))
    assert sc.classify_signal(calm, scores["TrendScore"], scores["MomentumScore"])[0] == sc.STRONG_LONG
    assert sc.classify_signal(wild, scores["TrendScore"], scores["MomentumScore"])[0] == sc.LONG


@pytest.mark.parametrize(
    ("rating", "trend", "momentum", "signal"),
    [
        (22, 2, 1, "Strong Long"),
        (22 - EPS, 2, 1, "Long"),
        (22, 2 - EPS, 1, "Long"),
        (22, 2, 1 - EPS, "Long"),
        (16, 1, 0, "Long"),
        (16 - EPS, 1, 0, "Avoid"),
        (16, 1 - EPS, 0, "Avoid"),
        (-22, -2, -1, "Strong Short"),
        (-22 + EPS, -2, -1, "Short"),
        (-22, -2 + EPS, -1, "Short"),
        (-22, -2, -1 + EPS, "Short"),
        (-16, -1, 0, "Short"),
        (-16 + EPS, -1, 0, "Avoid"),
        (-16, -1 + EPS, 0, "Avoid"),
        (30, -1, 3, "Avoid"),  # a high rating against the trend is not a long
        (np.nan, 3, 3, "Avoid"),
    ],
)
def test_signal_thresholds(rating, trend, momentum, signal):
    assert sc.classify_signal(np.array([rating]), np.array([trend]), np.array([momentum]))[0] == signal


# ---- trade plan and risk ---------------------------------------------------------------------------------------------


def plan(signal, close=100.0, atr=2.0, regime=Regime(trend=SIDEWAYS)):
    signal, p = sc.trade_plan(np.array([signal], dtype=object), {"Close": np.array([close]), "ATR14": np.array([atr])},
                              regime)
    return signal[0], *(one(p[k]) for k in ("Entry", "Stop", "Target", "RewardRisk"))


def test_long_and_short_plans():
    assert plan("Long") == ("Long", 100.0, 96.0, 106.0, 1.5)
    assert plan("Strong Short") == ("Strong Short", 100.0, 104.0, 94.0, 1.5)


def test_high_vol_widens_stops_not_targets():
    wild = Regime(trend=SIDEWAYS, high_vol=True)
    assert plan("Long", regime=wild) == ("Long", 100.0, 95.0, 106.0, pytest.approx(1.2))
    assert plan("Short", regime=wild) == ("Short", 100.0, 105.0, 94.0, pytest.approx(1.2))


def test_impossible_plans_become_avoid():
    assert plan("Long", close=3.0, atr=1.5)[0] == "Avoid"  # stop at 0
    assert plan("Long", close=3.0, atr=1.49)[0] == "Long"  # stop just above 0
    assert plan("Short", atr=np.nan)[0] == "Avoid" and plan("Long", atr=0.0)[0] == "Avoid"
    signal, *numbers = plan("Avoid")
    assert signal == "Avoid" and all(np.isnan(numbers))


def test_risk_score_bounds_and_components():
    calm = one(sc.risk_score(values(vol_realized_20=0.0, ATR14_pct=0.0, DollarVolume20=1e9, pct_from_52w_high=0.0)))
    assert calm == 0.0
    wild = one(sc.risk_score(values(vol_realized_20=2.0, ATR14_pct=0.5, DollarVolume20=1e4, pct_from_52w_high=-0.9,
                                    gap_mean_10=-0.05)))
    assert wild == 10.0
    assert one(sc.risk_score(values(vol_realized_20=0.4, ATR14_pct=0.0, pct_from_52w_high=0.0))) == pytest.approx(1.5)


# ---- score_panel ------------------------------------------------------------------------------------------------------


def path_panel() -> Panel:
    """Constructed paths: steady uptrend with pullbacks, mirrored downtrend, flat, short history, no bars at all."""
    t = 300
    steps = np.where(np.arange(t) % 5 == 4, -0.006, 0.006)  # 4 up days, 1 down day: RSI ~ 80, not 100
    up = 20 * np.exp(np.cumsum(steps + 0.0015))
    down = 200 * np.exp(np.cumsum(-steps - 0.0015))
    closes = {"UP": up, "DOWN": down, "FLAT": np.full(t, 50.0),
              "YOUNG": np.concatenate([np.full(t - 30, np.nan), up[:30]]), "NONE": np.full(t, np.nan)}
    c = np.column_stack(list(closes.values()))
    o = np.vstack([c[:1], c[:-1]])
    vol = np.where(np.isnan(c), np.nan, 2e6)
    return Panel(dates=np.datetime64("2024-01-01") + np.arange(t), symbols=np.array(list(closes), dtype=object),
                 open=o, high=np.maximum(o, c) * 1.004, low=np.minimum(o, c) * 0.996, close=c, volume=vol)


REFERENCE = pd.DataFrame({"symbol": ["UP", "DOWN", "FLAT"], "name": ["Up Inc", "Down Co", ""],
                          "sector": ["Tech", "Energy", None], "industry": ["Chips", "Oil", "Cash"],
                          "shares_outstanding": [1e9, 2e8, np.nan]})


@pytest.fixture(scope="module")
def scored():
    return sc.score_panel(path_panel(), REFERENCE, Regime(trend=TRENDING_UP)).set_index("Symbol", drop=False)


def test_score_panel_contract(scored):
    assert list(scored.columns) == sc.RESULT_COLUMNS and len(scored) == 5
    assert (scored["Regime"] == "TRENDING_UP").all()
    assert scored["TechRating"].iloc[:3].is_monotonic_decreasing and np.isnan(scored["TechRating"].iloc[-1])
    assert scored.loc["UP", "Sector"] == "Tech" and scored.loc["FLAT", "Sector"] == "Unknown"
    assert scored.loc["FLAT", "Name"] == "Unknown" and scored.loc["NONE", "Industry"] == "Unknown"
    assert scored.loc["UP", "MarketCap"] == pytest.approx(1e9 * scored.loc["UP", "Close"])
    assert np.isnan(scored.loc["FLAT", "MarketCap"])
    assert scored.loc["UP", "AsOf"] == pd.Timestamp("2024-10-26") and pd.isna(scored.loc["NONE", "AsOf"])


def test_constructed_trends_get_their_signals(scored):
    assert scored.loc["UP", "Signal"] in sc.LONG_SIGNALS and scored.loc["UP", "TrendScore"] == 3
    assert scored.loc["DOWN", "Signal"] in sc.SHORT_SIGNALS and scored.loc["DOWN", "TrendScore"] == -3
    assert scored.loc["FLAT", "Signal"] == "Avoid" and scored.loc["FLAT", "OscillatorScore"] == 0
    up = scored.loc["UP"]
    assert up["Stop"] < up["Entry"] == up["Close"] < up["Target"]


def test_short_history_gets_nan_not_made_up_numbers(scored):
    young = scored.loc["YOUNG"]
    assert np.isnan(young["SMA50"]) and np.isnan(young["TrendScore"]) and np.isnan(young["TechRating"])
    assert np.isfinite(young["SMA20"]) and young["Signal"] == "Avoid" and np.isnan(young["Entry"])
    none = scored.loc["NONE"]
    assert none["Signal"] == "Avoid" and none[sc.INDICATOR_COLUMNS].isna().all()


def test_chunks_score_like_the_whole_panel(scored):
    panel = path_panel()
    parts = [sc.score_panel(panel.take_columns(np.array(c)), REFERENCE, Regime(trend=TRENDING_UP))
             for c in ([0, 3], [1, 2, 4])]
    merged = pd.concat(parts).set_index("Symbol", drop=False).loc[scored.index]
    pd.testing.assert_frame_equal(merged, scored, check_exact=False, rtol=1e-12)


def test_reference_without_columns_still_scores():
    out = sc.score_panel(path_panel(), pd.DataFrame({"symbol": ["UP"]}), Regime())
    assert (out["Sector"] == "Unknown").all() and out["MarketCap"].isna().all()
