"""Deploy with `prefect deploy --all`, trigger `prefect deployment run scan/full-universe`, run one worker pass and
check the flow run COMPLETED with results and artifacts. Uses the session's test server through the real CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def cli(args, env, timeout=240):
    proc = subprocess.run([PREFECT, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"prefect {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.timeout(600)
def test_deploy_run_and_worker_complete_a_scan(prefect_api, tmp_path):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    data = tmp_path / "data"
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "TECHNIC_REPO_DIR": str(REPO),
        "TECHNIC_DATA_DIR": str(data),
        "TECHNIC_DATA_SOURCE": "simulated",
        "TECHNIC_SIM_SYMBOLS": "800",
        "TECHNIC_TASK_RUNNER": "thread",
    }
    pool = "technic-pool"
    cli(["work-pool", "create", pool, "--type", "process", "--overwrite"], env)
    out = cli(["--no-prompt", "deploy", "--all"], env)
    assert "scan/full-universe" in out and "scan/intraday" in out
    run_out = cli(["deployment", "run", "scan/full-universe", "--param", 'config={"max_symbols": 600}'], env)
    run_id = next(line.split()[-1] for line in run_out.splitlines() if "UUID" in line)
    cli(["worker", "start", "--pool", pool, "--run-once", "--type", "process"], env, timeout=400)

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
        deployment = client.read_deployment_by_name("scan/full-universe")
    assert run.state.is_completed(), run.state
    assert {"scan-top", "scan-report"} <= {a.key for a in arts}
    assert deployment.schedules and deployment.schedules[0].schedule.timezone == "America/New_York"
    latest = json.loads((data / "results" / "latest.json").read_text())
    assert latest["simulated"] is True and latest["prescreen"]["universe"] == 600
    assert latest["metrics"]["api_calls_by_endpoint"]["grouped_daily"] == 300
