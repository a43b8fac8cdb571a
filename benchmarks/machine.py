"""What the benchmarks ran on: CPUs, RAM, Python, package versions, load average, date."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
from pathlib import Path

PACKAGES = ("prefect", "prefect-ray", "ray", "numpy", "pandas", "pyarrow", "pandera", "aiohttp", "fastapi",
            "exchange-calendars", "matplotlib", "psutil", "TA-Lib")


def package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_versions(names=PACKAGES) -> dict:
    return {n: package_version(n) for n in names}


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def machine_info() -> dict:
    import psutil

    freq = psutil.cpu_freq()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "cpu_mhz": round(freq.current) if freq else None,
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }
