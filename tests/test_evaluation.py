"""Evaluation statistics on synthetic panels: no edge vs planted momentum, trade-plan outcomes, t-stats, shuffling.

The panels are built here (no store, no Prefect): random walks whose only structure is what the test plants.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from technic_v4.calendar import trading_days
from technic_v4.domain.panel import Panel
from technic_v4.pipeline.evaluation.chunk import evaluate_panel
from technic_v4.pipeline.evaluation.config import EvalConfig
from technic_v4.pipeline.evaluation.forward import plan_outcome
from technic_v4.pipeline.evaluation.rank_ic import DayGrid, HorizonGrid, newey_west_t, within_day_ranks
from technic_v4.pipeline.evaluation.stats import summarize

N_SYMBOLS, N_EVAL, WINDOW = 400, 160, 260


def synthetic_market(seed: int, drift_std: float) -> tuple[Panel, pd.DataFrame]:
    """Random walks (2 % daily vol); each symbol's constant daily drift ~ N(0, drift_std) is the planted edge."""
    rng = np.random.default_rng(seed)
    dates = np.array(trading_days(dt.date(2022, 1, 3), dt.date(2024, 12, 31))[: WINDOW + N_EVAL + 30],
                     dtype="datetime64[D]")
    t, n = len(dates), N_SYMBOLS
    drift = rng.normal(0.0, drift_std, n) if drift_std else np.zeros(n)
    close = 50.0 * np.exp(np.cumsum(drift + 0.02 * rng.standard_normal((t, n)), axis=0))
    open_ = close * np.exp(0.004 * rng.standard_normal((t, n)))
    high = np.maximum(open_, close) * (1 + np.abs(0.006 * rng.standard_normal((t, n))))
    low = np.minimum(open_, close) * (1 - np.abs(0.006 * rng.standard_normal((t, n))))
    volume = 5e6 * np.exp(0.3 * rng.standard_normal((t, n)))
    symbols = np.array([f"S{i:03d}" for i in range(n - 1)] + ["SPY"], dtype=object)
    panel = Panel(dates=dates, symbols=symbols, open=open_, high=high, low=low, close=close, volume=volume)
    reference = pd.DataFrame({"symbol": symbols, "name": symbols, "sector": "Technology", "industry": "Software",
                              "shares_outstanding": 1e9})
    return panel, reference


def evaluate(panel: Panel, reference: pd.DataFrame) -> tuple[pd.DataFrame, dict, EvalConfig]:
    config = EvalConfig(lookback_days=WINDOW, horizons=(1, 5, 21), chunk_symbols=150)
    days = [pd.Timestamp(d).date() for d in panel.dates[WINDOW : WINDOW + N_EVAL]]
    scores, info = evaluate_panel(panel, reference, None, days, config)
    return scores, info, config


@pytest.fixture(scope="module")
def no_edge():
    return evaluate(*synthetic_market(seed=11, drift_std=0.0))


@pytest.fixture(scope="module")
def momentum():
    return evaluate(*synthetic_market(seed=12, drift_std=0.002))


def test_no_edge_market_control_and_rating_are_centred_on_zero(no_edge):
    scores, _, config = no_edge
    assert scores["Date"].nunique() == N_EVAL and len(scores) == N_EVAL * N_SYMBOLS  # everything passes the prescreen
    summary = summarize(scores, config.horizons, seed=0)
    for h, s in summary["horizons"].items():
        assert abs(s["control_ic"]["mean"]) < 0.01, (h, s["control_ic"])
        assert abs(s["control_ic"]["t"]) < 2.5, (h, s["control_ic"])
        assert abs(s["ic"]["mean"]) < 0.02, (h, s["ic"])  # random walks: past trend says nothing
    assert any("NOT statistically distinguishable" in v for v in summary["verdicts"])


def test_planted_momentum_gives_a_clearly_positive_ic_and_the_control_does_not(momentum):
    scores, _, config = momentum
    summary = summarize(scores, config.horizons, seed=0)
    s21 = summary["horizons"][21]
    assert s21["ic"]["mean"] > 0.1 and s21["ic"]["t"] > 4, s21["ic"]
    assert abs(s21["control_ic"]["mean"]) < 0.02
    assert s21["distinguishable"] and "better than no skill" in summary["verdicts"][-1]
    assert s21["spread"]["mean"] > 0.01 and s21["spread"]["t"] > 3  # top decile beats the bottom one
    by_decile = s21["by_decile"]["mean"]
    assert by_decile.loc[10.0] > by_decile.loc[1.0]
    by_signal = s21["by_signal"]
    assert by_signal.loc["Strong Long", "mean_excess"] > 0 > by_signal.loc["Strong Short", "mean_excess"]
    # Attribution on the same rows: a constant drift per symbol is what 12-1 momentum measures.
    by_name = {e["name"]: e for e in summary["attribution"][21]}
    assert by_name["TechRating"]["ic"] == s21["ic"] and by_name["shuffled control"]["ic"] == s21["control_ic"]
    assert by_name["mom_12_1"]["distinguishable"] and by_name["mom_12_1"]["ic"]["mean"] > 0.1
    assert by_name["mom_12_1"]["rows"] == len(scores) - scores["fwd_ret_21d"].isna().sum()  # defined on every row


