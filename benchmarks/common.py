"""Shared benchmark helpers: a real Prefect server subprocess, the loopback Polygon server, timing and memory.

Everything here measures; nothing estimates. Times come from time.perf_counter, memory from the kernel (psutil).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


# ---- small utilities -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(fn: Callable, *args, **kwargs) -> tuple[float, object]:
    """(seconds, result) of one call, wall clock."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def best_of(fn: Callable, repeat: int = 3) -> dict:
    """Run `fn` `repeat` times; min / median / all times in seconds."""
    times = [timed(fn)[0] for _ in range(repeat)]
    return {"min": min(times), "median": statistics.median(times), "runs": times}


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either side is missing or b is 0."""
    if a is None or b is None or not b:
        return None
    return a / b


def rnd(x, nd: int = 3):
    return None if x is None else round(float(x), nd)


@contextlib.contextmanager
def temp_env(**values: str | None) -> Iterator[None]:
    """Set (or, with None, remove) environment variables for the block, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def temp_dir(prefix: str = "technic-bench-") -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- machine description -----------------------------------------------------------------------------------------


def package_versions(names=("prefect", "prefect-ray", "ray", "numpy", "pandas", "pyarrow", "pandera", "aiohttp",
                            "fastapi", "exchange-calendars", "matplotlib", "psutil", "TA-Lib")) -> dict:
    from importlib import metadata

    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def machine_info() -> dict:
    import psutil

    freq = psutil.cpu_freq()
    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_count": os.cpu_count(),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "cpu_mhz": round(freq.current) if freq else None,
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


# ---- memory ------------------------------------------------------------------------------------------------------


def _is_ray_worker(proc) -> bool:
    try:
        name = proc.name()
        if name.startswith("ray::"):
            return True
        cmd = " ".join(proc.cmdline()[:3])
        return "default_worker.py" in cmd
    except Exception:
        return False


