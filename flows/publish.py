"""The publish stage: scan state, result files, Prefect artifacts and the message, in that order."""

from __future__ import annotations

import pandas as pd
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from technic_v4.pipeline.metrics import StageTimer, peak_rss_mb
from technic_v4.pipeline.publish import publish
from technic_v4.pipeline.report import format_message, ranked_by, render_markdown, top_table
from technic_v4.pipeline.runtime import ScanRuntime
from technic_v4.pipeline.state import RESULT_FIELDS, ScanState
from technic_v4.pipeline.summary import ScanOutput, ScanSummary

TOP_ROWS = 50


async def publish_artifacts(summary: ScanSummary, shown: pd.DataFrame, report_md: str, signals) -> None:
    """`scan-top` lists what the run asked for (its `signals` filter), rounded, in the trader's columns."""
    label = " (SIMULATED)" if summary.simulated else ""
    which = f" — signals {', '.join(signals)}" if signals else ""
    await acreate_table_artifact(
        key="scan-top", table=top_table(shown, TOP_ROWS),
        description=f"Top {min(TOP_ROWS, len(shown))} of {len(shown)} by {ranked_by(shown)}, {summary.as_of}{which}{label}",
    )
    await acreate_markdown_artifact(key="scan-report", markdown=report_md, description=f"Scan report{label}")


async def publish_scan(run: ScanRuntime, state: ScanState, summary: ScanSummary, results: pd.DataFrame,
                       streaks: dict | None, timer: StageTimer) -> ScanOutput:
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
                        meta=summary.as_dict(), key=run.config_key)
        await publish_artifacts(summary, shown, report_md, run.config.signals)
    summary.paths = {k: str(v) for k, v in paths.__dict__.items()}
    summary.metrics.wall_seconds, summary.metrics.stages = round(timer.total, 3), timer.as_dict()
    shown = shown.drop(columns=["fingerprint"], errors="ignore").reset_index(drop=True)
    return ScanOutput(results=shown, message=format_message(summary), summary=summary.as_dict())
