"""A deployment run on the `make server` stack, created -> COMPLETED by the server's own timestamps, side by side in
one stack: the pool's default start (the engine directly, flows/work_pool.py) against Prefect's workspace
supervisor (a run with `command` set to "" falls back to it), each with charts on (the default) and off.

The stack is deployments/local_stack.py in a private TECHNIC_DATA_DIR and PREFECT_HOME on a free port; a first run
backfills the simulated market (reported as "cold"); then the four variants take turns, `rounds` times. A run is
created as `prefect deployment run` creates it (the client call the CLI makes), so the CLI's own start-up is not in
the figure."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.util import REPO, free_port, rnd, temp_env
from flows.prefect_api import healthy

VARIANTS = {  # name -> (job variables, parameters)
    "engine, charts on (default)": ({}, {}),
    "engine, charts off": ({}, {"config": {"chart_top": 0}}),
    "supervisor, charts on": ({"command": ""}, {}),
    "supervisor, charts off": ({"command": ""}, {"config": {"chart_top": 0}}),
}
TARGET_S = 8.0
DEPLOYMENT = "scan/full-universe"


async def one_run(job_variables: dict, parameters: dict) -> dict:
    """One run created as `prefect deployment run` creates it, on the server at PREFECT_API_URL; its times."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        deployment = await client.read_deployment_by_name(DEPLOYMENT)
        run = await client.create_flow_run_from_deployment(deployment.id, parameters=parameters,
                                                           job_variables=job_variables)
        deadline = time.monotonic() + 600
        while not (run := await client.read_flow_run(run.id)).state.is_final():
            if time.monotonic() > deadline:
                raise TimeoutError(f"flow run {run.id} not final after 600 s")
            await asyncio.sleep(0.1)
    return {"state": run.state.type.value, "created_to_end_s": rnd((run.end_time - run.created).total_seconds(), 2),
            "pickup_s": rnd((run.start_time - run.created).total_seconds(), 2),
            "flow_s": rnd((run.end_time - run.start_time).total_seconds(), 2)}


