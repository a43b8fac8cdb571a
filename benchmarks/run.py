"""Run every benchmark and regenerate docs/performance.{md,json}, the plots and README's performance block.

    python -m benchmarks.run [--quick] [--out-dir DIR] [--no-readme]      (also `make bench`, `technic bench`)

Modules: bench_fetch (async vs sync, grouped-daily vs per-symbol backfill), bench_scoring (panel kernel vs
per-symbol baselines) and bench_scan (full-universe scans on a real Prefect server, thread vs Ray, worker sweep).
Each exposes `run(quick) -> dict` and `markdown(result) -> str`. A module that is missing or raises is skipped with
its error recorded in the json and shown in the markdown; the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from benchmarks.common import REPO, machine_info  # noqa: E402

MODULES = [("fetch", "benchmarks.bench_fetch"), ("scoring", "benchmarks.bench_scoring"), ("scan", "benchmarks.bench_scan")]
DOCS = REPO / "docs"
README = REPO / "README.md"
START, END = "<!-- perf:start -->", "<!-- perf:end -->"


def _run_module(name: str, module: str, quick: bool) -> tuple[dict, str]:
    t0 = time.perf_counter()
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - a missing/broken module is reported, not fatal
        err = f"{type(exc).__name__}: {exc}"
        return {"error": err, "skipped": True, "seconds": 0.0}, f"## {name}\n\n_Skipped: `{module}` could not be imported ({err})._\n"
    try:
        result = mod.run(quick=quick)
    except Exception as exc:  # noqa: BLE001
        err = f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc(limit=8)
        print(f"[bench] {module} failed: {err}\n{tb}", file=sys.stderr, flush=True)
        return ({"error": err, "traceback": tb, "skipped": True, "seconds": round(time.perf_counter() - t0, 1)},
                f"## {name}\n\n_Skipped: `{module}.run()` raised {err}._\n")
    result = dict(result) if isinstance(result, dict) else {"value": result}
    result.setdefault("seconds", round(time.perf_counter() - t0, 1))
    try:
        md = mod.markdown(result)
    except Exception as exc:  # noqa: BLE001
        md = f"## {name}\n\n_markdown() failed: {type(exc).__name__}: {exc}_\n"
        result["markdown_error"] = f"{type(exc).__name__}: {exc}"
    return result, md


# ---- plots -------------------------------------------------------------------------------------------------------------


def plot_time_vs_symbols(scan: dict, path: Path) -> Path | None:
    sizes = scan.get("sizes") or []
    if not sizes:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [s["n"] for s in sizes]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for key, label, style in (("cold", "cold backfill (Ray)", "o-"), ("warm_ray", "warm, one new day (Ray)", "s-"),
                              ("warm_thread", "warm, one new day (thread)", "^-")):
        ax.plot(n, [s[key]["elapsed_s"] for s in sizes], style, label=label)
    ax.set_xlabel("symbols (max_symbols)")
    ax.set_ylabel("scan wall time, s")
    src = scan.get("market", {}).get("source", "?")
    ax.set_title(f"technic_v4 scan time vs universe size ({src}, SIMULATED market)")
    return _save_plot(fig, ax, path)


def _save_plot(fig, ax, path: Path) -> Path:
    import matplotlib.pyplot as plt

    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_time_vs_workers(scan: dict, path: Path) -> Path | None:
    sweep = scan.get("sweep") or []
    if not sweep:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
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


# ---- README block ---------------------------------------------------------------------------------------------------


def _fmt(x, nd=2, unit=""):
    return "—" if x is None else f"{x:,.{nd}f}{unit}"


def readme_block(report: dict) -> str:
    m = report["machine"]
    scan = report["modules"].get("scan", {})
    lines = [f"Measured by `make bench` on {m['date'][:10]} ({m['cpu_count']} CPUs, {m['ram_gb']} GB RAM, "
             f"Python {m['python']}, prefect {m['packages'].get('prefect')}, ray {m['packages'].get('ray')}); "
             "SIMULATED market. Full tables: [docs/performance.md](docs/performance.md)."
             + (" **Quick run (`--quick`): reduced sizes.**" if report.get("quick") else ""), ""]
    if scan.get("error") or not scan.get("sizes"):
        lines.append(f"_Scan benchmark not available in this run: {scan.get('error', 'no sizes measured')}._")
    else:
        src = scan["market"]["source"]
        where = "loopback Polygon server, 100 ms latency" if src == "polygon" else "in-process simulated source"
        lines += ["| symbols | cold backfill s (API calls) | warm 1 new day: thread s | Ray s | API calls | cache hits | "
                  "peak flow + workers |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for s in scan["sizes"]:
            c, t, r = s["cold"], s["warm_thread"], s["warm_ray"]
            gb = scan["figures"].get(f"peak_{s['n']}_gb")
            lines.append(f"| {s['n']:,} | {_fmt(c['elapsed_s'])} ({c['api_calls']}) | {_fmt(t['elapsed_s'])} | "
                         f"{_fmt(r['elapsed_s'])} | {t['api_calls']} | {100 * t['cache_hit_rate']:.2f} % | {_fmt(gb, 2, ' GB')} |")
        lines += ["", f"Source: {where}. Cold = empty bar store, 300 trading days backfilled; warm = the next session "
                  "(one new day), every symbol rescored; elapsed includes flow-run creation and runner start-up."]
        opt = scan.get("sweep_optimum") or {}
        if opt:
            lines += ["", "Ray vs thread on the same warm scan: "
                      + ", ".join(f"{s['n']:,}: {_fmt(s.get('ray_over_thread_warm'))}x" for s in scan["sizes"])
                      + f". Worker sweep optimum on this box: Ray {opt.get('ray_workers_by_total')} workers, thread "
                      f"{opt.get('thread_workers_by_total')}."]
        fails = [r["target"] for r in scan.get("design_targets", []) + scan.get("seed_targets", []) if r["pass"] is False]
        passes = sum(1 for r in scan.get("design_targets", []) + scan.get("seed_targets", []) if r["pass"])
        lines += ["", f"Targets: {passes} pass" + (f"; missed: {'; '.join(fails)}." if fails else ", none missed.")]
    lines += _sibling_headlines(report)
    for plot in report.get("plots", []):
        lines.append(f"\n![{Path(plot).stem}](docs/{Path(plot).name})")
    return "\n".join(lines)


def cache_block(report: dict) -> str:
    """Measured figures for docs/cache-strategy.md, from this run's scan benchmark."""
    scan = report["modules"].get("scan", {})
    if scan.get("error") or not scan.get("sizes"):
        return f"_Not measured in the last run: {scan.get('error', 'no scan figures')}._"
    m = report["machine"]
    src = scan["market"]["source"]
    lines = [f"From `make bench` on {m['date'][:10]} ({m['cpu_count']} CPUs; source: {src}"
             + (f", loopback Polygon server with {scan['market']['latency_ms']:.0f} ms latency" if src == "polygon" else "")
             + "; SIMULATED market). Details: [performance.md](performance.md).", "",
             "| scan | symbols | API calls (by endpoint) | bar-days reused / fetched | cache hits | month tasks cached / run | fetch stage s | score stage s | wall s |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for size in scan["sizes"]:
        for key, label in (("cold", "cold (empty store)"), ("warm_thread", "warm, 1 new day (thread)"),
                           ("warm_ray", "warm, 1 new day (Ray)")):
            r = size[key]
            calls = ", ".join(f"{k} {v}" for k, v in r["api_calls_by_endpoint"].items())
            months = f"{r.get('months_cached', '—')} / {r.get('months_fetched', '—')}"
            lines.append(f"| {label} | {size['n']:,} | {r['api_calls']} ({calls}) | {r['bars_reused']:,} / "
                         f"{r['bars_fetched']:,} | {100 * r['cache_hit_rate']:.2f} % | {months} | "
                         f"{_fmt(r['stages'].get('fetch'), 3)} | {_fmt(r['stages'].get('score'), 3)} | {_fmt(r['elapsed_s'])} |")
    to = scan.get("task_overhead")
    if to:
        d, mo = to["per_day"], to["per_month"]
        lines += ["", f"Per-task overhead on the real Prefect server (cached async task, concurrent, all hits): "
                  f"{d['ms_per_task_hit']:.1f} ms/task → per-day keys {d['tasks']} tasks = {d['hit_s']:.2f} s per warm "
                  f"scan; per-month keys {mo['tasks']} tasks = {mo['hit_s']:.2f} s. Misses (first scan): "
                  f"{d['miss_s']:.2f} s vs {mo['miss_s']:.2f} s."]
    rr = scan.get("reference_refresh")
    if rr:
        lines += ["", f"Weekly universe refresh on an empty store: {rr['seconds']:.1f} s, {rr['api_calls']:,} API calls "
                  f"for {rr['symbols']:,} symbols — 0 calls on every other scan of the week."]
    return "\n".join(lines)


def update_block(path: Path, start: str, end: str, block: str) -> str:
    if not path.exists():
        return f"skipped: {path} does not exist"
    text = path.read_text()
    if start not in text or end not in text:
        return f"skipped: {path.name} has no {start} ... {end} markers"
    new = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _m: f"{start}\n{block}\n{end}", text, count=1,
                 flags=re.S)
    path.write_text(new)
    return "updated"


