"""Full-universe scan benchmarks against a real Prefect server: cold / warm per size, thread vs Ray, worker sweep.

Set-up (all started here, all stopped at the end):
  * `prefect server start` on a free loopback port (its own PREFECT_HOME, so a fresh database);
  * the market: the Polygon-compatible loopback server in a subprocess with 100 ms latency, driven by the real
    PolygonSource over HTTP when both exist; otherwise the in-process simulated source (the result says which);
  * ONE local Ray for the whole benchmark (`ray.init` in this process, workers get PREFECT_API_URL through
    runtime_env). Per-size scans run in child processes (so each size gets its own peak-RSS figure) and join that
    Ray by its GCS address (`RAY_ADDRESS`), like a flow joining a running head; the worker sweep runs in this process
    on the already-connected Ray. One extra scan starts a Ray of its own, to show what a per-scan Ray costs.

Per size N (2,500 / 5,000 / 6,000 most-liquid symbols; the simulated universe lists 8,000):
  cold  = empty data dir, scan as_of D-1 (backfills `lookback_days` trading days), Ray runner;
  warm  = scan as_of D (one new trading day) with the Ray runner, then day D is deleted from the store and the same
          one-new-day scan is timed with the thread runner (same bars, same work), so the ratio is like for like.
All warm scans use reuse_scores=False, so every symbol is rescored and the scoring stage is really timed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.loopback import LoopbackProcess, polygon_available
from benchmarks.machine import package_version
from benchmarks.memory import RssSampler, vm_hwm_mb
from benchmarks.prefect_stack import PrefectServer, start_local_ray, stop_local_ray, use_prefect_api
from benchmarks.scan_report import _derive, markdown  # noqa: F401  (markdown: the module interface)
from benchmarks.util import REPO, temp_env

FULL = {"sizes": [2500, 5000, 6000], "workers": [1, 2, 4, 8, 16, 32, 40, 50, 60], "sweep_symbols": 6000,
        "sweep_repeats": 2, "per_scan_ray": True, "listed": 8000, "warm_repeats": 2}
QUICK = {"sizes": [2500], "workers": [1, 2, 8], "sweep_symbols": 2500, "sweep_repeats": 1, "per_scan_ray": False,
         "listed": 3000, "warm_repeats": 1}
LATENCY_MS = 100.0
SIM_SYMBOLS = 8000
API_KEY = "bench-key"


# ---- one scan ------------------------------------------------------------------------------------------------------


def _scan(label: str, **config) -> dict:
    """Run one scan through run_scan_output (the flow, against PREFECT_API_URL) and collect what it measured."""
    from technic_v4.api import ScanConfig, run_scan_output

    cfg = ScanConfig(**config)
    with RssSampler() as rss:
        t0 = time.perf_counter()
        out = run_scan_output(cfg)
        elapsed = time.perf_counter() - t0
    m = out.summary["metrics"]
    return {
        "label": label,
        "max_symbols": cfg.max_symbols,
        "as_of": out.summary["as_of"],
        "source": out.summary["source"],
        "simulated": out.summary["simulated"],
        "task_runner": m["task_runner"],
        "max_workers": cfg.max_workers,
        "elapsed_s": round(elapsed, 3),  # run_scan_output from call to return: flow-run creation, runner start, all
        "flow_wall_s": m["wall_seconds"],  # the flow's own stage timer
        "stages": m["stages"],
        "api_calls": m["api_calls"],
        "api_retries": m.get("api_retries", 0),
        "api_calls_by_endpoint": m["api_calls_by_endpoint"],
        "cache_hit_rate": m["cache_hit_rate"],
        "bars_reused": m["bars_reused"],
        "bars_fetched": m["bars_fetched"],
        "months_cached": m.get("months_cached"),
        "months_fetched": m.get("months_fetched"),
        "symbols_scored": m["symbols_scored"],
        "symbols_reused": m["symbols_reused"],
        "rows": int(len(out.results)),
        "worker_processes": m["worker_processes"],
        "peak_rss_mb_flow_reported": m["peak_rss_mb_flow"],  # the flow process's own peak RSS (VmHWM, since flow start)
        "peak_rss_mb_workers_reported": m["peak_rss_mb_workers"],  # the highest worker's own peak RSS
        **rss.as_dict(),  # sampled during this scan only
    }


def _drop_day(data_dir: str, day: str) -> None:
    from technic_v4.store.bar_store import BarStore

    BarStore(data_dir).delete_day(dt.date.fromisoformat(day))


def _days() -> tuple[dt.date, dt.date]:
    from technic_v4.calendar import last_completed_session, previous_trading_days

    d = last_completed_session()
    return previous_trading_days(d, 2)[0], d


# ---- child process: cold + warm at one size --------------------------------------------------------------------------


def child_main(spec: dict) -> dict:
    """Runs in a fresh interpreter (its own peak RSS): cold scan D-1, warm D (Ray), warm D again (thread)."""
    import resource

    n, data_dir, source = spec["n"], spec["data_dir"], spec["source"]
    d_prev, d = (dt.date.fromisoformat(x) for x in spec["days"])
    common = {"max_symbols": n, "data_dir": data_dir, "data_source": source, "reuse_scores": False}
    if spec.get("reference_seed"):  # the weekly universe file only: bars, Prefect cache and results start empty
        shutil.copytree(Path(spec["reference_seed"]) / "reference", Path(data_dir) / "reference")
    out = {"n": n}
    out["cold"] = _scan(f"cold {n}", as_of=d_prev, task_runner="ray", **common)
    runs: dict[str, list[dict]] = {"ray": [], "thread": []}
    for rep in range(spec.get("warm_repeats", 1)):
        for runner in ("ray", "thread"):
            if runs["ray"]:  # day D was fetched by the previous warm scan: delete it, so this one fetches it again
                _drop_day(data_dir, d.isoformat())
            runs[runner].append(_scan(f"warm {n} {runner}", as_of=d, task_runner=runner, **common))
    for runner, rs in runs.items():  # best of the repeats (a shared box is noisy); every run is kept
        best = dict(min(rs, key=lambda r: r["elapsed_s"]))
        best["elapsed_s_runs"] = [r["elapsed_s"] for r in rs]
        out[f"warm_{runner}"] = best
    if spec.get("per_scan_ray"):
        # A Ray of its own for this one scan (no RAY_ADDRESS): what every scan would pay without a running head.
        with temp_env(RAY_ADDRESS="local"):  # "local" = start a new one (never join another user's `ray start`)
            _drop_day(data_dir, d.isoformat())
            out["warm_ray_own_cluster"] = _scan(f"warm {n} ray (own Ray per scan)", as_of=d, task_runner="ray", **common)
    # VmHWM is this process image's own peak RSS. ru_maxrss is NOT used: Linux carries it across fork/exec, so a
    # child spawned by a big parent reports the parent's peak (here ~3 GB of benchmark harness), not its own.
    out["child_peak_rss_mb"] = round(vm_hwm_mb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    out["child_ru_maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    return out


def _run_child(spec: dict, env: dict, timeout: float = 600) -> dict:
    with tempfile.NamedTemporaryFile("r", suffix=".json", delete=False) as fh:
        result_path = fh.name
    try:
        cmd = [sys.executable, "-m", "benchmarks.bench_scan", "--child", json.dumps(spec), "--out", result_path]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"scan child for {spec['n']} symbols failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        result = json.loads(Path(result_path).read_text())
        result["child_seconds"] = round(time.perf_counter() - t0, 2)
        return result
    finally:
        Path(result_path).unlink(missing_ok=True)


# ---- the benchmark ---------------------------------------------------------------------------------------------------


def _sweep(data_dir: str, n: int, source: str, day: dt.date, workers: list[int], repeats: int) -> list[dict]:
    """Warm re-scan of day D (no new day: isolates scoring) at each worker count, Ray and thread runners."""
    rows = []
    base = {"max_symbols": n, "data_dir": data_dir, "data_source": source, "reuse_scores": False, "as_of": day}
    # Warm-ups, not timed: the first scan in this process pays imports, the first Ray scan of this driver (Ray job)
    # pays the start of its worker processes (they import prefect + technic_v4). The sweep then times steady state;
    # the per-size child scans above include that start-up, as every new flow-run process does.
    _scan("sweep warm-up thread", task_runner="thread", max_workers=2, **base)
    warm_ray = _scan("sweep warm-up ray", task_runner="ray", max_workers=os.cpu_count() or 2, **base)
    rows.append({"runner": "ray-first-scan", "workers": os.cpu_count() or 2, "elapsed_s": warm_ray["elapsed_s"],
                 "score_s": warm_ray["stages"].get("score"), "note": "first Ray scan of this driver: worker start-up"})
    for runner in ("ray", "thread"):
        for w in workers:
            runs = [_scan(f"sweep {runner} {w}", task_runner=runner, max_workers=w, **base) for _ in range(repeats)]
            best = min(runs, key=lambda r: r["elapsed_s"])
            rows.append({
                "runner": runner, "workers": w, "elapsed_s": best["elapsed_s"], "flow_wall_s": best["flow_wall_s"],
                "score_s": best["stages"].get("score"), "score_s_runs": [r["stages"].get("score") for r in runs],
                "elapsed_s_runs": [r["elapsed_s"] for r in runs], "worker_processes": best["worker_processes"],
                "peak_rss_mb_workers_sampled": best["peak_rss_mb_workers_sampled"],
                "symbols_scored": best["symbols_scored"],
            })
    return rows


def reference_refresh(data_dir: Path, source_name: str) -> dict:
    """The weekly universe refresh on an empty store (listing + ticker details per symbol), timed and counted once.

    Its file is then copied into every size's otherwise empty data dir, so the cold scans time the bar backfill and
    the scan itself, not the same reference refresh three times.
    """
    import asyncio

    from technic_v4.config import load_settings
    from technic_v4.data.factory import make_source
    from technic_v4.pipeline.universe import load_reference
    from technic_v4.store.bar_store import BarStore

    settings = load_settings(data_dir=data_dir)
    source = make_source(settings, source_name)

    async def go():
        try:
            return await load_reference(BarStore(data_dir), source, force=True)
        finally:
            await source.aclose()

    t0 = time.perf_counter()
    df, _info = asyncio.run(go())
    seconds = time.perf_counter() - t0
    calls = source.counter.snapshot()
    return {"seconds": round(seconds, 2), "api_calls": calls["attempts"], "api_retries": calls["retries"],
            "api_calls_by_endpoint": calls["by_endpoint"], "symbols": int(len(df))}


def task_overhead(n_days: int = 300, n_months: int = 15) -> dict:
    """Measured cost of one cached Prefect task run against the server: why bars are cached per month, not per day.

    Runs an async flow that awaits `n` trivial tasks with an explicit cache key (like fetch-month) concurrently:
    first with empty result storage (misses: run + persist), then again (hits: the result is read back).
    """
    import asyncio

    from prefect import flow, task
    from prefect.cache_policies import CacheKeyFnPolicy

    storage = Path(tempfile.mkdtemp(prefix="technic-bench-cache-"))

    @task(name="overhead-probe", cache_policy=CacheKeyFnPolicy(cache_key_fn=lambda _c, p: f"probe-{p['i']}"),
          persist_result=True, result_storage=storage)
    async def probe(i: int) -> dict:
        return {"i": i}

    @flow(name="bench-task-overhead")
    async def many(n: int) -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(probe(i) for i in range(n)))
        return time.perf_counter() - t0

    out = {}
    try:
        for n, label in ((n_days, "per_day"), (n_months, "per_month")):
            miss = asyncio.run(many(n))
            hit = asyncio.run(many(n))
            out[label] = {"tasks": n, "miss_s": round(miss, 3), "hit_s": round(hit, 3),
                          "ms_per_task_miss": round(1000 * miss / n, 1), "ms_per_task_hit": round(1000 * hit / n, 1)}
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    return out


def _part(errors: dict, name: str, fn, *args):
    """One part of the benchmark; a failure is recorded in `errors` and the other parts still run."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001
        import traceback

        errors[name] = f"{type(exc).__name__}: {exc}"
        print(f"[bench_scan] {name} failed: {errors[name]}\n{traceback.format_exc(limit=6)}", file=sys.stderr, flush=True)
        return None


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _bench_env(plan: dict) -> dict:
    return {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
            "TECHNIC_SIM_SYMBOLS": str(plan["listed"]), "TECHNIC_MAX_WORKERS": "2", "TECHNIC_BENCH": "1"}


