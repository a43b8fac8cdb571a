"""The loopback Polygon server for the scan benchmark, in a process of its own (as a real API's CPU time is not the
client's), with the last N sessions' grouped-daily bodies encoded before it says READY.

    python -m benchmarks.loopback --port N [--latency-ms 100] [--prewarm-sessions 310]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.util import REPO, free_port


def polygon_available() -> tuple[bool, str]:
    """Whether the loopback server and PolygonSource import; if not, the scan benchmark falls back to the
    in-process simulated source and records why."""
    try:
        import technic_v4.data.polygon.source  # noqa: F401
        import tests.support.polygon_server  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


class LoopbackProcess:
    """`python -m benchmarks.loopback` as a subprocess on a free port: `start()` spawns it, `wait()` blocks until it
    is READY (its prewarm done), `__exit__` stops it."""

    def __init__(self, latency_ms: float, symbols: int, api_key: str, prewarm: int = 0):
        self.port = free_port()
        self.latency_ms, self.symbols, self.api_key, self.prewarm = latency_ms, symbols, api_key, prewarm
        self.proc = None
        self.startup_seconds = self.prewarm_seconds = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        return self.start().wait()

    def start(self):
        """Spawn the server (returns at once; `wait()` blocks until it is READY)."""
        cmd = [sys.executable, "-m", "benchmarks.loopback", "--port", str(self.port),
               "--latency-ms", str(self.latency_ms), "--symbols", str(self.symbols), "--api-key", self.api_key,
               "--prewarm-sessions", str(self.prewarm)]
        self._log = tempfile.NamedTemporaryFile("w+", suffix=".log")
        self._t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait(self):
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            text = Path(self._log.name).read_text()
            if "READY " in text:
                line = next(ln for ln in text.splitlines() if ln.startswith("READY "))
                self.prewarm_seconds = float(line.rsplit("prewarm_s=", 1)[1])
                self.startup_seconds = time.perf_counter() - self._t0
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"loopback server exited ({self.proc.returncode}): {text[-3000:]}")
            time.sleep(0.25)
        self.__exit__()
        raise TimeoutError("loopback server did not start within 300 s")

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None


def serve(argv: list[str] | None = None) -> None:
    """The server over the simulated market, prewarmed, until killed.

    The real API serves stored data; the loopback server simulates a day on request, which would put the
    simulator's CPU time (on the same cores) into the client's fetch figures. Prewarming takes that out.
    """
    import asyncio

    from technic_v4.calendar import last_completed_session, previous_trading_days
    from technic_v4.data.simulated import SimulatedMarket
    from tests.support.polygon_server import PolygonServer

    p = argparse.ArgumentParser(description="the loopback Polygon server, prewarmed, in its own process")
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
    serve()
