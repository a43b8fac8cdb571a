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


def top_table(results: pd.DataFrame, n: int = 50, columns: list[str] | None = None) -> list[dict]:
    """The first `n` rows as JSON-safe records with the trader's columns (or `columns`), rounded (prices 2 dp, % 1 dp, cap in $B)."""
    top = results.head(n).copy()
    if "MarketCap" in top:
        top["MarketCap_B"] = top["MarketCap"] / 1e9
    cols = [c for c in (columns or TOP_COLUMNS) if c in top and not (c == "LearnedRating" and top[c].isna().all())]
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
            + (f"; {imp['sessions_replaced']} stored sessions another source wrote replaced by the files' bars"
               if imp.get("sessions_replaced") else "")
            + ("; splits another source stored forgotten (the files are split-adjusted)"
               if imp.get("splits_dropped") else "")
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
    if (h := s.short_history) and h.get("source_starts"):
        lines.append(f"only {h['sessions']} of {h['lookback_days']} sessions exist: the source has no bars before "
                     f"{h['source_starts']} (an as-of earlier in its history); {h['rows']:,} rows lack 52-week "
                     f"values: {short_list(h['symbols'])}. A later --as-of gives the full window")
    elif h:
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
    lines += screen_lines(s.screens)
    lines += seen_lines(s.seen)
    return "\n".join(lines)


def screen_lines(screens: dict[str, dict]) -> list[str]:
    """One line per published screen: rows and what changed since its last run."""
    out = []
    for name, sc in screens.items():
        since = f"since {sc['previous_as_of']}" if sc.get("previous_as_of") else "first run"
        out.append(f"screen {name}: {sc['rows']:,} rows | {since}: new {short_list(sc['new'], 10)}; dropped "
                   f"{short_list(sc['dropped'], 10)}; flipped {short_list(sc['flipped'], 10)} | where {sc['where']}")
    return out


def seen_lines(seen: dict) -> list[str]:
    """Charts, report and alerts of the run (flows/present.py), for the message."""
    if not seen:
        return []
    if "error" in seen:
        return [f"CHARTS/REPORT/ALERTS FAILED (the table is published): {seen['error']}"]
    c, a = seen["charts"], seen["alerts"]
    lines = [f"report {seen['report']} ({seen['report_bytes'] / 1024:.0f} KB) | charts {c['charts']} in "
             f"{c['seconds']:.2f} s ({c.get('cpu_seconds', 0.0):.2f} s CPU)"
             + (f", FAILED {short_list(c['failed'])}" if c["failed"] else "")]
    changed = seen.get("changed_screens", [])
    lines.append(f"screens changed: {short_list(changed)} | events {len(seen['events'])} | alerts sent "
                 f"{len(a['sent'])}, duplicates skipped {len(a['duplicates'])}"
                 + (f", DELIVERY FAILED: {'; '.join(a['failed'].values())}" if a["failed"] else ""))
    return lines


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


