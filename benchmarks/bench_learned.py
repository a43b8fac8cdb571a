"""Learned-rating benchmark, side by side in one run: the walk-forward evaluation of 6,000 symbols x 500 sessions with
rating "tech" and "learned" (the learned stage = features, ranks, monthly ridge + LightGBM refits for 5 and 21
sessions, walk-forward scoring, every model saved), then warm 6,000-symbol scans with rating "tech" and "learned"
(the model the evaluation just saved), each a fresh interpreter with its own peak RSS (VmHWM).

    python -m benchmarks.bench_learned [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_evaluate import END, FULL, NO_FLOORS, QUICK, _run_child
from benchmarks.prefect_stack import PrefectServer
from benchmarks.util import rnd

SCAN_AS_OF = "2026-07-01"  # the session after END: the final model's labels closed on END


def scan_child(spec: dict) -> dict:
    from benchmarks.memory import vm_hwm_mb
    from technic_v4.api import ScanConfig, run_scan_output

    config = ScanConfig(**spec["config"])
    run_scan_output(config)  # the first run of this configuration: nothing to reuse yet
    t0 = time.perf_counter()
    output = run_scan_output(config)
    wall = time.perf_counter() - t0
    df, summary = output.results, output.summary
    return {"wall_s": round(wall, 3), "rows": int(len(df)), "peak_rss_mb": rnd(vm_hwm_mb(), 1),
            "learned_rows": int(df["LearnedRating"].notna().sum()), "stages_s": summary["metrics"]["stages"],
            "rating": summary.get("rating", {}), "signals": df["Signal"].value_counts().to_dict()}


def _scan(spec: dict, env: dict) -> dict:
    return _run_child(spec, env, module="benchmarks.bench_learned")


def run(quick: bool = False) -> dict:
    size = QUICK if quick else FULL
    base = {"end": END, "sessions": size["sessions"], "max_symbols": size["max_symbols"], "task_runner": "thread",
            **NO_FLOORS}
    data_dir = tempfile.mkdtemp(prefix="technic-bench-learned-")
    out: dict = {"size": size, "end": END}
    with PrefectServer() as server:
        env = {**os.environ, "PREFECT_API_URL": server.api_url, "TECHNIC_DATA_DIR": data_dir,
               "TECHNIC_DATA_SOURCE": "simulated", "TECHNIC_SIM_SYMBOLS": str(size["symbols"]),
               "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        for name, rating in (("cold_tech", "tech"), ("warm_tech", "tech"), ("warm_learned", "learned")):
            print(f"[bench] evaluate {name} ...", flush=True)
            out[name] = _run_child({"config": {**base, "rating": rating}}, env, timeout=3600)
        scan = {"max_symbols": size["max_symbols"], "as_of": SCAN_AS_OF, "task_runner": "thread", **NO_FLOORS}
        for name, rating in (("scan_tech", "tech"), ("scan_learned", "learned")):
            print(f"[bench] {name} ...", flush=True)
            out[name] = _scan({"config": {**scan, "rating": rating}}, env)
    out["learned_stage_s"] = out["warm_learned"]["metrics"]["stages_s"].get("learned")
    out["learned_minus_tech_s"] = round(out["warm_learned"]["wall_s"] - out["warm_tech"]["wall_s"], 2)
    out["scan_learned_minus_tech_s"] = round(out["scan_learned"]["wall_s"] - out["scan_tech"]["wall_s"], 3)
    out["scan_rating_stage_s"] = {k: out[k]["stages_s"].get("rating") for k in ("scan_tech", "scan_learned")}
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--child")
    p.add_argument("--out")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if a.child:
        Path(a.out).write_text(json.dumps(scan_child(json.loads(a.child)), default=str))
    else:
        print(json.dumps(run(quick=a.quick), indent=1, default=str))
