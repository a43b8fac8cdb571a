"""The publish stage: scan state, result files, Prefect artifacts and the message, in that order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from flows.present import present_scan
from technic_v4.domain.panel import Panel
from technic_v4.domain.scoring.signals import SIGNALS
from technic_v4.pipeline.metrics import StageTimer, peak_rss_mb
from technic_v4.pipeline.publish import publish
from technic_v4.pipeline.report import (
    format_message, glossary_markdown, ranked_by, render_diagnostics, render_markdown, signals_label, top_table,
    top_table_text,
)
from technic_v4.pipeline.runtime import ScanRuntime
from technic_v4.pipeline.screens.apply import ScreenResult
from technic_v4.pipeline.screens.model import AD_HOC, Screen
from technic_v4.pipeline.screens.publish import screen_results, write_screens
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
                       streaks: dict | None, timer: StageTimer, screens: list[Screen] = (), *,
                       panel: Panel | None = None, previous: pd.DataFrame | None = None,
                       chart_pool=None) -> ScanOutput:
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
                        meta=summary.as_dict(), key=run.config_key, run_id=summary.flow_run_id)
        files = {"CSV (latest)": str(paths.latest_csv), "parquet (this run)": str(paths.history)}
        await asyncio.gather(publish_artifacts(summary, shown, report_md, run.config.signals, files),
                             publish_screen_artifacts(done, summary))
    with timer.stage("charts_report_alerts"):  # after the table is published: nothing here can fail the scan
        try:
            saved = [r for r in done if all(r is not a for a in ad_hoc)]  # each saved screen: a table of its own
            summary.seen = await present_scan(
                run, summary, [(SCAN_TABLE, shown)] + [(r.screen.name, r.members) for r in saved], panel,
                [(previous, summary.previous_as_of)] + [(r.previous, r.previous_as_of) for r in saved], files,
                member_signals=[run.config.signals] + [SIGNALS] * len(saved), chart_pool=chart_pool)
        except Exception as exc:  # noqa: BLE001 - the table is published; what a trader sees is reported instead
            get_run_logger().error("charts/report/alerts failed (the scan goes on): %s: %s", type(exc).__name__, exc)
            summary.seen = {"error": f"{type(exc).__name__}: {exc}"}
    summary.paths = {k: str(v) for k, v in paths.__dict__.items()}
    summary.metrics.wall_seconds, summary.metrics.stages = round(timer.total, 3), timer.as_dict()
    shown = shown.drop(columns=["fingerprint"], errors="ignore").reset_index(drop=True)
    return ScanOutput(results=shown, message=format_message(summary), summary=summary.as_dict(),
                      screens={r.screen.name: r.table for r in done})
