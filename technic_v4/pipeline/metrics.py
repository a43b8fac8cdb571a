"""Measured scan metrics: wall time per stage and peak memory, read from the clock and the kernel."""

from __future__ import annotations

import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass, field


def peak_rss_mb() -> float:
    """This process's own peak resident set size (VmHWM). ru_maxrss is only the fallback: a child process inherits
    its parent's figure (a flow run started by a 1.5 GB Prefect worker would report 1.5 GB), measured 3,060 MB
    reported vs 758 MB real."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Start a fresh peak (Linux clear_refs 5), so a long-lived process (worker, notebook) reports this scan's peak.
    Returns False where the kernel does not allow it; the peak then covers the process's whole life."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


@dataclass
class StageTimer:
    """Wall-clock seconds per named stage, in the order the stages ran."""

    stages: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - t0

    @property
    def total(self) -> float:
        return time.perf_counter() - self.started

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.stages.items()}
