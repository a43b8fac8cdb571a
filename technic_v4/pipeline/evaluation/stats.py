"""Did the signals work? Qlib's vocabulary over the evaluation rows, every figure counted from them.

Per horizon h (forward return r = fwd_ret_{h}d, rows with a finite r and TechRating):
* by Signal and by TechRating decile (deciles within each day, 10 = highest): mean, median, mean excess over the day's
  universe mean, share of r > 0, share beating the day's mean, rows;
* top-minus-bottom decile spread: the daily series mean(r | decile 10) - mean(r | decile 1), its mean and t-stat;
* daily rank IC (Spearman of TechRating vs r within a day): mean, std, ICIR = mean / std, t-stat; the same for the
  shuffled-rating control (TechRating permuted within each day: no skill, same days and names), and the t-stat of the
  daily difference IC - control IC, which decides the verdict (|t| >= 2: distinguishable);
* trade plans of Long/Strong Long and Short/Strong Short rows: share reaching Target first, Stop first, neither,
  within h sessions (rows whose h-session window is fully observed, i.e. r finite).
t-stats are Newey-West (h - 1 lags): h-session returns of consecutive days overlap, and an iid t-stat would overstate.
Signal turnover: day over day, the share of each actionable book (longs, shorts) that was not in it the day before.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from technic_v4.domain.scoring.score import LONG_SIGNALS, SHORT_SIGNALS, SIGNALS
from technic_v4.pipeline.evaluation.forward import plan_outcome

T_DISTINGUISHABLE = 2.0


def newey_west_t(x: np.ndarray, lags: int) -> float:
    """Mean / Newey-West standard error (Bartlett weights); NaN with fewer than 3 observations or no variance."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    if n < 3:
        return math.nan
    e = x - x.mean()
    var = e @ e / n
    for lag in range(1, min(lags, n - 1) + 1):
        var += 2.0 * (1.0 - lag / (lags + 1.0)) * (e[lag:] @ e[:-lag]) / n
    return float(x.mean() / math.sqrt(var / n)) if var > 0 else math.nan


