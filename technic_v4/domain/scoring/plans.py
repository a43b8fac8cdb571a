"""Trade plans: Entry, Stop, Target, RewardRisk, PlanRule, PlanOK for every row with a Long/Short signal.

Two rules (`ScanConfig.plan_rule`, `EvalConfig.plan_rule`); Entry = the last close under both.

  atr        Stop = Entry ∓ m·ATR14, Target = Entry ± 3·ATR14; m = 2, or 2.5 in a HIGH_VOL regime (wider stops so the
             noise of a volatile market does not stop the trade out), so RewardRisk is 1.5 (1.2) on every row.
  structure  Longs: the stop sits just below the recent swing low — the lowest low of the last 10 bars minus 0.1·ATR14
             — with the stop distance clipped to [1, 3]·ATR14 (a swing low closer than one ATR is inside the day's
             noise; one further than three ATRs is not a stop a trader would hold). The target is the next resistance
             above Entry: the prior 20-day high (highest high of the 20 bars before today) if it is above Entry, else
             the prior 52-week high (251 bars before today), else — price in blue sky, no overhead high — Entry plus
             2R (R = Entry - Stop). Shorts mirrored (swing high, prior 20-day / 52-week low, Entry - 2R). No regime
             adjustment: the ATR floor and cap already scale with volatility.
             PlanRule says what set the plan: "structure:<stop>/<target>", stop in swing | atr-floor | atr-cap
             (swing-high for shorts), target in 20d-high | 52w-high | blue-sky (20d-low | 52w-low for shorts).

RewardRisk = |Target - Entry| / |Entry - Stop|. PlanOK = RewardRisk >= the minimum R (`min_reward_risk`, default
DEFAULT_MIN_REWARD_RISK = 1.5, the ATR rule's ratio in a normal regime); a row is marked, never dropped. A Long/Short
without a possible plan (ATR NaN or <= 0, a long's stop <= 0, a short's target <= 0) becomes Avoid; Avoid rows have NaN
plan prices, PlanRule "none" and PlanOK False.

This module has the pure functions; the names and defaults ScanConfig/EvalConfig show live in `plan_rules` (no numpy,
imported at CLI start-up).
"""

from __future__ import annotations

import numpy as np

from technic_v4.domain.regime import Regime
from technic_v4.domain.scoring.plan_rules import ATR_RULE, DEFAULT_MIN_REWARD_RISK, NO_PLAN, PLAN_RULES, STRUCTURE_RULE

STOP_ATR, STOP_ATR_HIGH_VOL, TARGET_ATR = 2.0, 2.5, 3.0
SWING_BARS, SWING_BUFFER_ATR = 10, 0.1
STOP_FLOOR_ATR, STOP_CAP_ATR, BLUE_SKY_R = 1.0, 3.0, 2.0
# Catalogue values the structure rule reads.
PLAN_INPUTS = ("Close", "ATR14", "swing_low_10", "swing_high_10", "prior_high_20", "prior_low_20", "prior_high_251",
               "prior_low_251")  # fmt: skip


def atr_levels(direction: np.ndarray, entry: np.ndarray, atr: np.ndarray, regime: Regime):
    """(stop, target, rule names) of the ATR rule."""
    stop_atr = STOP_ATR_HIGH_VOL if regime.high_vol else STOP_ATR
    return entry - direction * stop_atr * atr, entry + direction * TARGET_ATR * atr, np.full(entry.shape, ATR_RULE, object)


def structure_levels(direction: np.ndarray, entry: np.ndarray, v: dict):
    """(stop, target, rule names) of the structure rule (see the module docstring)."""
    atr = v["ATR14"]
    long = direction > 0
    swing = np.where(long, v["swing_low_10"] - SWING_BUFFER_ATR * atr, v["swing_high_10"] + SWING_BUFFER_ATR * atr)
    raw = direction * (entry - swing)  # distance to the swing level, positive when it lies on the stop side
    risk = np.clip(raw, STOP_FLOOR_ATR * atr, STOP_CAP_ATR * atr)
    with np.errstate(invalid="ignore"):
        stop_kind = np.where(raw < STOP_FLOOR_ATR * atr, "atr-floor",
                             np.where(raw > STOP_CAP_ATR * atr, "atr-cap", np.where(long, "swing", "swing-high")))
    stop = entry - direction * risk
    near = np.where(long, v["prior_high_20"], v["prior_low_20"])
    far = np.where(long, v["prior_high_251"], v["prior_low_251"])
    with np.errstate(invalid="ignore"):
        near_ok = direction * (near - entry) > 0
        far_ok = direction * (far - entry) > 0
    target = np.where(near_ok, near, np.where(far_ok, far, entry + direction * BLUE_SKY_R * risk))
    target_kind = np.where(near_ok, np.where(long, "20d-high", "20d-low"),
                           np.where(far_ok, np.where(long, "52w-high", "52w-low"), "blue-sky"))
    rule = np.char.add(np.char.add(f"{STRUCTURE_RULE}:", stop_kind.astype(str)), np.char.add("/", target_kind))
    return stop, target, rule.astype(object)


def plan_levels(direction: np.ndarray, v: dict, regime: Regime, rule: str = ATR_RULE,
                min_reward_risk: float = DEFAULT_MIN_REWARD_RISK) -> tuple[np.ndarray, dict]:
    """(no_plan, PLAN_COLUMNS) per row; `direction` is +1 long, -1 short, NaN no trade; `v` has PLAN_INPUTS.
    Rows in no_plan (a trade without a possible plan, or no trade) have NaN prices and PlanRule "none"."""
    if rule not in PLAN_RULES:
        raise ValueError(f"plan rule {rule!r} is not one of {PLAN_RULES}")
    close, atr = np.asarray(v["Close"], dtype=np.float64), np.asarray(v["ATR14"], dtype=np.float64)
    entry = np.where(np.isfinite(direction), close, np.nan)
    if rule == ATR_RULE:
        stop, target, names = atr_levels(direction, entry, atr, regime)
    else:
        stop, target, names = structure_levels(direction, entry, v)
    with np.errstate(invalid="ignore"):
        no_plan = ~(atr > 0) | ~np.isfinite(entry) | ~(stop > 0) | ~(target > 0) | ~np.isfinite(stop + target)
        entry, stop, target = (np.where(no_plan, np.nan, a) for a in (entry, stop, target))
        reward_risk = np.abs(target - entry) / np.abs(entry - stop)
        ok = reward_risk >= min_reward_risk * (1 - 1e-12)  # 3·ATR / 2·ATR is 1.5 up to float noise
    return no_plan, {
        "Entry": entry, "Stop": stop, "Target": target, "RewardRisk": reward_risk,
        "PlanRule": np.where(no_plan, NO_PLAN, names).astype(object), "PlanOK": np.asarray(ok, dtype=bool),
    }  # fmt: skip