def test_forward_returns_and_plan_outcomes_match_a_plain_loop(momentum):
    scores, _, _ = momentum
    panel, _ = synthetic_market(seed=12, drift_std=0.002)
    row_of = {d: i for i, d in enumerate(panel.dates)}
    col_of = {s: j for j, s in enumerate(panel.symbols)}
    sample = scores[scores["Signal"].astype(str) != "Avoid"].sample(300, random_state=1)
    for rec in sample.itertuples(index=False):
        r, j = row_of[np.datetime64(rec.Date, "D")], col_of[rec.Symbol]
        for h in (1, 5, 21):
            expected = panel.close[r + h, j] / panel.close[r, j] - 1 if r + h < len(panel.dates) else np.nan
            assert getattr(rec, f"fwd_ret_{h}d") == pytest.approx(expected, rel=1e-12, nan_ok=True)
        long_ = rec.Signal in ("Long", "Strong Long")
        first_target = first_stop = 0
        for k in range(1, 22):  # session by session, as a trader would check the plan
            if r + k >= len(panel.dates):
                break
            hi, lo = panel.high[r + k, j], panel.low[r + k, j]
            reached_target = hi >= rec.Target if long_ else lo <= rec.Target
            reached_stop = lo <= rec.Stop if long_ else hi >= rec.Stop
            first_target, first_stop = (k if reached_target else 0), (k if reached_stop else 0)
            if reached_target or reached_stop:  # the plan is decided on its first event
                break
        assert (rec.plan_target_session, rec.plan_stop_session) == (first_target, first_stop)


def test_plan_outcome_reads_ties_as_stop_and_respects_the_horizon():
    target = np.array([3, 0, 2, 6, 0])
    stop = np.array([0, 4, 2, 0, 0])
    assert list(plan_outcome(target, stop, 5)) == ["target", "stop", "stop", "neither", "neither"]
    assert list(plan_outcome(target, stop, 2)) == ["neither", "neither", "stop", "neither", "neither"]


def test_newey_west_widens_overlapping_series_and_matches_iid_without_lags():
    rng = np.random.default_rng(3)
    iid = rng.standard_normal(2000) + 0.05
    plain = iid.mean() / (iid.std(ddof=0) / np.sqrt(iid.size))
    assert newey_west_t(iid, 0) == pytest.approx(plain)
    overlapping = np.convolve(rng.standard_normal(2020), np.ones(21), "valid")[:2000] + 1.0  # 21-day sums overlap
    assert newey_west_t(overlapping, 20) < 0.5 * newey_west_t(overlapping, 0)


def test_within_day_ranks_and_the_shuffled_control():
    days = np.repeat(np.arange(5), 40)
    values = np.random.default_rng(4).standard_normal(200)
    ranks = within_day_ranks(days, values)
    for d in range(5):
        at = days == d
        np.testing.assert_array_equal(ranks[at], pd.Series(values[at]).rank().to_numpy())
    by_rating = np.lexsort((-values, days))  # rows in the evaluation's order: day, then rating descending
    np.testing.assert_array_equal(within_day_ranks(days[by_rating], values[by_rating]), ranks[by_rating])
    grid = DayGrid.of(days)
    returns = grid.put(values)
    returns[0, :3] = np.nan  # rows without a forward return are left out of the control's ranking too
    keep = np.isfinite(returns)
    centred = HorizonGrid.of(grid, grid.take(returns), h=1, seed=1).control.centred_ranks(keep)
    control = np.where(keep, centred + (keep.sum(1, keepdims=True) + 1) / 2, np.nan)
    assert sorted(control[0, 3:]) == list(range(1, 38)) and np.isnan(control[0, :3]).all()
    for d in range(1, 5):  # a permutation of 1..40 on each day, not the identity
        assert sorted(control[d]) == list(range(1, 41))
    assert not np.array_equal(control[1], np.arange(1, 41)) and not np.array_equal(grid.take(control)[40:], ranks[40:])