def _market(loop: LoopbackProcess | None, plan: dict, why: str) -> tuple[str, dict, dict]:
    """(source name, environment for the scans, the result's "market" record): the loopback server when it runs."""
    if loop is not None:
        loop.wait()  # the last 310 sessions: every 300-day window ending D-1 or D, plus margin
        env = {"POLYGON_BASE_URL": loop.url, "POLYGON_API_KEY": API_KEY, "TECHNIC_DATA_SOURCE": "polygon"}
        return "polygon", env, {
            "source": "polygon", "simulated": True, "latency_ms": LATENCY_MS, "symbols_listed": plan["listed"],
            "note": "real PolygonSource (HTTP) against the loopback Polygon server (SIMULATED market) in its "
                    f"own process, {LATENCY_MS:.0f} ms latency per request; the last 310 sessions' grouped-daily "
                    "bodies are encoded before it starts serving (as a real API serves stored data), so the "
                    "simulator's CPU time is not in the fetch figures",
            "server_startup_s": round(loop.startup_seconds, 2),
            "server_prewarm_s": round(loop.prewarm_seconds, 2),
        }
    return "simulated", {"TECHNIC_DATA_SOURCE": "simulated"}, {
        "source": "simulated", "simulated": True, "latency_ms": 0, "symbols_listed": plan["listed"],
        "note": "in-process simulated source (no HTTP): the loopback server / PolygonSource were not "
                f"importable ({why}); cold figures exclude network latency",
    }


