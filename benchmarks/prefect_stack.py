"""The orchestration stack a scan benchmark runs on: a real Prefect server subprocess and one local Ray."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.util import temp_env
from flows.prefect_api import (
    STARTUP_TIMEOUT_S, TEMPORARY_SERVER_SETTINGS, free_port, healthy, log_tail, start_server, stop_process,
)


# ---- a real Prefect server ---------------------------------------------------------------------------------------


@dataclass
class PrefectServer:
    """`prefect server start` (flows/prefect_api.start_server) on a free loopback port, with its own PREFECT_HOME
    (fresh sqlite DB). Use as a context manager; `api_url` is the API the flows (and, through runtime_env, the Ray
    workers) talk to. `startup_seconds` is measured from spawn to the first healthy /api/health answer."""

    port: int = 0
    startup_timeout: float = STARTUP_TIMEOUT_S
    proc: subprocess.Popen | None = None
    startup_seconds: float = 0.0
    _tmp: Path | None = field(default=None, repr=False)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> PrefectServer:
        self.port = self.port or free_port()
        self._tmp = Path(tempfile.mkdtemp(prefix="technic-bench-prefect-"))
        env = {**os.environ, "PREFECT_HOME": str(self._tmp / "home"), "PREFECT_LOGGING_LEVEL": "WARNING"}
        t0 = time.perf_counter()
        self.proc = start_server(self.port, self._tmp / "server.log", TEMPORARY_SERVER_SETTINGS, env)
        deadline = time.monotonic() + self.startup_timeout
        while not healthy(self.api_url, 2.0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = log_tail(self._tmp / "server.log", 30)
                self.stop()
                raise RuntimeError(f"the benchmark's Prefect server did not come up:\n{tail}")
            time.sleep(0.25)
        self.startup_seconds = time.perf_counter() - t0
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=20)
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
