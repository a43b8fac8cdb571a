"""Flow `refresh-reference`: refresh the cached universe (names, sectors, shares outstanding) and splits weekly."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.tasks import IO_RETRIES
from technic_v4.calendar import last_completed_session
from technic_v4.pipeline import universe
from technic_v4.pipeline.runtime import ScanRuntime, open_runtime
from technic_v4.pipeline.scan_config import ScanConfig


@task(name="fetch-reference", cache_policy=NO_CACHE, **IO_RETRIES)
async def fetch_reference(runtime: ScanRuntime) -> dict:
    df, info = await universe.load_reference(runtime.store, runtime.source, force=True)
    return {**info, "symbols": int(len(df)), "sectors": df["sector"].value_counts().to_dict()}


@task(name="fetch-splits", cache_policy=NO_CACHE, **IO_RETRIES)
async def fetch_splits(runtime: ScanRuntime) -> dict:
    splits, changed = await universe.refresh_splits(runtime.store, runtime.source, runtime.as_of)
    return {"splits_known": int(len(splits)), "symbols_with_new_splits": changed}


@flow(name="refresh-reference", log_prints=False)
async def refresh_reference(data_source: str | None = None) -> dict:
    """Refresh reference data from the source; the scan flow then reads it from the cache all week."""
    runtime = open_runtime(ScanConfig.build(data_source=data_source, as_of=last_completed_session()))
    try:
        ref = await fetch_reference(runtime)
        spl = await fetch_splits(runtime)
    finally:
        await runtime.source.aclose()
    calls = runtime.source.counter.snapshot()
    out = {**ref, **spl, "api_calls": calls["attempts"], "api_retries": calls["retries"]}
    get_run_logger().info("reference refreshed: %s", {k: v for k, v in out.items() if k != "sectors"})
    return out
