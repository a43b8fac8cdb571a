"""The evaluation as a markdown report and PNG plots (figures only, from `stats.summarize`)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from technic_v4.pipeline.evaluation.learned_report import render_learned
from technic_v4.pipeline.report import SIM_BANNER


# One wording for the caveat wherever an evaluation on a source without delisted names is shown.
SURVIVORSHIP_NOTE = ("the source lists only today's names (no delisted ones), so each past day's universe lacks the "
                     "names that later left it; returns of past universes read better than they were.")


def _fmt(v, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:+.2%}" if pct else (f"{v:,}" if isinstance(v, int) else f"{v:+.4f}")


def _t(v) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:+.2f}"


def _table(frame: pd.DataFrame) -> str:
    shown = frame.copy()
    for col in ("mean", "median", "mean_excess"):
        shown[col] = shown[col].map(lambda v: _fmt(v, pct=True))
    for col in ("share_up", "share_beat_universe"):
        shown[col] = shown[col].map(lambda v: f"{v:.1%}")
    return shown.to_markdown()


def render_markdown(summary: dict, meta: dict) -> str:
    parts = [f"# Walk-forward evaluation {meta['start']} .. {meta['end']}" + (" (SIMULATED)" if meta["simulated"] else "")]
    if meta["simulated"]:
        parts.append(f"> **{SIM_BANNER}** — these statistics say how TechRating behaves on the simulated market only.")
    if meta.get("survivorship_bias"):
        parts.append(f"> **Survivorship bias:** {SURVIVORSHIP_NOTE}")
    parts.append("## Verdict\n" + "\n".join(f"- {v}" for v in summary["verdicts"] + summary["attribution_verdicts"]))
    parts.append(f"**Rating:** {meta.get('rating', 'tech')}" + ("" if "learned" in summary else
                 " (TechRating; `--rating learned` adds the walk-forward learned rating)"))
    if "learned" in summary:
        parts.append(render_learned(summary["learned"]))
    parts.append(
        f"**Rows:** {meta['rows']:,} (session, symbol) over {meta['sessions']} sessions ({meta['rows_without_rating']:,} "
        "without a TechRating: too little history, left out of the statistics), "
        f"{meta['universe_mean']:.0f} symbols kept per day on average (the scan's prescreen as of each day; delisted "
        f"names included while they traded: {meta['delisted_in_universe']} of them).  \n"
        f"**Forward returns without a bar h sessions later** (NaN, left out of the statistics): "
        + ", ".join(f"{h}d: {c['no_bar']} no bar, {c['beyond_data']} past the data" for h, c in meta["missing"].items())
    )
    parts.append(attribution_markdown(summary["attribution"]))
    for h, s in summary["horizons"].items():
        ic, ctl, d, sp = s["ic"], s["control_ic"], s["ic_minus_control"], s["spread"]
        parts.append(f"## {h}-session forward returns ({s['rows']:,} rows, {s['days']} days)")
        parts.append(
            "| statistic | TechRating | shuffled control |\n|---|---|---|\n"
            f"| daily rank IC mean | {_fmt(ic['mean'])} | {_fmt(ctl['mean'])} |\n"
            f"| IC std | {_fmt(ic['std'])} | {_fmt(ctl['std'])} |\n| ICIR | {_fmt(ic['icir'])} | {_fmt(ctl['icir'])} |\n"
            f"| IC t-stat (Newey-West, {max(h - 1, 0)} lags) | {_fmt(ic['t'])} | {_fmt(ctl['t'])} |\n"
            f"| IC − control: mean, t | {_fmt(d['mean'])}, t {_fmt(d['t'])} | |\n"
            f"| top − bottom decile spread | {_fmt(sp['mean'], pct=True)} (t {_fmt(sp['t'])}, {sp['days']} days) | |"
        )
        parts.append("### By Signal\n" + _table(s["by_signal"]))
        parts.append("### By TechRating decile (within each day; 10 = highest)\n" + _table(s["by_decile"]))
        plans = s["plans"]
        parts.append(
            "### Trade plans: Target before Stop within the horizon (daily highs/lows; a session touching both = Stop)\n"
            "| book | plan rule | rows | target first | stop first | neither | median RewardRisk | mean result | "
            "mean result (R) |\n|---|---|---|---|---|---|---|---|---|\n"
            + "\n".join(f"| {side} | {p.get('rule', '')} | {p['rows']:,} | {p['target']:.1%} | {p['stop']:.1%} | "
                        f"{p['neither']:.1%} | {_fmt(p.get('median_reward_risk', math.nan))} | "
                        f"{_fmt(p.get('mean_result', math.nan), pct=True)} | {_fmt(p.get('mean_r', math.nan))} |"
                        for side, p in plans.items() if p["rows"])
            + "\n\nMean result: the Target's distance from Entry when it came first, minus the Stop's when it did, else "
            "the position marked to the horizon's close; as a fraction of Entry, and in R (the plan's own risk "
            "|Entry - Stop|)."
        )
    t = summary["turnover"]
    parts.append(
        "## Signal turnover (day over day)\n"
        f"- long book: {t['long_book_new_share']:.1%} of names new each day; short book: {t['short_book_new_share']:.1%}\n"
        f"- Signal changed for {t['signal_changed_share']:.1%} of the names kept on both days"
    )
    m = meta["metrics"]
    parts.append("## Metrics (measured)\n| metric | value |\n|---|---|\n"
                 + "\n".join(f"| {k} | {v} |" for k, v in m.items()))
    return "\n\n".join(parts) + "\n"


def attribution_records(table: dict) -> list[dict]:
    """The attribution table flat, one record per (horizon, score): for the table artifact and the docs."""
    out = []
    for h, entries in table.items():
        for e in entries:
            ic, d, sp = e["ic"], e["ic_minus_control"], e["spread"]
            out.append({"horizon": int(h), "rank": e["rank"], "score": e["name"], "kind": e["kind"],
                        "ic_mean": ic["mean"], "ic_std": ic["std"], "icir": ic["icir"], "ic_t": ic["t"],
                        "control_ic_mean": e["control_ic"]["mean"], "ic_minus_control": d["mean"],
                        "ic_minus_control_t": d["t"], "decile_spread": sp["mean"], "decile_spread_t": sp["t"],
                        "rows": e["rows"], "days": e["days"], "distinguishable": e["distinguishable"]})
    return out


def _yes(e: dict) -> str:
    if e["kind"] == "control":
        return ""
    return ("**yes, better**" if e["ic_minus_control"]["mean"] > 0 else "**yes, worse**") if e["distinguishable"] else "no"


def attribution_markdown(table: dict) -> str:
    """IC decay (score x horizon) and, per horizon, every score ranked by |t| of IC − control."""
    horizons = list(table)
    names = [e["name"] for e in table[horizons[0]]] if horizons else []
    by = {h: {e["name"]: e for e in table[h]} for h in horizons}
    head = ("## Attribution: TechRating, its sub-scores and textbook factors on the same rows\n"
            "Daily rank IC mean (Newey-West t of IC − shuffled control; for the control row, its own t) per horizon. "
            "Each score on its rows with a value and a forward return; factors are computed as of each day (no "
            "look-ahead): mom_12_1 = close 21 bars ago / 252 bars ago − 1, rev_1m = −(21-bar return), "
            "prox_52w_high = close / 252-bar high, low_vol_63 = −(63-bar realized volatility). A decile spread is — "
            "when ties leave the top or bottom decile empty (a sub-score clipped at its bounds).\n\n"
            "| score | kind | " + " | ".join(f"IC {h}d (t)" for h in horizons) + " |\n|---|---|"
            + "---|" * len(horizons) + "\n")
    lines = []
    for name in names:
        cells = []
        for h in horizons:
            e = by[h].get(name)
            t = e["ic"]["t"] if e and e["kind"] == "control" else (e["ic_minus_control"]["t"] if e else None)
            cells.append(f"{_fmt(e['ic']['mean'])} ({_t(t)})" if e else "—")
        lines.append(f"| {name} | {by[horizons[0]][name]['kind']} | " + " | ".join(cells) + " |")
    parts = [head + "\n".join(lines)]
    for h in horizons:
        rows = [f"| {e['rank'] or ''} | {e['name']} | {_fmt(e['ic']['mean'])} | {_fmt(e['ic']['std'])} | "
                f"{_fmt(e['ic']['icir'])} | {_t(e['ic']['t'])} | {_fmt(e['ic_minus_control']['mean'])} | "
                f"{_t(e['ic_minus_control']['t'])} | {_fmt(e['spread']['mean'], pct=True)} ({_t(e['spread']['t'])}) | "
                f"{e['rows']:,} | {_yes(e)} |" for e in table[h]]
        parts.append(f"### {h}-session: ranked by |t| of IC − control (|t| ≥ 2: distinguishable from no skill)\n"
                     "| rank | score | IC mean | IC std | ICIR | IC t | IC − control | t | top − bottom decile (t) | "
                     "rows | distinguishable |\n|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    return "\n\n".join(parts)


def save_plots(summary: dict, folder: Path, simulated: bool) -> list[Path]:
    """deciles.png (mean excess return per decile and horizon) and ic.png (cumulative daily IC vs control)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label = " (SIMULATED)" if simulated else ""
    horizons = list(summary["horizons"].values())
    fig, axes = plt.subplots(1, len(horizons), figsize=(4.5 * len(horizons), 3.6), squeeze=False)
    for ax, s in zip(axes[0], horizons):
        dec = s["by_decile"]
        ax.bar([int(k) for k in dec.index], dec["mean_excess"] * 100, color="tab:blue")
        ax.set_title(f"{s['horizon']}-session excess return by decile{label}", fontsize=9)
        ax.set_xlabel("TechRating decile (10 = highest)")
        ax.set_ylabel("mean excess over day's universe, %")
        ax.axhline(0, color="black", lw=0.6)
    paths = [folder / "deciles.png"]
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 3.8))
    for i, s in enumerate(horizons):  # one colour per horizon: solid = TechRating, dashed = its control
        colour = f"C{i}"
        ax.plot(s["ic_series"].index, s["ic_series"].cumsum(), color=colour, label=f"IC {s['horizon']}d")
        ax.plot(s["control_series"].index, s["control_series"].cumsum(), color=colour, ls="--",
                label=f"control {s['horizon']}d")
    ax.set_title(f"Cumulative daily rank IC, TechRating vs shuffled control{label}", fontsize=10)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    paths.append(folder / "ic.png")
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths


