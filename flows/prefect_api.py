"""The Prefect API a fresh `technic scan` / `run_scan` process talks to: found, or started as early as possible.

Without PREFECT_API_URL, Prefect starts a temporary server the first time the flow needs the API, after every import,
and the process then waits for it: 3.4 s of its 4.6 s start is the server importing itself, measured. Started here
before the flow's imports, the server comes up in its own process while this one imports and loads, so the wait
mostly overlaps. In order:

1. PREFECT_API_URL in the environment or the active Prefect profile: used as it is.
2. A local stack (`make server`, http://127.0.0.1:$PREFECT_PORT/api, port 4200 by default) that answers /health
   within 0.3 s: used, so a warm scan pays no server start at all.
3. Otherwise a temporary server like Prefect's own (same command and settings), stopped when the process exits.

Nothing is done once `prefect` is imported (its settings are read at import; a test harness or a worker set them).
This module imports no Prefect itself: importing it must stay cheap.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HEALTH_TIMEOUT_S = 0.3
STARTUP_TIMEOUT_S = 60.0


@dataclass
class PrefectApi:
    """Which API this process uses and why; `wait()` blocks until a server started here answers."""

    how: str  # configured | local stack | temporary | prefect already imported
    url: str | None
    process: subprocess.Popen | None = None

    def wait(self, timeout: float = STARTUP_TIMEOUT_S) -> PrefectApi:
        if self.process is None or self.url is None:
            return self
        deadline = time.monotonic() + timeout
        while not _healthy(self.url, HEALTH_TIMEOUT_S):
            if self.process.poll() is not None:
                raise RuntimeError(f"the temporary Prefect server exited with code {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the temporary Prefect server at {self.url} did not answer within {timeout:g} s")
            time.sleep(0.05)
        return self


_current: PrefectApi | None = None


def ensure_prefect_api() -> PrefectApi:
    """Decide (once per process) which Prefect API to use and, if needed, start a temporary server without waiting."""
    global _current
    if _current is None:
        _current = _decide()
    return _current


def _decide() -> PrefectApi:
    configured = os.environ.get("PREFECT_API_URL") or _profile_api_url()
    if configured:
        return PrefectApi("configured", configured)
    if "prefect" in sys.modules:
        return PrefectApi("prefect already imported", None)
    local = f"http://127.0.0.1:{os.environ.get('PREFECT_PORT', '4200')}/api"
    if _healthy(local, HEALTH_TIMEOUT_S):
        os.environ["PREFECT_API_URL"] = local
        return PrefectApi("local stack", local)
    if os.environ.get("PREFECT_SERVER_EPHEMERAL_ENABLED", "true").lower() in ("0", "false", "no"):
        return PrefectApi("no server (ephemeral servers disabled)", None)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    process = _start_server(port)
    os.environ["PREFECT_API_URL"] = url
    atexit.register(_stop, process)
    return PrefectApi("temporary", url, process)


def _profile_api_url() -> str | None:
    """PREFECT_API_URL of the active profile in $PREFECT_HOME/profiles.toml, read without importing Prefect."""
    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
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


def _start_server(port: int) -> subprocess.Popen:
    """The command Prefect's SubprocessASGIServer runs (prefect 3.9), UI off, services of an ephemeral server."""
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "error", "--lifespan", "on"]
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
