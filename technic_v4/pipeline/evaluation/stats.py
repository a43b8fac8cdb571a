"""Did the signals work? Qlib's vocabulary over the evaluation rows, every figure counted from them.

Per horizon h (forward return r = fwd_ret_{h}d, rows with a finite r and TechRating):
* by Signal and by TechRating decile (deciles within each day, 10 = highest): mean, median, mean excess over the day's
  universe mean, share of r > 0, share beating the day's mean, rows;
* top-minus-bottom decile spread: the daily series mean(r | decile 10) - mean(r | decile 1), its mean and t-stat;
* daily rank IC (Spearman of TechRating vs r within a day, tied values sharing their average rank): mean, std,
  ICIR = mean / std, t-stat; the same for the shuffled-rating control (a random ranking within each day: no skill,
  same days and names), and the t-stat of the daily difference IC - control IC, which decides the verdict (|t| >= 2:
  distinguishable);
* attribution: the same IC / control / spread statistics (`score_stats`, one function for any column) for every
  sub-score and textbook factor (factors.py), each on its own rows with a finite value and return, ranked by |t| of
  IC - control at each horizon;
* trade plans of Long/Strong Long and Short/Strong Short rows: share reaching Target first, Stop first, neither,
  within h sessions (rows whose h-session window is fully observed, i.e. r finite).
t-stats are Newey-West (h - 1 lags): h-session returns of consecutive days overlap, and an iid t-stat would overstate.
Signal turnover: day over day, the share of each actionable book (longs, shorts) that was not in it the day before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from technic_v4.domain.scoring.score import LONG_SIGNALS, SHORT_SIGNALS, SIGNALS
from technic_v4.pipeline.evaluation.factors import KIND, attributed_columns
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


def day_order(day: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Indices of the rows with a finite value, sorted by day code, then value ascending (ties in row order)."""
    rows = np.flatnonzero(np.isfinite(values))
    by_value = rows[np.argsort(values[rows], kind="stable")]
    d = day[by_value]
    small = d.astype(np.int16) if d.size and d.max() < 2**15 else d  # 16-bit keys: numpy's radix sort
    return by_value[np.argsort(small, kind="stable")]  # = lexsort((values, day)), several times faster


def ranks_in_order(order: np.ndarray, day: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Within-day ranks 1..n of the rows `order` lists (sorted by day, then value); tied values share their mean
    rank, as Spearman's rho (scipy's rankdata "average") needs. Returned in `order`'s positions."""
    m = len(order)
    if m == 0:
        return np.zeros(0)
    d, v, idx = day[order], values[order], np.arange(m)
    new_day = np.r_[True, d[1:] != d[:-1]]
    new_tie = new_day | np.r_[True, v[1:] != v[:-1]]
    day_start = np.maximum.accumulate(np.where(new_day, idx, 0))
    tie_start = np.maximum.accumulate(np.where(new_tie, idx, 0))
    tie = np.cumsum(new_tie) - 1
    return tie_start + (np.bincount(tie)[tie] - 1) / 2.0 - day_start + 1.0


