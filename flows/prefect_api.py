"""The Prefect API a fresh `technic scan` / `run_scan` process talks to: found, or started as early as possible.

Without PREFECT_API_URL, Prefect starts a temporary server the first time the flow needs the API, after every import,
and the process then waits for it: 3.4 s of its 4.6 s start is the server importing itself, measured. Started here
before the flow's imports, the server comes up in its own process while this one imports and loads, so the wait
mostly overlaps. In order:

1. PREFECT_API_URL in the environment or the active Prefect profile: used as it is.
2. A local stack (`make server`, http://127.0.0.1:$PREFECT_PORT/api, port 4200 by default) that answers /health
   within 0.3 s: used, so a warm scan pays no server start at all.
3. A temporary server kept by an earlier process (below) that still answers: reused.
4. Otherwise a temporary server like Prefect's own (same command and settings), stopped when the process exits; with
   TECHNIC_PREFECT_SERVER_LINGER=<seconds> (technic_v4.api defaults it to 900) a small keeper process owns it and stops it
   after that long without a scan starting or ending, so back-to-back scans skip the start
   ($PREFECT_HOME/technic-temporary-server.json says where).

Nothing is done once `prefect` is imported (its settings are read at import; a test harness or a worker set them).
This module imports no Prefect itself: importing it must stay cheap.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HEALTH_TIMEOUT_S = 0.3
LINGER_ENV = "TECHNIC_PREFECT_SERVER_LINGER"
STARTUP_TIMEOUT_S = 60.0


@dataclass
class PrefectApi:
    """Which API this process uses and why; `wait()` blocks until a server started here answers."""

    how: str  # configured | local stack | temporary | prefect already imported
    url: str | None
    process: subprocess.Popen | None = None
    migrating: bool = False  # the server was started with its database migrations (see _migrations_needed)

    def wait(self, timeout: float = STARTUP_TIMEOUT_S) -> PrefectApi:
        if self.process is None or self.url is None:
            return self
        deadline = time.monotonic() + timeout
        if not _healthy(self.url, HEALTH_TIMEOUT_S):
            preload_first_run()  # this process would only wait: do now what the flow's first run does anyway
        while not _healthy(self.url, HEALTH_TIMEOUT_S):
            if self.process.poll() is not None:
                raise RuntimeError(f"the temporary Prefect server exited with code {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the temporary Prefect server at {self.url} did not answer within {timeout:g} s")
            time.sleep(0.05)
        if self.migrating:
            _remember_migrated()
        return self


_current: PrefectApi | None = None


def preload_first_run() -> None:
    """What a process's first flow run imports or loads lazily (~0.2 s, measured: Prefect's engine pulls in fastapi
    and graphviz on its first run; the XNYS calendar). Done while a temporary server starts, and by the warm scanner
    before it forks; only after the flow itself was imported (it imports Prefect)."""
    import fastapi  # noqa: F401
    import prefect.flow_engine  # noqa: F401
    import prefect.utilities.visualization  # noqa: F401

    from technic_v4.calendar import xnys

    xnys()


def ensure_prefect_api(default_linger: float = 0.0) -> PrefectApi:
    """Decide (once per process) which Prefect API to use and, if needed, start a temporary server without waiting.
    `default_linger` applies when TECHNIC_PREFECT_SERVER_LINGER is not set (the caller's default, never written to
    the environment, so child processes do not inherit it)."""
    global _current
    if _current is None:
        _current = _decide(default_linger)
    return _current


def _decide(default_linger: float = 0.0) -> PrefectApi:
    configured = os.environ.get("PREFECT_API_URL") or _profile_api_url()
    if configured:
        return PrefectApi("configured", configured)
    if "prefect" in sys.modules:
        return PrefectApi("prefect already imported", None)
    local = local_stack_url()
    if _healthy(local, HEALTH_TIMEOUT_S):
        os.environ["PREFECT_API_URL"] = local
        return PrefectApi("local stack", local)
    if os.environ.get("PREFECT_SERVER_EPHEMERAL_ENABLED", "true").lower() in ("0", "false", "no"):
        return PrefectApi("no server (ephemeral servers disabled)", None)
    linger = _linger_seconds(default_linger)
    if linger > 0 and (kept := _kept_server()) is not None:
        os.environ["PREFECT_API_URL"] = kept
        return PrefectApi("kept temporary", kept)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    if linger > 0:  # the keeper starts the server and remembers its migrations itself
        process = subprocess.Popen([sys.executable, "-m", "flows.prefect_api", "--keep", str(port), str(linger)],
                                   start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        how, migrating = f"temporary, kept {linger:g} s after the last scan", False
        atexit.register(_touch, _state_file())
    else:
        (process, migrating), how = _start_server(port), "temporary"
        atexit.register(_stop, process)
    os.environ["PREFECT_API_URL"] = url
    return PrefectApi(how, url, process, migrating)


def local_stack_url() -> str:
    """Where `make server` serves the API: http://127.0.0.1:$PREFECT_PORT/api (4200 by default)."""
    return f"http://127.0.0.1:{os.environ.get('PREFECT_PORT', '4200')}/api"


