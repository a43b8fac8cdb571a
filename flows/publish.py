"""The publish stage: scan state, result files, Prefect artifacts and the message, in that order."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from flows.present import present_scan
from technic_v4.domain.panel import Panel
from technic_v4.pipeline.metrics import StageTimer, peak_rss_mb
from technic_v4.pipeline.publish import publish
from technic_v4.pipeline.report import (
    format_message, glossary_markdown, ranked_by, render_diagnostics, render_markdown, signals_label, top_table_text,
)
from technic_v4.pipeline.runtime import ScanRuntime
from technic_v4.pipeline.state import RESULT_FIELDS, ScanState
from technic_v4.pipeline.summary import ScanOutput, ScanSummary

TOP_ROWS = 50
SCAN_TABLE = "scan"  # the name of today's one published table; screens (issue 20) add theirs beside it


async def publish_artifacts(summary: ScanSummary, shown: pd.DataFrame, report_md: str, signals,
                            files: dict[str, str] | None = None) -> None:
    """`scan-top` lists what the run asked for (its `signals` filter), at fixed decimals, in the trader's columns,
    with a glossary and links to the full table; `scan-report` is the trader's summary, `scan-diagnostics` the
    engineering metrics."""
    label = " (SIMULATED)" if summary.simulated else ""
    links = " · ".join(f"[{k}]({Path(v).as_uri()})" for k, v in (files or {}).items())
    await acreate_table_artifact(
        key="scan-top", table=top_table_text(shown, TOP_ROWS),
        description=f"Top {min(TOP_ROWS, len(shown))} of {len(shown):,} by {ranked_by(shown)}, {summary.as_of} · "
        f"{signals_label(signals)} · configuration {summary.config_key}{label}"
        + (f"  \nFull table: {links}" if links else "") + "\n\n" + glossary_markdown(),
    )
    await acreate_markdown_artifact(key="scan-report", markdown=render_markdown(summary, shown, metrics=False),
                                    description=f"Scan report {summary.as_of}, configuration {summary.config_key}"
                                                f"{label}")
    await acreate_markdown_artifact(key="scan-diagnostics", markdown=render_diagnostics(summary),
                                    description=f"Engineering metrics of this run (times, API calls, cache, memory)"
                                                f"{label}")


async def publish_scan(run: ScanRuntime, state: ScanState, summary: ScanSummary, results: pd.DataFrame,
                       streaks: dict | None, timer: StageTimer, *, panel: Panel | None = None,
                       previous: pd.DataFrame | None = None) -> ScanOutput:
    """Timed as the `publish` stage; the returned summary's times include it."""
    with timer.stage("publish"):
        signalled = summary.changes["new"] + list(results.loc[results["Signal"] != "Avoid", "Symbol"])
        state.config = run.config.model_dump(mode="json", include=set(RESULT_FIELDS))
        state.record_scan(run.as_of, streaks, signalled)
        state.save(run.store)
        shown = results if not run.config.signals else results[results["Signal"].isin(run.config.signals)]
        summary.metrics.wall_seconds, summary.metrics.stages = round(timer.total, 3), timer.as_dict()
        summary.metrics.peak_rss_mb_flow = round(peak_rss_mb(), 1)
        report_md = render_markdown(summary, shown)
        paths = publish(results, data_dir=run.settings.data_dir, as_of=run.as_of, report_md=report_md,
                        meta=summary.as_dict(), key=run.config_key, run_id=summary.flow_run_id)
        files = {"CSV (latest)": str(paths.latest_csv), "parquet (this run)": str(paths.history)}
        await publish_artifacts(summary, shown, report_md, run.config.signals, files)
    with timer.stage("charts_report_alerts"):  # after the table is published: nothing here can fail the scan
        try:
            summary.seen = await present_scan(run, summary, [(SCAN_TABLE, shown)], panel,
                                              [(previous, summary.previous_as_of)], files)
        except Exception as exc:  # noqa: BLE001 - the table is published; what a trader sees is reported instead
            get_run_logger().error("charts/report/alerts failed (the scan goes on): %s: %s", type(exc).__name__, exc)
            summary.seen = {"error": f"{type(exc).__name__}: {exc}"}
    summary.paths = {k: str(v) for k, v in paths.__dict__.items()}
    summary.metrics.wall_seconds, summary.metrics.stages = round(timer.total, 3), timer.as_dict()
    shown = shown.drop(columns=["fingerprint"], errors="ignore").reset_index(drop=True)
    return ScanOutput(results=shown, message=format_message(summary), summary=summary.as_dict())
