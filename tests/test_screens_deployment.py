"""Saved screens through a real deployment run, the way a user starts one:
`prefect deployment run scan/full-universe --param screen=oversold-uptrend,mine` on a real `prefect server start`,
picked up by `prefect worker start --run-once` — one scoring pass, one table artifact and one folder of files per
screen, the user's own screen read from the data dir."""

import json
from pathlib import Path

import httpx
import pytest

from tests.test_deployment import POOL, cli, read_run, stack, timings  # noqa: F401  (stack is the fixture)

pytestmark = pytest.mark.slow  # a Prefect server, `prefect deploy`, a cold 1,000-symbol scan: ~1-2 min


@pytest.mark.timeout(900)
def test_deployment_run_with_screen_parameter(stack):  # noqa: F811
    env = stack
    data_dir = Path(env["TECHNIC_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "screens.toml").write_text('[mine]\nwhere = "RSI14 > 55 and Close > SMA50"\nsort = "RSI14 desc"\n')
    cli(["--no-prompt", "deploy", "--all"], env)
    out = cli(["deployment", "run", "scan/full-universe", "--param", "screen=oversold-uptrend,mine",
               "--param", f"config={json.dumps({'max_symbols': 1000})}"], env)
    run_id = next(line.split()[-1] for line in out.splitlines() if "UUID" in line)
    cli(["worker", "start", "--pool", POOL, "--run-once", "--type", "process"], env, timeout=600)
    run, arts = read_run(env, run_id)
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert run["parameters"]["screen"] == "oversold-uptrend,mine"
    assert {"scan-top", "screen-oversold-uptrend", "screen-mine"} <= set(arts)
    latest = json.loads((data_dir / "results" / "latest.json").read_text())
    screens = latest["screens"]
    assert set(screens) == {"oversold-uptrend", "mine"} and screens["mine"]["rows"] > 0
    mine = json.loads(arts["screen-mine"]["data"])
    assert len(mine) == min(50, screens["mine"]["rows"])
    assert all(r["RSI14"] > 55 for r in mine) and [r["RSI14"] for r in mine] == sorted(
        (r["RSI14"] for r in mine), reverse=True)
    folder = data_dir / "results" / "runs" / run_id / "screens"
    assert (folder / "mine.csv").exists() and (folder / "oversold-uptrend.parquet").exists()
    assert latest["metrics"]["symbols_scored"] > 500  # scored once for both screens
    print("screen deployment timings:", json.dumps(timings(run)))
    deployments = httpx.post(f"{env['PREFECT_API_URL']}/deployments/filter", json={}).json()
    assert any(d["name"] == "full-universe" for d in deployments)
