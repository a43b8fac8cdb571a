"""Trade plans: the ATR rule unchanged, the structure rule on hand-made numbers and on a hand-made price path (swing low
found, ATR floor and cap, next resistance, blue-sky R-multiple), PlanOK against the minimum R, config validation."""

from __future__ import annotations

import numpy as np
import pytest

from technic_v4.domain.indicators import compute_latest
from technic_v4.domain.panel import Panel
from technic_v4.domain.regime import SIDEWAYS, Regime
from technic_v4.domain.scoring.plans import plan_levels
from technic_v4.domain.scoring.score import score_panel, trade_plan
from technic_v4.errors import ConfigError
from technic_v4.pipeline.scan_config import ScanConfig

CALM = Regime(trend=SIDEWAYS)


def levels(direction, rule="structure", min_rr=1.5, **v):
    base = {"Close": 100.0, "ATR14": 2.0, "swing_low_10": 97.0, "swing_high_10": 103.0, "prior_high_20": 108.0,
            "prior_low_20": 92.0, "prior_high_251": 120.0, "prior_low_251": 80.0}
    values = {k: np.array([x]) for k, x in (base | v).items()}
    no_plan, plan = plan_levels(np.array([float(direction)]), values, CALM, rule, min_rr)
    return bool(no_plan[0]), {k: a[0] for k, a in plan.items()}


def test_long_stop_below_the_swing_low_and_target_at_the_prior_20_day_high():
    _, p = levels(+1)
    assert p["Stop"] == pytest.approx(97.0 - 0.2)  # swing low minus 0.1 ATR; 3.2 from entry is inside [2, 6]
    assert p["Target"] == 108.0 and p["RewardRisk"] == pytest.approx(8 / 3.2)
    assert p["PlanRule"] == "structure:swing/20d-high" and p["PlanOK"]


def test_atr_floor_and_cap_bound_the_stop_distance():
    _, near = levels(+1, swing_low_10=99.5)  # 0.7 below entry: floored at 1 ATR
    assert near["Stop"] == pytest.approx(98.0) and near["PlanRule"] == "structure:atr-floor/20d-high"
    _, far = levels(+1, swing_low_10=85.0)  # 15.2 below: capped at 3 ATR
    assert far["Stop"] == pytest.approx(94.0) and far["PlanRule"] == "structure:atr-cap/20d-high"
    _, above = levels(+1, swing_low_10=101.0)  # a "swing low" above entry (gap up): the floor
    assert above["Stop"] == pytest.approx(98.0) and above["PlanRule"].startswith("structure:atr-floor")


def test_target_falls_back_to_the_52_week_high_then_to_2r_in_blue_sky():
    _, mid = levels(+1, prior_high_20=99.0)
    assert mid["Target"] == 120.0 and mid["PlanRule"] == "structure:swing/52w-high"
    _, sky = levels(+1, prior_high_20=99.0, prior_high_251=100.0)  # a high AT entry is not above it
    assert sky["Target"] == pytest.approx(100 + 2 * 3.2) and sky["RewardRisk"] == pytest.approx(2.0)
    assert sky["PlanRule"] == "structure:swing/blue-sky"
    _, young = levels(+1, prior_high_20=99.0, prior_high_251=np.nan)  # no 52-week history: blue sky too
    assert young["PlanRule"].endswith("/blue-sky")


def test_shorts_are_mirrored():
    _, p = levels(-1)
    assert p["Stop"] == pytest.approx(103.2) and p["Target"] == 92.0
    assert p["RewardRisk"] == pytest.approx(8 / 3.2) and p["PlanRule"] == "structure:swing-high/20d-low"
    _, sky = levels(-1, prior_low_20=101.0, prior_low_251=np.nan)
    assert sky["Target"] == pytest.approx(100 - 6.4) and sky["PlanRule"] == "structure:swing-high/blue-sky"


