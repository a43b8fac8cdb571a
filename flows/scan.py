"""Flow `scan`: reference -> fetch bars (cached per month) -> load panel -> regime -> prescreen -> score (thread or
Ray, chosen per run) -> validate -> publish. Each stage is one call into a plain function or a thin task."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.fetch import fetch_bars
from flows.publish import ScanOutput, publish_scan
from flows.score import score_symbols
from flows.tasks import load_reference, refresh_splits
from technic_v4.domain.panel_load import load_panel
from technic_v4.domain.regime import compute_regime
from technic_v4.domain.scoring.results_schema import validate_results_report
from technic_v4.domain.indicators import required_history
from technic_v4.pipeline.fetch import first_scan_history, require_days
from technic_v4.pipeline.metrics import StageTimer, reset_peak_rss
from technic_v4.pipeline.publish import read_previous, signal_changes
from technic_v4.pipeline.report import signal_counts
from technic_v4.pipeline.rescore import assemble_results, plan_rescore
from technic_v4.pipeline.runtime import open_runtime
from technic_v4.pipeline.scan_config import ScanConfig
from technic_v4.pipeline.screen import check_sectors, screen
from technic_v4.pipeline.state import ScanState
from technic_v4.pipeline.summary import build_summary
from technic_v4.pipeline.universe import upkeep_details_for_scan


@flow(name="scan", log_prints=False)
async def scan(config: ScanConfig = ScanConfig()) -> ScanOutput:
    """Scan the US stock universe: rank every tradeable symbol by TechRating with a signal and a trade plan."""
    reset_peak_rss()  # the reported peak is this scan's, also in a long-lived worker process
    run, timer = open_runtime(config), StageTimer()
    state = ScanState.load(run.store, run.config_key)
    async with run.source:
        calls_before = run.source.counter.snapshot()
        with timer.stage("reference"):
            reference, reference_info = await load_reference(run)
            check_sectors(config.sectors, reference)
        with timer.stage("fetch"):
            history, live_day = run.history_and_live_day()
            lookback = len(history)
            history = first_scan_history(run.store, history, rate_limited=run.settings.rate_limit > 0,
                                         need=required_history())
            bars = await fetch_bars(run, history, live_day)
            splits, split_changed = await refresh_splits(run)
        require_days(bars, run.as_of)
        with timer.stage("load_panel"):
            duplicates: list[dict] = []
            panel = load_panel(run.store, bars.days, splits=splits, duplicates=duplicates)
        with timer.stage("details"):  # ticker details on a budget, ranked by the bars just loaded
            reference, details_info = await upkeep_details_for_scan(
                run, reference, panel, splits, blacklist=state.blacklist, cold=bars.bars_reused == 0,
                calls_so_far=run.source.counter.since(calls_before)["attempts"])
            reference_info = {**reference_info, **details_info}
        calls = run.source.counter.since(calls_before)
    with timer.stage("regime"):
        regime = compute_regime(panel)
    with timer.stage("prescreen"):
        screened = screen(panel, reference, config, state, duplicates)
    with timer.stage("score"):
        previous, previous_as_of = read_previous(run.settings.data_dir, run.config_key)
        plan = plan_rescore(screened.panel, reference, regime.label, previous, reuse=config.reuse_scores,
                            force=sorted(set(split_changed) | set(screened.protected)),
                            first=screened.protected + state.last_signals)
        scored = score_symbols(screened.panel.select(plan.to_score), reference, regime, plan.priority, config,
                               run.settings)
        results = assemble_results(scored.frame, plan)
    with timer.stage("validate"):
        results, invalid = validate_results_report(results)
        if len(invalid):
            get_run_logger().error("%d result rows failed validation and were held back:\n%s", len(invalid),
                                   invalid.head(20))
    summary = build_summary(
        run=run, flow_run_id=str(flow_run.id), live_day=live_day, regime=regime, screened=screened,
        signals=signal_counts(results), changes=signal_changes(previous, results), previous_as_of=previous_as_of,
        bars=bars, calls=calls, split_changed=split_changed, reference_info=reference_info, plan=plan,
        scored=scored, invalid_rows=len(invalid))
    summary.provisional_days = [d.isoformat() for d in bars.days if not run.store.has_day(d, final_only=True)]
    if len(history) < lookback:  # a rate-limited first scan: say which rows lack long history
        short = results.loc[results["pct_from_52w_high"].isna(), "Symbol"]
        summary.short_history = {"sessions": len(history), "lookback_days": lookback, "rows": len(short),
                                 "symbols": sorted(short)[:50]}
    output = await publish_scan(run, state, summary, results, screened.result.blacklist, timer)
    get_run_logger().info("\n%s", output.message)
    return output


def scan_flow_for(config: ScanConfig):
    """The flow technic_v4.api.run_scan runs (registered as the `scan` entry point). The runner is chosen per run
    inside the score stage, so the same flow object serves every configuration."""
    return scan


if __name__ == "__main__":
    from technic_v4.api import run_scan

    print(run_scan()[1])
