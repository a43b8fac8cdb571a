"""Did the signals work? Qlib's vocabulary over the evaluation rows, every figure counted from them.

Per horizon h (forward return r = fwd_ret_{h}d, rows with a finite r and TechRating):
* by Signal and by TechRating decile (deciles within each day, 10 = highest): mean, median, mean excess over the day's
  universe mean, share of r > 0, share beating the day's mean, rows;
* top-minus-bottom decile spread: the daily series mean(r | decile 10) - mean(r | decile 1), its mean and t-stat;
* daily rank IC (Spearman of TechRating vs r within a day, tied values sharing their average rank): mean, std,
  ICIR = mean / std, t-stat; the same for the shuffled-rating control (a random ranking within each day: no skill,
  same days and names), and the t-stat of the daily difference IC - control IC, which decides the verdict (|t| >= 2:
  distinguishable);
* attribution: the same IC / spread statistics (rank_ic: one function for any column) for every sub-score and
  textbook factor (factors.py), each on its own rows with a finite value and return, against the same control
  (TechRating's: a random ranking of its rows), ranked by |t| of IC - control at each horizon;
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
from technic_v4.pipeline.evaluation.factors import KIND, attributed_columns
from technic_v4.pipeline.evaluation.forward import plan_outcome
from technic_v4.pipeline.evaluation.rank_ic import T_DISTINGUISHABLE, DayGrid, RankIC, newey_west_t  # noqa: F401


def _group_table(codes: np.ndarray, labels, r: np.ndarray, excess: np.ndarray) -> pd.DataFrame:
    """Mean, median, mean excess, share up, share beating the day's mean, rows per group code (labels[code])."""
    at = codes >= 0
    codes, r, excess = codes[at], r[at], excess[at]
    k = len(labels)
    rows = np.bincount(codes, minlength=k)
    present = np.flatnonzero(rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = {name: np.bincount(codes, weights=w, minlength=k) / rows for name, w in (
            ("mean", r), ("mean_excess", excess), ("share_up", (r > 0).astype(float)),
            ("share_beat_universe", (excess > 0).astype(float)))}
    median = np.array([np.median(r[codes == g]) for g in present])  # a partition per group, no sort
    table = pd.DataFrame({"mean": means["mean"][present], "median": median, "mean_excess": means["mean_excess"][present],
                          "share_up": means["share_up"][present],
                          "share_beat_universe": means["share_beat_universe"][present], "rows": rows[present]},
                         index=[labels[int(g)] for g in present])
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


def horizon_stats(scores: pd.DataFrame, grid: DayGrid, h: int, rating: tuple[dict, dict]) -> dict:
    """TechRating's detail at horizon h: `rating` = its (statistics, detail) from RankIC, plus tables by Signal and
    decile (mean/median/excess over the day's universe/hit rates) and trade-plan outcomes, on the same rows."""
    stats, detail = rating
    ok = grid.take(detail["keep"])
    r = scores[f"fwd_ret_{h}d"].to_numpy(dtype=float)[ok]
    day = grid.day[ok]
    n_days = len(grid.dates)
    day_mean = np.bincount(day, r, minlength=n_days) / np.maximum(np.bincount(day, minlength=n_days), 1)
    excess = r - day_mean[day]
    decile = np.nan_to_num(grid.take(detail["quantile"])[ok], nan=-1).astype(int)  # 0..9, -1: under 10 names
    signal = pd.Categorical(scores["Signal"], categories=SIGNALS).codes[ok]
    return stats | {
        "by_signal": _group_table(signal, SIGNALS, r, excess),
        "by_decile": _group_table(decile, [float(k) for k in range(1, 11)], r, excess),
        "plans": _plan_table(scores.loc[ok, [c for c in ("Signal", "plan_target_session", "plan_stop_session",
                                                         "PlanRule", "RewardRisk", "Entry", "Stop", "Target",
                                                         f"fwd_ret_{h}d")
                                             if c in scores]], h),
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
    ric = RankIC(scores, horizons, seed)
    per_h, entries, control = {}, {h: [] for h in horizons}, None
    for name in columns:  # each column sorted once, then filtered per horizon; the control is TechRating's
        out = ric.column(scores[name].to_numpy(dtype=float), detail=control is None, control=control)
        for h, (stats, detail) in out.items():
            if control is None:
                per_h[h] = horizon_stats(scores, ric.grid, h, (stats, detail))
            entries[h].append({"name": name, "kind": KIND.get(name, "other")} | stats)
        control = control or {h: detail["control_series"] for h, (_, detail) in out.items()}
    table = {h: rank_by_control_t(e) + [control_entry(e[0])] for h, e in entries.items()}
    return {"horizons": per_h, "attribution": table, "turnover": turnover(scores),
            "verdicts": [verdict(per_h[h]) for h in horizons],
            "attribution_verdicts": [attribution_verdict(table[h], h) for h in horizons]}
