"""The local Prefect stack for technic_v4: API server + UI, process work pool, deployments, one worker, and optionally
a Ray head the flows join. `make server` runs `start` in the foreground; Ctrl-C (SIGINT) or SIGTERM stops everything
it started within seconds; `make stop` does the same from another shell; `status` says what runs (exit 0 when the
stack is up or simply not running, 1 when a part of it is down).

    python deployments/local_stack.py start|stop|status|pool

Every child runs in its own process group so a stop reaches its children (Prefect's worker runs flows as
subprocesses); a child that ignores SIGTERM for STOP_GRACE seconds is killed. The pids live in
$TECHNIC_DATA_DIR/run/stack.json, so `stop` works from any shell.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flows.prefect_api import STARTUP_TIMEOUT_S, alive, healthy, local_stack_url, log_tail, start_server
from flows.work_pool import POOL, ensure_pool
from technic_v4.config import load_settings

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STOP_GRACE = 6.0
# A local worker asks for work every second (Prefect's default is 10 s): a run waits 0.5 s for it on average. The idle
# server's CPU measured 5.8 % of a core at 1 s against 4.7 % at 2 s.
POLL_SECONDS = "1"


def state_file() -> Path:
    return load_settings().data_dir.expanduser() / "run" / "stack.json"


def stack_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PREFECT_API_URL", local_stack_url())
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # no telemetry calls from an offline machine
    env["PREFECT_WORKER_QUERY_SECONDS"] = POLL_SECONDS
    env["PREFECT_WORKER_PREFETCH_SECONDS"] = POLL_SECONDS
    return env


def spawn(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=open(log, "a"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_group(pid: int, name: str) -> None:
    """SIGTERM to the process group, SIGKILL after STOP_GRACE seconds; waits until it is gone."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_GRACE
    while alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if alive(pid):
        print(f"{name} ignored SIGTERM for {STOP_GRACE:.0f} s; killing it", flush=True)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(quiet: bool = False) -> int:
    path = state_file()
    if not path.exists():
        if not quiet:
            print("no local stack is running (no run/stack.json)")
        return 0
    state = json.loads(path.read_text())
    for name in ("worker", "server"):  # the worker before the server: it must not pick up work while the API goes away
        if state.get(name):
            stop_group(state[name], name)
    if state.get("ray_head"):
        subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, timeout=60)
    path.unlink(missing_ok=True)
    print("local stack stopped: " + ", ".join(k for k in ("worker", "server", "ray_head")
                                              if state.get(k)), flush=True)
    return 0


def status() -> int:
    path = state_file()
    if not path.exists():
        print("local stack: not running")
        return 0
    state = json.loads(path.read_text())
    up = {k: alive(v) for k, v in state.items() if k in ("server", "worker") and v}
    print(f"local stack: UI {state['ui']} | API {state['api']} | "
          + ", ".join(f"{k} pid {state[k]} {'up' if ok else 'DOWN'}" for k, ok in up.items())
          + (" | Ray head (RAY_ADDRESS=auto)" if state.get("ray_head") else ""))
    return 0 if all(up.values()) else 1


def start() -> int:
    env = stack_env()
    api, logs = env["PREFECT_API_URL"], state_file().parents[1] / "logs"
    port = int(api.rsplit(":", 1)[1].split("/")[0])
    stop(quiet=True)  # a stack left over from a killed shell
    state = {"api": api, "ui": api.removesuffix("/api"), "server": None, "worker": None, "ray_head": False}
    state_file().parent.mkdir(parents=True, exist_ok=True)

    def shutdown(signum, _frame):
        print(f"\n{signal.Signals(signum).name}: stopping the local stack", flush=True)
        state_file().write_text(json.dumps(state))
        sys.exit(stop())

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    if not healthy(api):
        print(f"starting Prefect server on port {port} (log: {logs / 'prefect-server.log'})", flush=True)
        server = start_server(port, logs / "prefect-server.log", env=env)
        state["server"] = server.pid
        state_file().write_text(json.dumps(state))
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not healthy(api) and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.25)
    if not healthy(api):
        print(f"Prefect server did not come up within {STARTUP_TIMEOUT_S} s; last lines of "
              f"{logs / 'prefect-server.log'}:\n{log_tail(logs / 'prefect-server.log')}", flush=True)
        stop()
        return 1
    prefect = str(BIN / "prefect")
    ensure_pool(prefect, env, state_file().parent)  # its runs start the engine directly (flows/work_pool.py)
    deployed = subprocess.run([prefect, "--no-prompt", "deploy", "--all"], cwd=REPO, env=env, capture_output=True,
                              text=True)
    if deployed.returncode != 0:
        print(deployed.stdout[-3000:] + deployed.stderr[-3000:], flush=True)
        stop()
        return 1
    if load_settings().ray_head:
        subprocess.run([str(BIN / "ray"), "start", "--head", "--disable-usage-stats", "--include-dashboard=false"],
                       env=env, check=True, capture_output=True)
        state["ray_head"], env["RAY_ADDRESS"] = True, "auto"
    worker = spawn([prefect, "worker", "start", "--pool", POOL, "--type", "process"], env, logs / "prefect-worker.log")
    state["worker"] = worker.pid
    state_file().write_text(json.dumps(state))
    print(f"local stack ready: UI {state['ui']} | API {api} | worker pid {worker.pid} (log {logs / 'prefect-worker.log'})"
          + (" | Ray head (flows join it)" if state["ray_head"] else ""), flush=True)
    print(f"  in another shell: export PREFECT_API_URL={api}; {prefect} deployment run scan/full-universe", flush=True)
    print("  Ctrl-C here, or `make stop` anywhere, stops worker, server and Ray head", flush=True)
    code = worker.wait()
    print(f"worker exited with {code}; stopping the rest", flush=True)
    stop()
    return code


def pool() -> int:
    """Create or update the work pool on the server at PREFECT_API_URL (one you started yourself), as `start` does."""
    env = stack_env()
    try:
        ensure_pool(str(BIN / "prefect"), env, state_file().parent)
    except subprocess.CalledProcessError as exc:
        print(f"could not create {POOL} at {env['PREFECT_API_URL']}:\n{exc.stdout[-2000:]}{exc.stderr[-2000:]}")
        return 1
    print(f"work pool {POOL} at {env['PREFECT_API_URL']}: its runs start the engine directly (flows/work_pool.py)")
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    sys.exit({"start": start, "stop": stop, "status": status, "pool": pool}[command]())
