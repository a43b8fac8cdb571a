"""The two figures of docs/performance.md, drawn from the scan benchmark's result: time vs symbols, time vs workers."""

from __future__ import annotations

import os
from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_plot(fig, ax, path: Path) -> Path:
    import matplotlib.pyplot as plt

    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_time_vs_symbols(scan: dict, path: Path) -> Path | None:
    sizes = scan.get("sizes") or []
    if not sizes:
        return None
    n = [s["n"] for s in sizes]
    fig, ax = _pyplot().subplots(figsize=(7, 4.2), dpi=110)
    for key, label, style in (("cold", "cold backfill (Ray)", "o-"), ("warm_ray", "warm, one new day (Ray)", "s-"),
                              ("warm_thread", "warm, one new day (thread)", "^-")):
        ax.plot(n, [s[key]["elapsed_s"] for s in sizes], style, label=label)
    ax.set_xlabel("symbols (max_symbols)")
    ax.set_ylabel("scan wall time, s")
    src = scan.get("market", {}).get("source", "?")
    ax.set_title(f"technic_v4 scan time vs universe size ({src}, SIMULATED market)")
    return _save_plot(fig, ax, path)


def plot_time_vs_workers(scan: dict, path: Path) -> Path | None:
    sweep = scan.get("sweep") or []
    if not sweep:
        return None
    fig, ax = _pyplot().subplots(figsize=(7, 4.2), dpi=110)
    for runner, color in (("ray", "tab:blue"), ("thread", "tab:orange")):
        rows = sorted((r for r in sweep if r["runner"] == runner), key=lambda r: r["workers"])
        if not rows:
            continue
        w = [r["workers"] for r in rows]
        ax.plot(w, [r["elapsed_s"] for r in rows], "o-", color=color, label=f"{runner}: total scan")
        ax.plot(w, [r["score_s"] for r in rows], "o--", color=color, alpha=0.7, label=f"{runner}: score stage")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("TECHNIC_MAX_WORKERS (scoring chunks)")
    ax.set_ylabel("seconds")
    n = scan.get("plan", {}).get("sweep_symbols")
    ax.set_title(f"warm scan of {n:,} symbols vs workers ({os.cpu_count()} CPUs)")
    return _save_plot(fig, ax, path)


PLOTS = ((plot_time_vs_symbols, "perf_time_vs_symbols.png"), (plot_time_vs_workers, "perf_time_vs_workers.png"))
