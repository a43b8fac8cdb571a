"""Targets, derived figures and the markdown section of the scan benchmark (benchmarks/bench_scan.py measures)."""

from __future__ import annotations

import os

from benchmarks.util import ratio, rnd

SEED_TARGETS = [  # (label, key in the evaluated figures, comparison, limit)
    ("5,000 symbols < 60 s (cold scan)", "cold_5000_s", "<", 60.0),
    ("5,000 symbols < 60 s (warm scan)", "warm_5000_s", "<", 60.0),
    ("6,000 symbols < 70 s (cold scan)", "cold_6000_s", "<", 70.0),
    ("6,000 symbols < 70 s (warm scan)", "warm_6000_s", "<", 70.0),
    ("< 100 API calls (warm 6,000)", "warm_6000_api_calls", "<", 100),
    ("> 60 % cache hits (warm 6,000)", "warm_6000_cache_pct", ">", 60.0),
    ("< 7 GB peak memory (6,000, flow + workers)", "peak_6000_gb", "<", 7.0),
]
DESIGN_TARGETS = [
    ("warm 6,000 flow run, thread runner ≤ 5 s", "warm_6000_thread_s", "<=", 5.0),
    ("warm 6,000 flow run, Ray runner ≤ 8 s", "warm_6000_ray_s", "<=", 8.0),
    ("warm 6,000 ≤ 2 API calls", "warm_6000_api_calls", "<=", 2),
    ("warm 6,000 ≥ 99 % bar-days from cache", "warm_6000_cache_pct", ">=", 99.0),
    ("peak memory 6,000, flow + workers ≤ 1.5 GB", "peak_6000_gb", "<=", 1.5),
    ("cold 6,000: grouped-daily calls for the 300-session backfill ≤ 300", "cold_6000_grouped_calls", "<=", 300),
    ("cold 6,000: fetch stage (300 sessions ≈ 1.2 y over the loopback server) ≤ 15 s", "cold_6000_fetch_s", "<=", 15.0),
]


# ---- derived figures, targets --------------------------------------------------------------------------------------


def _peak_gb(size: dict, kind: str = "pss") -> float:
    """Peak flow + Ray-worker memory of one size's scans: the flow process's exact lifetime peak RSS (kernel) plus
    the highest sampled sum over the Ray workers — PSS (shared pages split between processes) or RSS (counted in
    every process: an upper bound)."""
    scans = [v for k, v in size.items() if isinstance(v, dict) and "elapsed_s" in v]
    workers = max((s.get(f"peak_{kind}_mb_workers_sampled", 0.0) for s in scans), default=0.0)
    return (size["child_peak_rss_mb"] + workers) / 1024.0


def _size_figures(size: dict) -> dict:
    """The figures the targets are judged on, for one size; adds the size's Ray-vs-thread ratios to `size`."""
    n, cold, ray, thread = size["n"], size["cold"], size["warm_ray"], size["warm_thread"]
    figures = {
        f"cold_{n}_s": cold["elapsed_s"],
        f"cold_{n}_api_calls": cold["api_calls"],
        f"cold_{n}_grouped_calls": cold["api_calls_by_endpoint"].get("grouped_daily", 0),
        f"cold_{n}_fetch_s": cold["stages"].get("fetch"),
        f"warm_{n}_s": ray["elapsed_s"],
        f"warm_{n}_ray_s": ray["elapsed_s"],
        f"warm_{n}_thread_s": thread["elapsed_s"],
        f"warm_{n}_api_calls": max(ray["api_calls"], thread["api_calls"]),
        f"warm_{n}_cache_pct": 100.0 * min(ray["cache_hit_rate"], thread["cache_hit_rate"]),
        f"peak_{n}_gb": round(_peak_gb(size, "pss"), 3),
        f"peak_{n}_gb_rss_sum": round(_peak_gb(size, "rss"), 3),
    }
    size["ray_over_thread_warm"] = rnd(ratio(ray["elapsed_s"], thread["elapsed_s"]), 2)
    if "warm_ray_own_cluster" in size:
        size["own_ray_over_shared_ray"] = rnd(ratio(size["warm_ray_own_cluster"]["elapsed_s"], ray["elapsed_s"]), 2)
    return figures


