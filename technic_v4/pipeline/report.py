"""The scan summary as text: the `msg` returned by run_scan and the Prefect markdown artifact. Figures only."""

from __future__ import annotations

import pandas as pd

SIM_BANNER = "SIMULATED DATA — deterministic simulated market, not real quotes"


def signal_counts(results: pd.DataFrame) -> dict[str, int]:
    return {k: int(v) for k, v in results["Signal"].value_counts().items()}


def format_message(s: dict) -> str:
    """A compact multi-line summary for terminals and logs."""
    m = s["metrics"]
    lines = []
    if s["simulated"]:
        lines.append(SIM_BANNER)
    lines += [
        f"scan as of {s['as_of']} | source {s['source']} | regime {s['regime']}",
        f"universe {s['prescreen']['universe']} -> kept {s['prescreen']['kept']} | filtered "
        + ", ".join(f"{k} {v}" for k, v in s["prescreen"]["filtered"].items() if v),
        "signals " + ", ".join(f"{k} {v}" for k, v in s["signals"].items()),
        f"scored {m['symbols_scored']} | reused {m['symbols_reused']} (unchanged bars) | quarantined bars "
        f"{m['bars_quarantined']} | invalid result rows {m['invalid_rows']}",
        f"API calls {m['api_calls']} (retries {m['api_retries']}; {m['api_calls_by_endpoint']})"
        + (" [simulated source: in-process calls]" if s["simulated"] else ""),
        f"cache hits {m['cache_hit_rate']:.2%} of bar-days ({m['bars_reused']} reused / {m['bars_fetched']} fetched) | "
        f"oldest cached day fetched {m['oldest_cache_age_hours']} h ago",
        f"time {m['wall_seconds']:.2f} s ({', '.join(f'{k} {v:.2f}' for k, v in m['stages'].items())})",
        f"peak RSS flow {m['peak_rss_mb_flow']:.0f} MB, workers max {m['peak_rss_mb_workers']:.0f} MB "
        f"({m['worker_processes']} process(es), runner {m['task_runner']})",
    ]
    if s.get("missing_days"):
        lines.append(f"MISSING DAYS (not fetched, scan ran without them): {s['missing_days']}")
    if s.get("unknown_watchlist"):
        lines.append(f"watchlist symbols not found: {s['unknown_watchlist']}")
    ch = s["changes"]
    lines.append(f"since last scan: {len(ch['new'])} new, {len(ch['dropped'])} dropped, {len(ch['changed'])} flipped signals")
    return "\n".join(lines)


def render_markdown(s: dict, top: pd.DataFrame) -> str:
    m = s["metrics"]
    parts = [f"# Scan {s['as_of']}" + (" (SIMULATED)" if s["simulated"] else "")]
    if s["simulated"]:
        parts.append(f"> **{SIM_BANNER}**")
    parts.append(f"**Regime:** {s['regime']}  \n**Source:** {s['source']}")
    parts.append("## Prescreen\n| reason | filtered |\n|---|---|\n" + "\n".join(
        f"| {k} | {v} |" for k, v in s["prescreen"]["filtered"].items()
    ) + f"\n| **kept** | **{s['prescreen']['kept']}** of {s['prescreen']['universe']} |")
    parts.append("## Signals\n" + ", ".join(f"{k}: {v}" for k, v in s["signals"].items()))
    ch = s["changes"]
    parts.append(
        "## Since last scan\n"
        f"- new: {', '.join(ch['new'][:50]) or '—'}\n- dropped: {', '.join(ch['dropped'][:50]) or '—'}\n"
        f"- flipped: {', '.join(ch['changed'][:50]) or '—'}"
    )
    rows = "\n".join(f"| {k} | {v} |" for k, v in m.items() if k != "stages")
    stages = ", ".join(f"{k} {v:.3f}s" for k, v in m["stages"].items())
    parts.append(f"## Metrics (measured)\n| metric | value |\n|---|---|\n{rows}\n| stages | {stages} |")
    if s.get("missing_days"):
        parts.append(f"## Missing days\n{s['missing_days']}")
    if s.get("quarantine"):
        parts.append("## Quarantined bars (first 20)\n" + pd.DataFrame(s["quarantine"][:20]).to_markdown(index=False))
    cols = ["Symbol", "Sector", "Close", "TechRating", "Signal", "Entry", "Stop", "Target", "RewardRisk"]
    parts.append("## Top ranked\n" + top[cols].head(25).to_markdown(index=False, floatfmt=".2f"))
    return "\n\n".join(parts) + "\n"
