"""A walk-forward scorecard for a screen: did its members, picked point in time each day, beat the day's universe
and a random basket of the same size?

Over the evaluation's (Date, Symbol) frame (each row what a scan as of that day showed), per day d:
* members(d) = the rows of d the screen selects (its `where`, its signals) — the same grammar and code as a scan;
* for each horizon h, over rows with a finite forward return r = fwd_ret_{h}d:
  universe(d) = mean r of the day's kept universe, members(d) = mean r of its members,
  control(d) = mean r of a random basket of as many names drawn from that day's universe (seeded; no skill),
  averaged over CONTROL_DRAWS baskets;
  the daily series members - universe (excess), control - universe, and members - control, each with its mean and a
  Newey-West t (h - 1 lags: h-session returns of consecutive days overlap). |t| >= 2 on members - control is the bar.
* hit rate: share of member rows with r > 0, and share beating their day's universe mean;
* turnover: day over day, the share of the day's members that were not members the day before;
* members per day: mean, median, max, and the days with none.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from technic_v4.domain.screens.evaluate import evaluate
from technic_v4.errors import ConfigError
from technic_v4.pipeline.evaluation.stats import T_DISTINGUISHABLE, newey_west_t
from technic_v4.pipeline.screens.model import Screen

CONTROL_DRAWS = 8  # random same-size baskets per day, averaged
REFERENCE_COLUMNS = {"Sector": "sector", "Industry": "industry", "Name": "name"}  # result column: reference field


def needed_columns(screens: list[Screen]) -> list[str]:
    """Every column the screens read (their `where` and signals)."""
    cols: dict[str, None] = {}
    for s in screens:
        cols.update(dict.fromkeys(s.expression.columns))
        if s.signals:
            cols["Signal"] = None
    return list(cols)


def with_reference_columns(scores: pd.DataFrame, reference: pd.DataFrame, needed: list[str]) -> pd.DataFrame:
    """Add the reference columns (Sector, Industry, Name) the screens need, by symbol (categoricals: millions of rows)."""
    add = [c for c in needed if c in REFERENCE_COLUMNS and c not in scores.columns]
    if not add:
        return scores
    ref = reference.drop_duplicates("symbol").set_index("symbol")
    out = scores.copy()
    symbols = out["Symbol"].astype(str)
    for col in add:
        out[col] = pd.Categorical(symbols.map(ref[REFERENCE_COLUMNS[col]]))
    return out


def check_history_has(scores: pd.DataFrame, screen: Screen) -> None:
    missing = [c for c in screen.expression.columns if c not in scores.columns]
    if missing:
        raise ConfigError(f"screen {screen.name!r} reads {missing}, which the evaluation's history does not have "
                          f"(it has: {', '.join(map(str, scores.columns))})")


def _series_stats(x: np.ndarray, lags: int) -> dict:
    x = x[np.isfinite(x)]
    return {"mean": float(x.mean()) if x.size else math.nan, "t": newey_west_t(x, lags), "days": int(x.size)}


def _turnover(day: np.ndarray, symbol: np.ndarray, member: np.ndarray, n_days: int) -> dict:
    """Mean share of each day's members that were not members the day before (days with members both days)."""
    d, s = day[member], symbol[member]
    grid = np.zeros((n_days, int(symbol.max()) + 1 if symbol.size else 0), dtype=bool)
    grid[d, s] = True
    now, before = grid[1:], grid[:-1]
    size = now.sum(axis=1)
    both = (size > 0) & (before.sum(axis=1) > 0)
    new_share = (now & ~before).sum(axis=1)[both] / size[both]
    return {"new_member_share": float(new_share.mean()) if new_share.size else math.nan, "days": int(both.sum())}


class RandomBaskets:
    """Seeded within-day random ranks of the rows with a forward return, per horizon, shared by every screen scored
    over the same frame (the control's draws do not depend on the screen: drawing them once keeps five scorecards
    about as cheap as one)."""

    def __init__(self, day: np.ndarray, seed: int):
        self.day, self.seed, self._ranks = day, seed, {}

    def ranks(self, h: int, ok: np.ndarray) -> list[np.ndarray]:
        if h not in self._ranks:
            rng, d = np.random.default_rng([self.seed, h]), self.day[ok]
            self._ranks[h] = random_ranks(d, CONTROL_DRAWS, rng)
        return self._ranks[h]