def json_ready(summary: dict) -> dict:
    """The summary without DataFrames/Series (tables as records), for summary.json and artifacts."""
    def convert(v):
        if isinstance(v, pd.DataFrame):
            return v.reset_index().to_dict("records")
        if isinstance(v, pd.Series):
            return {str(k): float(x) for k, x in v.items()}
        if isinstance(v, dict):
            return {str(k): convert(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return convert({k: v for k, v in summary.items() if k != "report_md"})


def format_message(summary: dict, timer, peak_rss_mb: float) -> str:
    """The terminal/log summary: SIMULATED label, verdicts, size, measured time and memory, where the report is."""
    meta = summary["meta"]
    stages = ", ".join(f"{k} {v:.2f}" for k, v in timer.as_dict().items())
    lines = [f"{SIM_BANNER} ({meta['source']})"] if meta["simulated"] else []
    if meta.get("survivorship_bias"):
        lines.append(f"survivorship bias: {SURVIVORSHIP_NOTE}")
    return "\n".join(lines + summary["verdicts"] + summary["attribution_verdicts"] + [
        f"{meta['rows']:,} rows, {meta['sessions']} sessions, {meta['universe_mean']:.0f} symbols/day | time "
        f"{timer.total:.2f} s ({stages}) | peak RSS flow {peak_rss_mb:.0f} MB, workers "
        f"{meta['metrics']['peak_rss_mb_workers']:.0f} MB | runner {meta['metrics']['task_runner']}",
        f"report: {summary['paths']['report']}",
    ])
