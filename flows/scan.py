"""Flow `scan`: reference -> fetch bars (cached per month) -> regime -> prescreen -> score (Ray) -> validate -> publish."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.runtime import flow_run as prefect_flow_run
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from flows.bars import fetch_bars
from flows.tasks import load_reference, refresh_splits, score_chunk
from technic_v4.calendar import NY, is_trading_day, previous_trading_days
from technic_v4.config import load_settings
from technic_v4.errors import ConfigError
from flows.runners import SharedDataStore, chunk_columns, is_ray_runner, make_task_runner
from technic_v4.pipeline import prescreen as ps
from technic_v4.pipeline.changes import bar_fingerprints, split_reusable
from technic_v4.pipeline.metrics import StageTimer, peak_rss_mb, reset_peak_rss
from technic_v4.pipeline.publish import publish, read_previous, signal_changes
from technic_v4.pipeline.report import format_message, render_markdown, signal_counts
from technic_v4.pipeline.runtime import ScanRuntime, open_runtime
from technic_v4.domain.panel_load import load_panel
from technic_v4.domain.regime import compute_regime
from technic_v4.pipeline.scan_config import ScanConfig
from technic_v4.domain.bar_quality import quarantine_panel
from technic_v4.domain.scoring.results_schema import validate_results_report


@dataclass
class ScanOutput:
    results: pd.DataFrame
    message: str
    summary: dict


def _history_and_live_day(runtime: ScanRuntime) -> tuple[list[dt.date], dt.date | None]:
    """Closed sessions to load, plus today's unfinished session for an intraday scan during a session day."""
    today = dt.datetime.now(tz=NY).date()
    if runtime.config.intraday and is_trading_day(today) and runtime.as_of < today:
        history = previous_trading_days(runtime.as_of, runtime.config.lookback_days - 1)
        return history, today
    return runtime.lookback_days(), None


def _score(runtime: ScanRuntime, panel, reference: pd.DataFrame, regime, priority: np.ndarray):
    """Fan the panel out to `max_workers` chunk tasks; the panel and regime go to the object store once."""
    shared = SharedDataStore(FlowRunContext.get().task_runner)
    panel_ref, regime_ref = shared.put(panel), shared.put(regime)
    workers = runtime.config.max_workers or runtime.settings.max_workers
    chunks = chunk_columns(panel.shape[1], workers, priority)
    ref = reference[reference["symbol"].isin(panel.symbols)]
    futures = [score_chunk.submit(panel_ref, cols, ref, regime_ref) for cols in chunks]
    outs = [f.result() for f in futures]
    frames = [o[0] for o in outs if len(o[0])]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return frame, [o[1] for o in outs]


def _check_sectors(sectors: list[str] | None, reference: pd.DataFrame) -> None:
    """A sector no symbol has is a typo: say so instead of returning only the always-kept index ETFs."""
    known = set(reference["sector"].dropna())
    if sectors and (unknown := sorted(set(sectors) - known)):
        raise ConfigError(f"unknown sector(s) {unknown}; the universe has: {', '.join(sorted(known))}")


def _runner_for(config: ScanConfig | None = None):
    """The task runner this config (or TECHNIC_TASK_RUNNER / TECHNIC_MAX_WORKERS / RAY_ADDRESS) asks for."""
    settings = load_settings()
    kind = (config and config.task_runner) or settings.task_runner
    workers = (config and config.max_workers) or settings.max_workers
    return make_task_runner(kind, workers, settings.ray_address)