def _ray(api_url: str) -> dict:
    """Start the benchmark's one local Ray; its record for the result (with the GCS address child scans join)."""
    ray_init_s = start_local_ray(api_url)
    import ray

    return {
        "mode": "one local Ray for the whole benchmark: ray.init(num_cpus=os.cpu_count(), runtime_env="
                "{env_vars: {PREFECT_API_URL: <server>}}) in the benchmark process; per-size child "
                "processes join it with RAY_ADDRESS=<its GCS address>; the sweep reuses the connection",
        "init_s": round(ray_init_s, 2), "num_cpus": os.cpu_count(), "gcs_address": ray.get_runtime_context().gcs_address,
    }


def _size_scans(plan: dict, source: str, seed: str | None, work: Path, days: tuple[dt.date, dt.date],
                child_env: dict, errors: dict) -> tuple[list[dict], dict[int, str]]:
    """Cold + warm scans of every size, each in a child process; (results measured, data dir per size)."""
    sizes, data_dirs = [], {}
    for n in plan["sizes"]:
        data_dirs[n] = str(work / f"data-{n}")
        spec = {"n": n, "data_dir": data_dirs[n], "source": source, "reference_seed": seed,
                "days": [d.isoformat() for d in days],
                "per_scan_ray": plan["per_scan_ray"] and n == max(plan["sizes"]),
                "warm_repeats": plan["warm_repeats"]}
        print(f"[bench_scan] cold + warm scans at {n} symbols ({source}) ...", flush=True)
        res = _part(errors, f"scans_{n}", _run_child, spec, child_env)
        if res is not None:
            sizes.append(res)
    return sizes, data_dirs