def test_updown_volume_rolling_series_equals_the_window_reduce():
    from technic_v4.domain.indicators import Bars, UpDownVolume, WindowIndicator

    rng = np.random.default_rng(5)
    t, n = 120, 30
    close = 50 * np.exp(np.cumsum(0.02 * rng.standard_normal((t, n)), axis=0))
    volume = 1e6 * np.exp(rng.standard_normal((t, n)))
    close[:40, :5] = np.nan  # late listings
    volume[70, 7] = np.nan  # a valid bar without volume
    volume[90:, 8] = 0.0  # no volume at all: 0/0 is undefined, not a number
    bars = Bars.from_arrays(close, close, close, close, volume)
    indicator = UpDownVolume(20)
    fast = indicator.series(bars)
    reference = WindowIndicator.series(indicator, bars)  # the generic sliding-window path
    np.testing.assert_allclose(fast, reference, rtol=1e-9, atol=1e-12, equal_nan=True)
    assert np.isnan(fast[70:90, 7]).all() and np.isfinite(fast[69, 7]) and np.isnan(fast[-1, 8])
    np.testing.assert_allclose(fast[-1], indicator.latest(bars), rtol=1e-9, equal_nan=True)


def test_flow_publishes_report_plots_and_artifacts(prefect_api, sim_env, monkeypatch):
    """A small run of the `evaluate` flow (300 simulated names, 5 sessions): files, artifacts, the deployment's params."""
    import json
    from pathlib import Path

    import yaml
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from technic_v4.evaluation import run_evaluation

    monkeypatch.setenv("TECHNIC_SIM_SYMBOLS", "300")
    scores, summary = run_evaluation(start=dt.date(2026, 3, 2), end=dt.date(2026, 3, 6), lookback_days=260,
                                     horizons="1,5")
    assert sorted(scores["Date"].dt.date.unique()) == trading_days(dt.date(2026, 3, 2), dt.date(2026, 3, 6))
    paths = summary["paths"]
    assert len(pd.read_parquet(paths["scores"])) == len(scores)
    assert all(Path(p).stat().st_size > 10_000 for p in paths["plots"])  # deciles.png, ic.png
    report = Path(paths["report"]).read_text()
    assert report.startswith("# Walk-forward evaluation 2026-03-02 .. 2026-03-06 (SIMULATED)") and "rank IC" in report
    assert json.loads((Path(paths["folder"]) / "summary.json").read_text())["verdicts"] == summary["verdicts"]
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[summary["meta"]["flow_run_id"]])))
    by_key = {a.key: a for a in arts}
    assert by_key["evaluation-report"].data == summary["report_md"]
    deciles = json.loads(by_key["evaluation-deciles"].data)
    assert [row["index"] for row in deciles] == [float(k) for k in range(1, 11)]
    attribution = json.loads(by_key["evaluation-attribution"].data)
    scored = {"TechRating", "TrendScore", "MomentumScore", "VolumeScore", "VolatilityScore", "OscillatorScore",
              "BreakoutScore", "mom_12_1", "rev_1m", "prox_52w_high", "low_vol_63", "shuffled control"}
    assert {r["score"] for r in attribution} == scored and {r["horizon"] for r in attribution} == {1, 5}
    saved = json.loads((Path(paths["folder"]) / "summary.json").read_text())["attribution"]
    assert [e["name"] for e in saved["5"]] == [r["score"] for r in attribution if r["horizon"] == 5]
    assert "## Attribution" in report and "| shuffled control |" in report
    deployments = yaml.safe_load((Path(__file__).parents[1] / "prefect.yaml").read_text())["deployments"]
    monthly = next(d for d in deployments if d["name"] == "monthly")
    assert monthly["entrypoint"] == "flows.evaluate:evaluate"
    assert EvalConfig(**monthly["parameters"]["config"]).horizons == EvalConfig().horizons == (1, 5, 21, 63)


def test_a_horizon_without_forward_returns_gets_no_verdict(no_edge):
    scores, _, _ = no_edge
    late = scores.assign(fwd_ret_21d=np.nan)  # as when the data ends within 21 sessions of every evaluated day
    summary = summarize(late, (1, 21), seed=0)
    assert summary["verdicts"][1].startswith("21-session: no verdict — 0 day(s)")
    assert "rank IC" in summary["verdicts"][0] and summary["horizons"][21]["rows"] == 0