def within_day_ranks(day: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Ordinal rank 1..n of `values` within each day (day codes 0..D-1; ties broken by row order)."""
    by_value = np.argsort(values, kind="stable")
    small = day.astype(np.int16) if day.size and day.max() < 2**15 else day  # 16-bit keys: numpy's radix sort
    order = by_value[np.argsort(small[by_value], kind="stable")]  # = lexsort((values, day)), several times faster
    first = np.concatenate([[0], np.cumsum(np.bincount(day))[:-1]])
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values)) - first[day[order]] + 1
    return ranks


def shuffled_ranks(day: np.ndarray, seed: int) -> np.ndarray:
    """The no-skill control: a uniformly random ranking within each day (a rating shuffled within the day)."""
    rng = np.random.default_rng(seed)
    order = np.argsort(day, kind="stable")
    sizes = np.bincount(day)
    ranks = np.empty(len(day), dtype=np.float64)
    ranks[order] = np.concatenate([rng.permutation(n) + 1.0 for n in sizes]) if len(day) else []
    return ranks


def rating_ranks(day: np.ndarray, rating: np.ndarray) -> np.ndarray:
    """within_day_ranks of the rating; rows already sorted by day then rating descending (run_evaluation's order)
    are ranked from their positions, without a sort."""
    if len(day) > 1 and (np.diff(day) >= 0).all():
        first = np.concatenate([[0], np.cumsum(np.bincount(day))[:-1]])
        position = np.arange(len(day)) - first[day]
        same_day = day[1:] == day[:-1]
        if (rating[1:][same_day] <= rating[:-1][same_day]).all():  # descending: ranks are positions (ties by row)
            return (np.bincount(day)[day] - position).astype(np.float64)
    return within_day_ranks(day, rating)


def daily_rank_ic(day: np.ndarray, rating_rank: np.ndarray, ret_rank: np.ndarray) -> pd.Series:
    """Per day, the Pearson correlation of the within-day ranks (Spearman's rho); NaN for days under 3 names."""
    n = np.bincount(day).astype(float)
    centre = (n[day] + 1) / 2
    a, b = rating_rank - centre, ret_rank - centre
    ab, aa, bb = (np.bincount(day, w) for w in (a * b, a * a, b * b))
    with np.errstate(invalid="ignore", divide="ignore"):
        ic = np.where(n >= 3, ab / np.sqrt(aa * bb), np.nan)
    return pd.Series(ic)


def ic_stats(ic: pd.Series, lags: int) -> dict:
    ic = ic.dropna()
    mean, std = float(ic.mean()), float(ic.std(ddof=1)) if len(ic) > 1 else math.nan
    return {"mean": mean, "std": std, "icir": mean / std if std else math.nan, "t": newey_west_t(ic.to_numpy(), lags),
            "days": int(len(ic))}


def _group_table(codes: np.ndarray, labels, r: np.ndarray, excess: np.ndarray) -> pd.DataFrame:
    """Mean, median, mean excess, share up, share beating the day's mean, rows per group code (labels[code])."""
    frame = pd.DataFrame({"g": codes, "r": r, "excess": excess, "up": r > 0, "beat": excess > 0})
    g = frame[frame["g"] >= 0].groupby("g")
    table = pd.DataFrame({
        "mean": g["r"].mean(), "median": g["r"].median(), "mean_excess": g["excess"].mean(),
        "share_up": g["up"].mean(), "share_beat_universe": g["beat"].mean(), "rows": g["r"].size(),
    })
    table.index = [labels[int(i)] for i in table.index]
    return table


def plan_results(outcome: np.ndarray, direction: float, entry: np.ndarray, stop: np.ndarray, target: np.ndarray,
                 fwd_ret: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each plan's result as a fraction of Entry and in R (its own risk |Entry - Stop|): the Target's distance when
    the Target came first, minus the stop distance when the Stop did (a gap through the stop is not charged extra),
    else the position marked to the horizon's close. Two rules with different stops compare on the fraction."""
    with np.errstate(invalid="ignore", divide="ignore"):
        risk = np.abs(entry - stop) / entry
        result = np.where(outcome == "target", np.abs(target - entry) / entry,
                          np.where(outcome == "stop", -risk, direction * fwd_ret))
        return result, result / risk


def _plan_table(rows: pd.DataFrame, h: int) -> dict:
    """Per book: share of plans reaching Target first / Stop first / neither, rows, the rule that made them (the part
    of PlanRule before ':'), their median RewardRisk and mean result (`plan_results`)."""
    out = {}
    for side, signals, direction in (("long", LONG_SIGNALS, 1.0), ("short", SHORT_SIGNALS, -1.0)):
        part = rows[rows["Signal"].isin(signals)]
        outcome = plan_outcome(part["plan_target_session"].to_numpy(), part["plan_stop_session"].to_numpy(), h)
        n = len(part)
        out[side] = {k: (float((outcome == k).mean()) if n else math.nan) for k in ("target", "stop", "neither")}
        out[side]["rows"] = int(n)
        if "PlanRule" in part:
            rules = sorted({str(r).split(":")[0] for r in part["PlanRule"].astype(str).unique()})
            out[side]["rule"] = "+".join(rules)
            out[side]["median_reward_risk"] = float(part["RewardRisk"].median()) if n else math.nan
            result, r = plan_results(outcome, direction, part["Entry"].to_numpy(), part["Stop"].to_numpy(),
                                     part["Target"].to_numpy(), part[f"fwd_ret_{h}d"].to_numpy())
            out[side]["mean_result"] = float(np.nanmean(result)) if np.isfinite(result).any() else math.nan
            out[side]["mean_r"] = float(np.nanmean(r)) if np.isfinite(r).any() else math.nan
    return out


def turnover(scores: pd.DataFrame) -> dict:
    """Mean day-over-day share of each book's names that were not in it the day before, and of changed Signals."""
    days = scores["Date"].to_numpy()
    day_codes, day_index = pd.factorize(days, sort=True)
    sym_codes, _ = pd.factorize(scores["Symbol"])
    grid = np.full((len(day_index), sym_codes.max() + 1 if len(sym_codes) else 0), -1, dtype=np.int8)
    grid[day_codes, sym_codes] = pd.Categorical(scores["Signal"], categories=SIGNALS).codes
    prev, cur = grid[:-1], grid[1:]
    out = {}
    for side, signals in (("long", LONG_SIGNALS), ("short", SHORT_SIGNALS)):
        codes = [SIGNALS.index(s) for s in signals]
        now, before = np.isin(cur, codes), np.isin(prev, codes)
        size = now.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            new_share = np.where(size > 0, (now & ~before).sum(axis=1) / size, np.nan)
        out[f"{side}_book_new_share"] = float(np.nanmean(new_share)) if np.isfinite(new_share).any() else math.nan
    both = (prev >= 0) & (cur >= 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        changed = ((prev != cur) & both).sum(axis=1) / both.sum(axis=1)
    out["signal_changed_share"] = float(np.nanmean(changed)) if np.isfinite(changed).any() else math.nan
    return out


def horizon_stats(scores: pd.DataFrame, h: int, seed: int) -> dict:
    r_all = scores[f"fwd_ret_{h}d"].to_numpy()
    rating_all = scores["TechRating"].to_numpy()
    ok = np.isfinite(r_all) & np.isfinite(rating_all)
    dates, day = np.unique(scores["Date"].to_numpy()[ok], return_inverse=True)
    r, rating = r_all[ok], rating_all[ok]
    n_day = np.bincount(day)
    excess = r - (np.bincount(day, r) / n_day)[day]
    rating_rank = rating_ranks(day, rating)
    decile = np.where(n_day[day] >= 10, np.floor((rating_rank - 1) * 10 / n_day[day]), -1).astype(int)  # 0..9
    signal = pd.Categorical(scores["Signal"], categories=SIGNALS).codes[ok]
    lags = max(h - 1, 0)
    in_decile = decile >= 0
    cell = day * 10 + decile
    sums = np.bincount(cell[in_decile], r[in_decile], minlength=len(dates) * 10).reshape(-1, 10)
    counts = np.bincount(cell[in_decile], minlength=len(dates) * 10).reshape(-1, 10)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = sums[:, 9] / counts[:, 9] - sums[:, 0] / counts[:, 0]
    spread = spread[np.isfinite(spread)]
    ret_rank = within_day_ranks(day, r)
    ic = daily_rank_ic(day, rating_rank, ret_rank).set_axis(dates)
    control = daily_rank_ic(day, shuffled_ranks(day, seed + h), ret_rank).set_axis(dates)
    diff = (ic - control).dropna()
    t_diff = newey_west_t(diff.to_numpy(), lags)
    return {
        "horizon": h, "rows": int(ok.sum()), "days": int(len(dates)),
        "by_signal": _group_table(signal, SIGNALS, r, excess),
        "by_decile": _group_table(decile, [float(k) for k in range(1, 11)], r, excess),
        "spread": {"mean": float(spread.mean()) if len(spread) else math.nan, "t": newey_west_t(spread, lags),
                   "days": int(len(spread))},
        "ic": ic_stats(ic, lags), "control_ic": ic_stats(control, lags),
        "ic_minus_control": {"mean": float(diff.mean()) if len(diff) else math.nan, "t": t_diff},
        "distinguishable": bool(np.isfinite(t_diff) and abs(t_diff) >= T_DISTINGUISHABLE),
        "plans": _plan_table(scores.loc[ok, [c for c in ("Signal", "plan_target_session", "plan_stop_session",
                                                         "PlanRule", "RewardRisk", "Entry", "Stop", "Target",
                                                         f"fwd_ret_{h}d")
                                             if c in scores]], h),
        "ic_series": ic, "control_series": control,
    }


def verdict(h: dict) -> str:
    ic, ctl, d = h["ic"], h["control_ic"], h["ic_minus_control"]
    if ic["days"] < 3:
        return (f"{h['horizon']}-session: no verdict — {ic['days']} day(s) with forward returns (the data ends within "
                f"{h['horizon']} sessions of the evaluated days, or they have no TechRating).")
    head = (f"{h['horizon']}-session: rank IC {ic['mean']:+.4f} (NW t {ic['t']:+.2f}, ICIR {ic['icir']:+.3f}) vs shuffled "
            f"control {ctl['mean']:+.4f} (t {ctl['t']:+.2f}); difference t {d['t']:+.2f}")
    if h["distinguishable"]:
        sign = "better" if d["mean"] > 0 else "WORSE"
        return f"{head} — TechRating ranks {sign} than no skill (|t| >= {T_DISTINGUISHABLE:g})."
    return f"{head} — NOT statistically distinguishable from the no-skill control (|t| < {T_DISTINGUISHABLE:g})."


def summarize(scores: pd.DataFrame, horizons: tuple[int, ...], seed: int = 0) -> dict:
    per_h = {h: horizon_stats(scores, h, seed) for h in horizons}
    return {"horizons": per_h, "turnover": turnover(scores), "verdicts": [verdict(per_h[h]) for h in horizons]}