def _sibling_headlines(report: dict) -> list[str]:
    """One line each from bench_fetch / bench_scoring, read defensively (their result layout is theirs)."""
    out = []
    fetch, scoring = report["modules"].get("fetch", {}), report["modules"].get("scoring", {})
    try:
        if fetch.get("error"):
            out.append(f"\n_fetch benchmark skipped in this run: {fetch['error']}_")
        else:
            a, b = fetch["async_vs_sync"], fetch["backfill"]
            out.append(f"\nFetch: async vs sync per-symbol path ({a['symbols']} symbols, {a['latency_ms']:.0f} ms latency) "
                       f"**{a['speedup']:.1f}x**; 1-year backfill of {b['symbols']:,} symbols at {b['latency_ms']:.0f} ms: "
                       f"grouped daily {b['grouped']['requests']} requests in {b['grouped']['seconds']:.1f} s vs per symbol "
                       f"{b['per_symbol']['requests']:,} requests in {b['per_symbol']['seconds']:.1f} s.")
    except (KeyError, TypeError):
        pass
    try:
        if scoring.get("error"):
            out.append(f"\n_scoring benchmark skipped in this run: {scoring['error']}_")
        else:
            out.append(f"\nScoring kernel: {scoring['symbols']:,} × {scoring['bars']} bars in "
                       f"**{scoring['score_panel_s']:.3f} s** ({scoring['speedup_vs_pandas_scaled']:.0f}x a per-symbol pandas "
                       f"loop, {scoring['speedup_vs_talib_loop']:.1f}x a per-symbol TA-Lib loop); {scoring['large_symbols']:,} "
                       f"symbols in {scoring['large_score_panel_s']:.2f} s ({scoring['large_over_small']:.1f}x the time for "
                       f"{scoring['large_size_ratio']:.0f}x the symbols).")
    except (KeyError, TypeError):
        pass
    return out


