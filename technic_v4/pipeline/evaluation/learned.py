"""The learned rating fitted walk-forward over an evaluation's rows (plain functions; no Prefect, no Ray).

Sessions are the evaluated days, in order; a row's session index t and horizon h put the end of its forward window at
session t + h. A model refit on session i (the first evaluated session of each calendar month) is trained only on rows
with t + h <= i - 1 — their forward window closed before i, so no label overlaps the days the model scores — within a
rolling window of `train_sessions` such sessions, and scores the sessions [i, next refit). The first refit needs
`min_train_sessions` sessions of labels. A last model is fitted after the last evaluated session (for the scan).

Training rows are subsampled to `rows_per_day` per session, chosen by a hash of (symbol, date), so the same rows are
picked whatever else the history holds. Target: the forward return's within-day percentile rank (centred on 0).

Both models are fitted at every refit: a ridge (scikit-learn RidgeCV, alphas by generalised cross-validation) on the
within-day ranks and the regime, and LightGBM (gradient-boosted trees, deterministic mode) on every feature. Which one
the LearnedRating uses from session i is decided by a rule fixed before any figure was seen: the model whose own
walk-forward predictions had the higher mean daily rank IC on the sessions whose labels were known at i (t + h <= i-1,
the last `train_sessions` of them — training folds, never the sessions scored from i); ridge, the simpler, until
`min_selection_sessions` such sessions exist and on ties.
"""

from __future__ import annotations

import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from technic_v4.domain.scoring.learned import (DEFAULT_HORIZON, FEATURE_PREFIX, FEATURES, RANK_FEATURES, RAW_FEATURES,
                                               REGIME_FEATURES, LearnedModel, classify_learned, day_percentile_ranks,
                                               feature_matrix, model_columns, signal_cutoffs)
from technic_v4.domain.scoring.score import AVOID
from technic_v4.pipeline.evaluation.rank_ic import RankIC


@dataclass(frozen=True)
class WalkForward:
    """How the walk-forward fit runs (one home for its settings; the manifest records them)."""

    train_sessions: int = 252
    min_train_sessions: int = 126
    min_selection_sessions: int = 21
    rows_per_day: int = 120
    ridge_alpha: float = 100.0  # mild: ~40,000 rows of features with variance 1/12 give X'X diagonals ~3,000
    lgbm_rounds: int = 60
    lgbm_params: dict = field(default_factory=lambda: {
        "objective": "regression", "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 200,
        "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0, "seed": 0,
        "max_bin": 63, "deterministic": True, "force_row_wise": True, "verbose": -1,
    })  # fmt: skip
    # One LightGBM thread: on this shared 2-core box OpenMP's spin-waiting made 2 threads ~9x slower than 1 (30 rounds
    # of 24,000 rows: 17.9 s vs 2.0 s, measured under load); the scan's and evaluation's own threads use the cores.
    threads: int = 1
    horizon_workers: int = 2  # horizons fitted at once, one thread each (numpy and LightGBM release the GIL)


RIDGE_FEATURES = (*RANK_FEATURES, *REGIME_FEATURES)  # ranks are bounded; raw indicators have fat tails


@dataclass
class Fit:
    """One refit: the window it saw, both fitted models (serialized) and which one the rating uses."""

    horizon: int
    refit_session: int  # index of the first session it scores (len(sessions) for the final model)
    applies_from: str  # that session's date (the day after the last evaluated session for the final model)
    train_start: str
    train_end: str  # last training session
    labels_end: str  # the session the last training row's forward window closed (< applies_from)
    rows: int
    chosen: str
    selection: dict  # mean daily rank IC of each kind's walk-forward predictions on the known-label sessions
    models: dict[str, LearnedModel]
    blobs: dict[str, bytes]  # kind -> serialized model: the bytes persisted (the no-look-ahead test compares them)
    train_days: np.ndarray = field(repr=False, default_factory=lambda: np.array([], int))


def centred_target(fwd: np.ndarray, day: np.ndarray) -> np.ndarray:
    """The forward return's within-day percentile rank centred on 0; NaN where the return is NaN."""
    out = day_percentile_ranks(fwd, day).astype(np.float32)
    out[~np.isfinite(fwd)] = np.nan
    return out


def row_hash(symbols: pd.Categorical, dates: np.ndarray) -> np.ndarray:
    """A pseudo-random uint64 per row from (symbol, date) alone, so subsampling does not depend on other rows."""
    sym = np.array([zlib.crc32(str(s).encode()) for s in symbols.categories], dtype=np.uint64)[symbols.codes]
    x = sym * np.uint64(0x9E3779B97F4A7C15) + dates.astype("datetime64[D]").astype(np.int64).astype(np.uint64)
    x ^= x >> np.uint64(31)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    return x ^ (x >> np.uint64(29))


