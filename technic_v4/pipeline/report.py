"""The scan summary as text people read: the `msg` of run_scan, the Prefect `scan-report` markdown and the trader's
`scan-top` table. Figures only, in human units, long lists cut short, never a Python repr."""

from __future__ import annotations

import numpy as np
import pandas as pd

from technic_v4.pipeline.summary import ScanSummary

SIM_BANNER = "SIMULATED DATA — deterministic simulated market, not real quotes"
LIST_LIMIT = 25

# What a trader reads first; the full table stays in the published CSV/parquet.
TOP_COLUMNS = ["Symbol", "Signal", "TechRating", "LearnedRating", "Close", "Entry", "Stop", "Target", "RewardRisk", "Sector",
               "RSI14", "ret_21d", "ATR14_pct", "MarketCap_B"]
PERCENT_COLUMNS = ("ret_21d", "ATR14_pct", "pct_from_52w_high")


def short_list(items, limit: int = LIST_LIMIT) -> str:
    items = [str(i) for i in items]
    if not items:
        return "none"
    more = len(items) - limit
    return ", ".join(items[:limit]) + (f" … and {more} more" if more > 0 else "")


def counts_text(counts: dict, empty: str = "none") -> str:
    """{"grouped_daily": 300, "splits": 1} -> "grouped_daily 300, splits 1"."""
    return ", ".join(f"{k} {v:,}" for k, v in counts.items() if v) or empty


def megabytes(mb: float) -> str:
    return f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def seconds(s: float) -> str:
    return f"{s:.2f} s" if s < 120 else f"{s / 60:.1f} min"


def ranked_by(results: pd.DataFrame) -> str:
    """The rating a results table is ranked by: LearnedRating when the learned rating ran, else TechRating."""
    return "LearnedRating" if "LearnedRating" in results and results["LearnedRating"].notna().any() else "TechRating"


def top_table(results: pd.DataFrame, n: int = 50) -> list[dict]:
    """The first `n` rows as JSON-safe records with the trader's columns, rounded (prices 2 dp, % 1 dp, cap in $B)."""
    top = results.head(n).copy()
    if "MarketCap" in top:
        top["MarketCap_B"] = top["MarketCap"] / 1e9
    cols = [c for c in TOP_COLUMNS if c in top and not (c == "LearnedRating" and top[c].isna().all())]
    out = top[cols].copy()
    for c in cols:
        if c in PERCENT_COLUMNS:
            out[c] = (out[c] * 100).round(1)
        elif pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].round(2)
    out = out.rename(columns={c: f"{c} %" for c in PERCENT_COLUMNS if c in out}).rename(
        columns={"MarketCap_B": "MarketCap $B"})
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in out.to_dict("records")]


def _stages(stages: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in stages.items())


def _changes(s: ScanSummary) -> str:
    ch = s.changes
    since = f"since the last scan of this configuration ({s.previous_as_of})" if s.previous_as_of else \
        "first scan of this configuration"
    return f"{since}: {len(ch['new'])} new, {len(ch['dropped'])} dropped, {len(ch['changed'])} flipped signals"


def data_lines(s: ScanSummary) -> list[str]:
    """Where the market series came from when there is no SPY, and what the CSV import did."""
    lines = []
    market = (s.regime_detail or {}).get("market")
    if market == "none":
        lines.append("regime UNKNOWN: no SPY in the data and too few symbols for an equal-weighted index")
    elif market and market != "SPY":
        lines.append(f"regime from the {market} (no SPY in the data)")
    if imp := s.data_import:
        lines.append(
            f"CSV import of {imp['folder']}: {imp['files']:,} files ({imp['files_read']:,} read, "
            f"{imp['files_unchanged']:,} unchanged, {imp['files_removed']} removed) in {seconds(imp['seconds'])}; "
            f"{imp['rows']:,} rows, {imp['sessions']} sessions {imp['first_session']} to {imp['last_session']}; "
            f"rows rejected: {counts_text(imp['rows_rejected'])}; empty fields (stored as NaN, a bar without a price "
            f"is quarantined): {counts_text(imp['empty_fields'])}; zero-volume rows {imp['zero_volume']}"
            + (f"; skipped files: {short_list(imp['skipped'], 5)}" if imp["skipped"] else "")
            + ("" if imp["reference_file"] else "; no reference file: names, sectors, shares outstanding unknown"))
    return lines


def universe_lines(s: ScanSummary) -> list[str]:
    """Unknown market caps (kept and flagged) with the details upkeep behind them, and provisional days."""
    lines = data_lines(s)
    unknown = s.prescreen.get("kept_flagged", {}).get("market_cap_unknown", 0)
    if unknown or s.reference.get("details_fetched"):
        lines.append(f"market cap unknown for {unknown:,} symbols (kept, flagged MarketCapUnknown); "
                     f"{s.reference.get('details_fetched', 0)} details fetched this scan, "
                     f"{s.reference.get('details_still_missing', 0):,} still to fetch")
    if h := s.short_history:
        lines.append(f"first scan on a rate-limited plan loaded {h['sessions']} of {h['lookback_days']} sessions; "
                     f"{h['rows']:,} rows lack 52-week values (a missing day in the window): "
                     f"{short_list(h['symbols'])}; the next scan fetches the older sessions")
    if s.provisional_days:
        lines.append(f"PROVISIONAL bars for {short_list(s.provisional_days)}: fetched before the settle time, "
                     "refetched by the first scan after it (TECHNIC_SETTLE_TIME)")
    return lines


