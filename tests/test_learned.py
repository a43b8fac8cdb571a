"""The learned rating: features, walk-forward fit without look-ahead, persistence, signal mapping, scan fallback.

Synthetic data built here (no store, no Prefect): a planted-signal frame for the model itself, and small random-walk
panels run through the evaluation's own chunk stage for the point-in-time tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from technic_v4.calendar import trading_days
from technic_v4.domain.panel import Panel
from technic_v4.domain.regime import Regime
from technic_v4.domain.scoring.learned import (FEATURE_PREFIX, FEATURES, RAW_FEATURES, classify_learned,
                                               day_percentile_ranks, feature_matrix, predict, signal_cutoffs)
from technic_v4.domain.scoring.score import SIGNALS
from technic_v4.pipeline.evaluation.chunk import evaluate_panel
from technic_v4.pipeline.evaluation.config import EvalConfig
from technic_v4.pipeline.evaluation.learned import WalkForward, oos_ic, run_learned
from technic_v4.pipeline.evaluation.learned_report import evaluate_learned
from technic_v4.pipeline.learned_models import latest_model, load_model, manifests, save_fit
from technic_v4.pipeline.learned_rating import apply_rating

SMALL = WalkForward(train_sessions=80, min_train_sessions=40, rows_per_day=80, lgbm_rounds=20)


def planted_frame(n_days: int = 140, n_symbols: int = 150, seed: int = 3, strength: float = 0.5) -> tuple:
    """An evaluation-shaped frame whose 21-session forward return is `strength` x the (standardised) RSI14 feature
    plus noise; every other feature is noise."""
    rng = np.random.default_rng(seed)
    days = trading_days(dt.date(2021, 1, 4), dt.date(2022, 12, 30))[:n_days]
    n = n_days * n_symbols
    frame = pd.DataFrame({
        "Date": np.repeat(np.array(days, dtype="datetime64[ns]"), n_symbols),
        "Symbol": pd.Categorical(np.tile([f"S{i:03d}" for i in range(n_symbols)], n_days)),
        "Regime": pd.Categorical(np.repeat(rng.choice(["TRENDING_UP", "SIDEWAYS+HIGH_VOL"], n_days), n_symbols)),
        "Signal": pd.Categorical(rng.choice(SIGNALS, n, p=[0.05, 0.1, 0.1, 0.05, 0.7]), categories=SIGNALS),
    })
    raw = rng.standard_normal((n, len(RAW_FEATURES))).astype(np.float32)
    for j, name in enumerate(RAW_FEATURES):
        frame[FEATURE_PREFIX + name] = raw[:, j]
    frame["TechRating"] = frame[FEATURE_PREFIX + "TechRating"].astype(float)
    signal = raw[:, RAW_FEATURES.index("RSI14")]
    for h in (5, 21):
        frame[f"fwd_ret_{h}d"] = 0.02 * (strength * signal + rng.standard_normal(n))
    return frame, days


def test_within_day_ranks_average_ties_and_leave_nan_in_the_middle():
    values = np.array([3.0, 1.0, 1.0, np.nan, 5.0, 2.0, 2.0, 7.0])
    day = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    got = day_percentile_ranks(values, day)
    expected = pd.Series(values).groupby(day).rank(method="average", pct=False)
    count = pd.Series(np.isfinite(values)).groupby(day).transform("sum")
    expected = ((expected - 0.5) / count - 0.5).fillna(0.0).to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-7)
    assert got[3] == 0.0 and got[1] == got[2] < got[0]


def test_planted_signal_is_recovered_out_of_sample():
    frame, days = planted_frame()
    scores, run = run_learned(frame, days, (21,), SMALL)
    assert FEATURE_PREFIX + "RSI14" not in scores
    day = scores["Date"].to_numpy()
    learned = oos_ic(day, scores["learned_21d"].to_numpy(np.float64), scores["fwd_ret_21d"].to_numpy(), 21)
    tech = oos_ic(day, scores["TechRating"].to_numpy(np.float64), scores["fwd_ret_21d"].to_numpy(), 21)
    assert learned["days"] >= 70  # every session from the first refit on is scored out of sample
    assert learned["mean"] > 0.3 and learned["t"] > 5  # planted: corr(rank(signal), rank(return)) ~ 0.44
    assert abs(tech["mean"]) < 0.05  # TechRating is a noise column here
    for kind in ("ridge", "lgbm"):
        assert oos_ic(day, scores[f"learned_{kind}_21d"].to_numpy(np.float64), scores["fwd_ret_21d"].to_numpy(),
                      21)["mean"] > 0.3
    ridge = run.fits[21][-1].models["ridge"]
    assert ridge.features[int(np.argmax(np.abs(ridge.coef)))] == "rank_RSI14"
    assert scores["LearnedSignal"].notna().all() and scores.loc[scores["LearnedRating"].isna(), "LearnedSignal"].eq(
        "Avoid").all()


def test_no_training_row_has_a_forward_window_reaching_the_day_it_scores():
    frame, days = planted_frame(n_days=150, n_symbols=60)
    for h in (5, 21):
        _, run = run_learned(frame.copy(), days, (h,), SMALL)
        fits = run.fits[h]
        assert len(fits) >= 3
        for fit in fits:
            assert fit.train_days.max() + h <= fit.refit_session - 1  # the gap: label closed before the scored day
            assert fit.train_days.min() >= fit.refit_session - 1 - h - SMALL.train_sessions + 1
            assert fit.labels_end < fit.applies_from
            assert pd.Timestamp(days[fit.train_days.max() + h]).date().isoformat() == fit.labels_end


def random_walk_panel(seed: int, n_symbols: int = 80, n_days: int = 420) -> tuple[Panel, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    dates = np.array(trading_days(dt.date(2022, 1, 3), dt.date(2024, 12, 31))[:n_days], dtype="datetime64[D]")
    drift = rng.normal(0.0, 0.001, n_symbols)
    close = 40.0 * np.exp(np.cumsum(drift + 0.02 * rng.standard_normal((n_days, n_symbols)), axis=0))
    open_ = close * np.exp(0.004 * rng.standard_normal((n_days, n_symbols)))
    high = np.maximum(open_, close) * (1 + np.abs(0.006 * rng.standard_normal((n_days, n_symbols))))
    low = np.minimum(open_, close) * (1 - np.abs(0.006 * rng.standard_normal((n_days, n_symbols))))
    volume = 5e6 * np.exp(0.3 * rng.standard_normal((n_days, n_symbols)))
    symbols = np.array([f"S{i:03d}" for i in range(n_symbols - 1)] + ["SPY"], dtype=object)
    panel = Panel(dates=dates, symbols=symbols, open=open_, high=high, low=low, close=close, volume=volume)
    reference = pd.DataFrame({"symbol": symbols, "name": symbols, "sector": "Technology", "industry": "Software",
                              "shares_outstanding": 1e9})
    return panel, reference


def truncated(panel: Panel, last_row: int) -> Panel:
    keep = slice(0, last_row + 1)
    return Panel(dates=panel.dates[keep], symbols=panel.symbols, open=panel.open[keep], high=panel.high[keep],
                 low=panel.low[keep], close=panel.close[keep], volume=panel.volume[keep])


WINDOW = 260
CONFIG = EvalConfig(lookback_days=WINDOW, horizons=(5,), learned_horizons=(5,), rating="learned", chunk_symbols=60)


def learned_fits(panel: Panel, reference: pd.DataFrame, n_eval: int):
    days = [pd.Timestamp(d).date() for d in panel.dates[WINDOW: WINDOW + n_eval]]
    scores, _ = evaluate_panel(panel, reference, None, days, CONFIG)
    assert FEATURE_PREFIX + "RSI14" in scores
    return run_learned(scores, days, (5,), SMALL)


def test_the_model_used_on_a_day_is_byte_identical_without_the_bars_after_it():
    panel, reference = random_walk_panel(seed=5)
    full_scores, full = learned_fits(panel, reference, n_eval=150)
    used = [f for f in full.fits[5] if f.refit_session < 150][2]  # a later refit: two earlier ones fed its selection
    d_row = WINDOW + used.refit_session  # the panel row of the day the model starts scoring
    assert str(panel.dates[d_row]) == used.applies_from
    short_scores, short = learned_fits(truncated(panel, d_row), reference, n_eval=used.refit_session + 1)
    same = {f.applies_from: f for f in short.fits[5]}[used.applies_from]
    assert same.blobs["ridge"] == used.blobs["ridge"] and same.blobs["lgbm"] == used.blobs["lgbm"]
    assert same.selection == used.selection and same.chosen == used.chosen
    assert same.models[same.chosen].cutoffs == used.models[used.chosen].cutoffs
    # and it scores day d the same way: the predictions on d agree to the bit
    on_d = lambda s: s[s["Date"] == pd.Timestamp(used.applies_from)].sort_values("Symbol")["learned_5d"].to_numpy()  # noqa: E731
    np.testing.assert_array_equal(on_d(short_scores), on_d(full_scores))
    assert full.fits[5][-1].refit_session > used.refit_session  # the full run went on refitting after d


def test_persisted_model_round_trips_with_its_manifest(tmp_path):
    frame, days = planted_frame(n_days=110, n_symbols=60)
    scores, run = run_learned(frame, days, (21,), SMALL)
    fits = run.fits[21]
    folders = [save_fit(tmp_path, fit, SMALL, "sim-test") for fit in fits]
    X = np.random.default_rng(0).standard_normal((50, len(FEATURES))).astype(np.float32)
    for fit, folder in zip(fits, folders):
        manifest = json.loads((folder / "manifest.json").read_text())
        assert {"train_start", "train_end", "labels_end", "applies_from", "features", "versions", "oos", "cutoffs",
                "selection", "walk_forward", "source"} <= set(manifest)
        assert manifest["versions"]["lightgbm"] and manifest["versions"]["scikit-learn"]
        assert manifest["walk_forward"] == json.loads(json.dumps(dataclasses.asdict(SMALL)))
        for kind in ("ridge", "lgbm"):
            loaded = load_model(folder, kind)
            np.testing.assert_array_equal(predict(loaded, X), predict(fit.models[kind], X))
            assert loaded.cutoffs == fit.models[kind].cutoffs
    first, last = fits[0], fits[-1]
    day_after = lambda iso: dt.date.fromisoformat(iso) + dt.timedelta(days=1)  # noqa: E731
    assert latest_model(tmp_path, 21, dt.date.fromisoformat(first.labels_end), "sim-test") is None  # label not closed
    got = latest_model(tmp_path, 21, day_after(first.labels_end), "sim-test")
    assert got.manifest["applies_from"] == first.applies_from
    assert latest_model(tmp_path, 21, dt.date(2030, 1, 1), "sim-test").manifest["applies_from"] == last.applies_from
    assert latest_model(tmp_path, 21, dt.date(2030, 1, 1), "another-source") is None
    (folders[-1] / "manifest.json").unlink()  # an unfinished write: the folder is ignored
    assert len(manifests(tmp_path, 21)) == len(fits) - 1


def test_signal_cutoffs_give_techratings_shares_of_the_training_window():
    rng = np.random.default_rng(1)
    predicted = rng.standard_normal(20_000)
    tech = rng.choice(SIGNALS, 20_000, p=[0.04, 0.12, 0.09, 0.03, 0.72])
    cutoffs = signal_cutoffs(predicted, tech)
    mapped = classify_learned(predicted, cutoffs)
    for s in SIGNALS:
        assert abs(np.mean(mapped == s) - np.mean(tech == s)) < 0.001
    assert (predicted[mapped == "Strong Long"].min() > predicted[mapped == "Long"].max()
            > predicted[mapped == "Avoid"].max() > predicted[mapped == "Short"].max()
            > predicted[mapped == "Strong Short"].max())
    assert classify_learned(np.array([np.nan]), cutoffs)[0] == "Avoid"
    none_short = signal_cutoffs(predicted, np.where(np.isin(tech, ["Short", "Strong Short"]), "Avoid", tech))
    assert not np.isin(classify_learned(predicted, none_short), ["Short", "Strong Short"]).any()


def scan_results(n: int = 300, seed: int = 2) -> pd.DataFrame:
    frame, _ = planted_frame(n_days=1, n_symbols=n, seed=seed)
    values = {name: frame[FEATURE_PREFIX + name].to_numpy(np.float64) for name in RAW_FEATURES}
    close = 50.0 + np.arange(n)
    results = pd.DataFrame({"Symbol": frame["Symbol"].astype(str), "Close": close, "ATR14": close * 0.02,
                            "SMA20": close / (1 + values["close_vs_sma20"] / 10), "SMA50": close, "SMA200": close,
                            "MACD_hist": values["macd_hist_vs_close"] * close, "Regime": "TRENDING_UP",
                            **{k: v for k, v in values.items() if not k.startswith(("close_vs", "macd"))}})
    return results.assign(Signal="Avoid", Entry=np.nan, Stop=np.nan, Target=np.nan, RewardRisk=np.nan)


def test_scan_without_a_model_says_so_and_keeps_techrating(tmp_path):
    results = scan_results().sort_values("TechRating", ascending=False, ignore_index=True)
    out, info = apply_rating(results, "learned", tmp_path, dt.date(2024, 6, 3), "sim-test", Regime("TRENDING_UP"))
    assert info["ran"] == "tech" and "no learned model" in info["note"] and "TechRating" in info["note"]
    assert out["LearnedRating"].isna().all()
    pd.testing.assert_frame_equal(out.drop(columns="LearnedRating"), results)
    tech, info = apply_rating(results, "tech", tmp_path, dt.date(2024, 6, 3), "sim-test", Regime("TRENDING_UP"))
    assert info["ran"] == "tech" and tech["LearnedRating"].isna().all()


def test_scan_with_a_model_fills_learned_rating_signals_and_plans(tmp_path):
    frame, days = planted_frame(n_days=110, n_symbols=150)
    _, run = run_learned(frame, days, (21,), SMALL)
    fit = run.fits[21][-1]
    save_fit(tmp_path, fit, SMALL, "sim-test")
    results = scan_results()
    as_of = dt.date.fromisoformat(fit.applies_from)
    out, info = apply_rating(results, "learned", tmp_path, as_of, "sim-test", Regime("TRENDING_UP"))
    assert info["ran"] == "learned" and info["applies_from"] == fit.applies_from and info["labels_end"] < str(as_of)
    assert out["LearnedRating"].notna().all() and out["LearnedRating"].is_monotonic_decreasing
    assert set(out["Signal"]) <= set(SIGNALS) and (out["Signal"] != "Avoid").any()
    longs = out[out["Signal"].isin(["Strong Long", "Long"])]
    assert (longs["Stop"] < longs["Entry"]).all() and (longs["Entry"] < longs["Target"]).all()
    # the planted feature drives the learned rating here too
    rank_corr = out["LearnedRating"].rank().corr(out["RSI14"].rank())
    assert rank_corr > 0.5


def test_evaluate_learned_persists_every_fit_and_reports_oos_tables(tmp_path):
    frame, days = planted_frame(n_days=110, n_symbols=100)
    config = EvalConfig(horizons=(5, 21), learned_horizons=(5, 21), rating="learned")
    scores, section = evaluate_learned(frame, days, config, tmp_path, "sim-test", SMALL)
    for h in (5, 21):
        table = section["tables"][h]["table"]
        assert set(table) == {"LearnedRating", "ridge", "lgbm", "TechRating", "control"}
        assert table["LearnedRating"]["mean"] > 0.2 and table["LearnedRating"]["minus_tech_t"] > 2
        assert len(manifests(tmp_path, h)) == section["refits"][h]["count"]
    assert "learned rating ranks better than TechRating" in section["verdicts"][1]
    with pytest.raises(Exception, match="learned_horizons"):
        EvalConfig.build(horizons=(1, 5), rating="learned")