def vm_hwm_mb(pid: int | str = "self") -> float | None:
    """Peak RSS of a process image from /proc/<pid>/status (VmHWM): exact, kernel-kept, and reset by exec — unlike
    getrusage's ru_maxrss, which a child inherits from the process that forked it."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return None


def bench_root_pid() -> int:
    """The benchmark's top process: Ray workers counted are its descendants only (never other users' Ray)."""
    return int(os.environ.get("TECHNIC_BENCH_ROOT_PID") or os.getpid())


def ray_worker_processes(root_pid: int | None = None):
    """Ray worker processes started under `root_pid` (the benchmark's own local Ray, or a Ray a scan started)."""
    import psutil

    try:
        procs = psutil.Process(root_pid or bench_root_pid()).children(recursive=True)
    except psutil.Error:
        return []
    return [p for p in procs if _is_ray_worker(p)]


class RssSampler:
    """Samples the memory of this process (the flow) and of every Ray worker process under the benchmark, in a thread.

    RSS counts every page a process maps, so summing RSS over processes counts shared pages (Python, numpy, the
    Ray object store's mapping of the panel) once per process: an upper bound. PSS splits each shared page between the
    processes mapping it, so the PSS sum is the memory the processes really use together. Both are reported.
    Peaks are of instantaneous sums (sampled every `interval` s); the flow's exact lifetime peak RSS comes from the
    kernel (ru_maxrss) separately.
    """

    def __init__(self, interval: float = 0.05):
        import psutil

        self.interval = interval
        self.me = psutil.Process()
        self.peak = {"flow_rss": 0.0, "flow_pss": 0.0, "workers_rss": 0.0, "workers_pss": 0.0,
                     "total_rss": 0.0, "total_pss": 0.0}
        self.max_worker_processes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._workers: dict[int, object] = {}
        self._last_scan = 0.0

    def _refresh_workers(self) -> None:
        now = time.monotonic()
        if now - self._last_scan < 0.5:
            return
        self._last_scan = now
        for p in ray_worker_processes():
            self._workers.setdefault(p.pid, p)

    @staticmethod
    def _mem(p) -> tuple[float, float]:
        m = p.memory_full_info()
        return m.rss / 2**20, getattr(m, "pss", m.rss) / 2**20

    def sample(self) -> None:
        flow_rss, flow_pss = self._mem(self.me)
        self._refresh_workers()
        w_rss = w_pss = 0.0
        alive = 0
        for pid, p in list(self._workers.items()):
            try:
                r, q = self._mem(p)
            except Exception:
                self._workers.pop(pid, None)
                continue
            w_rss, w_pss, alive = w_rss + r, w_pss + q, alive + 1
        now = {"flow_rss": flow_rss, "flow_pss": flow_pss, "workers_rss": w_rss, "workers_pss": w_pss,
               "total_rss": flow_rss + w_rss, "total_pss": flow_pss + w_pss}
        for k, v in now.items():
            self.peak[k] = max(self.peak[k], v)
        self.max_worker_processes = max(self.max_worker_processes, alive)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        with contextlib.suppress(Exception):
            self.sample()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with contextlib.suppress(Exception):
            self.sample()

    def as_dict(self) -> dict:
        pk = {k: round(v, 1) for k, v in self.peak.items()}
        return {
            "peak_rss_mb_flow_sampled": pk["flow_rss"],
            "peak_pss_mb_flow_sampled": pk["flow_pss"],
            "peak_rss_mb_workers_sampled": pk["workers_rss"],
            "peak_pss_mb_workers_sampled": pk["workers_pss"],
            "peak_rss_mb_total_sampled": pk["total_rss"],
            "peak_pss_mb_total_sampled": pk["total_pss"],
            "ray_worker_processes_seen": self.max_worker_processes,
        }


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

    def start(self) -> PrefectServer:
        self.port = self.port or free_port()
        self._tmp = Path(tempfile.mkdtemp(prefix="technic-bench-prefect-"))
        self.home = self.home or self._tmp / "home"
        self.log_path = self._tmp / "server.log"
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.update(PREFECT_HOME=str(self.home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                   PREFECT_UI_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING")
        prefect_cli = VENV_BIN / "prefect"
        cmd = [str(prefect_cli)] if prefect_cli.exists() else [sys.executable, "-m", "prefect"]
        cmd += ["server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log_path.open("w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
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
            import signal

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


# ---- Ray ----------------------------------------------------------------------------------------------------------


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


# ---- the loopback Polygon server -----------------------------------------------------------------------------------


def polygon_available() -> tuple[bool, str]:
    """Whether the loopback server and PolygonSource can be imported (other modules are still being written)."""
    try:
        import technic_v4.data.polygon.source  # noqa: F401
        import technic_v4.testing.polygon_server  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available yet"
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


@contextlib.contextmanager
def loopback_polygon(n_symbols: int, latency_ms: float = 100.0, seed: int = 7, api_key: str = "bench-key",
                     prewarm_days=None) -> Iterator[object]:
    """The Polygon-compatible loopback server over the simulated market, in a background thread, with latency.

    Yields the server (`.url`, `.requests`). Sets POLYGON_BASE_URL / POLYGON_API_KEY / TECHNIC_DATA_SOURCE=polygon
    for the block so the scan uses the real PolygonSource against it.
    """
    from technic_v4.data.simulated import SimulatedMarket
    from technic_v4.testing.polygon_server import PolygonServer

    market = SimulatedMarket(seed=seed, n_symbols=n_symbols)
    server = PolygonServer(market, api_key=api_key, seed=seed, latency_ms=latency_ms)
    with server:
        if prewarm_days is not None and hasattr(server, "prewarm"):
            server.prewarm(prewarm_days)
        with temp_env(POLYGON_BASE_URL=server.url, POLYGON_API_KEY=api_key, TECHNIC_DATA_SOURCE="polygon"):
            yield server


# ---- `python -m benchmarks.common serve-polygon`: the loopback server, prewarmed, in its own process -------------------


def _serve_polygon(argv: list[str] | None = None) -> None:
    """The loopback Polygon server with the last N sessions' grouped-daily bodies encoded before it says READY.

    The real API serves stored data; the loopback server simulates a day on request, which would put the
    simulator's CPU time (on the same cores) into the client's fetch figures. Prewarming takes that out.
    """
    import argparse
    import asyncio

    from technic_v4.calendar import last_completed_session, previous_trading_days
    from technic_v4.data.simulated import SimulatedMarket
    from technic_v4.testing.polygon_server import PolygonServer

    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--latency-ms", type=float, default=100.0)
    p.add_argument("--symbols", type=int, default=8000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--api-key", default=None)
    p.add_argument("--prewarm-sessions", type=int, default=0)
    a = p.parse_args(argv)

    async def main() -> None:
        market = SimulatedMarket(seed=a.seed, n_symbols=a.symbols)
        server = PolygonServer(market, api_key=a.api_key, port=a.port, seed=a.seed, latency_ms=a.latency_ms)
        t0 = time.perf_counter()
        if a.prewarm_sessions:
            server.prewarm(previous_trading_days(last_completed_session(), a.prewarm_sessions))
        prewarm_s = time.perf_counter() - t0
        async with server:
            print(f"READY {server.url} prewarm_s={prewarm_s:.2f}", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve-polygon":
        _serve_polygon(sys.argv[2:])
    else:
        raise SystemExit("usage: python -m benchmarks.common serve-polygon --port N [--latency-ms 100] [--prewarm-sessions 305]")
