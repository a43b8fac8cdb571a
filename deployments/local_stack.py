"""The local Prefect stack for technic_v4: API server + UI, process work pool, deployments, one worker, the warm
scanner (flows/warm_scanner.py: `technic scan` and `run_scan` skip their imports), and optionally a Ray head the flows
join. `make server` runs `start` in the foreground; Ctrl-C (SIGINT) or SIGTERM stops
everything it started within seconds; `make stop` does the same from another shell; `status` says what runs.

    python deployments/local_stack.py start|stop|status

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
import urllib.request
from pathlib import Path

from technic_v4 import warm

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POOL = "technic-pool"
STOP_GRACE = 6.0
# A local worker asks for work every 2 s (Prefect's default is 10 s): `prefect deployment run` starts within ~2 s.
POLL_SECONDS = "2"


def data_dir() -> Path:
    return Path(os.environ.get("TECHNIC_DATA_DIR", Path.home() / ".technic_v4")).expanduser()


def state_file() -> Path:
    return data_dir() / "run" / "stack.json"


def stack_env(port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PREFECT_API_URL", f"http://127.0.0.1:{port}/api")
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # no telemetry calls from an offline machine
    env["PREFECT_WORKER_QUERY_SECONDS"] = POLL_SECONDS
    env["PREFECT_WORKER_PREFETCH_SECONDS"] = POLL_SECONDS
    return env


def healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def spawn(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=open(log, "a"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for_socket(process: subprocess.Popen, path: Path, timeout: float = 60.0) -> None:
    """"Ready" means a `technic scan` typed now is served warm: wait until the scanner listens (~3 s of imports)."""
    deadline = time.monotonic() + timeout
    while not path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an exited child its parent has not reaped yet still answers kill(0)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


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
    for name in ("warm_scanner", "worker", "server"):  # the worker before the server: it must not pick up work while the API goes away
        if state.get(name):
            stop_group(state[name], name)
    if state.get("ray_head"):
        subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, timeout=60)
    path.unlink(missing_ok=True)
    print("local stack stopped: " + ", ".join(k for k in ("warm_scanner", "worker", "server", "ray_head")
                                              if state.get(k)), flush=True)
    return 0


def status() -> int:
    path = state_file()
    if not path.exists():
        print("local stack: not running")
        return 1
    state = json.loads(path.read_text())
    up = {k: alive(v) for k, v in state.items() if k in ("server", "worker", "warm_scanner") and v}
    print(f"local stack: UI {state['ui']} | API {state['api']} | "
          + ", ".join(f"{k} pid {state[k]} {'up' if ok else 'DOWN'}" for k, ok in up.items())
          + (" | Ray head (RAY_ADDRESS=auto)" if state.get("ray_head") else ""))
    return 0 if all(up.values()) else 1


def start() -> int:
    port = int(os.environ.get("PREFECT_PORT", "4200"))
    env = stack_env(port)
    api, logs = env["PREFECT_API_URL"], data_dir() / "logs"
    stop(quiet=True)  # a stack left over from a killed shell
    state = {"api": api, "ui": api.removesuffix("/api"), "server": None, "worker": None, "warm_scanner": None,
             "ray_head": False}
    state_file().parent.mkdir(parents=True, exist_ok=True)

    def shutdown(signum, _frame):
        print(f"\n{signal.Signals(signum).name}: stopping the local stack", flush=True)
        state_file().write_text(json.dumps(state))
        sys.exit(stop())

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    if not healthy(api):
        print(f"starting Prefect server on port {port} (log: {logs / 'prefect-server.log'})", flush=True)
        server = spawn([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], env,
                       logs / "prefect-server.log")
        state["server"] = server.pid
        state_file().write_text(json.dumps(state))
        for _ in range(240):
            if healthy(api) or server.poll() is not None:
                break
            time.sleep(0.25)
    if not healthy(api):
        print(f"Prefect server did not come up; see {logs / 'prefect-server.log'}", flush=True)
        stop()
        return 1
    prefect = str(BIN / "prefect")
    if subprocess.run([prefect, "work-pool", "inspect", POOL], env=env, capture_output=True).returncode != 0:
        subprocess.run([prefect, "work-pool", "create", POOL, "--type", "process"], env=env, check=True,
                       capture_output=True)
    deployed = subprocess.run([prefect, "--no-prompt", "deploy", "--all"], cwd=REPO, env=env, capture_output=True,
                              text=True)
    if deployed.returncode != 0:
        print(deployed.stdout[-3000:] + deployed.stderr[-3000:], flush=True)
        stop()
        return 1
    if os.environ.get("TECHNIC_RAY_HEAD") == "1":
        subprocess.run([str(BIN / "ray"), "start", "--head", "--disable-usage-stats", "--include-dashboard=false"],
                       env=env, check=True, capture_output=True)
        state["ray_head"], env["RAY_ADDRESS"] = True, "auto"
    worker = spawn([prefect, "worker", "start", "--pool", POOL, "--type", "process"], env, logs / "prefect-worker.log")
    state["worker"] = worker.pid
    if warm.enabled():
        scanner = spawn([sys.executable, "-m", "flows.warm_scanner"], env, logs / "warm-scanner.log")
        state["warm_scanner"] = scanner.pid
        wait_for_socket(scanner, warm.socket_path())
    state_file().write_text(json.dumps(state))
    print(f"local stack ready: UI {state['ui']} | API {api} | worker pid {worker.pid} (log {logs / 'prefect-worker.log'})"
          + (f" | warm scanner pid {state['warm_scanner']}" if state["warm_scanner"] else "")
          + (" | Ray head (flows join it)" if state["ray_head"] else ""), flush=True)
    print(f"  in another shell: export PREFECT_API_URL={api}; {prefect} deployment run scan/full-universe", flush=True)
    print("  Ctrl-C here, or `make stop` anywhere, stops warm scanner, worker, server and Ray head", flush=True)
    code = worker.wait()
    print(f"worker exited with {code}; stopping the rest", flush=True)
    stop()
    return code


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    sys.exit({"start": start, "stop": stop, "status": status}[command]())