# Deployments import this flow; its default runner comes from the worker's environment (TECHNIC_TASK_RUNNER ...).
@flow(name="scan", log_prints=False, task_runner=_runner_for())
async def scan(config: ScanConfig = ScanConfig()) -> ScanOutput:
    """Scan the US stock universe: rank every tradeable symbol by TechRating with a signal and a trade plan."""
    log = get_run_logger()
    reset_peak_rss()  # the reported peak is this scan's, also in a long-lived worker process
    timer = StageTimer()
    runtime = open_runtime(config)
    calls_before = runtime.source.counter.snapshot()
    try:
        with timer.stage("reference"):
            reference, ref_info = await load_reference(runtime)
            _check_sectors(config.sectors, reference)
        with timer.stage("fetch"):
            history, live_day = _history_and_live_day(runtime)
            bars = await fetch_bars(runtime, history, live_day)
            splits, split_changed = await refresh_splits(runtime)
        calls = runtime.source.counter.since(calls_before)
    finally:
        await runtime.source.aclose()
    if not bars.days:
        raise RuntimeError(f"no trading days could be loaded for {runtime.as_of}; failed: {bars.failed}")

    with timer.stage("load_panel"):
        duplicates: list[dict] = []
        panel = load_panel(runtime.store, bars.days, splits=splits, duplicates=duplicates)
    with timer.stage("regime"):
        regime = compute_regime(panel)
    with timer.stage("prescreen"):
        state = runtime.store.read_state("scan") or {}
        watch = list(config.watchlist)
        unknown_watch = sorted(set(watch) - set(panel.symbols))
        protected = [s for s in watch if s not in unknown_watch]
        panel = panel.take_columns(ps.most_liquid(panel, config.max_symbols, protected))
        rules = ps.PrescreenRules(
            min_market_cap=config.min_market_cap,
            min_avg_volume=config.min_avg_volume,
            min_price=config.min_price,
            sectors=tuple(config.sectors) if config.sectors else None,
            blacklist_after=config.blacklist_after,
        )
        pre = ps.prescreen(panel, reference, rules, blacklist=state.get("blacklist"), always_keep=tuple(protected))
        panel, quarantine = quarantine_panel(panel.select(pre.kept))
        if duplicates:
            quarantine = pd.concat([quarantine, pd.DataFrame(duplicates)], ignore_index=True)
    with timer.stage("score"):
        previous = read_previous(runtime.settings.data_dir)
        fingerprints = bar_fingerprints(panel, regime.label, reference)
        force = sorted(set(split_changed) | set(protected))
        to_score, reused = split_reusable(fingerprints, previous if config.reuse_scores else None, force=force)
        priority = np.isin(to_score, protected + list(state.get("last_signals", [])))
        if to_score:
            scored, workers = _score(runtime, panel.select(to_score), reference, regime, priority)
            scored["fingerprint"] = fingerprints.reindex(scored["Symbol"]).to_numpy()
        else:  # nothing changed since the last scan: every row is reused as it is
            scored, workers = reused.iloc[0:0], []
        results = pd.concat([scored, reused], ignore_index=True)[list(scored.columns)]
        results = results.sort_values("TechRating", ascending=False, na_position="last", ignore_index=True)
    with timer.stage("validate"):
        results, invalid = validate_results_report(results)
        if len(invalid):
            log.error("%d result rows failed validation and were held back:\n%s", len(invalid), invalid.head(20))
    kept = results if not config.signals else results[results["Signal"].isin(config.signals)]

    summary = {
        "as_of": (live_day or runtime.as_of).isoformat(),
        "flow_run_id": str(prefect_flow_run.id),
        "source": runtime.source.name + (" (intraday)" if live_day else ""),
        "simulated": runtime.simulated,
        "regime": regime.label,
        "regime_detail": regime.as_dict(),
        "prescreen": pre.as_dict(),
        "signals": signal_counts(results),
        "changes": signal_changes(previous, results),
        "missing_days": bars.failed,
        "unknown_watchlist": unknown_watch,
        "quarantine": quarantine.to_dict("records") if len(quarantine) else [],
        "split_changed": split_changed,
        "reference": ref_info,
        "metrics": {
            "symbols_scored": int(len(scored)),
            "symbols_reused": int(len(reused)),
            "bars_quarantined": int(len(quarantine)),
            "invalid_rows": int(len(invalid)),
            "api_calls": calls["attempts"],
            "api_retries": calls["retries"],
            "api_calls_by_endpoint": calls["by_endpoint"],
            "cache_hit_rate": bars.cache_hit_rate,
            "bars_reused": bars.bars_reused,
            "bars_fetched": bars.bars_fetched,
            "months_cached": bars.months_cached,
            "months_fetched": bars.months_run,
            "oldest_cache_age_hours": bars.oldest_cache_age_hours,
            # the runner this flow run uses, also when every row was reused and nothing went to a worker
            "task_runner": "ray" if is_ray_runner(FlowRunContext.get().task_runner) else "thread",
            "worker_processes": len({w["pid"] for w in workers}),
            "worker_pids": sorted({w["pid"] for w in workers}),
            "peak_rss_mb_workers": max((w["peak_rss_mb"] for w in workers), default=0.0),
        },
    }
    with timer.stage("publish"):
        if pre.blacklist is not None and state.get("blacklist_day") != runtime.as_of.isoformat():
            state["blacklist"], state["blacklist_day"] = pre.blacklist, runtime.as_of.isoformat()
        state["last_signals"] = summary["changes"]["new"] + list(
            results.loc[results["Signal"] != "Avoid", "Symbol"].head(500)
        )
        with runtime.store.lock():
            runtime.store.write_state("scan", state)
        summary["metrics"].update(
            wall_seconds=round(timer.total, 3), stages=timer.as_dict(), peak_rss_mb_flow=round(peak_rss_mb(), 1)
        )
        report_md = render_markdown(summary, results)
        paths = publish(results, data_dir=runtime.settings.data_dir, as_of=runtime.as_of, report_md=report_md, meta=summary)
        top = results.drop(columns=["fingerprint"]).head(50)
        await acreate_table_artifact(
            key="scan-top", table=json.loads(top.to_json(orient="records", date_format="iso", double_precision=6)),
            description=f"Top 50 by TechRating, {summary['as_of']}" + (" (SIMULATED)" if runtime.simulated else ""),
        )
        await acreate_markdown_artifact(key="scan-report", markdown=report_md, description="Scan report")
    summary["metrics"].update(wall_seconds=round(timer.total, 3), stages=timer.as_dict())
    summary["paths"] = {k: str(v) for k, v in paths.__dict__.items()}
    message = format_message(summary)
    log.info("\n%s", message)
    return ScanOutput(results=kept.drop(columns=["fingerprint"]).reset_index(drop=True), message=message, summary=summary)


def scan_flow_for(config: ScanConfig):
    return scan.with_options(task_runner=_runner_for(config))


if __name__ == "__main__":
    from technic_v4.api import run_scan

    print(run_scan()[1])
