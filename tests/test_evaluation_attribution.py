"""Attribution: the one statistics function against independent small computations, the textbook factors against a
per-symbol computation, their point-in-time property, and the ranked table on a frame with a planted factor."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from technic_v4.calendar import trading_days
from technic_v4.domain.panel import Panel
from technic_v4.domain.regime import Regime
from technic_v4.domain.scoring.history import score_cells
from technic_v4.domain.scoring.score import SCORE_COLUMNS, SIGNALS
from technic_v4.pipeline.evaluation.factors import FACTOR_COLUMNS, FACTORS, attributed_columns
from technic_v4.pipeline.evaluation.report import attribution_markdown, attribution_records, json_ready
from technic_v4.pipeline.evaluation.rank_ic import score_stats, within_day_ranks
from technic_v4.pipeline.evaluation.stats import summarize

WINDOW = 300


def random_frame(seed: int, days: int = 40, names: int = 60, h: int = 5) -> pd.DataFrame:
    """A tidy (Date, Symbol) frame of noise: returns, a tie-heavy score (rounded), holes in both."""
    rng = np.random.default_rng(seed)
    dates = np.repeat(pd.bdate_range("2024-01-01", periods=days).to_numpy(), names)
    r = rng.standard_normal(days * names) * 0.02
    score = np.round(rng.standard_normal(days * names) + 20 * r, 1)  # ties, and a little skill
    r[rng.random(r.size) < 0.05] = np.nan
    score[rng.random(r.size) < 0.05] = np.nan
    return pd.DataFrame({"Date": dates, "Symbol": np.tile([f"S{i}" for i in range(names)], days),
                         f"fwd_ret_{h}d": r, "score": score})


def newey_west_by_hand(x: np.ndarray, lags: int) -> float:
    n, mean = len(x), sum(x) / len(x)
    e = [v - mean for v in x]
    var = sum(v * v for v in e) / n
    for lag in range(1, lags + 1):
        weight = 1 - lag / (lags + 1)
        var += 2 * weight * sum(e[i] * e[i - lag] for i in range(lag, n)) / n
    return mean / math.sqrt(var / n)


def test_score_stats_equal_scipy_spearman_per_day_newey_west_by_hand_and_a_pandas_decile_spread():
    frame = random_frame(seed=1)
    stats = score_stats(frame, "score", horizons=(5,), seed=0)[5]
    both = frame.dropna(subset=["score", "fwd_ret_5d"])
    by_scipy = both.groupby("Date")[["score", "fwd_ret_5d"]].apply(
        lambda g: spearmanr(g["score"], g["fwd_ret_5d"]).statistic)
    assert stats["ic"]["mean"] == pytest.approx(by_scipy.mean(), abs=1e-12)
    assert stats["ic"]["std"] == pytest.approx(by_scipy.std(ddof=1), abs=1e-12)
    assert stats["ic"]["t"] == pytest.approx(newey_west_by_hand(by_scipy.to_numpy(), 4), rel=1e-10)
    assert stats["rows"] == len(both) and stats["days"] == 40

    def spread(g):  # deciles of the average rank within the day, 10 = highest
        dec = np.floor((g["score"].rank(method="average") - 1) * 10 / len(g))
        return g.loc[dec == 9, "fwd_ret_5d"].mean() - g.loc[dec == 0, "fwd_ret_5d"].mean()

    by_pandas = both.groupby("Date")[["score", "fwd_ret_5d"]].apply(spread)
    assert stats["spread"]["mean"] == pytest.approx(by_pandas.mean(), abs=1e-14)
    assert stats["spread"]["t"] == pytest.approx(newey_west_by_hand(by_pandas.to_numpy(), 4), rel=1e-10)
    # The control: a random ranking of the same rows each day, its IC against the same returns.
    assert abs(stats["control_ic"]["mean"]) < 0.05 and stats["ic"]["mean"] > 0.2
    assert stats["distinguishable"] and stats["ic_minus_control"]["t"] > 2


def test_within_day_ranks_share_ties_like_pandas_average_ranks():
    frame = random_frame(seed=2, days=6, names=25)
    ranks = within_day_ranks(frame["Date"], frame["score"].to_numpy())
    expected = frame.groupby("Date")["score"].rank(method="average").to_numpy()
    np.testing.assert_array_equal(ranks, expected)  # NaN where the score is NaN, on both sides


def market_with_gaps(seed: int = 5, n: int = 12, t: int = 420) -> Panel:
    rng = np.random.default_rng(seed)
    dates = np.array(trading_days(dt.date(2021, 1, 4), dt.date(2023, 6, 30))[:t], dtype="datetime64[D]")
    close = 40 * np.exp(np.cumsum(0.02 * rng.standard_normal((t, n)), axis=0))
    high = close * (1 + np.abs(0.01 * rng.standard_normal((t, n))))
    low = close * (1 - np.abs(0.01 * rng.standard_normal((t, n))))
    open_ = (high + low) / 2
    volume = 1e6 * np.exp(rng.standard_normal((t, n)))
    missing = rng.random((t, n)) < 0.01
    for arr in (open_, high, low, close, volume):
        arr[:150, 1] = np.nan  # listed late: its 12-1 momentum is undefined until 253 bars
        arr[300:310, 2] = np.nan  # a halt: bars are the symbol's own, the gap is skipped
        arr[missing] = np.nan  # scattered missing days
    return Panel(dates=dates, symbols=np.array([f"S{i}" for i in range(n)], dtype=object), open=open_, high=high,
                 low=low, close=close, volume=volume)


def factors_at(panel: Panel, rows: np.ndarray, cols: np.ndarray) -> dict:
    regimes = {int(r): Regime() for r in np.unique(rows)}
    return score_cells(panel, rows, cols, regimes, WINDOW, extra=FACTORS)


def test_factor_values_equal_a_per_symbol_computation_on_the_symbols_own_bars():
    panel = market_with_gaps()
    rows = np.repeat([260, 305, 380, 419], panel.shape[1])
    cols = np.tile(np.arange(panel.shape[1]), 4)
    got = factors_at(panel, rows, cols)
    checked = 0
    for i, (r, j) in enumerate(zip(rows, cols)):
        bars = pd.DataFrame({"close": panel.close[: r + 1, j], "high": panel.high[: r + 1, j]})
        bars = bars[np.isfinite(panel.open[: r + 1, j]) & np.isfinite(panel.low[: r + 1, j])].dropna()  # valid bars
        bars = bars[bars.index > r - WINDOW]  # what the scan's window as of that day holds
        c, hi = bars["close"].to_numpy(), bars["high"].to_numpy()
        expected = {
            "mom_12_1": c[-22] / c[-253] - 1 if len(c) >= 253 else np.nan,
            "rev_1m": -(c[-1] / c[-22] - 1) if len(c) >= 22 else np.nan,
            "prox_52w_high": c[-1] / hi[-252:].max() if len(c) >= 252 else np.nan,
            "low_vol_63": -np.std(np.diff(np.log(c[-64:])), ddof=1) * np.sqrt(252) if len(c) >= 64 else np.nan,
        }
        for name, value in expected.items():
            assert got[name][i] == pytest.approx(value, rel=1e-9, nan_ok=True), (name, r, j)
            checked += np.isfinite(value)
    assert np.isnan(got["mom_12_1"][cols == 1][0])  # the late listing on row 260 has < 253 bars
    assert checked > 150


def test_a_factor_for_day_d_is_the_same_whether_or_not_bars_after_d_exist():
    panel = market_with_gaps(seed=6)
    d = 330
    cols = np.arange(panel.shape[1])
    rows = np.full(len(cols), d)
    full = factors_at(panel, rows, cols)
    cut = Panel(dates=panel.dates[: d + 1], symbols=panel.symbols,
                **{f: getattr(panel, f)[: d + 1].copy() for f in ("open", "high", "low", "close", "volume")})
    rng = np.random.default_rng(0)
    scrambled = Panel(dates=panel.dates, symbols=panel.symbols, **{
        f: np.vstack([getattr(panel, f)[: d + 1], getattr(panel, f)[d + 1 :] * np.exp(rng.normal(0, 0.5, (89, 12)))])
        for f in ("open", "high", "low", "close", "volume")})
    for other in (factors_at(cut, rows, cols), factors_at(scrambled, rows, cols)):
        for name in (*FACTOR_COLUMNS, *SCORE_COLUMNS, "TechRating"):
            np.testing.assert_array_equal(other[name], full[name], err_msg=name)
    assert np.isfinite(full["mom_12_1"]).sum() >= 10


def planted_frame(seed: int = 3, days: int = 120, names: int = 150) -> pd.DataFrame:
    """Noise everywhere except `planted`, whose correlation with the 5-session return is 0.15 (Spearman ≈ 0.143)."""
    rng = np.random.default_rng(seed)
    n = days * names
    r = rng.standard_normal(n)
    frame = pd.DataFrame({
        "Date": np.repeat(pd.bdate_range("2024-01-01", periods=days).to_numpy(), names),
        "Symbol": pd.Categorical(np.tile([f"S{i}" for i in range(names)], days)),
        "fwd_ret_1d": rng.standard_normal(n), "fwd_ret_5d": r * 0.03,
        "planted": 0.15 * r + math.sqrt(1 - 0.15**2) * rng.standard_normal(n),
        "Signal": pd.Categorical(rng.choice(SIGNALS, n), categories=SIGNALS),
        "plan_target_session": np.zeros(n, np.int16), "plan_stop_session": np.zeros(n, np.int16),
    })
    for name in ("TechRating", *SCORE_COLUMNS, *FACTOR_COLUMNS):
        frame[name] = rng.standard_normal(n)
    return frame.sort_values(["Date", "TechRating"], ascending=[True, False]).reset_index(drop=True)


def test_the_report_ranks_a_planted_factor_first_and_calls_only_it_distinguishable():
    frame = planted_frame()
    columns = [*attributed_columns(frame.columns), "planted"]
    assert columns[:7] == ["TechRating", *SCORE_COLUMNS] and len(columns) == 12
    summary = summarize(frame, (1, 5), seed=0, columns=columns)
    table = summary["attribution"][5]
    first, control = table[0], table[-1]
    assert first["name"] == "planted" and first["rank"] == 1 and first["distinguishable"]
    standard_error = first["ic"]["std"] / math.sqrt(first["ic"]["days"])
    assert first["ic"]["mean"] == pytest.approx(6 / math.pi * math.asin(0.15 / 2), abs=3 * standard_error)
    assert [e["rank"] for e in table[:-1]] == list(range(1, 13))
    assert control["kind"] == "control" and control["rank"] is None
    assert [e["name"] for e in table if e["distinguishable"]] == ["planted"]
    assert not any(e["distinguishable"] for e in summary["attribution"][1])  # at 1 session it is noise too
    assert "5-session attribution: distinguishable from the shuffled control" in summary["attribution_verdicts"][1]
    assert f"planted (+, IC {first['ic']['mean']:+.4f}" in summary["attribution_verdicts"][1]
    ts = [abs(e["ic_minus_control"]["t"]) for e in table[:-1]]
    assert ts == sorted(ts, reverse=True)
    md = attribution_markdown(summary["attribution"])
    assert "| 1 | planted |" in md and "**yes, better**" in md and md.count("**yes") == 1
    records = attribution_records(json_ready(summary)["attribution"])
    assert [r["horizon"] for r in records] == [1] * 13 + [5] * 13 and records[13]["score"] == "planted"
    assert {r["score"] for r in records if r["distinguishable"]} == {"planted"}