def within_day_ranks(day: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Average ranks of `values` within each day (day codes 0..D-1), NaN where the value is not finite."""
    order = day_order(day, values)
    out = np.full(len(values), np.nan)
    out[order] = ranks_in_order(order, day, values)
    return out


def shuffled_ranks(day: np.ndarray, seed: int) -> np.ndarray:
    """The no-skill control: a uniformly random ranking within each day (a rating shuffled within the day)."""
    rng = np.random.default_rng(seed)
    order = np.argsort(day, kind="stable")
    sizes = np.bincount(day)
    ranks = np.empty(len(day), dtype=np.float64)
    ranks[order] = np.concatenate([rng.permutation(n) + 1.0 for n in sizes]) if len(day) else []
    return ranks


def daily_rank_ic(day: np.ndarray, rating_rank: np.ndarray, ret_rank: np.ndarray, days: int | None = None) -> pd.Series:
    """Per day, the Pearson correlation of the within-day ranks (Spearman's rho); NaN for days under 3 names."""
    n = np.bincount(day, minlength=days or 0).astype(float)
    centre = (n[day] + 1) / 2  # the mean of 1..n, also with tied (average) ranks
    a, b = rating_rank - centre, ret_rank - centre
    ab, aa, bb = (np.bincount(day, w, minlength=len(n)) for w in (a * b, a * a, b * b))
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


@dataclass
class HorizonRows:
    """What the statistics of every score share at horizon h: each row's day code and forward return, the rows in
    within-day order of their return and of the control's random keys (sorted once; each score filters them)."""

    h: int
    dates: np.ndarray  # (D,) the evaluated days, ascending
    day: np.ndarray  # (n,) day code of each row
    r: np.ndarray  # (n,) fwd_ret_{h}d, NaN when unknown
    r_order: np.ndarray
    control_key: np.ndarray  # (n,) a random ranking within each day of the rows with a return: the no-skill score
    control_order: np.ndarray

    @property
    def lags(self) -> int:
        return max(self.h - 1, 0)  # h-session returns of consecutive days overlap by h - 1 sessions

    @classmethod
    def of(cls, scores: pd.DataFrame, h: int, seed: int = 0, day: tuple | None = None) -> HorizonRows:
        """`day` = (codes, dates) of the rows' Date when already factorized (shared by every horizon)."""
        codes, dates = day or day_codes(scores)
        r = scores[f"fwd_ret_{h}d"].to_numpy(dtype=float)
        key = np.where(np.isfinite(r), shuffled_ranks(codes, seed + h), np.nan)
        return cls(h=h, dates=dates, day=codes, r=r, r_order=day_order(codes, r), control_key=key,
                   control_order=day_order(codes, key))


def day_codes(scores: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    codes, dates = pd.factorize(scores["Date"], sort=True)
    return codes.astype(np.int64), np.asarray(dates)


def score_stats(values, rows: HorizonRows, quantiles: int = 10) -> dict:
    """The statistics of one score (any column: a rating, a sub-score, a factor; a basket as 0/1 with quantiles=2)
    against the h-session forward return, on the rows where both are finite:

    daily rank IC (Spearman, average ranks for ties) mean/std/ICIR/Newey-West t; the same for the shuffled control on
    the same rows; the daily IC - control difference (mean, NW t) and whether |t| >= T_DISTINGUISHABLE; the daily
    top-minus-bottom quantile spread of the forward return (mean, NW t)."""
    return _score_stats(values, rows, quantiles)[0]


def _score_stats(values, rows: HorizonRows, quantiles: int) -> tuple[dict, dict]:
    values = np.asarray(values, dtype=float)
    use = np.isfinite(values) & np.isfinite(rows.r)
    pos = np.cumsum(use) - 1  # each used row's position among the used rows
    day, r, n_days = rows.day[use], rows.r[use], len(rows.dates)

    def ranks(order: np.ndarray, keyed: np.ndarray) -> np.ndarray:
        order = order[use[order]]  # still sorted by day then key: a filter, not a new sort
        out = np.empty(len(day))
        out[pos[order]] = ranks_in_order(order, rows.day, keyed)
        return out

    v_rank = ranks(day_order(rows.day, np.where(use, values, np.nan)), values)
    r_rank = ranks(rows.r_order, rows.r)
    c_rank = ranks(rows.control_order, rows.control_key)
    n_day = np.bincount(day, minlength=n_days)
    ic = daily_rank_ic(day, v_rank, r_rank, n_days).set_axis(rows.dates)
    control = daily_rank_ic(day, c_rank, r_rank, n_days).set_axis(rows.dates)
    with np.errstate(invalid="ignore", divide="ignore"):
        quantile = np.where(n_day[day] >= quantiles, np.floor((v_rank - 1) * quantiles / n_day[day]), -1).astype(int)
    in_q = quantile >= 0
    cell = day[in_q] * quantiles + quantile[in_q]
    sums = np.bincount(cell, r[in_q], minlength=n_days * quantiles).reshape(-1, quantiles)
    counts = np.bincount(cell, minlength=n_days * quantiles).reshape(-1, quantiles)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = sums[:, -1] / counts[:, -1] - sums[:, 0] / counts[:, 0]
    spread = spread[np.isfinite(spread)]
    diff = (ic - control).dropna()
    t_diff = newey_west_t(diff.to_numpy(), rows.lags)
    stats = {
        "horizon": rows.h, "rows": int(use.sum()), "days": int((n_day > 0).sum()),
        "ic": ic_stats(ic, rows.lags), "control_ic": ic_stats(control, rows.lags),
        "ic_minus_control": {"mean": float(diff.mean()) if len(diff) else math.nan, "t": t_diff},
        "distinguishable": bool(np.isfinite(t_diff) and abs(t_diff) >= T_DISTINGUISHABLE),
        "spread": {"mean": float(spread.mean()) if len(spread) else math.nan,
                   "t": newey_west_t(spread, rows.lags), "days": int(len(spread))},
    }
    return stats, {"use": use, "quantile": quantile, "ic_series": ic.dropna(), "control_series": control.dropna()}


def horizon_stats(scores: pd.DataFrame, rows: HorizonRows, rating: tuple[dict, dict]) -> dict:
    """TechRating's detail at one horizon: `rating` = _score_stats of TechRating, plus tables by Signal and decile
    (mean/median/excess over the day's universe/hit rates) and trade-plan outcomes, on the same rows."""
    stats, detail = rating
    ok = detail["use"]
    day, r = rows.day[ok], rows.r[ok]
    n_days = len(rows.dates)
    day_mean = np.bincount(day, r, minlength=n_days) / np.maximum(np.bincount(day, minlength=n_days), 1)
    excess = r - day_mean[day]
    signal = pd.Categorical(scores["Signal"], categories=SIGNALS).codes[ok]
    return stats | {
        "by_signal": _group_table(signal, SIGNALS, r, excess),
        "by_decile": _group_table(detail["quantile"], [float(k) for k in range(1, 11)], r, excess),
        "plans": _plan_table(scores.loc[ok, ["Signal", "plan_target_session", "plan_stop_session"]], rows.h),
        "ic_series": detail["ic_series"], "control_series": detail["control_series"],
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


def rank_by_control_t(entries: list[dict]) -> list[dict]:
    """Entries ordered by |t| of IC - control (largest first, NaN last), each with its `rank` (1 = strongest)."""
    def key(e):
        t = e["ic_minus_control"]["t"]
        return -abs(t) if math.isfinite(t) else math.inf

    ranked = sorted(entries, key=key)
    return [e | {"rank": i + 1} for i, e in enumerate(ranked)]


def control_entry(rating: dict) -> dict:
    """The shuffled control (on the first rating's rows) as a row of the attribution table."""
    nan = {"mean": math.nan, "t": math.nan}
    return {"name": "shuffled control", "kind": "control", "horizon": rating["horizon"], "rows": rating["rows"],
            "days": rating["days"], "ic": rating["control_ic"], "control_ic": rating["control_ic"],
            "ic_minus_control": nan, "distinguishable": False, "spread": nan | {"days": 0}, "rank": None}


def attribution_verdict(entries: list[dict], h: int) -> str:
    scored = [e for e in entries if e["kind"] != "control"]
    if not scored or all(e["ic"]["days"] < 3 for e in scored):
        return f"{h}-session attribution: no verdict — too few days with forward returns."
    yes = [f"{e['name']} ({'+' if e['ic_minus_control']['mean'] > 0 else '−'}, IC {e['ic']['mean']:+.4f}, "
           f"t {e['ic_minus_control']['t']:+.2f})" for e in scored if e["distinguishable"]]
    no = [e["name"] for e in scored if not e["distinguishable"]]
    return (f"{h}-session attribution: distinguishable from the shuffled control (|t| >= {T_DISTINGUISHABLE:g} on "
            f"IC − control): {', '.join(yes) or 'none'}; not: {', '.join(no) or 'none'}.")


def summarize(scores: pd.DataFrame, horizons: tuple[int, ...], seed: int = 0, columns: list[str] | None = None) -> dict:
    """TechRating's detail per horizon, and the attribution table: the same statistics for every attributed column
    (`factors.attributed_columns`: ratings, sub-scores, textbook factors) at each horizon, ranked, with the control."""
    columns = columns or attributed_columns(scores.columns)
    columns = ["TechRating", *[c for c in columns if c != "TechRating"]]  # the verdicts and the control are its
    day = day_codes(scores)
    per_h, table = {}, {}
    for h in horizons:
        rows = HorizonRows.of(scores, h, seed, day)
        entries = []
        for name in columns:
            stats, detail = _score_stats(scores[name].to_numpy(dtype=float), rows, 10)
            if name == "TechRating":
                per_h[h] = horizon_stats(scores, rows, (stats, detail))
            entries.append({"name": name, "kind": KIND.get(name, "other")} | stats)
        table[h] = rank_by_control_t(entries) + ([control_entry(entries[0])] if entries else [])
    return {"horizons": per_h, "attribution": table, "turnover": turnover(scores),
            "verdicts": [verdict(per_h[h]) for h in horizons],
            "attribution_verdicts": [attribution_verdict(table[h], h) for h in horizons]}
