"""The fetch stage's orchestration: one cached Prefect task per month of closed days, today's live session, and a
progress artifact. The counting is plain code in technic_v4.pipeline.fetch.BarsReport."""

from __future__ import annotations

import asyncio
import time
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from prefect import get_run_logger
from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.runtime import flow_run

from flows.tasks import fetch_live_day, fetch_month, refresh_splits
from technic_v4 import progress as progress_hooks
from technic_v4.domain.indicators import required_history
from technic_v4.pipeline.fetch import (
    BarsReport, first_scan_history, require_days, require_repaired, set_aside_damaged, split_by_month,
)
from technic_v4.pipeline.runtime import ScanRuntime


class FetchProgress:
    """Feeds the CLI progress bar and the Prefect progress artifact (updated every 5 %, then 100 % or "failed")."""

    def __init__(self, total: int, clock=time.monotonic):
        self.total, self.done, self.sent, self.artifact_id = total, 0, 0.0, None
        self.clock, self.started = clock, clock()
        self.pending: set[asyncio.Task] = set()

    async def start(self) -> None:
        if self.total:
            self.artifact_id = await acreate_progress_artifact(
                0.0, key="scan-fetch-progress", description=f"fetching {self.total} trading days")

    def __call__(self, _done: int, _total: int) -> None:
        self.done = min(self.done + 1, self.total)
        progress_hooks.report("fetch", self.done, self.total)
        pct = 100.0 * self.done / max(self.total, 1)
        if self.artifact_id is not None and pct - self.sent >= 5:
            self.sent = pct
            t = asyncio.get_running_loop().create_task(
                aupdate_progress_artifact(self.artifact_id, pct, description=self.eta_text()))
            self.pending.add(t)
            t.add_done_callback(self.pending.discard)

    def eta_text(self) -> str:
        """Days done and the time left at the pace so far (the free tier's 5 requests/min make a cold backfill ~1 h)."""
        left = (self.clock() - self.started) / max(self.done, 1) * (self.total - self.done)
        return f"fetched {self.done} of {self.total} trading days; about {left / 60:.0f} min left"

    async def finish(self, failed: bool = False, note: str = "") -> None:
        """The artifact ends at 100 % when the stage is done (cached months never report per day) or says failed."""
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)
        if self.artifact_id is None:
            return
        if failed:
            await aupdate_progress_artifact(self.artifact_id, 100.0 * self.done / max(self.total, 1),
                                            description=f"FAILED after {self.done} of {self.total} days: {note}"[:500])
        else:
            progress_hooks.report("fetch", self.total, self.total)
            await aupdate_progress_artifact(self.artifact_id, 100.0,
                                            description=f"fetched {self.total} trading days{note}")


async def fetch_bars(runtime: ScanRuntime, history: list[dt.date], live_day: dt.date | None) -> BarsReport:
    """Run one cached task per month; months whose cached result no longer matches the store run again."""
    store, this_run = runtime.store, str(flow_run.id)
    storage = Path(runtime.settings.data_dir) / "prefect-results"
    months = split_by_month(history)
    # one backfill at a time per data dir: a second scan waits, then finds the days stored (and fetches none)
    lock = await wait_for_backfill(store, history) if any(not store.has_day(d) for d in history) else None
    try:
        return await _fetch_months(runtime, history, live_day, months, storage, this_run)
    finally:
        if lock is not None:
            lock.release()


async def wait_for_backfill(store, history: list[dt.date]):
    """The store's backfill lock (held by the caller until its days are stored); while another scan holds it, the
    progress bar follows the days that scan stores."""
    told = []

    def on_wait(seconds: float, _count: int) -> None:
        if not told:
            told.append(True)
            get_run_logger().warning("another scan is fetching into %s; waiting for its backfill, then reusing "
                                     "its days", store.root)
        progress_hooks.report("fetch", sum(1 for d in history if store.has_day(d)), len(history))

    return await asyncio.to_thread(store.acquire_fetch_lock, on_wait)


async def _fetch_months(runtime: ScanRuntime, history, live_day, months, storage, this_run) -> BarsReport:
    store = runtime.store
    progress = FetchProgress(sum(1 for d in history if not store.has_day(d)))
    await progress.start()

    async def run(month: str, days: list[dt.date], refresh: bool) -> dict:
        task = fetch_month.with_options(result_storage=storage, refresh_cache=refresh)
        return await task(month=month, days=days, runtime=runtime, progress=progress)

    try:
        results = await asyncio.gather(*(run(m, d, False) for m, d in months.items()))
        # A month answered from an older run's cache whose days are not all in the store (deleted files, a day
        # that failed back then): run it again. A month this run fetched is not repeated: its failures are reported.
        stale = [r["month"] for r in results
                 if r["flow_run_id"] != this_run and any(not store.has_day(d) for d in months[r["month"]])]
        if stale:
            results = [r for r in results if r["month"] not in stale]
            results += await asyncio.gather(*(run(m, months[m], True) for m in stale))
    except BaseException as exc:
        await progress.finish(failed=True, note=f"{type(exc).__name__}: {exc}")
        raise
    report = BarsReport()
    for r in results:
        report.add_month(r, this_run)
    if live_day is not None:
        live = await fetch_live_day.with_options(result_storage=storage)(day=live_day, runtime=runtime)
        if live["flow_run_id"] == this_run:
            report.fetched.add(live["day"])
    report.count_days(store, history + ([live_day] if live_day else []))
    await progress.finish(note=f"; {len(report.failed)} missing" if report.failed else "")
    return report


@dataclass
class FetchedBars:
    bars: BarsReport
    splits: pd.DataFrame  # every known split, applied when the panel loads
    split_changed: list[str]  # symbols with a split new since the last scan
    live_day: dt.date | None  # today's unfinished session of an intraday scan
    lookback: int  # sessions the configuration asked for (a rate-limited first scan may load fewer)


async def fetch_stage(run: ScanRuntime) -> FetchedBars:
    """Every bar the scan needs in the store (one grouped-daily call per missing day) and the splits since last time."""
    history, live_day = run.history_and_live_day()
    lookback = len(history)
    history = first_scan_history(run.store, history, rate_limited=run.settings.rate_limit > 0,
                                 need=required_history())
    damaged = set_aside_damaged(run.store, history, panel_cache=run.settings.panel_cache)
    bars = await fetch_bars(run, history, live_day)
    require_repaired(run.store, damaged, bars.failed)
    splits, split_changed = await refresh_splits(run)
    require_days(bars, run.as_of)
    return FetchedBars(bars, splits, split_changed, live_day, lookback)
