"""After the table is published: what a trader sees and is told. Charts of each table's top rows (processes) while the
screen-change events and the notifier run, then report.html in the run's folder, the Prefect artifacts (a table's
rows with its charts, a link to the report, the diagnostics) and the flow run's name. Nothing here fails the scan:
a chart, a delivery or an artifact that fails is reported in the summary and the log."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import acreate_link_artifact, acreate_markdown_artifact

from flows.events import emit_screen_changes
from technic_v4.domain.market_proxy import market_proxy
from technic_v4.domain.panel import Panel
from technic_v4.pipeline.alerts import notify, screen_change
from technic_v4.pipeline.charts import ChartPool, ChartsReport, render_charts, start_chart_pool
from technic_v4.pipeline.charts import prepare as charts_prepare
from technic_v4.pipeline.report import glossary_markdown, run_headline, top_table_text
from technic_v4.pipeline.report_html import render_report, run_folder
from technic_v4.pipeline.runtime import ScanRuntime
from technic_v4.pipeline.summary import ScanSummary
from technic_v4.store.atomic import atomic_write_text

ARTIFACT_ROWS = 12  # rows of a table's charts artifact (the report has more, the CSV all)


def start_charts(config) -> ChartPool | None:
    """When this scan will draw charts: fork the processes that draw them now (they import matplotlib while the scan
    fetches and scores); where none may be forked, import matplotlib in a daemon thread instead (charts.prepare).
    The flow closes the pool when it ends, whatever happens."""
    if config.chart_top <= 0:
        return None
    pool = start_chart_pool()
    if pool is None:
        threading.Thread(target=charts_prepare, name="charts-prewarm", daemon=True).start()
    return pool


def artifact_key(name: str, suffix: str) -> str:
    """Prefect artifact keys are lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{name}-{suffix}".lower()).strip("-")


ARTIFACT_COLUMNS = ["Symbol", "Signal", "TechRating", "Close", "Entry", "Stop", "Target", "RewardRisk", "Sector"]


def table_markdown(name: str, frame: pd.DataFrame, charts: ChartsReport | None, summary: ScanSummary,
                   files: dict[str, str]) -> str:
    """The rows a chart shows and the charts below them; fits the artifact page's ~900 px column."""
    rows = pd.DataFrame(top_table_text(frame, ARTIFACT_ROWS))
    rows = rows[[c for c in ARTIFACT_COLUMNS if c in rows]]
    parts = [f"# {name}: top {len(rows)} of {len(frame):,} · {summary.as_of}" + (" (SIMULATED)" if summary.simulated
                                                                                 else "")]
    if len(rows):
        parts.append(rows.to_markdown(index=False, disable_numparse=True, colalign=["left", "left"]
                                      + ["right"] * (rows.shape[1] - 2)))
    if charts is not None:
        for c in charts.for_table(name):
            parts.append(f"![{c.title}]({c.thumbnail})")
        parts += [f"chart of {c.symbol} failed: {c.error}" for c in charts.failures if name in c.tables]
    parts.append("Full table: " + " · ".join(f"[{k}]({Path(v).as_uri()})" for k, v in files.items()))
    parts.append("### Columns\n" + glossary_markdown())
    return "\n\n".join(parts) + "\n"


async def present_scan(run: ScanRuntime, summary: ScanSummary, tables: Sequence[tuple[str, pd.DataFrame]],
                       panel: Panel | None, previous: Sequence[tuple[pd.DataFrame | None, str | None]],
                       files: dict[str, str], member_signals: Sequence[Sequence[str] | None] | None = None,
                       chart_pool: ChartPool | None = None) -> dict:
    """Charts, alerts, report and artifacts for the published `tables` ((name, rows), one per screen) against their
    `previous` (table, as_of) pairs. A table's members for its alerts are the rows with one of its `member_signals`
    (default: the run's signals filter, else the actionable signals; a saved screen passes every signal, since its
    where already chose its rows). Returns what happened, for the summary (`summary.seen`)."""
    log = get_run_logger()
    folder = run_folder(run.settings.data_dir, summary.flow_run_id)
    headline = run_headline(summary, tables[0][1] if tables else pd.DataFrame(), run.config.signals,
                            run.config.max_symbols)
    signals = list(member_signals) if member_signals is not None else [run.config.signals] * len(tables)
    changes = [screen_change(name, run.config_key, summary.as_of, prev, prev_as_of, frame, sig,
                             simulated=summary.simulated)
               for (name, frame), (prev, prev_as_of), sig in zip(tables, previous, signals)]
    report_path = folder / "report.html"

    async def charts_stage() -> ChartsReport | None:
        if panel is None or run.config.chart_top <= 0:
            return None
        return await asyncio.to_thread(render_charts, panel, market_proxy(panel), tables, folder / "charts",
                                       top_n=run.config.chart_top, simulated=summary.simulated, pool=chart_pool)

    async def alerts_stage():
        events = emit_screen_changes(changes)
        urls = run.settings.alert_url_list()
        sent = await asyncio.to_thread(notify, changes, urls, run.settings.data_dir, simulated=summary.simulated,
                                       report=str(report_path), lock=run.store.lock())
        return events, sent

    charts, (events, alerts) = await asyncio.gather(charts_stage(), alerts_stage())
    if charts is not None and charts.failures:
        log.warning("%d chart(s) failed (the scan goes on): %s", len(charts.failures),
                    "; ".join(f"{c.symbol}: {c.error}" for c in charts.failures))
    if alerts.failed:
        log.error("alert delivery failed after retries (the scan goes on): %s", "; ".join(alerts.failed.values()))
    rel_files = {k: Path(v).name for k, v in files.items()}
    html = render_report(summary, tables, charts, headline=headline, files=rel_files)
    atomic_write_text(report_path, html)
    seen = {"headline": headline, "report": str(report_path), "report_bytes": len(html.encode()),
            "charts": charts.as_dict() if charts else {"charts": 0, "failed": {}, "seconds": 0.0},
            "events": events, "alerts": alerts.as_dict(),
            "changed_screens": [c.screen for c in changes if c.changed]}
    await publish_views(summary, tables, charts, report_path, files, headline, log)
    return seen


async def publish_views(summary, tables, charts, report_path: Path, files: dict[str, str], headline: str, log) -> None:
    """The artifacts and the run's name; a failure here is logged, never raised (the table is already published)."""
    from prefect.client.orchestration import get_client

    label = " (SIMULATED)" if summary.simulated else ""
    try:
        for name, frame in tables:
            await acreate_markdown_artifact(
                key=artifact_key(name, "charts"), markdown=table_markdown(name, frame, charts, summary, files),
                description=f"{name}: top rows and charts, {summary.as_of}, configuration {summary.config_key}{label}")
        await acreate_link_artifact(key="scan-report-html", link=report_path.as_uri(), link_text=f"report.html",
                                    description=f"Self-contained HTML report of this run (open from this machine)"
                                                f"{label}")
        async with get_client() as client:
            await client.update_flow_run(summary.flow_run_id, name=headline)
    except Exception as exc:  # noqa: BLE001 - views are a courtesy once the table is published
        log.warning("a Prefect view of this scan could not be published: %s: %s", type(exc).__name__, exc)
