"""Which Prefect API a fresh `technic scan` / `run_scan` process uses, decided before the flow's imports.

1. PREFECT_API_URL in the environment or the active Prefect profile (Prefect's own settings): used as it is.
2. The local stack (`make server`) answering /health at local_stack_url(): used, no server start at all.
3. TECHNIC_PREFECT_SERVER_LINGER > 0 (the default): this PREFECT_HOME's kept temporary server, reused or started now
   so that it comes up while the flow imports. It is Prefect's public `prefect server start`, run by a small keeper
   (`python -m flows.prefect_api keep`, standard library only) that pauses it (SIGSTOP, no CPU) while no scan uses it
   and stops it after that many idle seconds. One per PREFECT_HOME (a lock: concurrent scans share it), at most
   MAX_KEPT per user (the least recently used one stops). `kill <keeper pid>` ($PREFECT_HOME/technic-server.json)
   stops it at once.
4. Linger 0: nothing here. Prefect starts its own temporary server when the flow first needs it and stops it at exit;
   it only gets longer to come up (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, Prefect's setting) on a busy box.

This module imports no Prefect itself and nothing heavy: the keeper runs it, and the CLI calls it before its imports.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from technic_v4.errors import TechnicError

HEALTH_TIMEOUT_S = 0.3
# seconds a server started here may take to answer: ~4 s on a quiet 2-core box, 57 s measured under a load of 10
STARTUP_TIMEOUT_S = 180
MAX_KEPT = 3  # kept servers per user, across PREFECT_HOMEs
PAUSE_AFTER_S = 2.0  # the keeper pauses its server this long after the last scan using it ended
# Public Prefect settings for a scan's temporary server: no telemetry from an offline machine, no UI, and none of
# the services that act on schedules or automations (a scan's server has none; they only delay its start).
TEMPORARY_SERVER_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false", "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false", "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_ACTIONS_ENABLED": "false",
}


class PrefectServerError(TechnicError, RuntimeError):
    """A temporary server did not come up; the message quotes its log and says what to do."""


@dataclass
class PrefectApi:
    """Which API this process uses and why; `wait()` blocks until a kept server answers."""

    how: str  # configured | local stack | kept temporary server ... | Prefect's own temporary server | ...
    url: str | None
    log: Path | None = None  # the kept server's output, quoted when it does not come up
    keeper: int | None = None
    _users: object = field(default=None, repr=False)  # shared lock held while this process uses a kept server

    def wait(self, timeout: float = STARTUP_TIMEOUT_S) -> PrefectApi:
        if self.keeper is None or self.url is None:
            return self
        deadline = time.monotonic() + timeout
        if not healthy(self.url, HEALTH_TIMEOUT_S):
            preload_first_run()  # this process would only wait: do now what the flow's first run does anyway
        while not healthy(self.url, HEALTH_TIMEOUT_S):
            if not alive(self.keeper):
                raise PrefectServerError(f"the temporary Prefect server at {self.url} stopped before it answered"
                                         + self._advice())
            if time.monotonic() > deadline:
                raise PrefectServerError(f"the temporary Prefect server at {self.url} did not answer within "
                                         f"{timeout:g} s (a busy box?)" + self._advice())
            time.sleep(0.05)
        return self

    def _advice(self) -> str:
        tail = log_tail(self.log) if self.log else ""
        return ((f"; last lines of {self.log}:\n{tail}\n" if tail else ". ")
                + "Run the scan again, or start a server yourself (`make server`, or `prefect server start` and "
                "export PREFECT_API_URL=http://127.0.0.1:4200/api), or set TECHNIC_PREFECT_SERVER_LINGER=0 to let "
                "Prefect start its own temporary server.")


_current: PrefectApi | None = None


def ensure_prefect_api(linger: float) -> PrefectApi:
    """Decide (once per process) which Prefect API to use; a kept server is started without waiting for it."""
    global _current
    if _current is None:
        _current = _decide(linger)
    return _current


def _decide(linger: float) -> PrefectApi:
    configured = os.environ.get("PREFECT_API_URL") or _profile_api_url()
    if configured:
        return PrefectApi("configured", configured)
    if "prefect" in sys.modules:  # its settings were read at import: too late to choose
        return PrefectApi("prefect already imported", None)
    local = local_stack_url()
    if healthy(local, HEALTH_TIMEOUT_S):
        os.environ["PREFECT_API_URL"] = local
        return PrefectApi("local stack", local)
    if linger <= 0:
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(STARTUP_TIMEOUT_S))
        return PrefectApi("Prefect's own temporary server", None)
    api = kept_server(linger)
    os.environ["PREFECT_API_URL"] = api.url
    return api


def kept_server(linger: float) -> PrefectApi:
    """This PREFECT_HOME's kept server (reused, or its keeper started now), held in use until this process exits."""
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    users = open(home / "technic-server.users", "a")  # noqa: SIM115 - held for the process's life
    with open(home / "technic-server.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one start per home: a concurrent scan waits here, then reuses it
        fcntl.flock(users, fcntl.LOCK_SH)  # in use: the keeper neither pauses nor stops the server now
        state, how = _state(home), "kept temporary server, reused"
        if state is None:
            with open(home / "technic-server.log", "ab") as log:  # the keeper's own errors too
                keeper = subprocess.Popen([sys.executable, "-m", "flows.prefect_api", "keep", str(linger)],
                                          cwd=Path(__file__).resolve().parents[1], start_new_session=True,
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            while (state := _state(home)) is None and keeper.poll() is None:
                time.sleep(0.01)
            if state is None:
                raise PrefectServerError(f"the Prefect server keeper exited with code {keeper.returncode}")
            how = f"kept temporary server, started (stops after {linger:g} idle s)"
    _signal_group(state["server"], signal.SIGCONT)  # paused while idle: running again before the first request
    os.utime(home / "technic-server.json")  # a use the keeper's once-a-second look might miss: a short scan
    return PrefectApi(how, state["url"], home / "technic-server.log", state["keeper"], users)


def _state(home: Path) -> dict | None:
    """The kept server's address and pids, if its keeper still runs."""
    try:
        state = json.loads((home / "technic-server.json").read_text())
    except (OSError, ValueError):
        return None
    return state if alive(state["keeper"]) else None


def stop_kept_server(home: Path | None = None, timeout: float = 20.0) -> bool:
    """Stop the kept server of `home` (default: this PREFECT_HOME) and wait until its keeper is gone; False if none."""
    state = _state(home or prefect_home())
    if state is None:
        return False
    _signal_group(state["keeper"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(state["keeper"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def keep(linger: float) -> None:
    """The keeper: run `prefect server start` for this PREFECT_HOME; pause it while no scan holds the users lock,
    stop it after `linger` seconds without one, or on SIGTERM."""
    home = prefect_home()
    port = free_port()
    server = start_server(port, home / "technic-server.log", TEMPORARY_SERVER_SETTINGS)
    entry = _registry() / f"{os.getpid()}.json"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        _write_json(entry, {"home": str(home)})
        _write_json(home / "technic-server.json", {"url": f"http://127.0.0.1:{port}/api", "keeper": os.getpid(),
                                                   "server": server.pid})
        _stop_least_recently_used()
        last_use = time.time()
        with open(home / "technic-server.users", "a") as users:
            while server.poll() is None:
                time.sleep(1.0)
                try:
                    fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # a scan uses it (and resumed it itself)
                    last_use = time.time()
                    os.utime(entry)
                    continue
                last_use = max(last_use, (home / "technic-server.json").stat().st_mtime)
                idle = time.time() - last_use
                if idle >= linger:  # still holding the lock: no scan can pick this server up while it stops
                    (home / "technic-server.json").unlink(missing_ok=True)
                    break
                if idle > PAUSE_AFTER_S and not _stopped(server.pid):  # checked, not assumed: a stop can be undone
                    _signal_group(server.pid, signal.SIGSTOP)
                fcntl.flock(users, fcntl.LOCK_UN)
            _stop(server)
    finally:
        _stop(server)
        entry.unlink(missing_ok=True)
        try:
            if json.loads((home / "technic-server.json").read_text())["keeper"] == os.getpid():
                (home / "technic-server.json").unlink()
        except (OSError, ValueError, KeyError):
            pass


def _stopped(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except (OSError, IndexError):
        return False


def _stop(server: subprocess.Popen) -> None:
    _signal_group(server.pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
    stop_process(server)


def _registry() -> Path:
    """One file per running keeper of this user (mtime = last use), to bound their number."""
    path = Path(tempfile.gettempdir()) / f"technic-kept-servers-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _stop_least_recently_used() -> None:
    """Stop the idle kept servers beyond MAX_KEPT, least recently used first (one in use is touched every second)."""
    idle_since = {}
    for entry in _registry().glob("*.json"):
        try:
            if alive(pid := int(entry.stem)) and _is_keeper(pid):  # never a process that reused a keeper's pid
                idle_since[pid] = entry.stat().st_mtime
            else:
                entry.unlink()
        except (OSError, ValueError):
            continue
    idle = sorted((t, pid) for pid, t in idle_since.items() if time.time() - t > 5)
    for _, pid in idle[:max(0, len(idle_since) - MAX_KEPT)]:
        _signal_group(pid, signal.SIGTERM)


def _is_keeper(pid: int) -> bool:
    try:
        return b"flows.prefect_api\0keep" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


# ---- helpers shared by the local stack and the benchmarks (one home each) ------------------------------------------


def local_stack_url() -> str:
    """Where `make server` serves the API: http://127.0.0.1:$PREFECT_PORT/api (4200 by default)."""
    return f"http://127.0.0.1:{os.environ.get('PREFECT_PORT', '4200')}/api"


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()


def healthy(api_url: str, timeout: float = 1.0) -> bool:
    """The Prefect API at `api_url` answers /health."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, log: Path, settings: dict[str, str] | None = None,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """`prefect server start` on 127.0.0.1:`port`, in a session of its own, output to `log`. `settings` are defaults
    that the environment overrides; PREFECT_API_URL is dropped (the server is the API, not a client of one)."""
    env = {**(settings or {}), **(env if env is not None else os.environ)}
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).with_name("prefect")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """The process exists and is not a zombie its parent has not reaped yet."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def stop_process(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to its process group, SIGKILL after `grace` seconds."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()


def _signal_group(pid: int, signum: int) -> bool:
    try:
        os.killpg(pid, signum)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _profile_api_url() -> str | None:
    """PREFECT_API_URL of the active profile in $PREFECT_HOME/profiles.toml, read without importing Prefect."""
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", prefect_home() / "profiles.toml")).expanduser()
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    return (profiles.get("profiles", {}).get(active) or {}).get("PREFECT_API_URL")


def preload_first_run() -> None:
    """What a process's first flow run imports lazily (~0.2 s measured: Prefect's engine pulls in fastapi and
    graphviz; the XNYS calendar), done while a kept server starts; only after the flow itself was imported."""
    import fastapi  # noqa: F401
    import prefect.flow_engine  # noqa: F401
    import prefect.utilities.visualization  # noqa: F401

    from technic_v4.calendar import xnys

    xnys()


if __name__ == "__main__" and sys.argv[1:2] == ["keep"]:
    keep(float(sys.argv[2]))
