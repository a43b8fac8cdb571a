"""The scan summary: one typed record, built once at the end of a scan, rendered by report.py and stored as JSON.

`as_dict()` is the JSON form (latest.json, ScanOutput.summary); its keys are the names below.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import pandas as pd

from technic_v4.pipeline.publish import signal_changes
from technic_v4.pipeline.state import RESULT_FIELDS


@dataclass
class ScanMetrics:
    """Counted or timed, never estimated."""

    symbols_scored: int = 0
    symbols_reused: int = 0
    bars_quarantined: int = 0
    invalid_rows: int = 0
    api_calls: int = 0
    api_retries: int = 0
    api_calls_by_endpoint: dict[str, int] = field(default_factory=dict)
    cache_hit_rate: float = 1.0
    bars_reused: int = 0
    bars_fetched: int = 0
    months_cached: int = 0
    months_fetched: int = 0
    oldest_cache_age_hours: float = 0.0
    task_runner: str = "thread"  # the runner this run chose, also when nothing went to a worker
    runner_reason: str = ""
    flow_pid: int = 0  # the process the flow ran in; Ray scoring shows other worker_pids
    worker_processes: int = 0
    worker_pids: list[int] = field(default_factory=list)
    peak_rss_mb_workers: float = 0.0
    wall_seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    peak_rss_mb_flow: float = 0.0


@dataclass
class ScanSummary:
    as_of: str
    flow_run_id: str
    config_key: str  # "since last scan" and row reuse compare runs of this configuration only
    source: str
    simulated: bool
    regime: str
    regime_detail: dict
    prescreen: dict  # universe, kept, filtered {reason: count}
    signals: dict[str, int]
    changes: dict[str, list[str]]  # new / dropped / changed actionable signals since the last scan of this config
    missing_days: dict[str, str]  # ISO day -> why it could not be fetched
    unknown_watchlist: list[str]
    quarantine: list[dict]  # bars held back by the bar schema, one record per (bar, check)
    split_changed: list[str]
    reference: dict
    metrics: ScanMetrics = field(default_factory=ScanMetrics)
    previous_as_of: str | None = None  # the scan compared against, None on the first scan of this configuration
    provisional_days: list[str] = field(default_factory=list)  # fetched before their settle time; refetched later
    short_history: dict = field(default_factory=dict)  # a rate-limited first scan's shorter window and rows it leaves short
    data_import: dict = field(default_factory=dict)  # the CSV import's report (csv source only)
    paths: dict[str, str] = field(default_factory=dict)
    screens: dict[str, dict] = field(default_factory=dict)  # name -> rows, where, new/dropped/flipped, paths
    settings: dict = field(default_factory=dict)  # the run's result settings and signals filter (config_text)
    seen: dict = field(default_factory=dict)  # charts, report.html, events and alerts of this run (flows/present.py)
    rating: dict = field(default_factory=dict)  # which rating ran (pipeline/learned_rating.apply_rating)

    def as_dict(self) -> dict:
        return asdict(self)


def signal_counts(results: pd.DataFrame) -> dict[str, int]:
    return {k: int(v) for k, v in results["Signal"].value_counts().items()}


def build_summary(*, run, flow_run_id: str, fetched, regime, screened, results, previous, previous_as_of: str | None,
                  calls: dict, reference_info: dict, plan, scored, invalid_rows: int,
                  rating: dict | None = None) -> ScanSummary:
    """The one place a scan's summary is put together from its stages' outputs (see flows/scan.py)."""
    workers, bars, live_day = scored.workers, fetched.bars, fetched.live_day
    metrics = ScanMetrics(
        symbols_scored=int(len(scored.frame)),
        symbols_reused=int(len(plan.reused)),
        bars_quarantined=int(len(screened.quarantine)),
        invalid_rows=int(invalid_rows),
        api_calls=calls["attempts"],
        api_retries=calls["retries"],
        api_calls_by_endpoint=calls["by_endpoint"],
        cache_hit_rate=bars.cache_hit_rate,
        bars_reused=bars.bars_reused,
        bars_fetched=bars.bars_fetched,
        months_cached=bars.months_cached,
        months_fetched=bars.months_run,
        oldest_cache_age_hours=bars.oldest_cache_age_hours,
        task_runner=scored.runner,
        runner_reason=scored.reason,
        flow_pid=os.getpid(),
        worker_processes=len({w["pid"] for w in workers}),
        worker_pids=sorted({w["pid"] for w in workers}),
        peak_rss_mb_workers=max((w["peak_rss_mb"] for w in workers), default=0.0),
    )
    quarantine = screened.quarantine.to_dict("records") if len(screened.quarantine) else []
    return ScanSummary(
        as_of=(live_day or run.as_of).isoformat(),
        flow_run_id=flow_run_id,
        config_key=run.config_key,
        source=run.source.name + (" (intraday)" if live_day else ""),
        simulated=run.simulated,
        regime=regime.label,
        regime_detail=regime.as_dict(),
        prescreen=screened.result.as_dict(),
        signals=signal_counts(results),
        changes=signal_changes(previous, results, run.config.signals),
        missing_days=dict(bars.failed),
        unknown_watchlist=screened.unknown_watchlist,
        quarantine=quarantine,
        split_changed=fetched.split_changed,
        reference=reference_info,
        metrics=metrics,
        previous_as_of=previous_as_of,
        provisional_days=list(bars.provisional),
        short_history=_short_history(results, loaded=len(bars.days), lookback=fetched.lookback,
                                     first=bars.days[0] if bars.days else None, failed=bars.failed),
        data_import=dict(getattr(run, "data_import", {}) or {}),
        settings=run.config.model_dump(mode="json", include={*RESULT_FIELDS, "signals"}),
        rating=rating or {},
    )


def _short_history(results, *, loaded: int, lookback: int, first=None, failed: dict | None = None) -> dict:
    """Fewer sessions than asked: which rows lack the 52-week values, and why — a rate-limited first scan (the next
    scans fetch the rest) or a source without older sessions (every day before the first loaded one came back
    empty: an as-of before the source's history; no later scan can fetch them)."""
    if loaded >= lookback:
        return {}
    short = results.loc[results["pct_from_52w_high"].isna(), "Symbol"]
    older = [d for d in (failed or {}) if first is not None and d < first.isoformat()]
    before_source = bool(older) and all("no bars returned" in failed[d] for d in older)
    return {"sessions": loaded, "lookback_days": lookback, "rows": len(short), "symbols": sorted(short)[:50],
            **({"source_starts": first.isoformat()} if before_source else {})}


@dataclass
class ScanOutput:
    """What the `scan` flow returns and `run_scan_output` hands back: plain data, importable without Prefect."""

    results: pd.DataFrame  # ranked rows after the run's `signals` filter
    message: str
    summary: dict  # ScanSummary.as_dict(), the same JSON as latest.json
    screens: dict[str, pd.DataFrame] = field(default_factory=dict)  # each screen's rows (its columns, its order)
