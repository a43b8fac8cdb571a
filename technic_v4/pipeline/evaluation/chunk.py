"""One symbol chunk of an evaluation, and the whole panel evaluated chunk by chunk (serially or by a task runner).

`evaluate_panel` is the plain-function form of the flow: universe and regimes for every day at once, then
`evaluate_chunk` per column chunk (the flow submits these as tasks), then one frame of (Date, Symbol) rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from technic_v4.domain.bar_quality import quarantine_panel
from technic_v4.domain.panel import Panel
from technic_v4.domain.regime import HIGH_VOL_SUFFIX, TRENDS, Regime
from technic_v4.domain.indicators.patterns import FLAG_COLUMNS, TREND_TEMPLATE_PER_SYMBOL
from technic_v4.domain.market_proxy import market_proxy
from technic_v4.domain.scoring.columns import LONG_RETURN_COLUMNS
from technic_v4.domain.indicators import CATALOGUE
from technic_v4.domain.scoring.history import SCORING_INPUTS, score_cells
from technic_v4.domain.scoring.learned import raw_feature_frame
from technic_v4.domain.scoring.plan_rules import DEFAULT_MIN_REWARD_RISK, DEFAULT_PLAN_RULE
from technic_v4.domain.scoring.relative_strength import UNKNOWN_SECTOR, market_return, relative_strength, trend_template
from technic_v4.domain.scoring.score import LONG_SIGNALS, SCORE_COLUMNS, SHORT_SIGNALS, SIGNALS
from technic_v4.pipeline.evaluation.config import EvalConfig
from technic_v4.pipeline.evaluation.factors import FACTORS
from technic_v4.pipeline.evaluation.forward import forward_returns, plan_first_sessions
from technic_v4.pipeline.evaluation.universe import asof_factors, daily_regimes, kept_mask
from technic_v4.errors import ConfigError


PRICE_BASIS_COLUMNS = ("ATR14", "SMA20", "SMA50", "SMA200", "EMA20", "MACD", "MACD_signal", "MACD_hist")
VOLUME_BASIS_COLUMNS = ("Volume", "AvgVolume20")


def screen_indicators(names: tuple[str, ...]) -> dict:
    """The catalogue indicators a screen reads that scoring does not compute anyway (e.g. EMA20, ret_5d)."""
    return {n: CATALOGUE[n] for n in names if n in CATALOGUE and n not in SCORING_INPUTS}
REGIME_LABELS = [t + suffix for t in TRENDS for suffix in ("", HIGH_VOL_SUFFIX)]


@dataclass
class PanelJob:
    """Everything the chunks share (put into Ray's object store once by the flow)."""

    panel: Panel  # clean (quarantined) bars of every symbol kept on some day, adjusted as of the last day
    keep: np.ndarray  # (len(rows), N) kept by that day's scan
    factor: np.ndarray  # (T, N) asof_factors
    rows: np.ndarray  # panel rows of the evaluated days
    regimes: dict[int, Regime]
    window: int
    horizons: tuple[int, ...]
    plan_rule: str = DEFAULT_PLAN_RULE
    min_reward_risk: float = DEFAULT_MIN_REWARD_RISK
    features: bool = False  # add the learned rating's raw features (float16 columns FEATURE_PREFIX + name)
    extra_columns: tuple[str, ...] = ()  # result columns a screen's scorecard reads, beyond the default frame


@dataclass
class Prepared:
    job: PanelJob | None  # None once the flow has joined the chunks (frees the panel)
    prescreen: dict[str, int]
    quarantine: pd.DataFrame
    universe_per_day: np.ndarray = field(default_factory=lambda: np.array([], int))
    market_close: np.ndarray = field(default_factory=lambda: np.array([], float))  # (T,) market proxy of the panel


def prepare(panel: Panel, reference: pd.DataFrame, splits: pd.DataFrame | None, evaluated: list,
            config: EvalConfig, extra_columns: tuple[str, ...] = ()) -> Prepared:
    """Each day's kept universe and regime; the clean panel of the symbols kept on any day."""
    rows = np.searchsorted(panel.dates, np.array(evaluated, dtype="datetime64[D]"))
    factor = asof_factors(panel, splits)
    keep, counts = kept_mask(panel, reference, config.floor_rules(), config.max_symbols, rows, config.lookback_days, factor)
    used = np.flatnonzero(keep.any(axis=0))
    regimes = daily_regimes(panel, rows, config.lookback_days)
    clean, quarantine = quarantine_panel(panel.take_columns(used))
    job = PanelJob(panel=clean, keep=np.ascontiguousarray(keep[:, used]), factor=np.ascontiguousarray(factor[:, used]),
                   rows=rows, regimes=regimes, window=config.lookback_days, horizons=config.horizons,
                   plan_rule=config.plan_rule, min_reward_risk=config.min_reward_risk,
                   features=config.rating == "learned",
                   extra_columns=tuple(extra_columns))
    return Prepared(job=job, prescreen=counts, quarantine=quarantine, universe_per_day=keep.sum(axis=1),
                    market_close=market_proxy(panel).close)


def evaluate_chunk(job: PanelJob, columns: np.ndarray) -> tuple[pd.DataFrame, dict]:
    """Rows (Date, Symbol, Close, TechRating, the sub-scores, the textbook factors, Signal, Regime, Entry, Stop,
    Target, fwd_ret_{h}d, first plan sessions) for the kept cells of `columns`, plus counts of NaN forward returns."""
    panel = job.panel.take_columns(columns)
    day_idx, col = np.nonzero(job.keep[:, columns])
    rows = job.rows[day_idx]
    s = score_cells(panel, rows, col, job.regimes, job.window, job.plan_rule, job.min_reward_risk,
                    extra=FACTORS | screen_indicators(job.extra_columns), keep=job.extra_columns)
    fwd, missing = forward_returns(panel.close, rows, col, s["last_row"], job.horizons)
    direction = np.where(np.isin(s["Signal"], LONG_SIGNALS), 1.0, np.where(np.isin(s["Signal"], SHORT_SIGNALS), -1.0, np.nan))
    first_target, first_stop, both = plan_first_sessions(panel.high, panel.low, rows, col, direction, s["Stop"],
                                                         s["Target"], max(job.horizons))
    factor = job.factor[:, columns][rows, col]  # prices as the scan on that day showed them
    frame = pd.DataFrame({
        "Date": panel.dates[rows],
        "Symbol": pd.Categorical.from_codes(columns[col], categories=job.panel.symbols),  # same categories everywhere
        "Close": s["Close"] / factor,
        "TechRating": s["TechRating"],
        **{k: s[k].astype(np.float32) for k in (*SCORE_COLUMNS, *FACTORS)},  # attribution only: 7 digits suffice
        "Signal": pd.Categorical(s["Signal"], categories=SIGNALS),
        "Regime": pd.Categorical(s["Regime"], categories=REGIME_LABELS),
        "Entry": s["Entry"] / factor,
        "Stop": s["Stop"] / factor,
        "Target": s["Target"] / factor,
        "RewardRisk": s["RewardRisk"],
        "PlanRule": pd.Categorical(s["PlanRule"]),
        "PlanOK": s["PlanOK"],
        **{k: s[k] for k in (*FLAG_COLUMNS, *TREND_TEMPLATE_PER_SYMBOL, "ret_63d", *LONG_RETURN_COLUMNS, "RSI14_w")},
        "SMA10w": s["SMA10w"] / factor,
        "SMA40w": s["SMA40w"] / factor,
        **fwd,
        "plan_target_session": first_target,
        "plan_stop_session": first_stop,
    })
    for name in job.extra_columns:  # prices (SMA200, ATR14 ...) as the scan on that day showed them, like Close
        values = s.get(name)
        if values is not None and name not in frame:
            frame[name] = values / factor if name in PRICE_BASIS_COLUMNS else \
                values * factor if name in VOLUME_BASIS_COLUMNS else values
    if job.features:
        frame = pd.concat([frame, raw_feature_frame(s["indicators"] | s)], axis=1)
    return frame, {"missing": missing, "plan_both_same_session": both, "cells": int(len(frame))}


def merge_chunk_infos(infos: list[dict]) -> dict:
    missing: dict[str, dict[str, int]] = {}
    for info in infos:
        for h, counts in info["missing"].items():
            slot = missing.setdefault(h, {"no_bar": 0, "beyond_data": 0})
            for k, v in counts.items():
                slot[k] += v
    return {"missing": missing, "plan_both_same_session": sum(i["plan_both_same_session"] for i in infos)}


def column_chunks(n_symbols: int, chunk_symbols: int, multiple_of: int = 1) -> list[np.ndarray]:
    """Column chunks of at most ~`chunk_symbols` (bounding a task's memory), as many as a multiple of the workers so
    that no worker is left with the last chunk alone."""
    n = max(1, -(-n_symbols // chunk_symbols))
    n = -(-n // multiple_of) * multiple_of
    return [c for c in np.array_split(np.arange(n_symbols), n) if c.size]


def finish(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One frame, sorted by Date, then TechRating (best first, NaN last), then Symbol. Strings are categoricals
    with the same categories in every chunk, so the concatenation stays categorical (millions of rows). Built one
    column at a time, each taken from the chunks (emptying `frames`) and put in sorted order, so the peak is the
    chunks plus the finished columns, not the chunks, their concatenation and its sorted copy (6,000 x 500: -1.5 GB)."""
    frames[:] = [f for f in frames if len(f)]
    if not frames:
        raise ConfigError("no (session, symbol) was kept by the prescreen on any evaluated day: "
                          "widen the date range or loosen max_symbols / the floors")
    order = np.lexsort((np.concatenate([f["Symbol"].cat.codes.to_numpy() for f in frames]),
                        -np.concatenate([f["TechRating"].to_numpy() for f in frames]),
                        np.concatenate([f["Date"].to_numpy() for f in frames])))
    columns = {}
    for name in list(frames[0].columns):
        joined = pd.concat([f.pop(name) for f in frames], ignore_index=True)
        columns[name] = joined.take(order).reset_index(drop=True)
        del joined
    frames.clear()
    return pd.DataFrame(columns, copy=False)


def evaluate_panel(panel: Panel, reference: pd.DataFrame, splits: pd.DataFrame | None, evaluated: list,
                   config: EvalConfig, run_chunks: Callable | None = None) -> tuple[pd.DataFrame, dict]:
    """(scores, info) for `evaluated` days of `panel`. `run_chunks(job, chunks)` -> [(frame, info)] may fan out."""
    prepared = prepare(panel, reference, splits, evaluated, config)
    chunks = column_chunks(prepared.job.panel.shape[1], config.chunk_symbols)
    runner = run_chunks or (lambda job, cs: [evaluate_chunk(job, c) for c in cs])
    outs = runner(prepared.job, chunks)
    info = merge_chunk_infos([o[1] for o in outs])
    info.update(prescreen=prepared.prescreen, quarantined_bars=int(len(prepared.quarantine)),
                universe_per_day=prepared.universe_per_day.tolist())
    return add_cross_sectional(finish([o[0] for o in outs]), prepared, reference), info


def add_cross_sectional(scores: pd.DataFrame, prepared: Prepared, reference: pd.DataFrame) -> pd.DataFrame:
    """Each session's relative strength, sector ranks and full trend template across that session's rows, as the
    scan computes them across its joined table (`relative_strength`); the market is the loaded panel's proxy."""
    sectors = reference.drop_duplicates("symbol").set_index("symbol")["sector"] if "sector" in reference else None
    categories = scores["Symbol"].cat.categories
    by_symbol = (sectors.reindex(categories) if sectors is not None else pd.Series(index=categories, dtype=object))
    by_symbol = by_symbol.where(by_symbol.notna() & (by_symbol != ""), UNKNOWN_SECTOR).to_numpy(dtype=object)
    code, names = pd.factorize(by_symbol)  # per symbol; each row takes its symbol's code (no strings per row)
    sector = pd.Categorical.from_codes(code[scores["Symbol"].cat.codes.to_numpy()], categories=names)
    day_rows = np.searchsorted(prepared.job.panel.dates, scores["Date"].to_numpy().astype("datetime64[D]"))
    market = market_return(prepared.market_close, day_rows)
    rs = relative_strength(scores, sector, day_rows, market)
    tt = trend_template(scores, rs["RS_rating"])
    added = {**rs, **tt, "Sector": sector}
    kept = {c: scores[c] for c in scores if c not in added}
    return pd.DataFrame(kept | added, index=scores.index, copy=False)  # assign() or concat would copy every column


def describe(scores: pd.DataFrame, reference: pd.DataFrame, prepared: Prepared, info: dict, evaluated: list) -> dict:
    """The counted facts of an evaluation for its summary: range, rows, universe, delisted names, NaN returns."""
    inactive = ~reference["active"].astype(bool) if "active" in reference else pd.Series(False, index=reference.index)
    delisted = set(reference.loc[inactive, "symbol"])
    return {
        "start": evaluated[0].isoformat(), "end": evaluated[-1].isoformat(), "sessions": len(evaluated),
        "rows": int(len(scores)), "rows_without_rating": int(scores["TechRating"].isna().sum()),
        "universe_mean": float(np.mean(prepared.universe_per_day)),
        "delisted_in_universe": int(scores.loc[scores["Symbol"].astype(str).isin(delisted), "Symbol"].nunique()),
        "missing": info["missing"], "prescreen_filtered": prepared.prescreen,
        "quarantined_bars": int(len(prepared.quarantine)), "plan_both_same_session": info["plan_both_same_session"],
    }
