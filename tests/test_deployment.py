"""The path users take, with default settings: a real `prefect server start`, a process work pool, `prefect deploy
--all`, `prefect deployment run scan/full-universe`, `prefect worker start --run-once`. Nothing is forced: no task
runner, no data source (the embedded simulated market is the default without a key), no pre-started Ray.
Only the data dir and the Prefect home are private to the test. Timings go to deployment-timings.json for the notes."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flows.prefect_api import STARTUP_TIMEOUT_S, free_port, healthy, log_tail, start_server, stop_process
from flows.work_pool import POOL, engine_command, ensure_pool
from technic_v4.data.columns import INDEX_ETFS

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SIGNALS = ["Strong Long", "Long"]


def cli(args, env, timeout=300):
    proc = subprocess.run([str(BIN / "prefect"), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"prefect {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A real Prefect server in its own PREFECT_HOME, and the env a user's shell would have (PREFECT_API_URL only)."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TECHNIC_", "RAY_"))}
    env = {**keep, "PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "TECHNIC_DATA_DIR": str(home / "technic-data"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server = start_server(port, home / "server.log", env=env)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not healthy(env["PREFECT_API_URL"]):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("prefect server did not come up: " + log_tail(home / "server.log"))
            time.sleep(0.5)
        ensure_pool(str(BIN / "prefect"), env, home)  # the pool `make server` creates
        yield env
    finally:
        stop_process(server, grace=30)


def run_deployment(env, params: dict | None = None) -> tuple[str, dict]:
    args = ["deployment", "run", "scan/full-universe"]
    if params:
        args += ["--param", f"config={json.dumps(params)}"]
    t0 = time.time()
    run_id = next(line.split()[-1] for line in cli(args, env).splitlines() if "UUID" in line)
    cli(["worker", "start", "--pool", POOL, "--run-once", "--type", "process"], env, timeout=600)
    return run_id, {"run_command_to_worker_exit_s": round(time.time() - t0, 2)}


def read_run(env, run_id):
    api = env["PREFECT_API_URL"]
    run = httpx.get(f"{api}/flow_runs/{run_id}").json()
    arts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()
    by_key = {a["key"]: a for a in arts if a.get("key")}
    return run, by_key


def timings(run: dict) -> dict:
    from datetime import datetime

    created, start, end = (datetime.fromisoformat(run[k]) for k in ("created", "start_time", "end_time"))
    return {"pickup_s": round((start - created).total_seconds(), 2), "flow_s": round((end - start).total_seconds(), 2),
            "run_to_completed_s": round((end - created).total_seconds(), 2)}


@pytest.fixture(scope="module")
def deployed(stack):
    """`prefect deploy --all` from the repo, as a user does it once."""
    out = cli(["--no-prompt", "deploy", "--all"], stack)
    assert "scan/full-universe" in out and "scan/intraday" in out
    return stack


@pytest.mark.timeout(1200)
def test_deployment_runs_complete_with_default_settings(deployed, tmp_path):
    env = deployed
    deployments = {d["name"]: d for d in httpx.post(f"{env['PREFECT_API_URL']}/deployments/filter", json={}).json()}
    assert deployments["intraday"]["paused"] is True and deployments["full-universe"]["paused"] is False
    assert deployments["full-universe"]["schedules"][0]["schedule"]["timezone"] == "America/New_York"
    assert deployments["full-universe"]["entrypoint"] == "flows.scan:scan"
    pool = httpx.get(f"{env['PREFECT_API_URL']}/work_pools/{POOL}").json()
    assert pool["base_job_template"]["variables"]["properties"]["command"]["default"] == engine_command()

    record = {}
    # 1. defaults: whatever the runner policy chooses must complete, scoring every symbol on a cold data dir
    run_id, record["default_cold"] = run_deployment(env)
    run, arts = read_run(env, run_id)
    assert run["state"]["type"] == "COMPLETED", run["state"]
    record["default_cold"].update(timings(run))
    assert {"scan-top", "scan-report", "scan-fetch-progress"} <= set(arts)
    assert arts["scan-fetch-progress"]["data"] == 100.0
    latest = json.loads((Path(env["TECHNIC_DATA_DIR"]) / "results" / "latest.json").read_text())
    m = latest["metrics"]
    assert latest["simulated"] is True and 6000 <= latest["prescreen"]["universe"] <= 6000 + len(INDEX_ETFS)
    assert m["symbols_scored"] > 1000
    assert m["task_runner"] in ("ray", "thread") and m["runner_reason"]
    if m["task_runner"] == "ray":
        assert m["worker_pids"] and m["flow_pid"] not in m["worker_pids"]
    record["default_cold"]["runner"] = m["task_runner"]

    # 2. the UI's custom run: every ScanConfig field is honoured per run, the runner included
    run_id, record["thread_signals"] = run_deployment(
        env, {"max_symbols": 1000, "task_runner": "thread", "signals": SIGNALS, "reuse_scores": False})
    run, arts = read_run(env, run_id)
    assert run["state"]["type"] == "COMPLETED", run["state"]
    record["thread_signals"].update(timings(run))
    latest = json.loads((Path(env["TECHNIC_DATA_DIR"]) / "results" / "latest.json").read_text())
    # 1,000 most liquid plus the index/macro ETFs the regime needs, wherever they rank
    assert 1000 <= latest["prescreen"]["universe"] <= 1000 + len(INDEX_ETFS)
    assert latest["metrics"]["task_runner"] == "thread"
    assert latest["metrics"]["worker_pids"] == [latest["metrics"]["flow_pid"]]
    top = json.loads(arts["scan-top"]["data"])
    assert top and {r["Signal"] for r in top} <= set(SIGNALS)
    assert len(top[0]) <= 15 and {"Symbol", "Signal", "TechRating", "Entry", "Stop", "Target"} <= set(top[0])

    (tmp_path.parent / "deployment-timings.json").write_text(json.dumps(record, indent=1))
    print("deployment timings:", json.dumps(record))


@pytest.mark.slow  # a forced variant (~30 s): the default run above already proves whichever runner the policy picks
@pytest.mark.timeout(1200)
def test_deployment_run_asks_for_ray_per_run(deployed):
    """Ray asked for per run: scores on Ray workers, not in the flow process."""
    env = deployed
    run_id, _ = run_deployment(env, {"max_symbols": 1000, "task_runner": "ray", "reuse_scores": False})
    run, _ = read_run(env, run_id)
    assert run["state"]["type"] == "COMPLETED", run["state"]
    m = json.loads((Path(env["TECHNIC_DATA_DIR"]) / "results" / "latest.json").read_text())["metrics"]
    assert m["task_runner"] == "ray" and m["worker_pids"] and m["flow_pid"] not in m["worker_pids"]
