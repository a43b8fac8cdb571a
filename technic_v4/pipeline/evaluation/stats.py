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


def shuffled_within_days(values: np.ndarray, day_codes: np.ndarray, seed: int) -> np.ndarray:
    """`values` permuted within each day (the no-skill control)."""
    key = np.random.default_rng(seed).random(len(values))
    grouped = np.lexsort((np.arange(len(values)), day_codes))
    shuffled = np.lexsort((key, day_codes))
    out = np.empty_like(values)
    out[grouped] = values[shuffled]
    return out


def daily_rank_ic(day_codes: np.ndarray, rating: np.ndarray, ret: np.ndarray) -> pd.Series:
    """Per day, Spearman correlation of rating and return (average ranks); days with < 3 names or no spread: NaN."""
    frame = pd.DataFrame({"d": day_codes, "a": rating, "b": ret})
    g = frame.groupby("d")
    frame["a"], frame["b"] = g["a"].rank(), g["b"].rank()
    frame["a"] -= frame.groupby("d")["a"].transform("mean")
    frame["b"] -= frame.groupby("d")["b"].transform("mean")
    sums = (frame.assign(ab=frame.a * frame.b, aa=frame.a ** 2, bb=frame.b ** 2).groupby("d")[["ab", "aa", "bb"]]
            .sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums["ab"] / np.sqrt(sums["aa"] * sums["bb"])


def ic_stats(ic: pd.Series, lags: int) -> dict:
    ic = ic.dropna()
    mean, std = float(ic.mean()), float(ic.std(ddof=1)) if len(ic) > 1 else math.nan
    return {"mean": mean, "std": std, "icir": mean / std if std else math.nan, "t": newey_west_t(ic.to_numpy(), lags),
            "days": int(len(ic))}


def _group_table(frame: pd.DataFrame, by: str, order) -> pd.DataFrame:
    g = frame.groupby(by, observed=True)
    table = pd.DataFrame({
        "mean": g["r"].mean(), "median": g["r"].median(), "mean_excess": g["excess"].mean(),
        "share_up": g["up"].mean(), "share_beat_universe": g["beat"].mean(), "rows": g["r"].size(),
    })
    return table.reindex([o for o in order if o in table.index])


def deciles(frame: pd.DataFrame) -> pd.Series:
    """Decile 1..10 of TechRating within each day (ties broken by row order); NaN on days with < 10 names."""
    rank = frame.groupby("day")["rating"].rank(method="first")
    size = frame.groupby("day")["rating"].transform("size")
    dec = np.floor((rank - 1) * 10 / size) + 1
    return dec.where(size >= 10)


def _plan_table(rows: pd.DataFrame, h: int) -> dict:
    out = {}
    for side, signals in (("long", LONG_SIGNALS), ("short", SHORT_SIGNALS)):
        part = rows[rows["Signal"].isin(signals)]
        outcome = plan_outcome(part["plan_target_session"].to_numpy(), part["plan_stop_session"].to_numpy(), h)
        n = len(part)
        out[side] = {k: (float((outcome == k).mean()) if n else math.nan) for k in ("target", "stop", "neither")}
        out[side]["rows"] = int(n)
    return out


def turnover(scores: pd.DataFrame) -> dict:
    """Mean day-over-day share of each book's names that were not in it the day before, and of changed Signals."""
    days = scores["Date"].to_numpy()
    day_codes, day_index = pd.factorize(days, sort=True)
    sym_codes, _ = pd.factorize(scores["Symbol"].astype(str))
    grid = np.full((len(day_index), sym_codes.max() + 1 if len(sym_codes) else 0), -1, dtype=np.int8)
    grid[day_codes, sym_codes] = pd.Categorical(scores["Signal"].astype(str), categories=SIGNALS).codes
    prev, cur = grid[:-1], grid[1:]
    out = {}
    for side, signals in (("long", LONG_SIGNALS), ("short", SHORT_SIGNALS)):
        codes = [SIGNALS.index(s) for s in signals]
        now, before = np.isin(cur, codes), np.isin(prev, codes)
        size = now.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"{side}_book_new_share"] = float(np.nanmean(np.where(size > 0, (now & ~before).sum(axis=1) / size, np.nan))) if len(size) else math.nan
    both = (prev >= 0) & (cur >= 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["signal_changed_share"] = float(np.nanmean(((prev != cur) & both).sum(axis=1) / both.sum(axis=1))) if len(both) else math.nan
    return out


def horizon_stats(scores: pd.DataFrame, h: int, seed: int) -> dict:
    col = f"fwd_ret_{h}d"
    ok = np.isfinite(scores[col].to_numpy()) & np.isfinite(scores["TechRating"].to_numpy())
    rows = scores.loc[ok]
    day = pd.factorize(rows["Date"].to_numpy(), sort=True)[0]
    r = rows[col].to_numpy()
    frame = pd.DataFrame({"day": day, "rating": rows["TechRating"].to_numpy(), "r": r,
                          "Signal": rows["Signal"].astype(str).to_numpy()})
    frame["excess"] = r - frame.groupby("day")["r"].transform("mean")
    frame["up"], frame["beat"] = (r > 0).astype(float), (frame["excess"] > 0).astype(float)
    frame["decile"] = deciles(frame)
    by_decile = _group_table(frame.dropna(subset=["decile"]), "decile", [float(k) for k in range(1, 11)])
    daily = frame.dropna(subset=["decile"]).groupby(["day", "decile"])["r"].mean().unstack()
    spread = (daily.get(10.0) - daily.get(1.0)).dropna() if 10.0 in daily and 1.0 in daily else pd.Series(dtype=float)
    lags = max(h - 1, 0)
    ic = daily_rank_ic(day, frame["rating"].to_numpy(), r)
    control = daily_rank_ic(day, shuffled_within_days(frame["rating"].to_numpy(), day, seed + h), r)
    diff = (ic - control).dropna()
    t_diff = newey_west_t(diff.to_numpy(), lags)
    return {
        "horizon": h, "rows": int(len(frame)), "days": int(frame["day"].nunique()),
        "by_signal": _group_table(frame, "Signal", SIGNALS),
        "by_decile": by_decile,
        "spread": {"mean": float(spread.mean()) if len(spread) else math.nan, "t": newey_west_t(spread.to_numpy(), lags),
                   "days": int(len(spread))},
        "ic": ic_stats(ic, lags), "control_ic": ic_stats(control, lags),
        "ic_minus_control": {"mean": float(diff.mean()) if len(diff) else math.nan, "t": t_diff},
        "distinguishable": bool(np.isfinite(t_diff) and abs(t_diff) >= T_DISTINGUISHABLE),
        "plans": _plan_table(rows, h),
        "ic_series": pd.Series(ic.to_numpy(), index=pd.Index(np.unique(rows["Date"].to_numpy()))[ic.index]),
        "control_series": pd.Series(control.to_numpy(), index=pd.Index(np.unique(rows["Date"].to_numpy()))[control.index]),
    }


def verdict(h: dict) -> str:
    ic, ctl, d = h["ic"], h["control_ic"], h["ic_minus_control"]
    head = (f"{h['horizon']}-session: rank IC {ic['mean']:+.4f} (NW t {ic['t']:+.2f}, ICIR {ic['icir']:+.3f}) vs shuffled "
            f"control {ctl['mean']:+.4f} (t {ctl['t']:+.2f}); difference t {d['t']:+.2f}")
    if h["distinguishable"]:
        sign = "better" if d["mean"] > 0 else "WORSE"
        return f"{head} — TechRating ranks {sign} than no skill (|t| >= {T_DISTINGUISHABLE:g})."
    return f"{head} — NOT statistically distinguishable from the no-skill control (|t| < {T_DISTINGUISHABLE:g})."


def summarize(scores: pd.DataFrame, horizons: tuple[int, ...], seed: int = 0) -> dict:
    per_h = {h: horizon_stats(scores, h, seed) for h in horizons}
    return {"horizons": per_h, "turnover": turnover(scores), "verdicts": [verdict(per_h[h]) for h in horizons]}
