"""Memory, measured from the kernel: a process image's peak RSS (VmHWM) and a sampler of the flow's and the Ray
workers' RSS/PSS during one scan."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path


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


def _is_ray_worker(proc) -> bool:
    try:
        name = proc.name()
        if name.startswith("ray::"):
            return True
        cmd = " ".join(proc.cmdline()[:3])
        return "default_worker.py" in cmd
    except Exception:
        return False


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


def _mem(p) -> tuple[float, float]:
    """(RSS, PSS) of one process in MB."""
    m = p.memory_full_info()
    return m.rss / 2**20, getattr(m, "pss", m.rss) / 2**20


class RssSampler:
    """Samples the memory of this process (the flow) and of every Ray worker process under the benchmark, in a thread.

    RSS counts every page a process maps, so summing RSS over processes counts shared pages (Python, numpy, the
    Ray object store's mapping of the panel) once per process: an upper bound. PSS splits each shared page between the
    processes mapping it, so the PSS sum is the memory the processes really use together. Both are reported.
    Peaks are of instantaneous sums (sampled every `interval` s); the flow's exact lifetime peak RSS comes from the
    kernel (VmHWM) separately.
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

    def _workers_mem(self) -> tuple[float, float, int]:
        """Summed (RSS, PSS) over the live worker processes and how many there are; dead ones are forgotten."""
        w_rss = w_pss = 0.0
        alive = 0
        for pid, p in list(self._workers.items()):
            try:
                r, q = _mem(p)
            except Exception:
                self._workers.pop(pid, None)
                continue
            w_rss, w_pss, alive = w_rss + r, w_pss + q, alive + 1
        return w_rss, w_pss, alive

    def sample(self) -> None:
        flow_rss, flow_pss = _mem(self.me)
        self._refresh_workers()
        w_rss, w_pss, alive = self._workers_mem()
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
