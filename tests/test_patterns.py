"""Pattern flags, weekly columns and relative strength vs independent per-symbol references (plain loops over one
symbol's valid bars, pandas resampling and TA-Lib), hand-made edge cases, chunk independence of the cross-sectional
step, and point-in-time equality of the evaluation's history with a scan as of the same day."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import talib

from technic_v4.calendar import trading_days
from technic_v4.domain.indicators import Bars, compute_latest
from technic_v4.domain.indicators.patterns import FLAG_COLUMNS, TREND_TEMPLATE_PER_SYMBOL
from technic_v4.domain.indicators.weekly import WEEKLY_COLUMNS, weekly_latest
from technic_v4.domain.panel import Panel
from technic_v4.domain.regime import SIDEWAYS, Regime
from technic_v4.domain.scoring.history import score_cells
from technic_v4.domain.scoring.relative_strength import add_relative_strength, relative_strength
from technic_v4.domain.scoring.score import score_panel

T, N = 330, 36
DATES = np.array(trading_days(dt.date(2022, 6, 1), dt.date(2024, 1, 31))[:T], dtype="datetime64[D]")
FLAT = {"tt_1", "tt_2", "tt_3", "tt_4", "tt_5", "tt_6", "tt_7"}
REGIME = Regime(trend=SIDEWAYS)


def random_panel(seed: int = 3) -> Panel:
    """Random walks with trends of both signs, volume bursts, halts, late listings, a delisting, short histories."""
    rng = np.random.default_rng(seed)
    drift = rng.normal(0, 0.003, N)
    close = 40 * np.exp(np.cumsum(drift + rng.normal(0, 0.018, (T, N)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.012, (T, N)))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, (T, N)))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, (T, N)))
    volume = rng.lognormal(13, 0.4, (T, N)) * np.where(rng.random((T, N)) < 0.05, 3.0, 1.0)
    missing = np.zeros((T, N), dtype=bool)
    missing[:, 1] = rng.random(T) < 0.08  # scattered halts
    missing[:60, 2] = True  # late listing
    missing[:140, 3] = True
    missing[T - 10 :, 4] = True  # delisted 10 sessions ago
    missing[: T - 30, 5] = True  # 30 bars
    missing[:, 6] = True  # no bar at all
    arrays = {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
    for a in arrays.values():
        a[missing] = np.nan
    symbols = np.array([f"S{i:02d}" for i in range(N)], dtype=object)
    return Panel(dates=DATES, symbols=symbols, **arrays)


PANEL = random_panel()


def reference_for(panel: Panel, sectors=("Tech", "Energy", "Health", "Unknown")) -> pd.DataFrame:
    n = len(panel.symbols)
    return pd.DataFrame({"symbol": panel.symbols, "name": "x", "sector": [sectors[i % len(sectors)] for i in range(n)],
                         "industry": "i", "shares_outstanding": 1e9})


# ---- the independent per-symbol reference ---------------------------------------------------------------------------


def valid(panel: Panel, j: int, upto: int | None = None):
    """(dates, o, h, l, c, v) of symbol j's valid bars on panel rows <= upto."""
    rows = np.arange(panel.shape[0]) if upto is None else np.arange(upto + 1)
    ok = np.isfinite(panel.open[rows, j]) & np.isfinite(panel.high[rows, j]) & np.isfinite(panel.low[rows, j]) \
        & np.isfinite(panel.close[rows, j])
    rows = rows[ok]
    return (panel.dates[rows], *(getattr(panel, f)[rows, j] for f in ("open", "high", "low", "close", "volume")))


def sma(c, n, end):  # mean of c[end-n+1 .. end]
    return np.nan if end - n + 1 < 0 else float(np.mean(c[end - n + 1 : end + 1]))


