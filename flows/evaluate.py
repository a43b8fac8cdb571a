"""Flow `evaluate`: bars from the store (backfilling missing days) -> each day's universe and regime -> scores,
forward returns and trade-plan outcomes per symbol chunk (thread or Ray tasks) -> statistics -> report and artifacts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.fetch import fetch_bars
from flows.runners import SharedDataStore, choose_runner, make_task_runner
from flows.tasks import load_reference, refresh_splits
from technic_v4.calendar import last_completed_session, trading_days
from technic_v4.domain.panel_load import load_panel
from technic_v4.heap import release_free_memory
from technic_v4.pipeline.evaluation.chunk import (
    PanelJob, add_cross_sectional, column_chunks, describe, evaluate_chunk, finish,
)
from technic_v4.pipeline.evaluation.chunk import merge_chunk_infos, prepare
from technic_v4.pipeline.evaluation.config import EvalConfig
from technic_v4.pipeline.evaluation.learned_report import evaluate_learned
from technic_v4.pipeline.evaluation.listing import lists_delisted, with_delisted
from technic_v4.pipeline.evaluation.report import attribution_records, format_message, json_ready, render_markdown
from technic_v4.pipeline.evaluation.report import save_plots
from technic_v4.pipeline.evaluation.scorecard import REFERENCE_COLUMNS, needed_columns, scorecard_markdown
from technic_v4.pipeline.evaluation.scorecard import screen_scorecards, with_reference_columns
from technic_v4.pipeline.evaluation.stats import summarize
from technic_v4.pipeline.fetch import require_days
from technic_v4.pipeline.metrics import StageTimer, peak_rss_mb, reset_peak_rss
from technic_v4.pipeline.runtime import open_runtime
from technic_v4.pipeline.scan_config import ScanConfig
from technic_v4.pipeline.screens.model import run_screens, with_screens
from technic_v4.store.atomic import atomic_write, atomic_write_text


@dataclass
class EvalOutput:
    scores: pd.DataFrame
    summary: dict
    message: str


@task(name="evaluate-chunk", cache_policy=NO_CACHE)
def evaluate_chunk_task(job: PanelJob, columns: np.ndarray) -> tuple[pd.DataFrame, dict]:
    """One symbol chunk: scores, forward returns and plan outcomes; reports its process and peak RSS."""
    frame, info = evaluate_chunk(job, columns)
    return frame, info | {"pid": os.getpid(), "peak_rss_mb": round(peak_rss_mb(), 1)}


def _last_session(config: EvalConfig, data_end: dt.date | None = None) -> dt.date:
    """The last session to load: the longest horizon after `end`, never past the last completed session (or the
    data's last session, for a source whose data ends earlier: a CSV folder)."""
    done = data_end or last_completed_session()
    if config.end is None or config.end >= done:
        return done
    after = trading_days(config.end, done)
    return after[min(max(config.horizons), len(after) - 1)]


def _run_chunks(job: PanelJob, config: EvalConfig, settings) -> tuple[list, str, str]:
    kind, reason = choose_runner(config.task_runner or settings.task_runner, job.panel.shape[1], settings)
    workers = config.max_workers or settings.max_workers
    chunks = column_chunks(job.panel.shape[1], config.chunk_symbols, multiple_of=workers)
    with make_task_runner(kind, workers, settings.ray_address) as runner:
        job_ref = SharedDataStore(runner).put(job)
        futures = [runner.submit(evaluate_chunk_task, {"job": job_ref, "columns": cols}) for cols in chunks]
        return [f.result() for f in futures], kind, reason


def _publish(folder, scores: pd.DataFrame, summary: dict, simulated: bool) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    plots = save_plots(summary, folder, simulated)
    atomic_write(folder / "scores.parquet", lambda p: scores.to_parquet(p, index=False))
    atomic_write_text(folder / "report.md", summary["report_md"])
    atomic_write_text(folder / "summary.json", json.dumps(json_ready(summary), indent=2, default=str))
    return {"folder": str(folder), "scores": str(folder / "scores.parquet"), "report": str(folder / "report.md"),
            "plots": [str(p) for p in plots]}


@flow(name="evaluate", log_prints=False)
async def evaluate(config: EvalConfig = EvalConfig(), screen: str | None = None) -> EvalOutput:
    """Walk-forward, point-in-time evaluation of TechRating and signals over the stored history; `screen` (saved
    screen names, comma-separated) adds a scorecard per screen."""
    reset_peak_rss()
    config = with_screens(config, screen)
    timer = StageTimer()
    scan_config = ScanConfig.build(data_source=config.data_source, data_dir=config.data_dir, csv_dir=config.csv_dir,
                                   lookback_days=config.lookback_days, on_missing_day=config.on_missing_day)
    run = open_runtime(scan_config)  # as_of: the data's last session (a CSV folder's) or the last completed one
    last = _last_session(config, run.as_of)
    evaluated, days = config.days_to_load(last)
    days = run.within_data(days)  # a CSV folder starts with its files: no earlier day to ask for
    run = dataclasses.replace(run, as_of=last, config=scan_config.model_copy(update={"as_of": last}))
    screens = run_screens(config, run.settings.data_dir)  # an unknown name fails before any work
    needed = needed_columns(screens)
    async with run.source:
        calls_before = run.source.counter.snapshot()
        with timer.stage("reference"):
            reference, _ = await load_reference(run)
            reference, listing_note = with_delisted(reference, run.source)
        with timer.stage("fetch"):
            bars = await fetch_bars(run, days, None)
            splits, _ = await refresh_splits(run)
        calls = run.source.counter.since(calls_before)
    require_days(bars, last)
    evaluated = [d for d in evaluated if d in set(bars.days)]
    with timer.stage("load_panel"):
        panel = load_panel(run.store, bars.days, splits=splits, cache=run.settings.panel_cache)
    with timer.stage("universe"):
        prepared = prepare(panel, reference, splits, evaluated, config,
                           extra_columns=tuple(c for c in needed if c not in REFERENCE_COLUMNS))
        del panel  # the job holds the clean panel of the symbols that matter
    with timer.stage("score"):
        outs, kind, reason = _run_chunks(prepared.job, config, run.settings)
        frames, infos = [o[0] for o in outs], [o[1] for o in outs]
        del outs  # finish() frees the chunk frames column by column
        release_free_memory()  # the chunks' scratch, freed in the worker threads' malloc arenas
        scores = add_cross_sectional(finish(frames), prepared, reference)
        prepared.job = None  # the clean panel is not read after the join (6,000 x 500: ~0.3 GB)
        release_free_memory()
    learned = None
    if config.rating == "learned":
        with timer.stage("learned"):
            scores, learned = evaluate_learned(scores, evaluated, config, run.settings.data_dir, run.source_id)
            release_free_memory()  # the feature matrix and the fits' scratch, before the statistics' own peak
    with timer.stage("statistics"):
        summary = summarize(scores, config.horizons, config.shuffle_seed)
        screened = with_reference_columns(scores, reference, needed)
        summary["scorecards"] = screen_scorecards(screened, screens, config.horizons, config.shuffle_seed)
    if learned is not None:
        summary["learned"] = learned
        summary["verdicts"] = learned["verdicts"] + summary["verdicts"]
    info = merge_chunk_infos(infos)
    meta = describe(scores, reference, prepared, info, evaluated) | {
        "simulated": run.simulated, "source": run.source.name, "listing": listing_note,
        "survivorship_bias": not lists_delisted(run.source), "flow_run_id": str(flow_run.id),
        "metrics": {"api_calls": calls["attempts"], "days_loaded": len(bars.days), "days_fetched": len(bars.fetched),
                    "cache_hit_rate": round(bars.cache_hit_rate, 6), "task_runner": kind, "runner_reason": reason,
                    "chunks": len(infos), "worker_processes": len({i["pid"] for i in infos}),
                    "peak_rss_mb_workers": max(i["peak_rss_mb"] for i in infos),
                    "peak_rss_mb_flow": round(peak_rss_mb(), 1), "stages_s": timer.as_dict(),
                    "wall_seconds": round(timer.total, 3)},
    }
    meta["rating"] = config.rating
    summary["meta"] = meta
    summary["report_md"] = render_markdown(summary, meta) + "".join(
        "\n\n" + scorecard_markdown(card, run.simulated) for card in summary["scorecards"].values())
    with timer.stage("publish"):
        folder = run.settings.data_dir / "evaluation" / f"{meta['start']}_{meta['end']}"
        summary["paths"] = _publish(folder, scores, summary, run.simulated)
        await _artifacts(summary, max(config.horizons), run.simulated)
        await _scorecard_artifacts(summary["scorecards"], run.simulated)
    summary["message"] = "\n".join([format_message(summary, timer, peak_rss_mb()),
                                     *(v for card in summary["scorecards"].values() for v in card["verdicts"])])
    get_run_logger().info("\n%s", summary["message"])
    return EvalOutput(scores=scores, summary=summary, message=summary["message"])


async def _artifacts(summary: dict, horizon: int, simulated: bool) -> None:
    label = " (SIMULATED)" if simulated else ""
    deciles = summary["horizons"][horizon]["by_decile"].reset_index()
    await acreate_markdown_artifact(key="evaluation-report", markdown=summary["report_md"],
                                    description=f"Walk-forward evaluation{label}")
    await acreate_table_artifact(key="evaluation-deciles", table=json_ready({"t": deciles})["t"],
                                 description=f"{horizon}-session returns by TechRating decile{label}")
    await acreate_table_artifact(key="evaluation-attribution",
                                 table=json_ready({"t": attribution_records(summary["attribution"])})["t"],
                                 description=f"Rank IC of TechRating, sub-scores and textbook factors vs the shuffled "
                                             f"control, per horizon{label}")


async def _scorecard_artifacts(cards: dict, simulated: bool) -> None:
    for name, card in cards.items():
        await acreate_markdown_artifact(key=f"scorecard-{name}", markdown=scorecard_markdown(card, simulated),
                                        description=f"Walk-forward scorecard of screen {name}"
                                                    + (" (SIMULATED)" if simulated else ""))


def evaluate_flow_for(config: EvalConfig):
    """The flow technic_v4.evaluation.run_evaluation runs (the `evaluate` entry point)."""
    return evaluate