def format_message(s: ScanSummary) -> str:
    """A compact multi-line summary for terminals and logs."""
    m = s.metrics
    lines = [SIM_BANNER] if s.simulated else []
    lines += [
        f"scan as of {s.as_of} | source {s.source} | regime {s.regime}",
        f"universe {s.prescreen['universe']:,} -> kept {s.prescreen['kept']:,} | filtered "
        + counts_text(s.prescreen["filtered"]),
        "signals " + counts_text(s.signals) + (f" | rating {s.rating['note']}" if s.rating else ""),
        f"scored {m.symbols_scored:,} | reused {m.symbols_reused:,} (unchanged bars) | quarantined bars "
        f"{m.bars_quarantined} | invalid result rows {m.invalid_rows}",
        f"API calls {m.api_calls} (retries {m.api_retries}; {counts_text(m.api_calls_by_endpoint)})"
        + (" [simulated source: in-process calls]" if s.simulated else "")
        + (" [csv source: local files, no requests]" if s.data_import else ""),
        f"cache hits {m.cache_hit_rate:.2%} of bar-days ({m.bars_reused:,} reused / {m.bars_fetched:,} fetched) | "
        f"oldest cached day fetched {m.oldest_cache_age_hours:.1f} h ago",
        f"time {seconds(m.wall_seconds)} ({_stages(m.stages)})",
        f"peak RSS flow {megabytes(m.peak_rss_mb_flow)}, workers max {megabytes(m.peak_rss_mb_workers)} "
        f"({m.worker_processes} process(es), runner {m.task_runner}: {m.runner_reason})",
    ]
    if s.missing_days:
        lines.append(f"MISSING DAYS (not fetched, scan ran without them): {short_list(s.missing_days)}")
    if s.unknown_watchlist:
        lines.append(f"watchlist symbols not found: {short_list(s.unknown_watchlist)}")
    lines += universe_lines(s)
    lines.append(_changes(s))
    return "\n".join(lines)


def _metrics_rows(m) -> list[tuple[str, str]]:
    return [
        ("symbols scored / reused", f"{m.symbols_scored:,} / {m.symbols_reused:,}"),
        ("bars quarantined", f"{m.bars_quarantined}"),
        ("invalid result rows", f"{m.invalid_rows}"),
        ("API calls", f"{m.api_calls} ({counts_text(m.api_calls_by_endpoint)})"),
        ("API retries", f"{m.api_retries}"),
        ("cache hit rate", f"{m.cache_hit_rate:.2%} of bar-days"),
        ("bars reused / fetched", f"{m.bars_reused:,} / {m.bars_fetched:,}"),
        ("months from cache / fetched", f"{m.months_cached} / {m.months_fetched}"),
        ("oldest cached day", f"fetched {m.oldest_cache_age_hours:.1f} h ago"),
        ("task runner", f"{m.task_runner} ({m.runner_reason})"),
        ("worker processes", f"{m.worker_processes}"),
        ("peak RSS flow / workers", f"{megabytes(m.peak_rss_mb_flow)} / {megabytes(m.peak_rss_mb_workers)}"),
        ("wall time", seconds(m.wall_seconds)),
        ("stages (s)", _stages(m.stages)),
    ]


def render_markdown(s: ScanSummary, results: pd.DataFrame) -> str:
    m = s.metrics
    parts = [f"# Scan {s.as_of}" + (" (SIMULATED)" if s.simulated else "")]
    if s.simulated:
        parts.append(f"> **{SIM_BANNER}**")
    parts.append(f"**Regime:** {s.regime}  \n**Source:** {s.source}  \n**Configuration:** {s.config_key}"
                 + (f"  \n**Rating:** {s.rating['note']}" if s.rating else ""))
    parts.append("## Prescreen\n| reason | filtered |\n|---|---|\n" + "\n".join(
        f"| {k} | {v:,} |" for k, v in s.prescreen["filtered"].items()
    ) + f"\n| **kept** | **{s.prescreen['kept']:,}** of {s.prescreen['universe']:,} |")
    parts.append("## Signals\n" + counts_text(s.signals))
    ch = s.changes
    parts.append(f"## Since last scan\n{_changes(s)}\n\n- new: {short_list(ch['new'])}\n"
                 f"- dropped: {short_list(ch['dropped'])}\n- flipped: {short_list(ch['changed'])}")
    rows = "\n".join(f"| {k} | {v} |" for k, v in _metrics_rows(m))
    parts.append(f"## Metrics (measured)\n| metric | value |\n|---|---|\n{rows}")
    if s.split_changed:
        parts.append(f"## New splits\n{short_list(s.split_changed)}")
    if upkeep := universe_lines(s):
        parts.append("## Universe and settlement\n" + "\n".join(f"- {line}" for line in upkeep))
    if s.missing_days:
        parts.append("## Missing days\n" + "\n".join(f"- {d}: {why}" for d, why in list(s.missing_days.items())[:20]))
    if s.quarantine:
        parts.append(f"## Quarantined bars ({len(s.quarantine)}, first 20)\n"
                     + pd.DataFrame(s.quarantine[:20]).to_markdown(index=False))
    top = pd.DataFrame(top_table(results, 25))
    if len(top):
        parts.append("## Top ranked\n" + top.to_markdown(index=False, floatfmt=".2f"))
    return "\n\n".join(parts) + "\n"