def update_readme(report: dict, readme: Path = README) -> str:
    if not readme.exists():
        return f"skipped: {readme} does not exist"
    text = readme.read_text()
    if START not in text or END not in text:
        return f"skipped: {readme.name} has no {START} ... {END} markers"
    block = readme_block(report)
    new = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: f"{START}\n{block}\n{END}", text, count=1,
                 flags=re.S)
    readme.write_text(new)
    return "updated"


# ---- main -------------------------------------------------------------------------------------------------------------


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except Exception:  # noqa: BLE001
        pass
    return str(o)


def main(quick: bool = False, out_dir: str | Path | None = None, update_readme_block: bool | None = None,
         modules: list[str] | None = None) -> dict:
    """Run the benchmarks, write performance.json / performance.md / two PNGs into `out_dir` (default docs/).

    README.md's perf block is rewritten only when writing to the default docs/ (unless told otherwise).
    """
    out = Path(out_dir) if out_dir is not None else DOCS
    out.mkdir(parents=True, exist_ok=True)
    if update_readme_block is None:
        update_readme_block = out.resolve() == DOCS.resolve()
    started = time.perf_counter()
    report: dict = {"machine": machine_info(), "quick": quick, "modules": {}, "plots": []}
    sections = []
    for name, module in MODULES:
        if modules and name not in modules:
            continue
        print(f"[bench] {module} (quick={quick}) ...", flush=True)
        t0 = time.perf_counter()
        result, md = _run_module(name, module, quick)
        print(f"[bench] {module} done in {time.perf_counter() - t0:.1f} s", flush=True)
        report["modules"][name] = result
        sections.append(md)

    report["total_seconds"] = round(time.perf_counter() - started, 1)
    return render(report, out, update_readme_block, sections)