def sampled_rows(day: np.ndarray, key: np.ndarray, ok: np.ndarray, per_day: int) -> np.ndarray:
    """(n,) bool: among rows with `ok`, the `per_day` smallest keys of each session (the training sample; which rows
    a refit uses is this mask within its window, so the choice never depends on the window)."""
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort((key[idx], day[idx]))]
    d = day[order]
    first = np.r_[0, np.flatnonzero(d[1:] != d[:-1]) + 1]
    position = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
    mask = np.zeros(len(day), bool)
    mask[order[position < per_day]] = True
    return mask


def _fit_ridge(X: np.ndarray, y: np.ndarray, spec: WalkForward) -> tuple[LearnedModel, bytes]:
    from sklearn.linear_model import Ridge

    cols = model_columns(RIDGE_FEATURES)
    model = Ridge(alpha=spec.ridge_alpha, solver="cholesky").fit(X[:, cols].astype(np.float64), y.astype(np.float64))
    coef = np.asarray(model.coef_, dtype=np.float64)
    learned = LearnedModel(kind="ridge", features=RIDGE_FEATURES, cutoffs={}, intercept=float(model.intercept_),
                           coef=coef, manifest={"alpha": float(model.alpha)})
    blob = np.concatenate([[learned.intercept], coef]).tobytes()
    return learned, blob


def _fit_lgbm(X: np.ndarray, y: np.ndarray, spec: WalkForward) -> tuple[LearnedModel, bytes]:
    import lightgbm as lgb

    params = {**spec.lgbm_params, "num_threads": spec.threads}
    data = lgb.Dataset(X, label=y, feature_name=list(FEATURES), free_raw_data=True)
    booster = lgb.train(params, data, num_boost_round=spec.lgbm_rounds)
    text = booster.model_to_string()
    return LearnedModel(kind="lgbm", features=FEATURES, cutoffs={}, booster=booster), text.encode()


FITTERS = {"ridge": _fit_ridge, "lgbm": _fit_lgbm}