def _measure(result: dict, plan: dict, api_url: str, source: str, work: Path, days: tuple[dt.date, dt.date]) -> None:
    """Every measurement, on the running Prefect server and market: task overhead, reference refresh, per-size
    scans, worker sweep."""
    result["ray"] = _ray(api_url)
    errors = result.setdefault("errors", {})
    print("[bench_scan] per-task overhead of cached Prefect tasks (per day vs per month) ...", flush=True)
    result["task_overhead"] = _part(errors, "task_overhead", task_overhead)
    child_env = {**os.environ, "RAY_ADDRESS": result["ray"]["gcs_address"], "PREFECT_API_URL": api_url,
                 "TECHNIC_BENCH_ROOT_PID": str(os.getpid())}
    print("[bench_scan] weekly reference refresh on an empty store ...", flush=True)
    ref_seed = work / "reference-seed"
    result["reference_refresh"] = _part(errors, "reference_refresh", reference_refresh, ref_seed, source)
    seed = str(ref_seed) if result["reference_refresh"] else None
    result["sizes"], data_dirs = _size_scans(plan, source, seed, work, days, child_env, errors)
    n_sweep = plan["sweep_symbols"]
    if any(sz["n"] == n_sweep for sz in result["sizes"]):
        print(f"[bench_scan] worker sweep at {n_sweep} symbols: {plan['workers']} (ray + thread) ...", flush=True)
        result["sweep"] = _part(errors, "sweep", _sweep, data_dirs[n_sweep], n_sweep, source, days[1], plan["workers"],
                                plan["sweep_repeats"]) or []
    if not result["sizes"] and not result.get("sweep"):
        raise RuntimeError(f"no scan could be measured: {errors}")


def run(quick: bool = False) -> dict:
    plan = QUICK if quick else FULL
    avail, why = polygon_available()
    days = _days()
    started = time.perf_counter()
    result: dict = {"plan": plan, "days": {"d_minus_1": days[0].isoformat(), "d": days[1].isoformat()},
                    "load_average": {"start": _load_average()}}
    work = Path(tempfile.mkdtemp(prefix="technic-bench-scan-"))
    loop = None
    try:
        if avail:  # spawned first: it prewarms while the Prefect server starts
            loop = LoopbackProcess(LATENCY_MS, plan["listed"], API_KEY, prewarm=310).start()
        with PrefectServer() as server, temp_env(**_bench_env(plan)):
            result["prefect_server"] = {"api_url": server.api_url, "startup_s": round(server.startup_seconds, 2),
                                        "version": package_version("prefect")}
            source, market_env, result["market"] = _market(loop, plan, why)
            with temp_env(**market_env), use_prefect_api(server.api_url):
                _measure(result, plan, server.api_url, source, work, days)
                stop_local_ray()
    finally:
        stop_local_ray()
        if loop is not None:
            loop.__exit__()
        shutil.rmtree(work, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["load_average"]["end"] = _load_average()
    _derive(result)
    return result


def _main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child", help="JSON spec: run one size's scans in this process")
    p.add_argument("--out", help="where the child writes its JSON result")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    if a.child:
        res = child_main(json.loads(a.child))
        Path(a.out).write_text(json.dumps(res, default=str))
        return
    res = run(quick=a.quick)
    print(json.dumps(res, indent=1, default=str))
    print(markdown(res))


if __name__ == "__main__":
    _main()
