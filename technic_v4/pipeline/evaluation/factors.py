"""The textbook baselines every evaluation ranks TechRating against, and the list of what it attributes.

Each factor is an indicator of the catalogue's kind (declared inputs, `min_bars`, a full series over the compacted
bars), so `score_cells` reads it exactly as it reads the scan's own indicators: at each symbol's last valid bar on or
before day d, NaN when fewer than `min_bars` valid bars fall inside d's window. A series value at a bar uses only that
bar and earlier ones, so a factor for day d is the same whether or not bars after d exist (tested). "N bars" are the
symbol's own trading bars, as for every indicator (a halt is skipped, not filled). Signs are chosen so that the
textbook expectation is "higher ranks better":

* mom_12_1      12-1 momentum (Jegadeesh-Titman): close 21 bars ago / close 252 bars ago - 1 (skips the last month);
* rev_1m        one-month reversal: minus the 21-bar return (the catalogue's ret_21d);
* prox_52w_high 52-week-high proximity (George-Hwang): close / highest high of the last 252 bars (<= 1);
* low_vol_63    low volatility: minus the annualized stdev of the last 63 daily log returns (a quarter; the
                catalogue's RealizedVolatility formula, computed with running sums instead of a window copy).
"""

from __future__ import annotations

import numpy as np

from technic_v4.domain.indicators import Bars, Indicator, PctFromHigh, RealizedVolatility, Returns
from technic_v4.domain.indicators.base import check_int, finite_or_nan
from technic_v4.domain.scoring.score import SCORE_COLUMNS


class SkipReturn(Indicator):
    """close `skip` bars ago / close `bars` bars ago - 1; needs bars + 1 valid bars."""

    def __init__(self, bars: int = 252, skip: int = 21):
        self.bars = check_int("SkipReturn", "bars", bars, 2, "the return must span at least two bars")
        self.skip = check_int("SkipReturn", "skip", skip, 0, "skip 0 bars for a plain return")
        if self.skip >= self.bars:
            raise ValueError(f"SkipReturn needs skip < bars (got skip={skip}, bars={bars}): nothing would be left")
        super().__init__(bars=self.bars, skip=self.skip)

    @property
    def min_bars(self) -> int:
        return self.bars + 1

    def series(self, bars: Bars) -> np.ndarray:
        x = bars.close
        out = np.full(x.shape, np.nan)
        if x.shape[0] > self.bars:
            with np.errstate(divide="ignore", invalid="ignore"):
                out[self.bars :] = x[self.bars - self.skip : x.shape[0] - self.skip] / x[: x.shape[0] - self.bars] - 1.0
        return finite_or_nan(out)


class Negated(Indicator):
    """Minus another indicator's series (computed once per Bars and shared through its cache)."""

    def __init__(self, base: Indicator):
        self.base = base
        super().__init__(of=repr(base))

    @property
    def min_bars(self) -> int:
        return self.base.min_bars

    def series(self, bars: Bars) -> np.ndarray:
        return -self.base.compute(bars)


class HighProximity(Indicator):
    """close / highest high of the last `period` bars: the catalogue's PctFromHigh + 1 (shares its series)."""

    def __init__(self, period: int = 252):
        self.base = PctFromHigh(period)
        super().__init__(period=period)

    @property
    def min_bars(self) -> int:
        return self.base.min_bars

    def series(self, bars: Bars) -> np.ndarray:
        return self.base.compute(bars) + 1.0


class RollingVolatility(RealizedVolatility):
    """RealizedVolatility(period) as a full series from running sums of log returns and their squares: the same
    sample stdev (ddof=1) x sqrt(252), without the (period, T, N) window copy (63 x a chunk's panel)."""

    def series(self, bars: Bars) -> np.ndarray:
        k = self.period
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.diff(np.log(bars.close), axis=0)  # NaN only above each symbol's first bar (compacted)
        ok = np.isfinite(r)
        r = np.where(ok, r, 0.0)
        zero = np.zeros((1, r.shape[1]))
        s1, s2, n = (np.concatenate([zero, np.cumsum(a, axis=0)]) for a in (r, r * r, ok.astype(float)))
        out = np.full(bars.shape, np.nan)
        if r.shape[0] >= k:
            w1, w2, wn = (a[k:] - a[:-k] for a in (s1, s2, n))
            var = np.maximum(w2 - w1 * w1 / k, 0.0) / (k - 1)
            out[k:] = np.where(wn == k, np.sqrt(var) * np.sqrt(252.0), np.nan)
        return finite_or_nan(out)


# Column name in the evaluation rows -> the indicator that gives it.
FACTORS: dict[str, Indicator] = {
    "mom_12_1": SkipReturn(252, 21),
    "rev_1m": Negated(Returns(21)),
    "prox_52w_high": HighProximity(252),
    "low_vol_63": Negated(RollingVolatility(63)),
}
FACTOR_COLUMNS = tuple(FACTORS)
# What every evaluation attributes, in this order: the ratings, the sub-scores, the textbook factors. A new rating
# (e.g. a learned one) is one more name in RATINGS; a column absent from the rows is left out of the table.
RATINGS: tuple[str, ...] = ("TechRating", "LearnedRating")  # LearnedRating: rating="learned" only
SUB_SCORES: tuple[str, ...] = tuple(SCORE_COLUMNS)
KIND = {**{c: "rating" for c in RATINGS}, **{c: "sub-score" for c in SUB_SCORES}, **{c: "factor" for c in FACTORS}}


def attributed_columns(columns) -> list[str]:
    """The attributed names present among `columns`, in the order above."""
    present = set(columns)
    return [c for c in (*RATINGS, *SUB_SCORES, *FACTOR_COLUMNS) if c in present]