def test_plan_ok_marks_plans_below_the_minimum_r():
    _, tight = levels(+1, prior_high_20=101.0)  # 1 / 3.2 reward per risk
    assert tight["RewardRisk"] == pytest.approx(1 / 3.2) and not tight["PlanOK"]
    assert levels(+1, prior_high_20=101.0, min_rr=0.3)[1]["PlanOK"]
    _, atr = levels(+1, rule="atr")
    assert (atr["Stop"], atr["Target"], atr["PlanRule"]) == (96.0, 106.0, "atr") and atr["PlanOK"]  # 1.5 >= 1.5
    no_plan, none = levels(np.nan)
    assert no_plan and none["PlanRule"] == "none" and not none["PlanOK"] and np.isnan(none["Entry"])


def test_a_short_whose_target_would_be_below_zero_becomes_avoid():
    signal, plan = trade_plan(np.array(["Short"], dtype=object),
                              {"Close": np.array([3.0]), "ATR14": np.array([1.0]), "swing_low_10": np.array([2.0]),
                               "swing_high_10": np.array([5.0]), "prior_high_20": np.array([4.0]),
                               "prior_low_20": np.array([np.nan]), "prior_high_251": np.array([np.nan]),
                               "prior_low_251": np.array([np.nan])}, CALM, "structure")
    assert signal[0] == "Avoid" and plan["PlanRule"][0] == "none"  # stop 5.1 capped at 6: target 3 - 2·3 < 0


def path_panel() -> Panel:
    """An uptrend with a pullback 6 bars ago whose low (the swing low) is 1.5 ATR-ish under the last close."""
    n = 300
    close = 50 * np.exp(np.cumsum(np.full(n, 0.004)))
    close[-7:-4] *= np.array([0.995, 0.99, 0.995])  # the pullback
    high, low = close * 1.01, close * 0.99
    low[-6] = close[-6] * 0.97  # the swing low of the last 10 bars
    high[-25] = close[-1] * 1.05  # a higher spike 25 bars ago: outside the prior 20 bars, not the target
    high[-15] = close[-1] * 1.03  # a spike 15 bars ago: the resistance the target should find
    dates = np.datetime64("2023-01-02") + np.arange(n)
    return Panel(dates=dates, symbols=np.array(["UP"], dtype=object),
                 **{k: a[:, None] for k, a in dict(open=close.copy(), high=high, low=low, close=close,
                                                   volume=np.full(n, 1e6)).items()})


def test_structure_plan_on_a_hand_made_price_path():
    panel = path_panel()
    v = compute_latest(panel)
    assert v["swing_low_10"][0] == panel.low[-6, 0] and v["prior_high_20"][0] == panel.high[-15, 0]
    signal, plan = trade_plan(np.array(["Long"], dtype=object), v, CALM, "structure")
    entry, atr = panel.close[-1, 0], v["ATR14"][0]
    raw = entry - (panel.low[-6, 0] - 0.1 * atr)
    assert 1 * atr < raw < 3 * atr  # the path puts the swing stop inside the ATR band
    assert plan["Stop"][0] == pytest.approx(entry - raw) and plan["Target"][0] == panel.high[-15, 0]
    assert plan["PlanRule"][0] == "structure:swing/20d-high"
    assert plan["RewardRisk"][0] == pytest.approx((panel.high[-15, 0] - entry) / raw)
    frame = score_panel(panel, _reference(panel), CALM, plan_rule="structure", min_reward_risk=0.5)
    row = frame.iloc[0]
    assert row["Signal"] in ("Long", "Strong Long") and row["Stop"] == pytest.approx(plan["Stop"][0])
    assert row["PlanOK"] == (plan["RewardRisk"][0] >= 0.5)


def _reference(panel):
    import pandas as pd

    return pd.DataFrame({"symbol": panel.symbols, "name": "x", "sector": "s", "industry": "i",
                         "shares_outstanding": 1e9})


def test_scan_config_validates_the_plan_settings():
    assert ScanConfig().plan_rule in ("atr", "structure") and ScanConfig().min_reward_risk == 1.5
    with pytest.raises(ConfigError, match="plan_rule"):
        ScanConfig.build(plan_rule="fibonacci")
    with pytest.raises(ConfigError, match="min_reward_risk"):
        ScanConfig.build(min_reward_risk=0)