def _judge(targets: list[tuple], figures: dict) -> list[dict]:
    rows = []
    for label, key, op, limit in targets:
        v = figures.get(key)
        ok = None if v is None else {"<": v < limit, "<=": v <= limit, ">": v > limit, ">=": v >= limit}[op]
        rows.append({"target": label, "measured": v, "limit": f"{op} {limit}", "pass": ok})
    return rows


def _sweep_optimum(sweep: list[dict]) -> dict | None:
    ray_rows = [r for r in sweep if r["runner"] == "ray"]
    thr_rows = [r for r in sweep if r["runner"] == "thread"]
    if not ray_rows:
        return None
    best = min(ray_rows, key=lambda r: r["elapsed_s"])
    best_score = min(ray_rows, key=lambda r: r["score_s"])
    opt = {"ray_workers_by_total": best["workers"], "ray_total_s": best["elapsed_s"],
           "ray_workers_by_score": best_score["workers"], "ray_score_s": best_score["score_s"]}
    if thr_rows:
        tb = min(thr_rows, key=lambda r: r["elapsed_s"])
        opt.update(thread_workers_by_total=tb["workers"], thread_total_s=tb["elapsed_s"],
                   ray_over_thread_best=rnd(ratio(best["elapsed_s"], tb["elapsed_s"]), 2))
    return opt


def _derive(result: dict) -> None:
    """Add the derived figures, the judged targets and the sweep's optimum to a measured `result`."""
    figures = {}
    for size in result.get("sizes", []):
        figures.update(_size_figures(size))
    result["figures"] = figures
    result["seed_targets"] = _judge(SEED_TARGETS, figures)
    result["design_targets"] = _judge(DESIGN_TARGETS, figures)
    opt = _sweep_optimum(result.get("sweep") or [])
    if opt is not None:
        result["sweep_optimum"] = opt


