"""`make server` starts server, work pool, deployments and a worker; Ctrl-C (SIGINT to the terminal's process group)
stops all of it within seconds and leaves nothing running; `make stop` does the same from another shell."""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_stack(tmp_path):
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TECHNIC_", "RAY_"))}
    env = {**keep, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_PORT": str(free_port()),
           "TECHNIC_DATA_DIR": str(tmp_path / "data")}
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


@pytest.mark.timeout(400)
def test_make_stop_from_another_shell(tmp_path):
    proc, env, state, _ = start_stack(tmp_path)
    stopped = subprocess.run(["make", "-s", "stop"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0 and "local stack stopped" in stopped.stdout
    proc.wait(timeout=30)
    assert gone(state["server"]) and gone(state["worker"])
