"""Flow `scan`: reference -> fetch bars (cached per month) -> load_panel (the most liquid max_symbols) -> details
(ticker details on a call budget) -> regime -> prescreen -> score (thread or Ray, chosen per run) -> validate ->
summary -> publish. Each stage is one call into a plain function or a thin task."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.fetch import fetch_stage
from flows.present import start_charts
from flows.publish import publish_scan
from flows.score import score_symbols
from flows.tasks import load_reference
from technic_v4.domain.market_proxy import market_proxy
from technic_v4.domain.regime import compute_regime
from technic_v4.domain.scoring.results_schema import validate_results_report
from technic_v4.pipeline.learned_rating import apply_rating
from technic_v4.pipeline.liquid_load import load_liquid_panel
from technic_v4.pipeline.metrics import StageTimer, reset_peak_rss
from technic_v4.pipeline.publish import read_previous
from technic_v4.pipeline.rescore import assemble_results, plan_rescore
from technic_v4.pipeline.runtime import open_runtime
from technic_v4.pipeline.scan_config import ScanConfig
from technic_v4.pipeline.screens.model import run_screens
from technic_v4.pipeline.screen import check_sectors
from technic_v4.pipeline.screen import screen as prescreen  # `screen` is the flow parameter (saved screens)
from technic_v4.pipeline.state import ScanState
from technic_v4.pipeline.summary import ScanOutput, build_summary
from technic_v4.pipeline.universe import upkeep_details_for_scan


@flow(name="scan", log_prints=False)
async def scan(config: ScanConfig = ScanConfig(), screen: str | None = None, where: str | None = None) -> ScanOutput:
    """Scan the US stock universe: rank every tradeable symbol by TechRating with a signal and a trade plan.
    `screen` (saved screen names, comma-separated) and `where` (an expression) add to the config's screens."""
    reset_peak_rss()  # the reported peak is this scan's, also in a long-lived worker process
    config = config.with_screens(screen, where)
    run, timer = open_runtime(config), StageTimer()
    screens = run_screens(config, run.settings.data_dir)  # an unknown name fails before any work
    chart_pool = start_charts(config)  # chart processes import matplotlib while the scan fetches and scores
    try:
        output = await scan_stages(config, run, timer, screens, chart_pool)
    finally:
        if chart_pool is not None:
            chart_pool.close()  # a scan that failed before its charts leaves no process behind
    get_run_logger().info("\n%s", output.message)
    return output


async def scan_stages(config: ScanConfig, run, timer: StageTimer, screens, chart_pool) -> ScanOutput:
    """The stages, timed, in order; the published output."""
    state = ScanState.load(run.store, run.config_key)
    async with run.source:
        calls_before = run.source.counter.snapshot()
        with timer.stage("reference"):
            reference, reference_info = await load_reference(run)
            check_sectors(config.sectors, reference)
        with timer.stage("fetch"):
            fetched = await fetch_stage(run)
        with timer.stage("load_panel"):
            panel = load_liquid_panel(run.store, fetched.bars.days, config.max_symbols, config.watchlist,
                                      splits=fetched.splits, duplicates=(duplicates := []),
                                      cache=run.settings.panel_cache)
        with timer.stage("details"):  # ticker details on a budget, ranked by the bars just loaded
            reference, reference_info = await upkeep_details(run, reference, reference_info, panel, fetched, state,
                                                             calls_before)
        calls = run.source.counter.since(calls_before)
    with timer.stage("regime"):
        regime = compute_regime(panel)
    with timer.stage("prescreen"):
        screened = prescreen(panel, reference, config, state, duplicates)
    with timer.stage("score"):
        previous, previous_as_of = read_previous(run.settings.data_dir, run.config_key)
        plan = plan_rescore(screened.panel, reference, regime.label, previous, reuse=config.reuse_scores,
                            force=sorted(set(fetched.split_changed) | set(screened.protected)),
                            first=screened.protected + state.last_signals, variant=config.plan_variant)
        scored = score_symbols(screened.panel.select(plan.to_score), reference, regime, plan.priority, config,
                               run.settings)
        results = assemble_results(scored.frame, plan, market_proxy(panel).close)  # RS across today's universe
    with timer.stage("rating"):  # TechRating, or the learned rating when asked for and a model exists
        results, rating = apply_rating(results, config.rating, run.settings.data_dir, run.as_of, run.source_id, regime,
                                       config.plan_rule, config.min_reward_risk)
    with timer.stage("validate"):
        results, invalid = validate_results_report(results)
        log_invalid(invalid)
    summary = build_summary(
        run=run, flow_run_id=str(flow_run.id), fetched=fetched, regime=regime, screened=screened, results=results,
        previous=previous, previous_as_of=previous_as_of, calls=calls, reference_info=reference_info, plan=plan,
        scored=scored, invalid_rows=len(invalid), rating=rating)
    return await publish_scan(run, state, summary, results, screened.result.blacklist, timer, screens,
                              panel=screened.panel, previous=previous, chart_pool=chart_pool)


async def upkeep_details(run, reference, reference_info: dict, panel, fetched, state, calls_before: dict):
    """Ticker details within the scan's call budget (none on a cold scan); the reference with what arrived."""
    reference, details_info = await upkeep_details_for_scan(
        run, reference, panel, fetched.splits, blacklist=state.blacklist, cold=fetched.bars.bars_reused == 0,
        calls_so_far=run.source.counter.since(calls_before)["attempts"])
    return reference, {**reference_info, **details_info}


def log_invalid(invalid) -> None:
    if len(invalid):
        get_run_logger().error("%d result rows failed validation and were held back:\n%s", len(invalid),
                               invalid.head(20))


def scan_flow_for(config: ScanConfig):
    """The flow technic_v4.api.run_scan runs (registered as the `scan` entry point). The runner is chosen per run
    inside the score stage, so the same flow object serves every configuration."""
    return scan


if __name__ == "__main__":
    from technic_v4.api import run_scan

    print(run_scan()[1])