def ref_flags(o, h, lo, c, v) -> dict[str, bool]:
    i = len(c) - 1
    if i < 0:
        return {k: False for k in [*FLAG_COLUMNS, *FLAT]}
    avg50 = np.mean(v[i - 50 : i]) if i >= 50 else np.nan
    f = {
        "new_high_20d": i >= 20 and h[i] > max(h[i - 20 : i]),
        "new_low_20d": i >= 20 and lo[i] < min(lo[i - 20 : i]),
        "new_high_52w": i >= 251 and h[i] > max(h[i - 251 : i]),
        "new_low_52w": i >= 251 and lo[i] < min(lo[i - 251 : i]),
        "unusual_volume": bool(v[i] >= 2 * avg50),
        "gap_up": i >= 1 and o[i] > h[i - 1],
        "gap_down": i >= 1 and o[i] < lo[i - 1],
        "inside_day": i >= 1 and h[i] < h[i - 1] and lo[i] > lo[i - 1],
        "nr7": i >= 6 and all(h[i] - lo[i] < h[k] - lo[k] for k in range(i - 6, i)),
        "breakout": i >= 50 and c[i] > max(h[i - 20 : i]) and bool(v[i] >= 1.5 * avg50),
    }
    golden = death = False
    if i >= 204:
        for k in range(i - 4, i + 1):
            now, before = sma(c, 50, k) - sma(c, 200, k), sma(c, 50, k - 1) - sma(c, 200, k - 1)
            golden |= now > 0 >= before
            death |= now < 0 <= before
    f["golden_cross"], f["death_cross"] = golden, death
    s50, s150, s200 = sma(c, 50, i), sma(c, 150, i), sma(c, 200, i)
    s200_then = sma(c, 200, i - 21)
    hi52, lo52 = (max(h[i - 251 :]), min(lo[i - 251 :])) if i >= 251 else (np.nan, np.nan)
    f.update({"tt_1": c[i] > s150 and c[i] > s200, "tt_2": s150 > s200, "tt_3": s200 > s200_then,
              "tt_4": s50 > s150 and s50 > s200, "tt_5": c[i] > s50, "tt_6": c[i] >= 1.3 * lo52,
              "tt_7": c[i] >= 0.75 * hi52})
    return {k: bool(x) for k, x in f.items()}


def ref_weekly(dates, c) -> dict[str, float]:
    """TA-Lib on pandas' W-FRI resampling of the valid closes (a holiday Friday's week ends on its Thursday)."""
    weekly = pd.Series(c, index=pd.DatetimeIndex(dates)).resample("W-FRI").last().dropna().to_numpy()[-52:]
    return {"RSI14_w": talib.RSI(weekly, 14)[-1] if len(weekly) > 14 else np.nan,
            "SMA10w": weekly[-10:].mean() if len(weekly) >= 10 else np.nan,
            "SMA40w": weekly[-40:].mean() if len(weekly) >= 40 else np.nan}


@pytest.fixture(scope="module")
def scored():
    return score_panel(PANEL, reference_for(PANEL), REGIME).set_index("Symbol")


def test_latest_flags_match_the_per_symbol_reference(scored):
    for j, sym in enumerate(PANEL.symbols):
        want = ref_flags(*valid(PANEL, j)[1:])
        got = {k: bool(scored.at[sym, k]) for k in want}
        assert got == want, sym
    assert scored[FLAG_COLUMNS + TREND_TEMPLATE_PER_SYMBOL].dtypes.eq(bool).all()
    long_history = ["new_high_52w", "new_low_52w", "unusual_volume", "breakout", "golden_cross", "death_cross",
                    *TREND_TEMPLATE_PER_SYMBOL]
    assert not scored.loc["S05", long_history].any() and not scored.loc["S06", FLAG_COLUMNS].any()  # False, not NaN