def start_stack(root: Path) -> tuple[subprocess.Popen, dict]:
    port = free_port()
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TECHNIC_", "RAY_"))}
    env = {**keep, "PREFECT_HOME": str(root / "prefect-home"), "TECHNIC_DATA_DIR": str(root / "data"),
           "PREFECT_PORT": str(port), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    log = open(root / "stack.log", "w")
    proc = subprocess.Popen([sys.executable, "deployments/local_stack.py", "start"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while "local stack ready" not in (root / "stack.log").read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the local stack did not start:\n" + (root / "stack.log").read_text()[-3000:])
        time.sleep(0.5)
    return proc, env


def stop_stack(proc: subprocess.Popen, env: dict) -> None:
    subprocess.run([sys.executable, "deployments/local_stack.py", "stop"], cwd=REPO, env=env, capture_output=True,
                   timeout=120)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)


def warm_scans_in_process(rounds: int) -> dict:
    """run_scan_output in this process on the stack's warm data dir, charts on (12) and off in turn: the scan's wall,
    its charts/report/alerts stage, the chart drawing alone and the report's size."""
    from technic_v4.api import run_scan_output
    from technic_v4.pipeline.scan_config import ScanConfig

    run_scan_output(ScanConfig())  # this process's first scan pays its imports
    out = {"on": [], "off": []}
    for _ in range(rounds):
        for label, config in (("on", ScanConfig()), ("off", ScanConfig(chart_top=0))):
            t0 = time.perf_counter()
            summary = run_scan_output(config).summary
            seen = summary.get("seen", {})
            out[label].append({"wall_s": rnd(time.perf_counter() - t0, 2),
                               "stage_s": rnd(summary["metrics"]["stages"]["charts_report_alerts"], 3),
                               "charts": seen.get("charts", {}).get("charts", 0),
                               "charts_s": rnd(seen.get("charts", {}).get("seconds", 0.0), 3),
                               "charts_cpu_s": rnd(seen.get("charts", {}).get("cpu_seconds", 0.0), 3),
                               "report_kb": rnd(seen.get("report_bytes", 0) / 1024, 0)})
    return out


def run(quick: bool = False) -> dict:
    rounds = 2 if quick else 4
    with tempfile.TemporaryDirectory(prefix="technic-bench-deploy-") as tmp:
        proc, env = start_stack(Path(tmp))
        try:
            with temp_env(**env):  # the in-process scans and the client calls reach the stack's server
                assert healthy(env["PREFECT_API_URL"])
                cold = asyncio.run(one_run({}, {}))
                in_process = warm_scans_in_process(rounds)
                runs = {name: [] for name in VARIANTS}
                for _ in range(rounds):
                    for name, (job_variables, parameters) in VARIANTS.items():
                        time.sleep(1.0)  # the worker's next poll lands anywhere in its 1 s interval, as for a user
                        runs[name].append(asyncio.run(one_run(job_variables, parameters)))
        finally:
            stop_stack(proc, env)
    summary = {name: {k: {"median": rnd(statistics.median(r[k] for r in rs), 2),
                          "min": rnd(min(r[k] for r in rs), 2), "max": rnd(max(r[k] for r in rs), 2)}
                      for k in ("created_to_end_s", "pickup_s", "flow_s")}
               for name, rs in runs.items()}
    default = summary["engine, charts on (default)"]["created_to_end_s"]
    return {"rounds": rounds, "quick": quick, "cold": cold, "runs": runs, "summary": summary, "target_s": TARGET_S,
            "in_process": in_process,
            "default_median_s": default["median"], "default_max_s": default["max"],
            "completed": all(r["state"] == "COMPLETED" for rs in runs.values() for r in rs),
            "charts_cost_s": rnd(default["median"] - summary["engine, charts off"]["created_to_end_s"]["median"], 2),
            "supervisor_cost_s": rnd(summary["supervisor, charts on"]["created_to_end_s"]["median"]
                                     - default["median"], 2)}


def markdown(result: dict) -> str:
    r = result
    lines = [
        "## Deployment run on the local stack",
        "",
        f"`make server`'s stack (deployments/local_stack.py) in a private data dir and Prefect home, warm data, "
        f"6,000 simulated symbols; created -> COMPLETED from the server's timestamps, the four variants in turn, "
        f"{r['rounds']} rounds" + (" (quick mode)" if r.get("quick") else "") + f". The first (cold) run: "
        f"{r['cold']['created_to_end_s']:.2f} s. Pickup = created -> Running (worker poll, process start, imports, "
        "flow load); flow = Running -> COMPLETED.",
        "",
        "| variant | created -> COMPLETED median (min-max) s | pickup median s | flow median s |",
        "|---|---:|---:|---:|",
    ]
    for name, s in r["summary"].items():
        c = s["created_to_end_s"]
        lines.append(f"| {name} | {c['median']:.2f} ({c['min']:.2f}-{c['max']:.2f}) | {s['pickup_s']['median']:.2f} "
                     f"| {s['flow_s']['median']:.2f} |")
    lines += [
        "",
        f"Default (engine, charts on): median **{r['default_median_s']:.2f} s**, worst {r['default_max_s']:.2f} s "
        f"(target <= {r['target_s']:.0f} s). Charts add {r['charts_cost_s']:.2f} s to the median run; Prefect's "
        f"workspace supervisor (the process worker's start when the pool names no command) would add "
        f"{r['supervisor_cost_s']:.2f} s. Every run COMPLETED: {r['completed']}.",
        "",
    ]
    on, off = r["in_process"]["on"], r["in_process"]["off"]
    med = lambda rows, k: statistics.median(x[k] for x in rows)  # noqa: E731
    lines += [
        f"Warm 6,000-symbol scans in one process (`run_scan_output`, same stack and data), charts on and off in turn: "
        f"wall median {med(on, 'wall_s'):.2f} s with {on[0]['charts']} charts vs {med(off, 'wall_s'):.2f} s without; "
        f"the charts/report/alerts stage {med(on, 'stage_s'):.2f} s vs {med(off, 'stage_s'):.2f} s; the drawing alone "
        f"{med(on, 'charts_s'):.2f} s wall ({med(on, 'charts_cpu_s'):.2f} s CPU in the chart processes); report.html "
        f"{med(on, 'report_kb'):,.0f} KB (with charts) vs {med(off, 'report_kb'):,.0f} KB.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    out = run(quick="--quick" in sys.argv)
    print(markdown(out))
    print(json.dumps(out["summary"], indent=1))