def _linger_seconds(default: float) -> float:
    raw = os.environ.get(LINGER_ENV, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = -1.0
    if value < 0:
        from technic_v4.errors import ConfigError

        raise ConfigError(f"{LINGER_ENV}={raw!r}: must be seconds >= 0 (0 = stop the server with the process)")
    return value


def _state_file() -> Path:
    return _prefect_home() / "technic-temporary-server.json"


def _kept_server() -> str | None:
    """The URL of a kept temporary server that answers; using it resets its idle clock (the state file's mtime)."""
    path = _state_file()
    try:
        url = json.loads(path.read_text())["url"]
    except (OSError, ValueError, KeyError):
        return None
    if not _healthy(url, HEALTH_TIMEOUT_S):
        return None
    _touch(path)
    atexit.register(_touch, path)  # idle counts from the end of this scan, not its start
    return url


def _touch(path: Path) -> None:
    """Reset the kept server's idle clock. Never creates the file: an empty one written before the keeper's own
    (a scan exiting while the server still starts) would hide the server's address."""
    try:
        os.utime(path)
    except OSError:
        pass


def _keep(port: int, linger: float) -> None:
    """The keeper process: run the server until `linger` seconds pass without a scan touching the state file."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill <keeper>` stops its server too
    server, migrating = _start_server(port)
    url = f"http://127.0.0.1:{port}/api"
    # Say where the server is before it answers: the scan that started this keeper may finish first (its own wait
    # ends at the same /health), and a later scan checks /health before it uses a kept address anyway.
    path = _state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    tmp.replace(path)
    try:
        PrefectApi("keeper", url, server, migrating).wait()
        _touch(path)  # the idle clock starts once the server answers
        while server.poll() is None and time.time() - path.stat().st_mtime < linger:
            time.sleep(min(5.0, linger / 4))
    except FileNotFoundError:  # someone removed the state file: stop
        pass
    finally:
        _stop(server)
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass


def _profile_api_url() -> str | None:
    """PREFECT_API_URL of the active profile in $PREFECT_HOME/profiles.toml, read without importing Prefect."""
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", _prefect_home() / "profiles.toml")).expanduser()
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    return (profiles.get("profiles", {}).get(active) or {}).get("PREFECT_API_URL")


def _healthy(api_url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(port: int) -> tuple[subprocess.Popen, bool]:
    """The command Prefect's SubprocessASGIServer runs (prefect 3.9), UI off, services of an ephemeral server;
    (process, whether it runs the database migrations). Explicit settings in the environment win over these:
    - no telemetry: offline machines log "Failed to send telemetry" otherwise;
    - no automations (reactive triggers and their actions): a scan's temporary server has none to run, and starting
      those two services delays /health by 0.3 s (median of 6 starts: 3.31 vs 3.62 s);
    - no migration check when this Prefect version already migrated this very database (0.18 s)."""
    migrating = _migrations_needed()
    defaults = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
                "PREFECT_SERVER_SERVICES_ACTIONS_ENABLED": "false",
                **({} if migrating else {"PREFECT_API_DATABASE_MIGRATE_ON_START": "false"})}
    env = {**defaults, **os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
           "PREFECT__SERVER_FINAL": "1"}
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "error", "--lifespan", "on"]
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL), migrating


MIGRATED_FILE = "technic-migrated.json"


def _prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()


def _database_revision() -> str | None:
    """The schema revision (alembic) of Prefect's default SQLite database, read without Prefect; None for another
    database or none yet."""
    if os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL"):
        return None
    db = _prefect_home() / "prefect.db"
    if not db.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)) as con:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _migration_record() -> dict:
    return {"prefect": importlib.metadata.version("prefect"), "revision": _database_revision()}


def _migrations_needed() -> bool:
    """False only when a server of this Prefect version migrated this database to the revision it still has."""
    try:
        seen = json.loads((_prefect_home() / MIGRATED_FILE).read_text())
    except (OSError, ValueError):
        return True
    return seen.get("revision") is None or seen != _migration_record()


def _remember_migrated() -> None:
    record = _migration_record()
    if record["revision"] is None:
        return
    path = _prefect_home() / MIGRATED_FILE
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(record))
        tmp.replace(path)
    except OSError:
        pass


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--keep":
    _keep(int(sys.argv[2]), float(sys.argv[3]))
