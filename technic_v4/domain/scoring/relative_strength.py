"""Relative strength across the day's universe: the one cross-sectional step, run after the score chunks are joined.

The per-symbol kernel (`score_panel`) stays chunk-independent; this step needs every row of the day, so the flow runs
it on the joined table (reused rows from the previous scan included: their ranks are recomputed against today's
universe), and the evaluation runs it per session.

  RS_rating         IBD-style: composite = 0.4·ret_63d + 0.2·ret_126d + 0.2·ret_189d + 0.2·ret_252d, ranked across the
                    day's rows with a composite (ties share their average rank r); with n such rows,
                    p = (r - 1) / (n - 1) and RS_rating = 1 + floor(98·p + 0.5): 1 = weakest, 99 = strongest, 50 for a
                    lone row. Integer-valued floats, NaN when a return is NaN (less than a year of bars).
  rs_vs_market_63d  ret_63d minus the market's 63-session return (SPY, else the equal-weighted index of the panel:
                    `domain.market_proxy`), a fraction; NaN when either is unknown.
  sector_rank       sectors ranked by the median RS_rating of their rows, 1 = strongest (ties share the best rank);
                    the "Unknown" sector is no sector: NaN.
  rank_in_sector    the row's rank by composite within its sector, 1 = strongest (ties share the best); NaN for Unknown
                    or without a composite.
  tt_8              RS_rating >= 70 (Minervini's eighth criterion); tt_count = how many of tt_1..tt_8 hold (0-8) and
                    trend_template = all 8.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from technic_v4.domain.indicators.patterns import TREND_TEMPLATE_PER_SYMBOL

RS_WEIGHTS = {"ret_63d": 0.4, "ret_126d": 0.2, "ret_189d": 0.2, "ret_252d": 0.2}
RS_MARKET_BARS = 63
TT_MIN_RS = 70
UNKNOWN_SECTOR = "Unknown"


def composite(values) -> np.ndarray:
    """The weighted 3/6/9/12-month return (NaN if any leg is NaN)."""
    return sum(w * np.asarray(values[k], dtype=np.float64) for k, w in RS_WEIGHTS.items())


def market_return(close: np.ndarray, rows: np.ndarray | None = None, bars: int = RS_MARKET_BARS) -> np.ndarray:
    """The market's `bars`-session return ending at each of `rows` of its (T,) close series (default: the last)."""
    close = np.asarray(close, dtype=np.float64)
    rows = np.array([close.size - 1]) if rows is None else np.asarray(rows)
    start = rows - bars
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = np.where(start >= 0, close[rows] / close[np.maximum(start, 0)] - 1.0, np.nan)
    return np.where(np.isfinite(ret), ret, np.nan)


def group_ranks(values: np.ndarray, groups: np.ndarray, method: str = "average", descending: bool = False):
    """Rank of each value within its group (1 = smallest, or largest when `descending`), NaN values unranked (NaN).
    Ties share the average rank (method "average", returned doubled so it stays an integer) or the best ("min")."""
    values, groups = np.asarray(values, dtype=np.float64), np.asarray(groups, dtype=np.int64)
    out = np.full(values.size, np.nan)
    idx = np.flatnonzero(np.isfinite(values))
    if idx.size == 0:
        return out
    v, g = (-values[idx] if descending else values[idx]), groups[idx]
    order = np.lexsort((v, g))
    v, g = v[order], g[order]
    new_group = np.r_[True, g[1:] != g[:-1]]
    new_block = new_group | np.r_[True, v[1:] != v[:-1]]
    pos = np.arange(v.size)
    group_start = np.maximum.accumulate(np.where(new_group, pos, 0))
    block_first = np.maximum.accumulate(np.where(new_block, pos, 0))
    block_last = np.r_[np.flatnonzero(new_block)[1:], v.size][np.cumsum(new_block) - 1] - 1
    if method == "average":  # doubled: (first + last)/2 + 1 ranks, times 2
        rank = (block_first - group_start) + (block_last - group_start) + 2
    else:
        rank = block_first - group_start + 1
    out[idx[order]] = rank
    return out


