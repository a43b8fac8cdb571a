"""Walk-forward evaluation benchmark: 6,000 symbols x 500 sessions, thread vs Ray, wall time and peak RSS.

Each run is a fresh interpreter (`--child`), so its peak RSS (VmHWM) is its own, against a real Prefect server:
  * cold  - an empty data dir: the backfill of every session (one grouped-daily call per day) plus the evaluation;
  * warm thread / warm ray - the same evaluation again with every day in the store (Ray's start-up included; the
    `score` stage is the fan-out itself).
The 6,000-symbol universe: the simulated market's 8,000 names with the size/price/volume floors at 0, so every day
keeps the 6,000 most liquid (the scan's own max_symbols rule). A last warm run with the scan's default floors gives
the headline statistics on the simulated market and their verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.prefect_stack import PrefectServer
from benchmarks.util import REPO, rnd

FULL = {"symbols": 8000, "sessions": 500, "max_symbols": 6000}
QUICK = {"symbols": 1500, "sessions": 60, "max_symbols": 1000}
END = "2026-06-30"  # 500 sessions back still leaves every day a full 300-session window of simulated history
NO_FLOORS = {"min_market_cap": 0, "min_avg_volume": 0, "min_price": 0}


def child_main(spec: dict) -> dict:
    from benchmarks.memory import vm_hwm_mb
    from technic_v4.evaluation import EvalConfig, run_evaluation

    t0 = time.perf_counter()
    scores, summary = run_evaluation(EvalConfig(**spec["config"]))
    wall = time.perf_counter() - t0
    meta = summary["meta"]
    headline = {h: {"ic": s["ic"], "control_ic": s["control_ic"], "ic_minus_control": s["ic_minus_control"],
                    "spread": s["spread"], "strong_long_excess": _excess(s, "Strong Long"),
                    "strong_short_excess": _excess(s, "Strong Short"), "plans": s["plans"]}
                for h, s in summary["horizons"].items()}
    return {"wall_s": round(wall, 2), "process_peak_rss_mb": rnd(vm_hwm_mb(), 1), "rows": int(len(scores)),
            "sessions": meta["sessions"], "universe_mean": round(meta["universe_mean"], 1),
            "metrics": meta["metrics"], "missing": meta["missing"], "verdicts": summary["verdicts"],
            "headline": headline, "turnover": summary["turnover"]}


def _excess(s: dict, signal: str):
    table = s["by_signal"]
    return float(table.loc[signal, "mean_excess"]) if signal in table.index else None


def _run_child(spec: dict, env: dict, timeout: float = 1800, module: str = "benchmarks.bench_evaluate") -> dict:
    """`module --child SPEC --out FILE` in a fresh process; its JSON result (bench_learned runs its scans this way)."""
    with tempfile.NamedTemporaryFile("r", suffix=".json", delete=False) as fh:
        path = fh.name
    try:
        cmd = [sys.executable, "-m", module, "--child", json.dumps(spec), "--out", path]
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{module} child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return json.loads(Path(path).read_text())
    finally:
        Path(path).unlink(missing_ok=True)


def run(quick: bool = False) -> dict:
    size = QUICK if quick else FULL
    base = {"end": END, "sessions": size["sessions"], "max_symbols": size["max_symbols"]}
    data_dir = tempfile.mkdtemp(prefix="technic-bench-eval-")
    out: dict = {"size": size, "end": END}
    with PrefectServer() as server:
        env = {**os.environ, "PREFECT_API_URL": server.api_url, "TECHNIC_DATA_DIR": data_dir,
               "TECHNIC_DATA_SOURCE": "simulated", "TECHNIC_SIM_SYMBOLS": str(size["symbols"]),
               "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        runs = [("cold_thread", "thread", NO_FLOORS), ("warm_thread", "thread", NO_FLOORS),
                ("warm_ray", "ray", NO_FLOORS), ("warm_thread_scan_rules", "thread", {})]
        for name, runner, floors in runs:
            print(f"[bench] evaluate {name} ...", flush=True)
            out[name] = _run_child({"config": {**base, **floors, "task_runner": runner}}, env)
    same = out["warm_thread"]["headline"] == out["warm_ray"]["headline"]
    out["ray_equals_thread"] = bool(same and out["warm_thread"]["rows"] == out["warm_ray"]["rows"])
    return out


def markdown(result: dict) -> str:
    size = result["size"]
    lines = [f"## Walk-forward evaluation ({size['max_symbols']:,} symbols/day x {size['sessions']} sessions, simulated)",
             "", "| run | wall s | stages (s) | peak RSS process MB | peak RSS workers MB | rows |", "|---|---|---|---|---|---|"]
    for name in ("cold_thread", "warm_thread", "warm_ray", "warm_thread_scan_rules"):
        r = result.get(name)
        if not r:
            continue
        m = r["metrics"]
        stages = ", ".join(f"{k} {v:.1f}" for k, v in m["stages_s"].items())
        lines.append(f"| {name} | {r['wall_s']:.1f} | {stages} | {r['process_peak_rss_mb']:.0f} | "
                     f"{m['peak_rss_mb_workers']:.0f} | {r['rows']:,} |")
    lines += ["", f"Ray and thread runs give the same statistics: {result.get('ray_equals_thread')}.", "",
              "Verdicts with the scan's default prescreen (SIMULATED market):", ""]
    lines += [f"- {v}" for v in result.get("warm_thread_scan_rules", {}).get("verdicts", [])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--child")
    p.add_argument("--out")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if a.child:
        Path(a.out).write_text(json.dumps(child_main(json.loads(a.child)), default=str))
    else:
        result = run(quick=a.quick)
        print(markdown(result))
        print(json.dumps(result, indent=1, default=str))