def daily_ic(pred: np.ndarray, target: np.ndarray, day: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(sessions, rank IC of `pred` vs `target` on each) over the rows given: the evaluation's own rank IC."""
    rows = pd.DataFrame({"Date": day, f"fwd_ret_{horizon}d": target})
    _, detail = RankIC(rows, (horizon,)).column(pred, detail=True)[horizon]
    ic = detail["ic_series"]
    return ic.index.to_numpy(dtype=np.int64), ic.to_numpy(dtype=np.float64)


def refit_sessions(sessions: np.ndarray, horizon: int, spec: WalkForward) -> list[int]:
    """First session of each month with at least min_train_sessions of known labels before it."""
    months = sessions.astype("datetime64[M]")
    starts = np.flatnonzero(np.r_[True, months[1:] != months[:-1]])
    return [int(i) for i in starts if i - horizon >= spec.min_train_sessions]


def walk_forward(X: np.ndarray, day: np.ndarray, sessions: np.ndarray, target: np.ndarray, tech_signal: np.ndarray,
                 key: np.ndarray, horizon: int, spec: WalkForward = WalkForward(),
                 next_session: np.datetime64 | None = None) -> tuple[dict[str, np.ndarray], list[Fit]]:
    """({"learned"|"ridge"|"lgbm": walk-forward prediction per row, NaN before the first refit; "signal": the
    learned Signal per row (Avoid without a model)}, the fits in order).

    X: (n, len(FEATURES)) float32; day: session index per row (into `sessions`); target: centred_target; tech_signal:
    TechRating's Signal per row (for the cut-offs); key: row_hash. `next_session` dates the final model."""
    n_sessions = len(sessions)
    preds = {k: np.full(len(day), np.nan, dtype=np.float32) for k in ("learned", *FITTERS)}
    signals = np.full(len(day), AVOID, dtype=object)
    ic_by_day = {k: np.full(n_sessions, np.nan) for k in FITTERS}
    refits = refit_sessions(sessions, horizon, spec)
    final = n_sessions - horizon >= spec.min_train_sessions
    points = refits + ([n_sessions] if final and (not refits or refits[-1] != n_sessions) else [])
    fits: list[Fit] = []
    row_order = np.argsort(day, kind="stable")
    bounds = np.searchsorted(day[row_order], np.arange(n_sessions + 1))
    sample = sampled_rows(day, key, np.isfinite(target), spec.rows_per_day)
    for k, i in enumerate(points):
        last_train = i - horizon - 1  # t + h <= i - 1
        first_train = max(0, last_train - spec.train_sessions + 1)
        window = row_order[bounds[first_train]:bounds[last_train + 1]]
        rows = np.sort(window[sample[window]])
        Xt, yt = X[rows], target[rows]
        models, blobs = {}, {}
        for kind, fitter in FITTERS.items():
            models[kind], blobs[kind] = fitter(Xt, yt, spec)
            train_pred = models[kind].predict(np.ascontiguousarray(Xt[:, model_columns(models[kind].features)]))
            models[kind].cutoffs = signal_cutoffs(day_percentile_ranks(train_pred, day[rows]), tech_signal[rows])
        selection = {}
        for kind in FITTERS:  # each kind's own walk-forward ICs on sessions whose labels closed before i
            known = ic_by_day[kind][first_train:last_train + 1]
            known = known[np.isfinite(known)]
            selection[kind] = {"mean_ic": float(known.mean()) if known.size else float("nan"), "days": int(known.size)}
        chosen = "ridge"
        if (selection["lgbm"]["days"] >= spec.min_selection_sessions
                and selection["lgbm"]["mean_ic"] > selection["ridge"]["mean_ic"]):
            chosen = "lgbm"
        end = points[k + 1] if k + 1 < len(points) else n_sessions
        scored = row_order[bounds[min(i, n_sessions)]:bounds[end]]
        for kind, model in models.items():
            if len(scored):
                preds[kind][scored] = model.predict(np.ascontiguousarray(X[scored][:, model_columns(model.features)]))
                sessions_ic, ic = daily_ic(preds[kind][scored], target[scored], day[scored], horizon)
                ic_by_day[kind][sessions_ic] = ic  # used only by refits after these labels close
        preds["learned"][scored] = preds[chosen][scored]
        signals[scored] = classify_learned(day_percentile_ranks(preds[chosen][scored], day[scored]),
                                           models[chosen].cutoffs)
        applies = sessions[i] if i < n_sessions else (next_session if next_session is not None else sessions[-1] + 1)
        fits.append(Fit(horizon=horizon, refit_session=i, applies_from=str(np.datetime64(applies, "D")),
                        train_start=str(sessions[first_train])[:10], train_end=str(sessions[last_train])[:10],
                        labels_end=str(sessions[last_train + horizon])[:10], rows=int(len(rows)), chosen=chosen,
                        selection=selection, models=models, blobs=blobs, train_days=np.unique(day[rows])))
    return preds | {"signal": signals}, fits


def oos_ic(frame_day: np.ndarray, pred: np.ndarray, fwd: np.ndarray, horizon: int) -> dict:
    """Daily rank IC stats (mean, std, ICIR, Newey-West t, days) of `pred` vs the forward return, rows with both."""
    rows = pd.DataFrame({"Date": frame_day, f"fwd_ret_{horizon}d": fwd})
    return RankIC(rows, (horizon,)).column(pred)[horizon][0]["ic"]


@dataclass
class LearnedRun:
    """What the learned stage of an evaluation produced: the fits per horizon and the horizon LearnedRating uses."""

    fits: dict[int, list[Fit]]
    main_horizon: int
    spec: WalkForward


def prediction_columns(h: int) -> dict[str, str]:
    """Walk-forward prediction columns of horizon h in the evaluation rows."""
    return {"learned": f"learned_{h}d", "ridge": f"learned_ridge_{h}d", "lgbm": f"learned_lgbm_{h}d"}


def run_learned(scores: pd.DataFrame, evaluated: list, horizons: tuple[int, ...], spec: WalkForward = WalkForward(),
                next_session=None) -> tuple[pd.DataFrame, LearnedRun]:
    """Fit the learned rating walk-forward on an evaluation's rows, in place (millions of rows: no copy of the frame):
    its FEATURE_PREFIX columns become the feature matrix and are dropped; the prediction columns of every horizon,
    LearnedRating (the main horizon's) and LearnedSignal are added."""
    sessions = np.array(evaluated, dtype="datetime64[D]")
    dates = scores["Date"].to_numpy().astype("datetime64[D]")
    day = np.searchsorted(sessions, dates)
    X = feature_matrix({name: scores.pop(FEATURE_PREFIX + name) for name in RAW_FEATURES},  # float16, widened one by one
                       day, scores["Regime"].array)
    key = row_hash(scores["Symbol"].array, dates)
    tech_signal = scores["Signal"].to_numpy().astype(object)
    main = DEFAULT_HORIZON if DEFAULT_HORIZON in horizons else max(horizons)
    def fit(h: int):  # each horizon reads X and writes only its own arrays: the threads share nothing mutable
        target = centred_target(scores[f"fwd_ret_{h}d"].to_numpy(np.float64), day)
        return walk_forward(X, day, sessions, target, tech_signal, key, h, spec, next_session)

    with ThreadPoolExecutor(max_workers=max(1, min(spec.horizon_workers, len(horizons)))) as pool:
        done = dict(zip(horizons, pool.map(fit, horizons)))
    fits = {}
    for h in horizons:
        preds, fits[h] = done.pop(h)
        for kind, column in prediction_columns(h).items():
            scores[column] = preds[kind]
        if h == main:
            scores["LearnedRating"] = preds["learned"].astype(np.float64)
            scores["LearnedSignal"] = pd.Categorical(preds["signal"], categories=scores["Signal"].cat.categories)
    return scores, LearnedRun(fits=fits, main_horizon=main, spec=spec)
