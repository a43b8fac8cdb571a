"""Thin Prefect tasks over technic_v4's plain functions. Retries live on the I/O tasks only."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE, CacheKeyFnPolicy

from technic_v4.domain.scoring.plan_rules import DEFAULT_MIN_REWARD_RISK, DEFAULT_PLAN_RULE
from technic_v4.errors import AuthError, BadResponse, ConfigError, RetryExhausted, StoreCorruption, StoreWriteError
from technic_v4.pipeline import fetch as fetching, universe
from technic_v4.pipeline.metrics import peak_rss_mb
from technic_v4.pipeline.runtime import ScanRuntime
from technic_v4.domain.panel import Panel


def retry_unless_auth(_task, _task_run, state) -> bool:
    """Retry I/O failures, never a rejected key or plan (401/403), bad configuration, an HTML page for JSON, a
    request the HTTP client already retried up to its limit or its deadline (TECHNIC_REQUEST_DEADLINE), a full disk
    or a damaged store: a retry cannot fix those, costs requests and delays the message by the whole retry schedule
    (and breaks the deadline)."""
    return not isinstance(state.data, (AuthError, ConfigError, BadResponse, RetryExhausted, StoreWriteError,
                                       StoreCorruption))


# Retries on the I/O tasks only (Prefect's own examples do the same); the HTTP client retries single requests first.
IO_RETRIES = {"retries": 3, "retry_delay_seconds": [2, 5, 15], "retry_condition_fn": retry_unless_auth}


def _month_cache_key(_ctx, params) -> str:
    """One key per (source, month, exact day list): a settled month's key never changes. A month whose last day has
    not settled yet (TECHNIC_SETTLE_TIME) gets a key of this moment: never answered as final."""
    days = params["days"]
    state = "final"
    now = fetching.utcnow()
    if not fetching.is_settled(days[-1], now, params["runtime"].settings.settle_time):
        state = f"provisional-{now:%Y%m%dT%H%M%S%f}"
    return f"bars-{params['runtime'].source_id}-{params['month']}-{days[0]}-{days[-1]}-{len(days)}-{state}"


# Closed days never change, so their month key lives forever (today's session has its own task, fetch_live_day).
@task(
    name="fetch-month",
    cache_policy=CacheKeyFnPolicy(cache_key_fn=_month_cache_key),
    persist_result=True,
    retries=2,
    retry_delay_seconds=[2, 5],
    retry_condition_fn=retry_unless_auth,
)
async def fetch_month(month: str, days: list[dt.date], runtime: ScanRuntime, progress=None) -> dict:
    """Fetch this month's missing days into the store. The result records which flow run did the work, so the
    flow can tell a Prefect cache hit (an older run's result) from work done now."""
    from prefect.runtime import flow_run

    report = await fetching.ensure_days(
        runtime.store, runtime.source, days, final=None,
        settle_time=runtime.settings.settle_time, on_missing=runtime.config.on_missing_day, progress=progress,
    )  # final=None: each day by the settle clock (provisional before it)
    # A month with a failed day is still cached here; the flow checks the store afterwards and refreshes any
    # cached month whose days are not all stored, so a hole is retried on the next scan.
    return {
        "month": month,
        "flow_run_id": str(flow_run.id),
        "fetched": [d.isoformat() for d in report.fetched],
        "failed": report.failed,
    }


@task(name="load-reference", cache_policy=NO_CACHE, **IO_RETRIES)
async def load_reference(runtime: ScanRuntime) -> tuple[pd.DataFrame, dict]:
    return await universe.load_reference(runtime.store, runtime.source)


@task(name="refresh-splits", cache_policy=NO_CACHE, **IO_RETRIES)
async def refresh_splits(runtime: ScanRuntime) -> tuple[pd.DataFrame, list[str]]:
    return await universe.refresh_splits(runtime.store, runtime.source, runtime.as_of)


@task(name="score-chunk", cache_policy=NO_CACHE)
def score_chunk(panel: Panel, columns: np.ndarray, reference: pd.DataFrame, regime,
                plan_rule: str = DEFAULT_PLAN_RULE,
                min_reward_risk: float = DEFAULT_MIN_REWARD_RISK) -> tuple[pd.DataFrame, dict]:
    """Score a column chunk of the shared panel; runs on a Ray worker or a thread. Reports its own peak RSS."""
    import os

    from technic_v4.domain.scoring.score import score_panel

    frame = score_panel(panel.take_columns(columns), reference, regime, plan_rule, min_reward_risk)
    return frame, {"pid": os.getpid(), "peak_rss_mb": round(peak_rss_mb(), 1), "symbols": int(len(columns))}


def _live_cache_key(_ctx, params) -> str:
    return f"live-{params['runtime'].source_id}-{params['day']}"


# Today's unfinished session changes all day: one snapshot call, reused for 15 minutes.
@task(
    name="fetch-live-day",
    cache_policy=CacheKeyFnPolicy(cache_key_fn=_live_cache_key),
    cache_expiration=timedelta(minutes=15),
    persist_result=True,
    **IO_RETRIES,
)
async def fetch_live_day(day: dt.date, runtime: ScanRuntime) -> dict:
    from prefect.runtime import flow_run

    frame = await runtime.source.snapshot()
    runtime.store.write_day(day, frame, source=runtime.source.name, final=False)
    return {"day": day.isoformat(), "rows": int(len(frame)), "flow_run_id": str(flow_run.id)}