def sweep_fit(result: dict) -> dict | None:
    """Per-task overhead (least-squares slope of score-stage seconds over workers) and per-symbol scoring cost."""
    import numpy as np

    sweep = result.get("sweep") or []
    rows = {r: sorted((x for x in sweep if x["runner"] == r), key=lambda x: x["workers"]) for r in ("ray", "thread")}
    if len(rows["ray"]) < 2 or len(rows["thread"]) < 2:
        return None
    slope = {r: float(np.polyfit([x["workers"] for x in v], [x["score_s"] for x in v], 1)[0]) for r, v in rows.items()}
    one = rows["thread"][0]
    n = one.get("symbols_scored") or 0
    if not n or slope["ray"] <= 0:
        return None
    per_symbol = one["score_s"] / n
    brk = int(round(slope["ray"] / per_symbol, -2))
    return {"ray_s_per_task": slope["ray"], "thread_s_per_task": slope["thread"], "s_per_symbol": per_symbol,
            "break_even_symbols": brk, "symbols": n, "suggested_workers": max(1, min(os.cpu_count() or 1, n // max(brk, 1)))}


# ---- markdown --------------------------------------------------------------------------------------------------------


def _f(x, nd=2):
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:,.{nd}f}"


STAGES = ["reference", "fetch", "load_panel", "regime", "prescreen", "score", "validate", "publish"]
SCAN_NAMES = {"cold": "cold (Ray)", "warm_ray": "warm (Ray, shared head)", "warm_thread": "warm (thread)",
              "warm_ray_own_cluster": "warm (Ray started by the scan)"}


def _intro(result: dict) -> list[str]:
    mk = result["market"]
    return ["## Full-universe scans (bench_scan)", "",
            f"Real Prefect server (`prefect server start`, {result['prefect_server']['version']}, up in "
            f"{_f(result['prefect_server']['startup_s'])} s). Market: **{mk['source']}** — {mk['note']}. "
            f"Universe: {mk['symbols_listed']:,} listed simulated symbols, `max_symbols` = the N most liquid, then the "
            f"prescreen. Cold = empty bar store, Prefect result cache and results (only the weekly universe file, from "
            f"the one reference refresh below, is copied in), scan as of {result['days']['d_minus_1']} (backfills 300 "
            "trading days); "
            f"warm = the next session {result['days']['d']} (one new day). Warm scans set `reuse_scores=False`, so every "
            f"kept symbol is rescored. Ray: {result['ray']['mode']} (ray.init {_f(result['ray']['init_s'])} s, once). "
            "`elapsed` is measured around `run_scan_output` (flow-run creation, runner start-up and all stages); "
            "`flow` is the flow's own stage timer."]


def _errors(result: dict) -> list[str]:
    lines = []
    for name, err in (result.get("errors") or {}).items():
        lines += ["", f"> **Not measured in this run — {name}:** {err}"]
    return lines


def _size_table(result: dict) -> list[str]:
    lines = ["", "### Time, calls, cache, memory per size", "",
             "| scan | symbols | kept & scored | elapsed s | flow s | ms/symbol | API calls | cache hits | "
             "flow RSS MB | Ray workers PSS (RSS) MB | worker procs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for size in result["sizes"]:
        for key, name in SCAN_NAMES.items():
            s = size.get(key)
            if not s:
                continue
            lines.append(
                f"| {name} | {s['max_symbols']:,} | {s['symbols_scored']:,} | {_f(s['elapsed_s'])} | {_f(s['flow_wall_s'])} | "
                f"{_f(1000 * s['elapsed_s'] / s['max_symbols'], 3)} | {s['api_calls']:,} | {100 * s['cache_hit_rate']:.2f} % | "
                f"{_f(s['peak_rss_mb_flow_sampled'], 0)} | {_f(s.get('peak_pss_mb_workers_sampled'), 0)} "
                f"({_f(s['peak_rss_mb_workers_sampled'], 0)}) | {s['worker_processes']} |"
            )
    return lines


def _memory_note(result: dict) -> list[str]:
    return ["", "Elapsed for warm scans: best of " + str(result["plan"].get("warm_repeats", 1)) + " (all runs: " + "; ".join(
        f"{s['n']:,} thread {s['warm_thread'].get('elapsed_s_runs')}, Ray {s['warm_ray'].get('elapsed_s_runs')}"
        for s in result["sizes"]) + "). Memory sampled every 50 ms during each scan: the flow process's RSS, and the "
        "sum over this benchmark's Ray worker processes as PSS (shared pages split between the processes mapping them) "
        "with the RSS sum (shared pages counted in every process, an upper bound) in brackets. Peak flow + workers "
        "per size (the scan process's own peak RSS, VmHWM from the kernel, + highest worker PSS sum; RSS-sum upper bound in brackets; Ray's raylet/GCS and the Prefect server are not counted): "
        + ", ".join(f"{s['n']:,}: {_f(result['figures']['peak_%d_gb' % s['n']], 2)} GB "
                    f"({_f(result['figures']['peak_%d_gb_rss_sum' % s['n']], 2)} GB)" for s in result["sizes"]) + "."]


def _load_note(result: dict) -> list[str]:
    la = result.get("load_average")
    if not la:
        return []
    return ["", f"Box load average (1/5/15 min) at start {la['start']}, at end {la['end']} on "
            f"{os.cpu_count()} CPUs — other work on the machine shows up as noise in these times."]


def _calls_note(result: dict) -> list[str]:
    """The one reference refresh, and each size's cold-scan API calls by endpoint."""
    lines = []
    rr = result.get("reference_refresh")
    if rr:
        lines += ["", f"Weekly universe refresh on an empty store (`load_reference`, measured once, not part of the "
                  f"cold scans above): {_f(rr['seconds'])} s, {rr['api_calls']:,} API calls "
                  f"({', '.join(f'{k} {v:,}' for k, v in rr['api_calls_by_endpoint'].items())}), {rr['symbols']:,} symbols. "
                  "A daily scan reads it from the store (0 calls) until it is 7 days old."]
    cold_calls = "; ".join(f"{s['n']:,}: " + ", ".join(f"{k} {v}" for k, v in s["cold"]["api_calls_by_endpoint"].items())
                           for s in result["sizes"])
    return lines + ["", f"Cold-scan API calls by endpoint — {cold_calls}."]


def _stage_table(result: dict) -> list[str]:
    lines = ["", "### Wall time per stage (s)", "", "| scan | " + " | ".join(STAGES) + " |",
             "|---|" + "---:|" * len(STAGES)]
    for size in result["sizes"]:
        for key in ("cold", "warm_ray", "warm_thread"):
            s = size[key]
            lines.append(f"| {s['label']} | " + " | ".join(_f(s["stages"].get(st), 3) for st in STAGES) + " |")
    return lines


def _ray_vs_thread_table(result: dict) -> list[str]:
    lines = ["", "### Ray runner vs thread runner (same warm one-new-day scan)", "",
             "| symbols | thread s | Ray s (shared head) | Ray / thread | Ray started per scan s | own Ray / shared Ray |",
             "|---:|---:|---:|---:|---:|---:|"]
    for size in result["sizes"]:
        own = size.get("warm_ray_own_cluster")
        lines.append(
            f"| {size['n']:,} | {_f(size['warm_thread']['elapsed_s'])} | {_f(size['warm_ray']['elapsed_s'])} | "
            f"{_f(size['ray_over_thread_warm'])}x | {_f(own['elapsed_s']) if own else '—'} | "
            f"{(_f(size['own_ray_over_shared_ray']) + 'x') if own else '—'} |")
    return lines


def _sweep_section(result: dict) -> list[str]:
    sweep = result.get("sweep") or []
    if not sweep:
        return []
    return (_sweep_table(result, sweep) + _first_ray_scan_note(sweep) + _sweep_optimum_note(result)
            + _sweep_why_note(result) + _how_to_pick_workers())


def _sweep_table(result: dict, sweep: list[dict]) -> list[str]:
    n_sw = result["plan"]["sweep_symbols"]
    lines = ["", f"### TECHNIC_MAX_WORKERS sweep ({n_sw:,} symbols, warm re-scan of day D, best of "
             f"{result['plan']['sweep_repeats']}; Ray already connected)", "",
             "| workers | Ray score s | Ray total s | thread score s | thread total s | Ray / thread (total) |",
             "|---:|---:|---:|---:|---:|---:|"]
    by = {(r["runner"], r["workers"]): r for r in sweep}
    for w in result["plan"]["workers"]:
        r, t = by.get(("ray", w)), by.get(("thread", w))
        lines.append(f"| {w} | {_f(r and r['score_s'], 3)} | {_f(r and r['elapsed_s'])} | {_f(t and t['score_s'], 3)} | "
                     f"{_f(t and t['elapsed_s'])} | {_f(ratio(r and r['elapsed_s'], t and t['elapsed_s']))}x |")
    return lines


def _first_ray_scan_note(sweep: list[dict]) -> list[str]:
    by = {(r["runner"], r["workers"]): r for r in sweep}
    first = by.get(("ray-first-scan", os.cpu_count() or 2)) or next(
        (r for r in sweep if r["runner"] == "ray-first-scan"), None)
    if not first:
        return []
    return ["", f"Not in the table: the first Ray scan of this driver took {_f(first['elapsed_s'])} s (score "
            f"stage {_f(first['score_s'], 3)} s) — Ray starts the job's worker processes, which import "
            "prefect and technic_v4. Every new flow-run process (a deployment run, `technic scan`) pays that "
            "again, which is why the per-size warm Ray figures above are higher than the sweep's."]


def _sweep_optimum_note(result: dict) -> list[str]:
    opt = result.get("sweep_optimum", {})
    return ["", f"**Optimum on this box ({os.cpu_count()} CPUs):** Ray fastest total at {opt.get('ray_workers_by_total')} "
            f"worker(s) ({_f(opt.get('ray_total_s'))} s; fastest scoring stage at {opt.get('ray_workers_by_score')}, "
            f"{_f(opt.get('ray_score_s'), 3)} s); thread runner fastest at {opt.get('thread_workers_by_total')} "
            f"worker(s) ({_f(opt.get('thread_total_s'))} s)."]


def _sweep_why_note(result: dict) -> list[str]:
    fit = sweep_fit(result)
    if not fit:
        return []
    opt = result.get("sweep_optimum", {})
    return ["", f"Why: each extra chunk costs about **{_f(1000 * fit['ray_s_per_task'], 0)} ms** on Ray and "
            f"{_f(1000 * fit['thread_s_per_task'], 0)} ms on threads (slope of the score stage over the sweep: "
            "a Prefect task run with its API calls, plus a Ray scheduling round trip), while scoring itself "
            f"costs about {_f(1e6 * fit['s_per_symbol'], 0)} µs per symbol (1-chunk thread score stage / "
            f"symbols, task overhead included). A chunk only pays for itself when its compute exceeds its "
            f"overhead: ≥ ~{fit['break_even_symbols']:,} symbols per chunk on Ray. With "
            f"{fit['symbols']:,} scored symbols that allows at most {fit['suggested_workers']} chunk(s) "
            f"on {os.cpu_count()} CPUs; the sweep's fastest Ray setting was {opt.get('ray_workers_by_total')} — "
            "the rule gives an upper bound, the sweep decides."]


def _how_to_pick_workers() -> list[str]:
    return ["", "**How to pick TECHNIC_MAX_WORKERS on a bigger box:** workers ≈ min(CPUs Ray can use "
            "(`ray.cluster_resources()['CPU']`), scored symbols / break-even chunk size), with the break-even "
            "chunk = per-task overhead / per-symbol scoring cost, both read off this sweep on that box. For a "
            "6,000-symbol universe the kernel is too fast to split; parallelism starts paying at tens of "
            "thousands of symbols or with heavier per-symbol work. Re-run `make bench` there and take the "
            "fastest row."]


def _task_overhead_section(result: dict) -> list[str]:
    to = result.get("task_overhead")
    if not to:
        return []
    d, m = to["per_day"], to["per_month"]
    return ["", "### Why bars are cached per month, not per day (measured task overhead)", "",
            "One trivial async task with an explicit cache key, awaited concurrently inside a flow on this "
            "Prefect server (what `fetch-month` costs before it does any work):", "",
            "| cache unit | tasks per 300-day scan | all misses s | all hits s | ms/task (miss) | ms/task (hit) |",
            "|---|---:|---:|---:|---:|---:|",
            f"| per trading day | {d['tasks']} | {_f(d['miss_s'])} | {_f(d['hit_s'])} | {_f(d['ms_per_task_miss'], 1)} | {_f(d['ms_per_task_hit'], 1)} |",
            f"| per month | {m['tasks']} | {_f(m['miss_s'])} | {_f(m['hit_s'])} | {_f(m['ms_per_task_miss'], 1)} | {_f(m['ms_per_task_hit'], 1)} |",
            "", f"A warm scan checks every cached unit: per-day keys would cost {_f(d['hit_s'])} s of task "
            f"overhead per scan vs {_f(m['hit_s'])} s per month ({_f(ratio(d['hit_s'], m['hit_s']))}x)."]


def _target_tables(result: dict) -> list[str]:
    lines = []
    for title, key in (("Seed targets", "seed_targets"), ("DESIGN.md targets", "design_targets")):
        lines += ["", f"### {title}", "", "| target | measured | limit | result |", "|---|---:|---:|---|"]
        for row in result[key]:
            res = "—" if row["pass"] is None else ("PASS" if row["pass"] else "**FAIL**")
            lines.append(f"| {row['target']} | {_f(row['measured'])} | {row['limit']} | {res} |")
    return lines


SECTIONS = (_intro, _errors, _size_table, _memory_note, _load_note, _calls_note, _stage_table, _ray_vs_thread_table,
            _sweep_section, _task_overhead_section, _target_tables)


def markdown(result: dict) -> str:
    if result.get("error"):
        return f"## Full-universe scans\n\n_Not measured: {result['error']}_\n"
    return "\n".join(line for section in SECTIONS for line in section(result)) + "\n"
