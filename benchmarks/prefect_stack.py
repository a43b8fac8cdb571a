"""The orchestration stack a scan benchmark runs on: a real Prefect server subprocess and one local Ray."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.util import free_port, temp_env

VENV_BIN = Path(sys.executable).parent


# ---- a real Prefect server ---------------------------------------------------------------------------------------


@dataclass
class PrefectServer:
    """`prefect server start` as a subprocess on a free loopback port, with its own PREFECT_HOME (fresh sqlite DB).

    Use as a context manager; `api_url` is the API the flows (and, through runtime_env, the Ray workers) talk to.
    `startup_seconds` is measured from spawn to the first healthy /api/health answer.
    """

    port: int = 0
    startup_timeout: float = 120.0
    home: Path | None = None
    proc: subprocess.Popen | None = None
    startup_seconds: float = 0.0
    log_path: Path | None = None
    _tmp: Path | None = field(default=None, repr=False)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as r:
                return r.status == 200
        except Exception:
            return False

    def _spawn(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.update(PREFECT_HOME=str(self.home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                   PREFECT_UI_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING")
        prefect_cli = VENV_BIN / "prefect"
        cmd = [str(prefect_cli)] if prefect_cli.exists() else [sys.executable, "-m", "prefect"]
        cmd += ["server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log_path.open("w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def start(self) -> PrefectServer:
        self.port = self.port or free_port()
        self._tmp = Path(tempfile.mkdtemp(prefix="technic-bench-prefect-"))
        self.home = self.home or self._tmp / "home"
        self.log_path = self._tmp / "server.log"
        t0 = time.perf_counter()
        self._spawn()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prefect server exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self._healthy():
                self.startup_seconds = time.perf_counter() - t0
                return self
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"prefect server did not answer within {self.startup_timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-n:])
        except Exception:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the server and its uvicorn children
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def use_prefect_api(api_url: str) -> Iterator[None]:
    """Point this process's Prefect client at `api_url` (settings context + environment, for child processes)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temp_env(PREFECT_API_URL=api_url), temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield


# ---- one local Ray -------------------------------------------------------------------------------------------------


def start_local_ray(api_url: str, num_cpus: int | None = None) -> float:
    """One local Ray for a whole benchmark (every scan's RayTaskRunner joins it instead of starting its own).

    Workers get the flow's PREFECT_API_URL through runtime_env, so they never start a Prefect server of their own.
    Returns the seconds ray.init took.
    """
    import ray

    env = {"PREFECT_API_URL": api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.update({k: v for k, v in os.environ.items() if k.startswith("TECHNIC_")})
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False,
             configure_logging=False, runtime_env={"env_vars": env})
    return time.perf_counter() - t0


def stop_local_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