def random_ranks(day: np.ndarray, draws: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`draws` uniformly random orderings 1..n within each day: each day's rows in one row of a (days, max n) grid
    padded with -1, shuffled along the row (O(n), no sort), the rank being the position among the row's valid cells."""
    if not day.size:
        return [np.array([], float) for _ in range(draws)]
    order = np.argsort(day, kind="stable")
    counts = np.bincount(day)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    grid = np.full((counts.size, counts.max()), -1, dtype=np.int64)
    grid[day[order], np.arange(day.size) - np.repeat(starts, counts)] = order
    out = []
    for _ in range(draws):
        shuffled = rng.permuted(grid, axis=1)
        valid = shuffled >= 0
        ranks = np.empty(day.size, dtype=np.float64)
        ranks[shuffled[valid]] = np.cumsum(valid, axis=1)[valid]
        out.append(ranks)
    return out


def screen_scorecard(scores: pd.DataFrame, screen: Screen, horizons: tuple[int, ...], seed: int = 0,
                     baskets: RandomBaskets | None = None) -> dict:
    """The scorecard of one screen over an evaluation's rows (see the module docstring)."""
    check_history_has(scores, screen)
    member = evaluate(screen.expression, scores, f"screen {screen.name!r}")
    if screen.signals:
        member &= scores["Signal"].isin(screen.signals).to_numpy()
    day, dates = pd.factorize(scores["Date"], sort=True)
    symbol, _ = pd.factorize(scores["Symbol"])
    baskets = baskets or RandomBaskets(day, seed)
    per_day = np.bincount(day[member], minlength=len(dates))
    out = {
        "name": screen.name, "where": screen.expression.canonical, "description": screen.description,
        "days": int(len(dates)), "member_rows": int(member.sum()),
        "members_per_day": {"mean": float(per_day.mean()) if len(dates) else math.nan,
                            "median": float(np.median(per_day)) if len(dates) else math.nan,
                            "max": int(per_day.max()) if len(dates) else 0, "days_without": int((per_day == 0).sum())},
        "turnover": _turnover(day, symbol, member, len(dates)),
        "horizons": {},
    }
    for h in horizons:
        r = scores[f"fwd_ret_{h}d"].to_numpy(dtype=float)
        out["horizons"][h] = _horizon(r, day, member, len(dates), h, baskets.ranks(h, np.isfinite(r)))
    mpd, turn = out["members_per_day"], out["turnover"]
    out["verdicts"] = [
        f"screen {screen.name} ({out['where']}): {out['member_rows']:,} member rows over {out['days']} days, "
        f"{mpd['mean']:.1f} per day (median {mpd['median']:.0f}, max {mpd['max']}, {mpd['days_without']} days "
        f"without), turnover {turn['new_member_share']:.1%} new per day",
        *[scorecard_verdict(screen.name, out["horizons"][h]) for h in horizons]]
    return out


def screen_scorecards(scores: pd.DataFrame, screens: list[Screen], horizons: tuple[int, ...],
                      seed: int = 0) -> dict[str, dict]:
    """Every screen's scorecard, with one set of random baskets for all."""
    if not screens:
        return {}
    baskets = RandomBaskets(pd.factorize(scores["Date"], sort=True)[0], seed)
    return {s.name: screen_scorecard(scores, s, horizons, seed, baskets) for s in screens}


def _horizon(r: np.ndarray, day: np.ndarray, member: np.ndarray, n_days: int, h: int,
             ranks: list[np.ndarray]) -> dict:
    ok = np.isfinite(r)
    d, rr, m = day[ok], r[ok], member[ok]
    n_all = np.bincount(d, minlength=n_days)
    with np.errstate(invalid="ignore", divide="ignore"):
        universe = np.bincount(d, rr, minlength=n_days) / n_all
        k = np.bincount(d[m], minlength=n_days)
        members = np.bincount(d[m], rr[m], minlength=n_days) / k
        # the no-skill control: k(d) names drawn uniformly from day d's universe (a random rank within the day),
        # averaged over CONTROL_DRAWS seeded baskets so the control's own noise does not decide the comparison
        control = np.zeros(n_days)
        for rank in ranks:
            drawn = rank <= k[d]
            control += np.bincount(d[drawn], rr[drawn], minlength=n_days) / k / len(ranks)
    has = k > 0
    lags = max(h - 1, 0)
    excess, control_excess = (members - universe)[has], (control - universe)[has]
    diff = (members - control)[has]
    beat = rr[m] > universe[d[m]]
    stats = {
        "horizon": h, "member_rows": int(m.sum()), "days_with_members": int(has.sum()),
        "member_mean": float(np.nanmean(members[has])) if has.any() else math.nan,
        "universe_mean": float(np.nanmean(universe[has])) if has.any() else math.nan,
        "excess": _series_stats(excess, lags), "control_excess": _series_stats(control_excess, lags),
        "minus_control": _series_stats(diff, lags),
        "hit_rate": float((rr[m] > 0).mean()) if m.any() else math.nan,
        "beat_universe_rate": float(beat.mean()) if m.any() else math.nan,
    }
    t = stats["minus_control"]["t"]
    stats["distinguishable"] = bool(np.isfinite(t) and abs(t) >= T_DISTINGUISHABLE)
    return stats


def _pct(v: float) -> str:
    return "—" if not np.isfinite(v) else f"{v:+.2%}"


def scorecard_verdict(name: str, h: dict) -> str:
    e, c, d = h["excess"], h["control_excess"], h["minus_control"]
    if d["days"] < 3:
        return (f"screen {name}, {h['horizon']}-session: no verdict — {d['days']} day(s) with members and forward "
                "returns.")
    head = (f"screen {name}, {h['horizon']}-session: members {_pct(h['member_mean'])} vs universe "
            f"{_pct(h['universe_mean'])} (excess {_pct(e['mean'])}, NW t {e['t']:+.2f}); random same-size baskets' "
            f"excess {_pct(c['mean'])} (t {c['t']:+.2f}); members - basket t {d['t']:+.2f}; hit rate "
            f"{h['hit_rate']:.1%}, beat the day's universe {h['beat_universe_rate']:.1%}")
    if h["distinguishable"]:
        return f"{head} — {'BETTER' if d['mean'] > 0 else 'WORSE'} than the random basket (|t| >= {T_DISTINGUISHABLE:g})."
    return f"{head} — NOT distinguishable from the random basket (|t| < {T_DISTINGUISHABLE:g})."


def scorecard_markdown(card: dict, simulated: bool) -> str:
    label = " (SIMULATED)" if simulated else ""
    mpd, turn = card["members_per_day"], card["turnover"]
    rows = ["| horizon | member rows | days | members mean | universe mean | excess (NW t) | random basket excess (t) "
            "| members - basket (t) | hit rate | beat universe |", "|---|---|---|---|---|---|---|---|---|---|"]
    for h, s in card["horizons"].items():
        rows.append(f"| {h} | {s['member_rows']:,} | {s['days_with_members']} | {_pct(s['member_mean'])} | "
                    f"{_pct(s['universe_mean'])} | {_pct(s['excess']['mean'])} ({s['excess']['t']:+.2f}) | "
                    f"{_pct(s['control_excess']['mean'])} ({s['control_excess']['t']:+.2f}) | "
                    f"{_pct(s['minus_control']['mean'])} ({s['minus_control']['t']:+.2f}) | {s['hit_rate']:.1%} | "
                    f"{s['beat_universe_rate']:.1%} |")
    return "\n".join([
        f"## Screen {card['name']}{label}", f"`{card['where']}` — {card['description']}".rstrip(" —"),
        f"Members per day: mean {mpd['mean']:.1f}, median {mpd['median']:.0f}, max {mpd['max']}, "
        f"{mpd['days_without']} of {card['days']} days without any; turnover {turn['new_member_share']:.1%} of a "
        f"day's members new since the day before (over {turn['days']} days).", "", *rows, "",
        *[f"- {v}" for v in card["verdicts"]],
    ])