def test_finish_sorts_like_a_plain_concat_and_keeps_categories():
    from technic_v4.pipeline.evaluation.chunk import finish

    rng = np.random.default_rng(3)
    symbols = [f"S{i}" for i in range(40)]
    dates = np.array(trading_days(dt.date(2024, 1, 2), dt.date(2024, 2, 28)), dtype="datetime64[s]")

    def chunk(cols):
        day = np.repeat(np.arange(len(dates)), len(cols))
        col = np.tile(cols, len(dates))
        rating = rng.normal(50, 10, len(day)).round(0)  # ties, so Symbol breaks them
        rating[rng.random(len(day)) < 0.1] = np.nan  # NaN ratings sort last within the day
        return pd.DataFrame({"Date": dates[day], "Symbol": pd.Categorical.from_codes(col, categories=symbols),
                             "TechRating": rating, "Signal": pd.Categorical(np.where(rating > 55, "Long", "Avoid"),
                                                                           categories=["Long", "Avoid"]),
                             "fwd": rng.normal(0, 1, len(day)).astype(np.float32)})

    frames = [chunk(np.arange(0, 15)), chunk(np.arange(15, 30)), chunk(np.arange(30, 40)).iloc[:0], chunk(np.arange(30, 40))]
    plain = pd.concat(frames, ignore_index=True)
    expected = plain.assign(neg=-plain["TechRating"], code=plain["Symbol"].cat.codes).sort_values(
        ["Date", "neg", "code"], na_position="last", kind="stable").drop(columns=["neg", "code"]).reset_index(drop=True)
    out = finish(frames)
    assert frames == []  # the chunks are given up column by column
    pd.testing.assert_frame_equal(out, expected)
    assert out["Symbol"].dtype == plain["Symbol"].dtype and out["Signal"].dtype == plain["Signal"].dtype
    assert out["fwd"].dtype == np.float32
    # the first row of each day is its best rating; NaN ratings come last within their day
    firsts = out.groupby("Date", sort=False).head(1)
    best = plain.groupby("Date")["TechRating"].max()
    assert (firsts.set_index("Date")["TechRating"] == best).all()


def test_cross_sectional_columns_join_without_copying_the_rows_and_match_the_scan_rule():
    from types import SimpleNamespace

    from technic_v4.domain.indicators.patterns import TREND_TEMPLATE_PER_SYMBOL
    from technic_v4.domain.scoring.columns import LONG_RETURN_COLUMNS
    from technic_v4.domain.scoring.relative_strength import add_relative_strength
    from technic_v4.pipeline.evaluation.chunk import Prepared, add_cross_sectional, finish

    rng = np.random.default_rng(5)
    dates = np.array(trading_days(dt.date(2024, 3, 1), dt.date(2024, 3, 15)), dtype="datetime64[D]")
    symbols = [f"S{i}" for i in range(30)]
    day, col = np.repeat(np.arange(len(dates)), 30), np.tile(np.arange(30), len(dates))
    columns = {"Date": dates[day].astype("datetime64[s]"), "Symbol": pd.Categorical.from_codes(col, categories=symbols),
               "TechRating": rng.normal(50, 10, len(day)),
               **{c: rng.normal(0.05, 0.2, len(day)) for c in ("ret_63d", *LONG_RETURN_COLUMNS)},
               **{c: rng.random(len(day)) < 0.7 for c in TREND_TEMPLATE_PER_SYMBOL}}
    scores = finish([pd.DataFrame(columns)])
    reference = pd.DataFrame({"symbol": symbols, "sector": ["Tech", "Energy", ""] * 10})
    prepared = Prepared(job=SimpleNamespace(panel=SimpleNamespace(dates=dates)), prescreen={}, quarantine=pd.DataFrame(),
                        market_close=np.linspace(100, 110, len(dates)))
    out = add_cross_sectional(scores, prepared, reference)
    assert np.shares_memory(out["TechRating"].to_numpy(), scores["TechRating"].to_numpy())  # no copy of the rows
    assert out["Sector"].dtype == "category" and set(out["Sector"].cat.categories) == {"Tech", "Energy", "Unknown"}
    one_day = out[out["Date"] == out["Date"].iloc[0]].reset_index(drop=True)
    scan = add_relative_strength(one_day.drop(columns=["RS_rating", "sector_rank", "rank_in_sector"])
                                 .assign(Sector=one_day["Sector"].astype(object)), 0.0)
    for name in ("RS_rating", "sector_rank", "rank_in_sector", "tt_count"):  # one day equals the scan's own table
        np.testing.assert_array_equal(one_day[name].to_numpy(float), scan[name].to_numpy(float), err_msg=name)
    assert one_day.loc[one_day["Sector"] == "Unknown", "sector_rank"].isna().all()
