"""`make server` starts server, work pool, deployments and a worker; `technic scan` in another shell uses it; Ctrl-C
(SIGINT to the terminal's process group) stops all of it within seconds and leaves nothing running; `make stop` does
the same from another shell. Without any server, `make scan` keeps its temporary server for the next `technic scan`."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from flows.prefect_api import free_port, stop_kept_server

REPO = Path(__file__).resolve().parents[1]
TECHNIC = str(Path(sys.executable).parent / "technic")


def clean_env(tmp_path) -> dict[str, str]:
    """Nothing of this session's Prefect, nothing forced: a user's shell with its own home."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TECHNIC_", "RAY_"))}
    return {**keep, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_PORT": str(free_port()),
            "TECHNIC_DATA_DIR": str(tmp_path / "data")}


def table(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("│")]


def start_stack(tmp_path):
    env = clean_env(tmp_path)
    proc = subprocess.Popen(["make", "-s", "server"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        lines.append(line)
        if "local stack ready" in line or time.monotonic() > deadline:
            break
    assert any("local stack ready" in l for l in lines), "".join(lines)
    state = json.loads((tmp_path / "data" / "run" / "stack.json").read_text())
    return proc, env, state, lines


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def descendants(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow  # ~130 s under load; the default suite keeps `make server` + `technic scan` + `make stop`
@pytest.mark.timeout(400)
def test_ctrl_c_stops_worker_and_server(tmp_path):
    proc, env, state, lines = start_stack(tmp_path)
    assert "UI http://127.0.0.1:" in "".join(lines)
    status = subprocess.run(["make", "-s", "status"], cwd=REPO, env=env, capture_output=True, text=True)
    assert status.returncode == 0 and "worker pid" in status.stdout and "up" in status.stdout
    children = descendants(proc.pid)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    rest = proc.communicate(timeout=60)[0]
    took = time.monotonic() - t0
    assert took < 15, rest
    assert "local stack stopped" in rest
    assert all(gone(pid) for pid in [state["server"], state["worker"], *children]), rest
    assert not (tmp_path / "data" / "run" / "stack.json").exists()
    print(f"Ctrl-C to everything stopped: {took:.1f} s")


@pytest.mark.timeout(600)
def test_make_server_then_technic_scan_uses_it_and_make_stop_stops_it(tmp_path):
    """The main path, nothing forced: `make server`, then `technic scan` in another shell, then `make stop`."""
    proc, env, state, _ = start_stack(tmp_path)
    try:
        done = subprocess.run([TECHNIC, "scan", "--top", "10"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert len(table(done.stdout)) == 10 and f"Prefect API: local stack ({state['api']})" in done.stdout
    finally:
        stopped = subprocess.run(["make", "-s", "stop"], cwd=REPO, env=env, capture_output=True, text=True,
                                 timeout=60)
        proc.wait(timeout=30)
    assert stopped.returncode == 0 and "local stack stopped" in stopped.stdout
    assert gone(state["server"]) and gone(state["worker"])


def test_make_stop_and_status_succeed_when_nothing_runs(tmp_path):
    env = clean_env(tmp_path)
    for target, said in (("stop", "no local stack is running"), ("status", "local stack: not running")):
        done = subprocess.run(["make", "-s", target], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and said in done.stdout and "Error" not in done.stderr, done.stderr


@pytest.mark.timeout(600)
def test_make_scan_keeps_its_temporary_server_for_the_next_technic_scan(tmp_path):
    """The main path with nothing running: `make scan` starts a temporary server and keeps it (the default linger);
    the next `technic scan` reuses it, prints the same table and waits less."""
    env = clean_env(tmp_path)
    try:
        walls, outputs = [], []
        for argv in (["make", "-s", "scan", "ARGS=--top 10"], [TECHNIC, "scan", "--top", "10"]):
            t0 = time.monotonic()
            done = subprocess.run(argv, cwd=REPO if argv[0] == "make" else tmp_path, env=env, capture_output=True,
                                  text=True, timeout=300)
            walls.append(time.monotonic() - t0)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            outputs.append(done.stdout)
        assert "Prefect API: kept temporary server, started" in outputs[0]
        assert "Prefect API: kept temporary server, reused" in outputs[1]
        assert len(table(outputs[1])) == 10
        if "PROVISIONAL bars for" in outputs[0]:
            # between the close and TECHNIC_SETTLE_TIME today's bars are provisional: the warm scan refetches that one
            # day (one grouped-daily call) and reuses every other bar-day
            hits = re.search(r"\(([\d,]+) reused / ([\d,]+) fetched\)", outputs[1])
            reused, fetched = (int(g.replace(",", "")) for g in hits.groups())
            assert "grouped_daily 1," in outputs[1] and 0 < fetched * 100 < reused, outputs[1][-1500:]
        else:
            assert "cache hits 100.00%" in outputs[1]
        print(f"make scan (cold, server start) {walls[0]:.1f} s; technic scan (warm, kept server) {walls[1]:.1f} s")
        assert walls[1] < walls[0]
    finally:
        assert stop_kept_server(tmp_path / "prefect")