def group_medians(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups,) median of the finite values of each group (NaN for a group without any)."""
    ok = np.isfinite(values)
    v, g = values[ok], groups[ok]
    order = np.lexsort((v, g))
    v, g = v[order], g[order]
    counts = np.bincount(g, minlength=n_groups)
    start = np.r_[0, np.cumsum(counts)[:-1]]
    out = np.full(n_groups, np.nan)
    has = counts > 0
    lo, hi = start[has] + (counts[has] - 1) // 2, start[has] + counts[has] // 2
    out[has] = (v[lo] + v[hi]) / 2
    return out


def relative_strength(values, sector: np.ndarray | pd.Categorical, group: np.ndarray, market_ret_63d: np.ndarray) -> dict:
    """RS_rating, rs_vs_market_63d, sector_rank, rank_in_sector for rows grouped by `group` (one group per day).

    `values` holds ret_63d/126d/189d/252d per row; `market_ret_63d` is per row (its day's market return)."""
    score = composite(values)
    day, _ = pd.factorize(np.asarray(group), sort=False)
    twice_rank = group_ranks(score, day)
    n = np.bincount(day[np.isfinite(score)], minlength=day.max() + 1 if day.size else 0)[day].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rating = np.where(n > 1, 1 + np.floor((98 * (twice_rank - 2) + (n - 1)) / (2 * (n - 1))), 50.0)
    rating = np.where(np.isfinite(score), rating, np.nan)
    # codes of a categorical (the evaluation's millions of rows come as one: no hashing of strings per row)
    sector = sector if isinstance(sector, pd.Categorical) else pd.Categorical(np.asarray(sector, dtype=object))
    named = np.asarray(sector.categories != UNKNOWN_SECTOR, dtype=bool)
    sector_code = np.asarray(sector.codes, dtype=np.int64)
    known = (sector_code >= 0) & (named[np.maximum(sector_code, 0)] if named.size else False)  # Unknown/missing out
    n_sectors = max(len(named), 1)
    cell = np.where(known, day * n_sectors + np.maximum(sector_code, 0), -1)  # (day, sector) group of each row
    n_cells = (day.max() + 1) * n_sectors if day.size else 0
    medians = group_medians(rating[known], cell[known], n_cells)
    cell_rank = group_ranks(medians, np.arange(n_cells) // n_sectors, method="min", descending=True)
    sector_rank = np.where(known, cell_rank[np.maximum(cell, 0)], np.nan)
    in_sector = np.where(known, group_ranks(np.where(known, score, np.nan), cell, "min", descending=True), np.nan)
    return {
        "RS_rating": rating,
        "rs_vs_market_63d": np.asarray(values["ret_63d"], dtype=np.float64) - np.asarray(market_ret_63d, dtype=float),
        "sector_rank": sector_rank,
        "rank_in_sector": in_sector,
    }


def trend_template(flags, rs_rating: np.ndarray) -> dict:
    """tt_8, tt_count and trend_template from tt_1..tt_7 and RS_rating."""
    with np.errstate(invalid="ignore"):
        tt_8 = np.asarray(rs_rating, dtype=np.float64) >= TT_MIN_RS
    count = sum(np.asarray(flags[k], dtype=bool).astype(np.int64) for k in TREND_TEMPLATE_PER_SYMBOL) + tt_8
    return {"tt_8": tt_8, "tt_count": count.astype(np.int64), "trend_template": count == 8}


def add_relative_strength(results: pd.DataFrame, market_ret_63d: float) -> pd.DataFrame:
    """The scan's joined table with the RS columns, tt_8, tt_count and trend_template (re)computed across its rows."""
    if results.empty or "ret_252d" not in results:
        return results
    n = len(results)
    rs = relative_strength(results, results["Sector"].to_numpy(), np.zeros(n, dtype=np.int64),
                           np.full(n, market_ret_63d, dtype=np.float64))
    tt = trend_template(results, rs["RS_rating"])
    return results.assign(**{k: tt[k] for k in ("tt_8", "trend_template", "tt_count")}, **rs)