def _module_markdown(name: str, result: dict) -> str:
    if result.get("error"):
        return f"## {name}\n\n_Skipped: {result['error']}._\n"
    mod = importlib.import_module(dict(MODULES)[name])
    return mod.markdown(result)


def render(report: dict, out: Path, update_readme_block: bool, sections: list[str] | None = None) -> dict:
    """Write plots, performance.md/json, README's block and cache-strategy's figures from a measured `report`.

    `python -m benchmarks.run --render-only` re-renders from docs/performance.json without measuring anything.
    """
    quick = report.get("quick", False)
    if sections is None:
        sections = [_module_markdown(n, r) for n, r in report["modules"].items()]
    report["plots"] = []
    scan = report["modules"].get("scan", {})
    for fn, fname in ((plot_time_vs_symbols, "perf_time_vs_symbols.png"), (plot_time_vs_workers, "perf_time_vs_workers.png")):
        try:
            p = fn(scan, out / fname) if not scan.get("error") else None
        except Exception as exc:  # noqa: BLE001
            report.setdefault("plot_errors", []).append(f"{fname}: {type(exc).__name__}: {exc}")
            p = None
        if p is not None:
            report["plots"].append(str(p))
    report["readme"] = update_readme(report) if update_readme_block else "not touched (output outside docs/)"
    cache_doc = out / "cache-strategy.md"
    if out.resolve() != DOCS.resolve() and (DOCS / "cache-strategy.md").exists() and not cache_doc.exists():
        cache_doc.write_text((DOCS / "cache-strategy.md").read_text())  # a copy, so a test run leaves docs/ alone
    report["cache_doc"] = update_block(cache_doc, "<!-- cache-figures:start -->", "<!-- cache-figures:end -->",
                                       cache_block(report))

    m = report["machine"]
    la = m.get("load_average_1_5_15")
    head = [
        "# Performance",
        "",
        f"Generated by `{'make bench ARGS=--quick' if quick else 'make bench'}` (benchmarks/run.py) on "
        f"{m['date']}. Every number below was measured in this one run on this machine; comparisons are ratios of "
        "figures from the same run. Data: the SIMULATED market (no real quotes). Machine-readable: "
        "[performance.json](performance.json).",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPUs | {m['cpu_count']} logical ({m.get('cpu_model') or 'unknown model'}) |",
        f"| RAM | {m['ram_gb']} GB |",
        f"| Python | {m['python']} ({m['platform']}) |",
        "| packages | " + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v) + " |",
        f"| benchmark wall time | {report['total_seconds']:.0f} s"
        + "".join(f"; {k} {v.get('seconds', 0):.0f} s" for k, v in report["modules"].items()) + " |",
    ]
    if la:
        head.append(f"| load average at start (1/5/15 min) | {la} — the box is shared; other work shows up as noise |")
    head.append("")
    if quick:
        head += ["> **Quick run** (`--quick`): smaller sizes and sweep; not the full figures.", ""]
    plots = [f"![{Path(p).stem}]({Path(p).name})" for p in report["plots"]]
    md = "\n".join(head) + "\n" + "\n".join(sections) + ("\n## Plots\n\n" + "\n\n".join(plots) + "\n" if plots else "")
    (out / "performance.md").write_text(md)
    (out / "performance.json").write_text(json.dumps(report, indent=1, default=_json_default))
    print(f"[bench] wrote {out / 'performance.md'}, {out / 'performance.json'} ({report['total_seconds']:.0f} s); "
          f"README: {report['readme']}", flush=True)
    return report


def _cli(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller sizes: a ~3 minute smoke run")
    p.add_argument("--out-dir", default=None, help="where to write (default: docs/)")
    p.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    p.add_argument("--only", action="append", choices=[n for n, _ in MODULES], help="run only this module (repeatable)")
    p.add_argument("--render-only", action="store_true", help="re-render the docs from OUT_DIR/performance.json")
    a = p.parse_args(argv)
    if a.render_only:
        out = Path(a.out_dir) if a.out_dir else DOCS
        report = json.loads((out / "performance.json").read_text())
        render(report, out, not a.no_readme and out.resolve() == DOCS.resolve())
        return
    main(quick=a.quick, out_dir=a.out_dir, update_readme_block=False if a.no_readme else None, modules=a.only)


if __name__ == "__main__":
    _cli()
