"""The publish stage: scan state, result files, Prefect artifacts and the message, in that order."""

from __future__ import annotations

import asyncio

import pandas as pd
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from technic_v4.pipeline.metrics import StageTimer, peak_rss_mb
from technic_v4.pipeline.publish import publish
from technic_v4.pipeline.report import format_message, render_markdown, top_table
from technic_v4.pipeline.runtime import ScanRuntime
from technic_v4.pipeline.screens.apply import ScreenResult
from technic_v4.pipeline.screens.model import AD_HOC, Screen
from technic_v4.pipeline.screens.publish import screen_results, write_screens
from technic_v4.pipeline.state import RESULT_FIELDS, ScanState
from technic_v4.pipeline.summary import ScanOutput, ScanSummary

TOP_ROWS = 50


async def publish_artifacts(summary: ScanSummary, shown: pd.DataFrame, report_md: str, signals) -> None:
    """`scan-top` lists what the run asked for (its `signals` filter), rounded, in the trader's columns."""
    label = " (SIMULATED)" if summary.simulated else ""
    which = f" — signals {', '.join(signals)}" if signals else ""
    await acreate_table_artifact(
        key="scan-top", table=top_table(shown, TOP_ROWS),
        description=f"Top {min(TOP_ROWS, len(shown))} of {len(shown)} by TechRating, {summary.as_of}{which}{label}",
    )
    await acreate_markdown_artifact(key="scan-report", markdown=report_md, description=f"Scan report{label}")


async def publish_screen_artifacts(done: list[ScreenResult], summary: ScanSummary) -> None:
    """One table artifact per screen (`screen-<name>`), in the screen's columns and order; posted concurrently."""
    label = " (SIMULATED)" if summary.simulated else ""

    def artifact(result: ScreenResult):
        c, name = result.changes, result.screen.name
        return acreate_table_artifact(
            key=f"screen-{name}", table=top_table(result.members, TOP_ROWS, result.screen.shown_columns()),
            description=(f"Screen {name}: {len(result.members)} rows, {summary.as_of}{label} — where "
                         f"{result.screen.expression.canonical}; new {len(c['new'])}, dropped {len(c['dropped'])}, "
                         f"flipped {len(c['flipped'])} since {result.previous_as_of or 'never (first run)'}"))

    await asyncio.gather(*(artifact(r) for r in done))


async def publish_scan(run: ScanRuntime, state: ScanState, summary: ScanSummary, results: pd.DataFrame,
                       streaks: dict | None, timer: StageTimer, screens: list[Screen] = ()) -> ScanOutput:
    """Timed as the `publish` stage; the returned summary's times include it."""
    with timer.stage("publish"):
        # every screen reads the one scored table: a bad column fails here, before any file is written
        done = screen_results(results, list(screens), data_dir=run.settings.data_dir, config_key=run.config_key,
                              run_signals=run.config.signals)
        signalled = summary.changes["new"] + list(results.loc[results["Signal"] != "Avoid", "Symbol"])
        state.config = run.config.model_dump(mode="json", include=set(RESULT_FIELDS))
        state.record_scan(run.as_of, streaks, signalled)
        state.save(run.store)
        shown = results if not run.config.signals else results[results["Signal"].isin(run.config.signals)]
        ad_hoc = [r for r in done if r.screen.name == AD_HOC and r.screen.source == AD_HOC]
        if ad_hoc:  # the run's own where narrows its table (scan-top, what run_scan returns)
            shown = ad_hoc[0].members
        write_screens(done, results, data_dir=run.settings.data_dir, run_id=summary.flow_run_id, as_of=run.as_of)
        summary.screens = {r.screen.name: r.as_dict() for r in done}
        summary.metrics.wall_seconds, summary.metrics.stages = round(timer.total, 3), timer.as_dict()
        summary.metrics.peak_rss_mb_flow = round(peak_rss_mb(), 1)
        report_md = render_markdown(summary, shown)
        paths = publish(results, data_dir=run.settings.data_dir, as_of=run.as_of, report_md=report_md,
                        meta=summary.as_dict(), key=run.config_key)
        await asyncio.gather(publish_artifacts(summary, shown, report_md, run.config.signals),
                             publish_screen_artifacts(done, summary))
    summary.paths = {k: str(v) for k, v in paths.__dict__.items()}
    summary.metrics.wall_seconds, summary.metrics.stages = round(timer.total, 3), timer.as_dict()
    shown = shown.drop(columns=["fingerprint"], errors="ignore").reset_index(drop=True)
    return ScanOutput(results=shown, message=format_message(summary), summary=summary.as_dict(),
                      screens={r.screen.name: r.table for r in done})
