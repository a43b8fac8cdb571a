"""Daily rank IC, shuffled control and quantile spread of any score: one function for every column of the rows.

The rows are laid out once as a (days x names) grid, so each day is one contiguous row of a 2-D array and every step
below is a row-wise numpy pass (no loop over days, no global sort). A score is sorted within each day once; the
forward return and the control's random keys once per horizon. The rows a statistic uses (score and return both
finite) only filter those sorted orders: the rank of a kept cell is the count of kept cells before it, and tied values
(equal neighbours in the sorted order) share the mean of their ranks, as scipy's rankdata("average") and Spearman's
rho do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

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


def ic_stats(ic: pd.Series, lags: int) -> dict:
    ic = ic.dropna()
    mean, std = float(ic.mean()), float(ic.std(ddof=1)) if len(ic) > 1 else math.nan
    return {"mean": mean, "std": std, "icir": mean / std if std else math.nan, "t": newey_west_t(ic.to_numpy(), lags),
            "days": int(len(ic))}


@dataclass(frozen=True)
class DayGrid:
    """Row i of the frame sits at cell (day[i], slot[i]) of a (days, width) grid; cells without a row are padding."""

    day: np.ndarray
    slot: np.ndarray
    dates: np.ndarray
    width: int

    @classmethod
    def of(cls, dates) -> DayGrid:
        codes, uniques = pd.factorize(pd.Series(dates), sort=True)
        sizes = np.bincount(codes, minlength=len(uniques))
        by_day = np.argsort(codes, kind="stable")
        first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        slot = np.empty(len(codes), dtype=np.int64)
        slot[by_day] = np.arange(len(codes)) - first[codes[by_day]]
        return cls(day=codes.astype(np.int64), slot=slot, dates=np.asarray(uniques), width=int(sizes.max(initial=0)))

    def put(self, values, fill=np.nan) -> np.ndarray:
        grid = np.full((len(self.dates), self.width), fill, dtype=np.asarray(values).dtype)
        grid[self.day, self.slot] = values
        return grid

    def take(self, grid: np.ndarray) -> np.ndarray:
        return grid[self.day, self.slot]


@dataclass(frozen=True)
class SortedDays:
    """One score sorted within each day (NaN and padding last), with the tie runs of equal values. Positions are
    flat indices (numpy's own index type: no conversion per use), so each step is one `take`, not a 2-D index."""

    shape: tuple[int, int]
    order: np.ndarray  # (D*W,) flat cell of each sorted position, row by row
    run_lo: np.ndarray | None  # (D*W,) flat index into the (D, W+1) running count: start of the position's tie run
    run_hi: np.ndarray | None  # ... one past the end of its tie run; None when nothing is tied (the control's keys)

    @classmethod
    def of(cls, grid: np.ndarray) -> SortedDays:
        days, width = grid.shape
        order = np.argsort(grid, axis=1)  # ties: any order, they share one rank below
        order += (np.arange(days) * width)[:, None]
        order = order.ravel()
        ordered = grid.ravel()[order].reshape(days, width)
        differs = ordered[:, 1:] != ordered[:, :-1]  # NaN != NaN: NaNs are never tied (and never kept)
        if differs.all():
            return cls(shape=grid.shape, order=order, run_lo=None, run_hi=None)
        pos = np.broadcast_to(np.arange(width, dtype=np.int32), grid.shape)
        starts = np.concatenate([np.ones((days, 1), bool), differs], axis=1)
        ends = np.concatenate([differs, np.ones((days, 1), bool)], axis=1)
        run_lo = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
        run_hi = np.minimum.accumulate(np.where(ends, pos, width - 1)[:, ::-1], axis=1)[:, ::-1] + 1
        offset = (np.arange(days, dtype=np.intp) * (width + 1))[:, None]
        return cls(shape=grid.shape, order=order, run_lo=(run_lo + offset).ravel(), run_hi=(run_hi + offset).ravel())

    @classmethod
    def shuffled(cls, shape: tuple[int, int], seed: int) -> SortedDays:
        """A uniformly random order of each day's cells: the no-skill control (no sort, no ties)."""
        days, width = shape
        order = np.random.default_rng(seed).permuted(np.broadcast_to(np.arange(width), shape), axis=1)
        order = (order + (np.arange(days, dtype=np.intp) * width)[:, None]).ravel()
        return cls(shape=shape, order=order, run_lo=None, run_hi=None)

    def centred_ranks(self, keep: np.ndarray) -> np.ndarray:
        """(D, W) average rank among the kept cells of each day minus the day's mean rank (n + 1) / 2; 0 elsewhere."""
        days, width = self.shape
        kept = keep.ravel()[self.order].reshape(days, width)
        before = np.zeros((days, width + 1))  # before[:, j] = kept cells in sorted positions < j (exact in float)
        np.cumsum(kept, axis=1, out=before[:, 1:])
        if self.run_lo is None:
            rank = before[:, 1:] - (before[:, -1:] + 1) / 2.0  # no ties: the running count itself
        else:  # a tie run's kept cells share the mean of their ranks: (kept before the run + kept through it + 1) / 2
            flat = before.ravel()
            rank = np.take(flat, self.run_lo, mode="clip")
            rank += np.take(flat, self.run_hi, mode="clip")
            rank += 1.0
            rank *= 0.5
            rank = rank.reshape(days, width) - (before[:, -1:] + 1) / 2.0
        rank *= kept
        out = np.empty(days * width)
        out[self.order] = rank.ravel()
        return out.reshape(days, width)


def _row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


@dataclass
class HorizonGrid:
    """The h-session forward return on the grid, sorted within each day, and the control's random order."""

    h: int
    r: np.ndarray  # (D, W) with 0 where unknown (the sums below skip those cells through `keep`)
    finite: np.ndarray
    r_sorted: SortedDays
    control: SortedDays

    @property
    def lags(self) -> int:
        return max(self.h - 1, 0)  # h-session returns of consecutive days overlap by h - 1 sessions

    _last: tuple | None = None  # (keep, centred return ranks, their row sums of squares) of the last call

    @classmethod
    def of(cls, grid: DayGrid, returns: np.ndarray, h: int, seed: int) -> HorizonGrid:
        r = grid.put(np.asarray(returns, dtype=float))
        finite = np.isfinite(r)
        return cls(h=h, r=np.where(finite, r, 0.0), finite=finite, r_sorted=SortedDays.of(r),
                   control=SortedDays.shuffled(r.shape, seed + h))

    def return_ranks(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centred ranks of the return among `keep`, and their sums of squares; reused while `keep` repeats
        (scores defined on the same rows)."""
        if self._last is None or not np.array_equal(self._last[0], keep):
            b = self.r_sorted.centred_ranks(keep)
            self._last = (keep, b, _row_dot(b, b))
        return self._last[1], self._last[2]


def _corr(ab: np.ndarray, aa: np.ndarray, bb: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= 3, ab / np.sqrt(aa * bb), np.nan)


def grid_stats(sorted_values: SortedDays, finite: np.ndarray, hz: HorizonGrid, dates, quantiles: int = 10,
               detail: bool = False, control: pd.Series | None = None):
    """(statistics, detail) of one score at one horizon; `finite` = the score's finite cells. `control`: the daily
    control IC to compare with (default: a random ranking of this score's own rows). With `detail`, the quantile
    (0 = lowest) of each kept cell, NaN elsewhere or on days with fewer names than quantiles."""
    keep = finite & hz.finite
    n = keep.sum(axis=1)
    a = sorted_values.centred_ranks(keep)
    b, bb = hz.return_ranks(keep)
    ic = pd.Series(_corr(_row_dot(a, b), _row_dot(a, a), bb, n), index=dates)
    if control is None:
        c = hz.control.centred_ranks(keep)
        control = pd.Series(_corr(_row_dot(c, b), _row_dot(c, c), bb, n), index=dates)
    else:
        control = control.reindex(dates)
    # Quantile k of rank x among n: floor((x - 1) * q / n) = k; the bottom is x < n/q + 1, the top x >= n(q-1)/q + 1.
    centre = ((n + 1) / 2.0)[:, None]
    enough = (n >= quantiles)[:, None] & keep
    bottom = enough & (a < n[:, None] / quantiles + 1 - centre)
    top = enough & (a >= n[:, None] * (quantiles - 1) / quantiles + 1 - centre)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = _row_dot(hz.r, top.astype(float)) / top.sum(1) - _row_dot(hz.r, bottom.astype(float)) / bottom.sum(1)
    spread = spread[np.isfinite(spread)]
    diff = (ic - control).dropna()
    t_diff = newey_west_t(diff.to_numpy(), hz.lags)
    stats = {
        "horizon": hz.h, "rows": int(n.sum()), "days": int((n > 0).sum()),
        "ic": ic_stats(ic, hz.lags), "control_ic": ic_stats(control, hz.lags),
        "ic_minus_control": {"mean": float(diff.mean()) if len(diff) else math.nan, "t": t_diff},
        "distinguishable": bool(np.isfinite(t_diff) and abs(t_diff) >= T_DISTINGUISHABLE),
        "spread": {"mean": float(spread.mean()) if len(spread) else math.nan,
                   "t": newey_west_t(spread, hz.lags), "days": int(len(spread))},
    }
    more = {"keep": keep, "ic_series": ic.dropna(), "control_series": control.dropna()}
    if detail:
        with np.errstate(invalid="ignore", divide="ignore"):
            q = np.floor((a + centre - 1) * quantiles / n[:, None])
        more["quantile"] = np.where(enough, q, np.nan)
    return stats, more


class RankIC:
    """Rank IC statistics of any column of one evaluation's rows at each horizon (the returns sorted once)."""

    def __init__(self, scores: pd.DataFrame, horizons, seed: int = 0):
        self.grid = DayGrid.of(scores["Date"].to_numpy())
        self.horizons = {h: HorizonGrid.of(self.grid, scores[f"fwd_ret_{h}d"].to_numpy(), h, seed) for h in horizons}

    def column(self, values, quantiles: int = 10, detail: bool = False,
               control: dict[int, pd.Series] | None = None) -> dict[int, tuple[dict, dict]]:
        """{h: (statistics, detail)}: the score sorted once, then each horizon. `control` {h: daily control IC}
        compares it with another score's control (the evaluation's: TechRating's) instead of its own."""
        grid = self.grid.put(np.asarray(values, dtype=float))
        ordered, finite = SortedDays.of(grid), np.isfinite(grid)
        return {h: grid_stats(ordered, finite, hz, self.grid.dates, quantiles, detail, (control or {}).get(h))
                for h, hz in self.horizons.items()}


def score_stats(scores: pd.DataFrame, values, horizons, seed: int = 0, quantiles: int = 10) -> dict[int, dict]:
    """The statistics of one score against the forward returns of `scores` (Date, fwd_ret_{h}d), per horizon:

    daily rank IC (Spearman, average ranks for ties) mean/std/ICIR/Newey-West t (h - 1 lags); the same for the
    shuffled control on the same rows; the daily IC - control difference (mean, NW t) and whether |t| >=
    T_DISTINGUISHABLE; the daily top-minus-bottom quantile spread of the forward return (mean, NW t). Each on the rows
    where the score and the return are both finite. `values`: a column name or an array aligned with `scores`; a
    basket is a 0/1 column (its spread with quantiles=2 is then members minus the rest)."""
    values = scores[values] if isinstance(values, str) else values
    return {h: s for h, (s, _) in RankIC(scores, horizons, seed).column(values, quantiles).items()}


def within_day_ranks(dates, values) -> np.ndarray:
    """Average ranks of `values` within each day of `dates`, NaN where the value is not finite."""
    grid = DayGrid.of(dates)
    cells = grid.put(np.asarray(values, dtype=float))
    keep = np.isfinite(cells)
    ranks = SortedDays.of(cells).centred_ranks(keep) + (keep.sum(1, keepdims=True) + 1) / 2.0
    return grid.take(np.where(keep, ranks, np.nan))
