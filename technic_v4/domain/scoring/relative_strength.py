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


def _rank(values: pd.Series, keys: list, ascending: bool) -> pd.Series:
    return values.groupby(keys, sort=False).rank(method="min", ascending=ascending)


def relative_strength(values, sector: np.ndarray, group: np.ndarray, market_ret_63d: np.ndarray) -> dict:
    """RS_rating, rs_vs_market_63d, sector_rank, rank_in_sector for rows grouped by `group` (one group per day).

    `values` holds ret_63d/126d/189d/252d per row; `market_ret_63d` is per row (its day's market return)."""
    score = pd.Series(composite(values))
    group = pd.Series(np.asarray(group))
    by_day = score.groupby(group, sort=False)
    twice_rank = (2 * by_day.rank(method="average")).to_numpy()  # an integer: ties average consecutive ranks
    n = by_day.transform("count").to_numpy().astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rating = np.where(n > 1, 1 + np.floor((98 * (twice_rank - 2) + (n - 1)) / (2 * (n - 1))), 50.0)
    rating = np.where(np.isfinite(score.to_numpy()), rating, np.nan)
    sector = pd.Series(np.asarray(sector, dtype=object))
    known = (sector != UNKNOWN_SECTOR).to_numpy() & sector.notna().to_numpy()
    frame = pd.DataFrame({"g": group, "sector": sector, "rating": rating, "score": score})[known]
    median = frame.groupby(["g", "sector"], sort=False)["rating"].median().rename("median").reset_index()
    median["sector_rank"] = _rank(median["median"], [median["g"]], ascending=False)
    sector_rank = frame[["g", "sector"]].merge(median, on=["g", "sector"], how="left")["sector_rank"].to_numpy()
    in_sector = _rank(frame["score"], [frame["g"], frame["sector"]], ascending=False).to_numpy()
    out_sector, out_in = np.full(len(score), np.nan), np.full(len(score), np.nan)
    out_sector[known], out_in[known] = sector_rank, in_sector
    return {
        "RS_rating": rating,
        "rs_vs_market_63d": np.asarray(values["ret_63d"], dtype=np.float64) - np.asarray(market_ret_63d, dtype=float),
        "sector_rank": out_sector,
        "rank_in_sector": out_in,
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
