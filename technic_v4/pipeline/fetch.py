"""Make sure the bar store holds every trading day a scan needs, fetching only what is missing.

One grouped-daily request per missing trading day, never one per symbol. Each day is written to the store as soon
as it arrives, so a scan killed mid-backfill keeps every finished day for the next run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import groupby

from technic_v4.data.source import MarketDataSource
from technic_v4.errors import AuthError, DataSourceError
from technic_v4.store.bar_store import BarStore

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


@dataclass
class FetchReport:
    """What one ensure_days call did, counted per day and per bar (symbol-day)."""

    needed: list[dt.date] = field(default_factory=list)
    reused: list[dt.date] = field(default_factory=list)
    fetched: list[dt.date] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # ISO day -> error message
    reused_bars: int = 0
    fetched_bars: int = 0

    def merge(self, other: FetchReport) -> FetchReport:
        return FetchReport(
            needed=self.needed + other.needed,
            reused=self.reused + other.reused,
            fetched=self.fetched + other.fetched,
            failed={**self.failed, **other.failed},
            reused_bars=self.reused_bars + other.reused_bars,
            fetched_bars=self.fetched_bars + other.fetched_bars,
        )

    @property
    def cache_hit_rate(self) -> float:
        """Cached bar-days / needed bar-days, counted from stored row counts (1.0 when nothing was needed)."""
        total = self.reused_bars + self.fetched_bars
        return self.reused_bars / total if total else 1.0

    def as_dict(self) -> dict:
        return {
            "days_needed": len(self.needed),
            "days_reused": len(self.reused),
            "days_fetched": len(self.fetched),
            "days_failed": dict(self.failed),
            "bars_reused": self.reused_bars,
            "bars_fetched": self.fetched_bars,
            "cache_hit_rate": round(self.cache_hit_rate, 6),
        }


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
    final: bool = True,
    on_missing: str = "skip",
    progress: ProgressFn | None = None,
) -> FetchReport:
    """Fetch the days not yet in `store` concurrently (the source bounds concurrency) and store each one.

    `on_missing="skip"` reports a day that stays broken in `failed` and goes on; `"fail"` raises DataSourceError
    naming every failed day. Reused days are those already stored as final.
    """
    report = FetchReport(needed=list(days))
    missing = [d for d in days if not store.has_day(d, final_only=True)]
    for d in days:
        if d not in missing:
            report.reused.append(d)
            report.reused_bars += store.day_info(d)["rows"]
    done = 0

    async def one(day: dt.date) -> None:
        nonlocal done
        try:
            frame = await source.grouped_daily(day)
        except AuthError:
            raise  # a bad key or plan is not a broken day: fail the scan now with the server's message
        except DataSourceError as exc:
            report.failed[day.isoformat()] = str(exc)
            log.warning("grouped daily %s failed: %s", day, exc)
        else:
            if frame.empty:  # a session with no bars is not data yet: never cache it as a final day
                report.failed[day.isoformat()] = f"no bars returned for trading day {day}"
                return
            store.write_day(day, frame, source=source.name, final=final)
            report.fetched.append(day)
            report.fetched_bars += len(frame)
        finally:
            done += 1
            if progress is not None:
                progress(done, len(missing))

    await asyncio.gather(*(one(d) for d in missing))
    report.fetched.sort()
    if report.failed and on_missing == "fail":
        listed = "; ".join(f"{d}: {m}" for d, m in sorted(report.failed.items()))
        raise DataSourceError(f"{len(report.failed)} trading day(s) could not be fetched: {listed}")
    return report
