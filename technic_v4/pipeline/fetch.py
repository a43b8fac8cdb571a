"""Make sure the bar store holds every trading day a scan needs, fetching only what is missing.

One grouped-daily request per missing trading day, never one per symbol. Each day is written to the store as soon
as it arrives, so a scan killed mid-backfill keeps every finished day for the next run.

Settled vs provisional: Polygon keeps revising a day's bar as late trades arrive (extended hours until 20:00 New York,
late FINRA reports). A day is *settled* at TECHNIC_SETTLE_TIME (default 20:30 New York) on its session date; fetched
before that it is stored provisional (final=false), used, reported, and fetched again by the next scan. A provisional
day is never a cache hit; the first fetch after the settle time stores it final, and from then on it costs nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import groupby

from technic_v4.calendar import NY
from technic_v4.data.source import MarketDataSource
from technic_v4.errors import AuthError, BadResponse, DataSourceError, DeadlineExceeded, StoreCorruption
from technic_v4.heap import release_free_memory
from technic_v4.store.bar_store import BarStore
from technic_v4.store.panel_cache import PanelCache

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
DEFAULT_SETTLE_TIME = dt.time(20, 30)  # New York; extended hours end 20:00, late prints trickle in after


def settles_at(day: dt.date, settle_time: dt.time = DEFAULT_SETTLE_TIME) -> dt.datetime:
    """When `day`'s daily bar is final: its settle time in New York on the session date."""
    return dt.datetime.combine(day, settle_time, tzinfo=NY)


def is_settled(day: dt.date, now: dt.datetime, settle_time: dt.time = DEFAULT_SETTLE_TIME) -> bool:
    if now.tzinfo is None:
        raise ValueError(f"`now` must be timezone-aware, got {now!r}")
    return now >= settles_at(day, settle_time)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class FetchReport:
    """What one ensure_days call fetched (days it found stored are the caller's to count, once, in BarsReport)."""

    fetched: list[dt.date] = field(default_factory=list)
    provisional: list[dt.date] = field(default_factory=list)  # fetched before their settle time: refetched later
    settled: list[dt.date] = field(default_factory=list)  # were provisional, now refetched and stored final
    failed: dict[str, str] = field(default_factory=dict)  # ISO day -> error message
    fetched_bars: int = 0


@dataclass
class BarsReport:
    """The fetch stage's one report: which days the panel gets and how many bar-days came from cache or the API."""

    days: list[dt.date] = field(default_factory=list)  # days available for the panel, oldest first
    provisional: list[str] = field(default_factory=list)  # ISO days among them stored before their settle time
    fetched: set[str] = field(default_factory=set)  # ISO days fetched by this run
    failed: dict[str, str] = field(default_factory=dict)
    months_cached: int = 0
    months_run: int = 0
    bars_reused: int = 0
    bars_fetched: int = 0
    oldest_cache_age_hours: float = 0.0

    @property
    def cache_hit_rate(self) -> float:
        """Cached bar-days / needed bar-days, counted from stored row counts (1.0 when nothing was needed)."""
        total = self.bars_reused + self.bars_fetched
        return self.bars_reused / total if total else 1.0

    def add_month(self, result: dict, this_run: str) -> None:
        """Fold in one month task's result; a result from an older run is a Prefect cache hit."""
        if result["flow_run_id"] != this_run:
            self.months_cached += 1
            return
        self.months_run += 1
        self.fetched.update(result["fetched"])
        self.failed.update(result["failed"])

    def count_days(self, store: BarStore, days: list[dt.date], now: dt.datetime | None = None) -> None:
        """Count every needed day once from its stored meta: fetched now or reused, provisional or final, and the
        oldest reuse's age."""
        now = now or utcnow()
        ages = []
        for d in days:
            info = store.day_info(d)
            if info is None:
                continue
            self.days.append(d)
            if not info["final"]:
                self.provisional.append(d.isoformat())
            if d.isoformat() in self.fetched:
                self.bars_fetched += info["rows"]
            else:
                self.bars_reused += info["rows"]
                ages.append((now - info["fetched_at"]).total_seconds() / 3600)
        self.oldest_cache_age_hours = round(max(ages), 2) if ages else 0.0
        self.failed = {d: m for d, m in self.failed.items() if dt.date.fromisoformat(d) not in self.days}


# Days in flight at once across every month task of a scan, fetched or being written: above the HTTP client's 16
# connections, and a bound on the day frames held while their writes run in threads.
DAYS_IN_FLIGHT = 20
_in_flight: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _days_in_flight() -> asyncio.Semaphore:
    """One semaphore per event loop: the month tasks of one scan share it."""
    loop = asyncio.get_running_loop()
    if loop not in _in_flight:
        _in_flight[loop] = asyncio.Semaphore(DAYS_IN_FLIGHT)
    return _in_flight[loop]


def month_key(day: dt.date) -> str:
    return f"{day:%Y-%m}"


def split_by_month(days: list[dt.date]) -> dict[str, list[dt.date]]:
    """Group sorted trading days by calendar month: the unit of a cached fetch task."""
    return {k: list(g) for k, g in groupby(sorted(days), key=month_key)}