def test_every_session_s_flags_match_the_reference_and_flags_do_fire():
    """The evaluation's history path (score_cells) on every session of the last 60, against the loops."""
    rows, cols = np.meshgrid(np.arange(T - 60, T), np.arange(N), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    got = score_cells(PANEL, rows, cols, {r: REGIME for r in range(T - 60, T)}, window=T)
    fired = dict.fromkeys([*FLAG_COLUMNS, *FLAT], 0)
    for k, (r, j) in enumerate(zip(rows, cols)):
        bars = valid(PANEL, j, r)
        if not np.isfinite(PANEL.close[r, j]):  # no bar that day: the values are the last bar's (a halt)
            continue
        want = ref_flags(*bars[1:])
        assert {f: bool(got[f][k]) for f in want} == want, (r, j)
        for f, x in want.items():
            fired[f] += x
    assert min(fired.values()) >= 2, fired  # every flag is exercised both ways


def test_weekly_columns_match_talib_on_resampled_closes(scored):
    for j, sym in enumerate(PANEL.symbols):
        dates, *_, c, _ = valid(PANEL, j)
        want = ref_weekly(dates, c) if len(c) else dict.fromkeys(WEEKLY_COLUMNS, np.nan)
        for k, w in want.items():
            assert scored.at[sym, k] == pytest.approx(w, rel=1e-9, nan_ok=True), (sym, k)
    assert np.isfinite(scored.loc["S00", WEEKLY_COLUMNS].astype(float)).all()
    assert np.isnan(scored.at["S05", "RSI14_w"])  # 30 bars = 7 weekly bars < 15


def test_holiday_friday_week_ends_on_thursday_and_the_partial_week_counts():
    # Good Friday 2023-04-07: no session; that week's bar is Thursday's. The panel ends on a Wednesday.
    days = np.array(trading_days(dt.date(2022, 3, 1), dt.date(2023, 4, 12)), dtype="datetime64[D]")
    assert np.datetime64("2023-04-07") not in days and days[-1] == np.datetime64("2023-04-12")  # a Wednesday
    close = 100 + np.arange(len(days), dtype=float) % 7 * 1.5 + np.arange(len(days)) * 0.1
    bars = Bars.from_panel(Panel(dates=days, symbols=np.array(["A"], dtype=object), **{
        f: close[:, None].copy() for f in ("open", "high", "low", "close", "volume")}))
    got = weekly_latest(bars)
    want = ref_weekly(days, close)
    assert {k: got[k][0] for k in WEEKLY_COLUMNS} == pytest.approx(want, rel=1e-12)
    thursday = close[days == np.datetime64("2023-04-06")][0]
    weekly = pd.Series(close, index=pd.DatetimeIndex(days)).resample("W-FRI").last()
    assert weekly[pd.Timestamp("2023-04-07")] == thursday
    assert got["SMA10w"][0] == pytest.approx(np.r_[weekly.to_numpy()[-10:-1], close[-1]].mean())  # Wed counts


def cross_path(n: int = 300) -> np.ndarray:
    """Falling for 230 bars, then rising hard: SMA50 crosses above SMA200 exactly once."""
    steps = np.where(np.arange(n) < 230, -0.002, 0.012)
    return 100 * np.exp(np.cumsum(steps))


def test_golden_cross_on_the_fifth_session_but_not_the_sixth():
    c = cross_path()
    diff = np.array([sma(c, 50, k) - sma(c, 200, k) for k in range(len(c))])
    cross = int(np.flatnonzero((diff[1:] > 0) & (diff[:-1] <= 0))[0]) + 1
    flags = {}
    for end in (cross - 1, cross, cross + 4, cross + 5):
        p = Panel(dates=DATES[: end + 1], symbols=np.array(["X"], dtype=object),
                  **{f: c[: end + 1, None].copy() for f in ("open", "high", "low", "close", "volume")})
        flags[end - cross] = score_panel(p, reference_for(p), REGIME)["golden_cross"].iloc[0]
    assert flags == {-1: False, 0: True, 4: True, 5: False}


# ---- relative strength --------------------------------------------------------------------------------------------


def ref_rs(composite: np.ndarray) -> np.ndarray:
    """Loop: average rank among finite values, p = (r-1)/(n-1), 1 + floor(98 p + 0.5)."""
    finite = composite[np.isfinite(composite)]
    n = len(finite)
    out = []
    for x in composite:
        if not np.isfinite(x):
            out.append(np.nan)
            continue
        below, equal = (finite < x).sum(), (finite == x).sum()
        r = below + (equal + 1) / 2
        out.append(50.0 if n == 1 else 1 + np.floor(98 * (r - 1) / (n - 1) + 0.5))
    return np.array(out)


def test_rs_rating_sector_ranks_against_loops_with_ties():
    rng = np.random.default_rng(9)
    n = 240
    legs = {k: np.round(rng.normal(0.05, 0.2, n), 2) for k in ("ret_63d", "ret_126d", "ret_189d", "ret_252d")}
    legs["ret_63d"][:20] = legs["ret_63d"][20:40]  # whole duplicated rows: ties
    for k in ("ret_126d", "ret_189d", "ret_252d"):
        legs[k][:20] = legs[k][20:40]
    legs["ret_252d"][40:45] = np.nan
    day = np.repeat([0, 1], n // 2)
    sector = np.array(["A", "B", "C", "Unknown"], dtype=object)[rng.integers(0, 4, n)]
    market = np.where(day == 0, 0.02, -0.01)
    got = relative_strength(legs, sector, day, market)
    # (the same summation order as the module: legs rounded to cents make exact ties that another order would split)
    comp = 0.4 * legs["ret_63d"] + 0.2 * legs["ret_126d"] + 0.2 * legs["ret_189d"] + 0.2 * legs["ret_252d"]
    for d in (0, 1):
        at = day == d
        want = ref_rs(comp[at])
        np.testing.assert_array_equal(got["RS_rating"][at], want)
        rating, sec = want, sector[at]
        medians = {s: np.nanmedian(rating[sec == s]) for s in ("A", "B", "C")}
        for k in np.flatnonzero(at):
            s = sector[k]
            if s == "Unknown":
                assert np.isnan(got["sector_rank"][k]) and np.isnan(got["rank_in_sector"][k])
                continue
            assert got["sector_rank"][k] == 1 + sum(m > medians[s] for m in medians.values())
            mine = comp[at & (sector == s)]
            if np.isnan(comp[k]):
                assert np.isnan(got["rank_in_sector"][k])
            else:  # 1 + how many in the sector are stronger: ties share the best rank
                assert got["rank_in_sector"][k] == 1 + (mine[np.isfinite(mine)] > comp[k]).sum()
    np.testing.assert_allclose(got["rs_vs_market_63d"], legs["ret_63d"] - market)
    assert got["RS_rating"][np.isfinite(comp)].min() == 1 and np.nanmax(got["RS_rating"]) == 99
    assert (got["RS_rating"][:20] == got["RS_rating"][20:40]).all()  # tied rows share a rating


def test_cross_sectional_step_does_not_depend_on_chunking(scored):
    ref = reference_for(PANEL)
    whole = add_relative_strength(score_panel(PANEL, ref, REGIME), 0.01).set_index("Symbol")
    chunks = [score_panel(PANEL.take_columns(c), ref, REGIME) for c in np.array_split(np.arange(N), 3)]
    joined = add_relative_strength(pd.concat(chunks, ignore_index=True), 0.01).set_index("Symbol").loc[whole.index]
    cols = ["RS_rating", "rs_vs_market_63d", "sector_rank", "rank_in_sector", "tt_8", "tt_count", "trend_template"]
    pd.testing.assert_frame_equal(joined[cols], whole[cols])
    assert whole["RS_rating"].notna().sum() >= 25 and whole["trend_template"].any()
    assert (whole["tt_count"] == whole[[f"tt_{i}" for i in range(1, 9)]].sum(axis=1)).all()


def test_reused_rows_get_todays_relative_strength():
    from technic_v4.pipeline.rescore import RescorePlan, assemble_results

    ref = reference_for(PANEL)
    whole = add_relative_strength(score_panel(PANEL, ref, REGIME), 0.0)
    scored_now = score_panel(PANEL.take_columns(np.arange(20)), ref, REGIME)
    stale = whole[whole["Symbol"].isin(PANEL.symbols[20:])].assign(RS_rating=1.0, sector_rank=9.0, fingerprint=0)
    fingerprints = pd.Series(0, index=PANEL.symbols, name="fingerprint")
    plan = RescorePlan(list(PANEL.symbols[:20]), stale, fingerprints, np.zeros(20, dtype=bool))
    market = np.full(T, 100.0)
    got = assemble_results(scored_now, plan, market).set_index("Symbol").loc[whole["Symbol"]]
    np.testing.assert_array_equal(got["RS_rating"].to_numpy(), whole["RS_rating"].to_numpy())
    np.testing.assert_array_equal(got["sector_rank"].to_numpy(), whole["sector_rank"].to_numpy())
    assert got["new_high_20d"].dtype == bool


# ---- point in time ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["atr", "structure"])
def test_history_gives_the_scan_as_of_each_day(rule):
    window = 280
    days = [T - 41, T - 17, T - 1]  # 17 sessions back is a mid-week day: a partial weekly bar
    rows = np.repeat(days, N)
    cols = np.tile(np.arange(N), len(days))
    cells = score_cells(PANEL, rows, cols, {d: REGIME for d in days}, window, plan_rule=rule)
    for d in days:
        p = Panel(dates=PANEL.dates[d - window + 1 : d + 1], symbols=PANEL.symbols,
                  **{f: getattr(PANEL, f)[d - window + 1 : d + 1] for f in ("open", "high", "low", "close", "volume")})
        scan = score_panel(p, reference_for(p), REGIME, plan_rule=rule).set_index("Symbol").loc[PANEL.symbols]
        at = rows == d
        for k in [*FLAG_COLUMNS, *TREND_TEMPLATE_PER_SYMBOL, "PlanOK"]:
            np.testing.assert_array_equal(cells[k][at], scan[k].to_numpy(), err_msg=f"{k} day {d}")
        for k in [*WEEKLY_COLUMNS, "ret_252d", "Stop", "Target", "RewardRisk"]:
            np.testing.assert_allclose(cells[k][at], scan[k].to_numpy(dtype=float), rtol=1e-9, equal_nan=True,
                                       err_msg=f"{k} day {d}")
        assert list(cells["PlanRule"][at]) == list(scan["PlanRule"]), d


def test_bench_columns_measures_every_piece_on_a_small_panel():
    from benchmarks import bench_columns

    r = bench_columns.run(quick=True, n_symbols=300)
    assert set(r["pieces_s"]) >= {"weekly columns", "cross-sectional step (RS, sector ranks, tt_8)"}
    assert r["added_s"] == pytest.approx(sum(r["pieces_s"].values())) and min(r["pieces_s"].values()) >= 0
    assert r["pieces_s"]["weekly columns"] > 0 and r["score_panel_s"] > 0  # timings only: no ratio on a shared box
    assert "| **added, total** |" in bench_columns.markdown(r)


def fixture_panel() -> Panel:
    """The committed real S&P files (tests/fixtures/sp500), raw: empty fields, late starts, three Good Fridays."""
    from pathlib import Path

    files = sorted((Path(__file__).parent / "fixtures" / "sp500").glob("*.csv.gz"))
    frames = {f.name.split(".")[0]: pd.read_csv(f, index_col="Date", parse_dates=["Date"]) for f in files}
    dates = pd.DatetimeIndex(sorted(set().union(*(x.index for x in frames.values()))))
    fields = {k.lower(): np.column_stack([x[k].reindex(dates).to_numpy(dtype=float) for x in frames.values()])
              for k in ("Open", "High", "Low", "Close", "Volume")}
    return Panel(dates=dates.to_numpy().astype("datetime64[D]"), symbols=np.array(list(frames), dtype=object),
                 **fields)


def test_real_fixture_flags_and_weekly_columns_match_the_references():
    panel = fixture_panel()
    assert np.datetime64("2015-04-03") not in panel.dates and len(panel.symbols) >= 30  # a Good Friday inside
    scored = score_panel(panel, reference_for(panel), REGIME).set_index("Symbol")
    for j, sym in enumerate(panel.symbols):
        dates, o, h, lo, c, v = valid(panel, j)
        assert {k: bool(scored.at[sym, k]) for k in ref_flags(o, h, lo, c, v)} == ref_flags(o, h, lo, c, v), sym
        for k, w in ref_weekly(dates, c).items():
            assert scored.at[sym, k] == pytest.approx(w, rel=1e-9, nan_ok=True), (sym, k)


def test_fast_series_equal_the_generic_sliding_windows():
    """The rolling overrides (block extremes, shifted cached SMAs, cross counts) == WindowIndicator's own series."""
    from technic_v4.domain.indicators import HighestHigh, LaggedSMA, LowestLow, PriorMinRange, SMACross
    from technic_v4.domain.indicators.base import WindowIndicator

    bars = Bars.from_panel(PANEL)
    for ind in (HighestHigh(251, skip=1), LowestLow(20, skip=1), HighestHigh(10), PriorMinRange(6), LaggedSMA(200, 21)):
        np.testing.assert_array_equal(ind.series(bars), WindowIndicator.series(ind, bars), err_msg=repr(ind))
    cross = SMACross()
    fast = cross.series(bars)
    window = cross.window
    for t in range(window - 1, T):  # the latest-value path on every prefix
        last = cross._crosses(cross._diffs(bars.close[t - window + 1 : t + 1]))
        np.testing.assert_array_equal(np.c_[fast[0][t], fast[1][t]], np.c_[last[0], last[1]], err_msg=str(t))
    assert np.nansum(fast[0]) > 0 and np.nansum(fast[1]) > 0