def render_diagnostics(s: ScanSummary) -> str:
    """The engineering metrics on their own (the Prefect `scan-diagnostics` artifact)."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in _metrics_rows(s.metrics))
    return f"# Diagnostics {s.as_of}\n\n| metric | value |\n|---|---|\n{rows}\n"


def render_markdown(s: ScanSummary, results: pd.DataFrame, metrics: bool = True) -> str:
    """The scan report (latest.md); `metrics=False` leaves the engineering metrics to render_diagnostics."""
    m = s.metrics
    parts = [f"# Scan {s.as_of}" + (" (SIMULATED)" if s.simulated else "")]
    if s.simulated:
        parts.append(f"> **{SIM_BANNER}**")
    parts.append(f"**Regime:** {s.regime}  \n**Source:** {s.source}  \n**Configuration {s.config_key}:** "
                 f"{config_text(s.settings)}" + (f"  \n**Rating:** {s.rating['note']}" if s.rating else ""))
    parts.append("## Prescreen\n| reason | filtered |\n|---|---|\n" + "\n".join(
        f"| {k} | {v:,} |" for k, v in s.prescreen["filtered"].items()
    ) + f"\n| **kept** | **{s.prescreen['kept']:,}** of {s.prescreen['universe']:,} |")
    parts.append("## Signals\n" + counts_text(s.signals))
    ch = s.changes
    parts.append(f"## Since last scan\n{_changes(s)}\n\n- new: {short_list(ch['new'])}\n"
                 f"- dropped: {short_list(ch['dropped'])}\n- flipped: {short_list(ch['changed'])}")
    rows = "\n".join(f"| {k} | {v} |" for k, v in _metrics_rows(m))
    if metrics:
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
    if s.screens:
        parts.append("## Screens (tables: the screen-<name> artifacts)\n"
                     + "\n".join(f"- {line}" for line in screen_lines(s.screens)))
    top = pd.DataFrame(top_table(results, 25))
    if len(top):
        parts.append("## Top ranked\n" + top.to_markdown(index=False, floatfmt=".2f"))
    return "\n\n".join(parts) + "\n"


SIGNAL_ORDER = ("Strong Long", "Long", "Short", "Strong Short")
LONGS, SHORTS = {"Strong Long", "Long"}, {"Short", "Strong Short"}


def signals_label(signals) -> str:
    """The run's signals filter in a trader's words: longs-only, shorts-only, the list, or all signals."""
    if not signals:
        return "all signals"
    chosen = set(signals)
    return "longs-only" if chosen == LONGS else "shorts-only" if chosen == SHORTS else " + ".join(signals)


def run_headline(s: ScanSummary, shown: pd.DataFrame, signals, max_symbols: int) -> str:
    """What a run found and with which settings, in one line (the flow run's name, the report's headline):
    "2026-12-02 · 37 Strong Long / 193 Long · top TWDS · longs-only, 2,500 symbols"."""
    counts = shown["Signal"].value_counts() if len(shown) else pd.Series(dtype=int)
    found = " / ".join(f"{int(counts[k]):,} {k}" for k in SIGNAL_ORDER if counts.get(k, 0)) or "no signals"
    top = f" · top {shown['Symbol'].iloc[0]}" if len(shown) else ""
    sim = " · SIMULATED" if s.simulated else ""
    universe = min(max_symbols, s.prescreen.get("universe", max_symbols))  # a 40-file CSV folder is 40, not 6,000
    return f"{s.as_of} · {found}{top} · {signals_label(signals)}, {universe:,} symbols{sim}"


# Fixed decimals per column of the trader's table, so the Prefect table's numbers line up (46.6 / 1.50 / 36.0).
TOP_DECIMALS = {"TechRating": 1, "RSI14": 1, "21d %": 1, "ATR %": 1, "Cap $B": 1}
# Short headers and Sector last, so the Prefect table fits a 1,600 px window (its column is ~1,000 px wide).
TOP_TEXT_HEADERS = {"ret_21d %": "21d %", "ATR14_pct %": "ATR %", "MarketCap $B": "Cap $B"}
GLOSSARY = {
    "Signal": "Strong Long / Long / Short / Strong Short from TechRating, trend and momentum (Avoid otherwise)",
    "TechRating": "3·Trend + 3·Momentum + 2·Volume + Volatility + Oscillator + Breakout sub-scores (each -3..3)",
    "Entry / Stop / Target": "the trade plan (stop and target from ATR14)",
    "RewardRisk": "(Target - Entry) / (Entry - Stop)",
    "RSI14": "Wilder's 14-session RSI",
    "21d %": "return over the last 21 sessions",
    "ATR %": "14-session average true range, % of the close",
    "Cap $B": "market cap, billions of USD",
}


def top_table_text(results: pd.DataFrame, n: int = 50) -> list[dict]:
    """top_table with short headers, Sector last and every number as text at fixed decimals (2 unless
    TOP_DECIMALS says otherwise)."""
    def text(col, v):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            return v
        return f"{v:,.{TOP_DECIMALS.get(col, 2)}f}"

    out = []
    for r in top_table(results, n):
        r = {TOP_TEXT_HEADERS.get(c, c): v for c, v in r.items()}
        r = {**{c: v for c, v in r.items() if c != "Sector"}, **({"Sector": r["Sector"]} if "Sector" in r else {})}
        out.append({c: text(c, v) for c, v in r.items()})
    return out


def glossary_markdown() -> str:
    return "Columns: " + "; ".join(f"**{k}** {v}" for k, v in GLOSSARY.items())


def config_text(settings: dict) -> str:
    """The configuration key explained: the settings that shape the table (runs that share them share history)."""
    if not settings:
        return "(settings not recorded)"
    g = settings.get
    parts = [f"{g('max_symbols', 0):,} symbols", f"lookback {g('lookback_days')} sessions",
             f"market cap ≥ ${g('min_market_cap', 0):,.0f}M", f"avg volume ≥ {g('min_avg_volume', 0):,.0f}",
             f"price ≥ ${g('min_price', 0):,.2f}", "sectors " + (", ".join(g("sectors")) if g("sectors") else "all")]
    if g("watchlist"):
        parts.append(f"watchlist {short_list(g('watchlist'), 10)}")
    if g("intraday"):
        parts.append("intraday")
    return "; ".join(parts) + f"; {signals_label(g('signals'))} shown (history and 'since last scan' are kept per " \
        "configuration)"