async def ensure_days(
    store: BarStore,
    source: MarketDataSource,
    days: list[dt.date],
    *,
    now: dt.datetime | None = None,
    settle_time: dt.time = DEFAULT_SETTLE_TIME,
    final: bool | None = None,
    on_missing: str = "skip",
    progress: ProgressFn | None = None,
) -> FetchReport:
    """Fetch the days not stored final in `store` concurrently (the source bounds concurrency) and store each one.

    A day is stored final when it is settled at `now` (default: the wall clock; tests inject one), else
    provisional; `final` forces either. A provisional day already stored is fetched again, never reused.
    `on_missing="skip"` reports a day that stays broken in `failed` and goes on; `"fail"` raises DataSourceError
    naming every failed day.
    """
    now = now or utcnow()
    report = FetchReport()
    missing = [d for d in days if not store.has_day(d, final_only=True)]
    was_provisional = {d for d in missing if store.has_day(d, final_only=False)}
    done = 0
    in_flight = _days_in_flight()

    async def one(day: dt.date) -> None:
        async with in_flight:
            await fetch_and_store(day)

    async def fetch_and_store(day: dt.date) -> None:
        nonlocal done
        try:
            frame = await source.grouped_daily(day)
        except (AuthError, DeadlineExceeded, BadResponse):
            # a bad key or plan, a server that does not answer within the deadline or answers HTML, is not a broken
            # day: fail the scan now with the server's message (every other day would meet the same)
            raise
        except DataSourceError as exc:
            report.failed[day.isoformat()] = str(exc)
            log.warning("grouped daily %s failed: %s", day, exc)
        else:
            if frame.empty:  # a session with no bars is not data yet: never cache it as a final day
                report.failed[day.isoformat()] = f"no bars returned for trading day {day}"
                return
            day_final = is_settled(day, now, settle_time) if final is None else final
            # in a thread: parquet encoding releases the GIL, so the next day's fetch or parse goes on meanwhile
            # (a cold 60,000-symbol scan writes 300 days of 60,000 rows)
            await asyncio.to_thread(store.write_day, day, frame, source=source.name, final=day_final, fetched_at=now)
            report.fetched.append(day)
            report.fetched_bars += len(frame)
            if not day_final:
                report.provisional.append(day)
            elif day in was_provisional:
                report.settled.append(day)
        finally:
            done += 1
            if progress is not None:
                progress(done, len(missing))

    await asyncio.gather(*(one(d) for d in missing))
    if report.fetched:
        release_free_memory()  # what the writer threads freed, before the panel load allocates the window
    for days_list in (report.fetched, report.provisional, report.settled):
        days_list.sort()
    if report.failed and on_missing == "fail":
        listed = "; ".join(f"{d}: {m}" for d, m in sorted(report.failed.items()))
        raise DataSourceError(f"{len(report.failed)} trading day(s) could not be fetched: {listed}")
    return report


def first_scan_history(store: BarStore, history: list[dt.date], *, rate_limited: bool, need: int) -> list[dt.date]:
    """The sessions a scan loads. On a rate-limited plan (TECHNIC_RATE_LIMIT set, e.g. 5/min on the free tier) a scan
    with none of its sessions stored loads only the `need` most recent ones the indicators need (260 by default: 52 weekly bars),
    not all of `lookback_days`: 48 fewer calls, ~10 minutes less at 5/min. Rows with a missing day among them lack
    the 52-week values (NaN, reported). The next scan fetches the older sessions within its call budget."""
    if not rate_limited or len(history) <= need or any(store.has_day(d, final_only=False) for d in history):
        return history
    return history[-need:]


def require_days(report: BarsReport, as_of: dt.date) -> None:
    """A scan without a single trading day of bars cannot rank anything: fail with what went wrong."""
    if not report.days:
        failed = "; ".join(f"{d}: {m}" for d, m in sorted(report.failed.items())[:10]) or "nothing was stored"
        raise DataSourceError(f"no trading days could be loaded for {as_of}; failed: {failed}")


def set_aside_damaged(store: BarStore, days: list[dt.date], *, panel_cache: bool) -> dict[dt.date, str]:
    """Check the day files the panel load will read (those the panel cache does not serve; all of them without the
    cache) before the fetch stage, and set aside each damaged one so the fetch refetches it. Returns {day: problem}.
    Days the cache serves are not read, so they are not hashed: a warm scan checks the one new day."""
    to_read = PanelCache(store).days_to_read(days) if panel_cache else [d for d in days if store.has_day(d, False)]
    damaged = {d: problem for d in to_read if (problem := store.damaged(d)) is not None}
    for day, problem in damaged.items():
        store.set_aside(day, problem)
    return damaged


def require_repaired(store: BarStore, damaged: dict[dt.date, str], failed: dict[str, str]) -> None:
    """A damaged day the fetch could not store again fails the scan, naming the file and the fix: a table without
    that day would differ from a clean scan's."""
    lost = {d: p for d, p in damaged.items() if not store.has_day(d, final_only=False)}
    if lost:
        why = {d.isoformat(): failed.get(d.isoformat(), "not stored again") for d in lost}
        raise StoreCorruption(store.corruption_message(lost, refetch_failed=why))
