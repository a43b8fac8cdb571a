"""The fetch stage of the scan flow: cached month tasks, a store check, and counted cache statistics."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.runtime import flow_run

from flows.tasks import fetch_live_day, fetch_month
from technic_v4 import progress as progress_hooks
from technic_v4.pipeline.fetch import split_by_month
from technic_v4.pipeline.runtime import ScanRuntime


@dataclass
class BarsReport:
    days: list[dt.date]  # days available for the panel, oldest first
    fetched: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    months_cached: int = 0
    months_run: int = 0
    bars_reused: int = 0
    bars_fetched: int = 0
    oldest_cache_age_hours: float = 0.0

    @property
    def cache_hit_rate(self) -> float:
        total = self.bars_reused + self.bars_fetched
        return self.bars_reused / total if total else 1.0


class _FetchProgress:
    """Feeds the CLI progress bar and a Prefect progress artifact (updated every 5 %, not every day)."""

    def __init__(self, total: int):
        self.total, self.done, self.sent, self.artifact_id = total, 0, 0.0, None
        self.pending: set[asyncio.Task] = set()

    async def start(self):
        if self.total:
            self.artifact_id = await acreate_progress_artifact(0.0, description=f"fetching {self.total} trading days")

    def __call__(self, _done: int, _total: int) -> None:
        self.done += 1
        progress_hooks.report("fetch", self.done, self.total)
        pct = 100.0 * self.done / max(self.total, 1)
        if self.artifact_id is not None and (pct - self.sent >= 5 or self.done == self.total):
            self.sent = pct
            t = asyncio.get_running_loop().create_task(aupdate_progress_artifact(self.artifact_id, pct))
            self.pending.add(t)
            t.add_done_callback(self.pending.discard)

    async def finish(self):
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)


async def fetch_bars(runtime: ScanRuntime, history: list[dt.date], live_day: dt.date | None) -> BarsReport:
    """Run one cached task per month; months whose cached result no longer matches the store run again."""
    store = runtime.store
    storage = Path(runtime.settings.data_dir) / "prefect-results"
    months = split_by_month(history)
    missing_before = [d for d in history if not store.has_day(d)]
    prog = _FetchProgress(len(missing_before))
    await prog.start()

    async def run(month: str, days: list[dt.date], refresh: bool) -> dict:
        task = fetch_month.with_options(result_storage=storage, refresh_cache=refresh)
        return await task(month=month, days=days, final=True, runtime=runtime, progress=prog)

    results = await asyncio.gather(*(run(m, d, False) for m, d in months.items()))
    # A month answered from an older run's cache whose days are not all in the store (deleted files, a day that
    # failed back then): run it again. A month this run just fetched is not repeated: its failures are reported.
    this_run = str(flow_run.id)
    stale = [
        r["month"] for r in results
        if r["flow_run_id"] != this_run and any(not store.has_day(d) for d in months[r["month"]])
    ]
    if stale:
        results = [r for r in results if r["month"] not in stale]
        results += await asyncio.gather(*(run(m, months[m], True) for m in stale))
    await prog.finish()

    report = BarsReport(days=[])
    for r in results:
        if r["flow_run_id"] == this_run:
            report.months_run += 1
            report.fetched.update(r["fetched"])
            report.failed.update(r["failed"])
        else:
            report.months_cached += 1
    if live_day is not None:
        live = await fetch_live_day.with_options(result_storage=storage)(day=live_day, runtime=runtime)
        if live["flow_run_id"] == this_run:
            report.fetched.add(live["day"])

    now = dt.datetime.now(dt.timezone.utc)
    ages = []
    for d in history + ([live_day] if live_day else []):
        info = store.day_info(d)
        if info is None:
            continue
        report.days.append(d)
        if d.isoformat() in report.fetched:
            report.bars_fetched += info["rows"]
        else:
            report.bars_reused += info["rows"]
            ages.append((now - info["fetched_at"]).total_seconds() / 3600)
    report.oldest_cache_age_hours = round(max(ages), 2) if ages else 0.0
    report.failed = {d: m for d, m in report.failed.items() if dt.date.fromisoformat(d) not in report.days}
    return report
