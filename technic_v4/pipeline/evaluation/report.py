"""The evaluation as a markdown report and PNG plots (figures only, from `stats.summarize`)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from technic_v4.pipeline.evaluation.learned_report import render_learned
from technic_v4.pipeline.report import SIM_BANNER


def _fmt(v, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:+.2%}" if pct else (f"{v:,}" if isinstance(v, int) else f"{v:+.4f}")


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
    parts.append("## Verdict\n" + "\n".join(f"- {v}" for v in summary["verdicts"]))
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
            "| book | rows | target first | stop first | neither |\n|---|---|---|---|---|\n"
            + "\n".join(f"| {side} | {p['rows']:,} | {p['target']:.1%} | {p['stop']:.1%} | {p['neither']:.1%} |"
                        for side, p in plans.items() if p["rows"])
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
    return "\n".join(lines + summary["verdicts"] + [
        f"{meta['rows']:,} rows, {meta['sessions']} sessions, {meta['universe_mean']:.0f} symbols/day | time "
        f"{timer.total:.2f} s ({stages}) | peak RSS flow {peak_rss_mb:.0f} MB, workers "
        f"{meta['metrics']['peak_rss_mb_workers']:.0f} MB | runner {meta['metrics']['task_runner']}",
        f"report: {summary['paths']['report']}",
    ])
