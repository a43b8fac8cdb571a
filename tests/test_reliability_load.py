"""Load (issue 6, deliver 6): 20 warm scans in a row in one process hold steady memory and time.

Each run is a process of its own (tests/support/load_scans.py) so its RSS is the scan's alone. Measured on this box
(1,500 symbols x 260 days, thread runner): with glibc's default malloc arenas RSS climbs from ~440-520 MB at scan 5 to
550-650 MB at scan 20 (+13..+29 %, still rising at scan 20), while Python-level allocations (tracemalloc) and live
objects stay flat — fragmentation across glibc's per-thread arenas, not a Python leak. Capping the arenas at 2
(MALLOC_ARENA_MAX=2 in the environment, or mallopt(M_ARENA_MAX, 2) at import) keeps RSS flat (-5..+4 %, ~340 MB).
Slow: run with `make test-slow` (or `-m slow`); figures print with `-s`.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import subprocess
import sys

import pytest

from tests.support.processes import SUPPORT, ROOT, child_env

AS_OF = dt.date(2026, 10, 12)
SCANS = 20
CONFIG = {"as_of": AS_OF.isoformat(), "lookback_days": 260, "reuse_scores": False}


def run_load(arena_max: str | None) -> dict:
    env = child_env()
    env.pop("MALLOC_ARENA_MAX", None)
    if arena_max:
        env["MALLOC_ARENA_MAX"] = arena_max
    proc = subprocess.run([sys.executable, str(SUPPORT / "load_scans.py"), str(SCANS), json.dumps(CONFIG)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def describe(label: str, f: dict) -> str:
    rss, wall = f["rss_mb"], f["wall_s"]
    return (f"{label}: {SCANS} warm scans, {f['rows'][0]} rows each; RSS scan5 {rss[4]:.0f} MB -> scan10 {rss[9]:.0f} MB "
            f"-> scan20 {rss[-1]:.0f} MB ({(rss[-1] - rss[4]) / rss[4]:+.1%}); wall median 2-6 "
            f"{statistics.median(wall[1:6]):.2f} s, 16-20 {statistics.median(wall[-5:]):.2f} s")


def check_common(f: dict) -> None:
    assert f["grouped"] == [0] * SCANS, "a warm scan fetched bars"
    assert set(f["rows"]) == {f["cold_rows"]} and f["cold_rows"] > 100
    wall = f["wall_s"]
    assert statistics.median(wall[-5:]) < 1.75 * statistics.median(wall[1:6]) + 0.3, f"scans slowed down: {wall}"
    objs = f["objects"]
    assert objs[-1] < objs[4] * 1.05, f"live Python objects keep growing: {objs}"


def rss_growth(rss: list[float]) -> float:
    """Growth of the peak RSS of scans 16-20 over scans 5-9: a trend, not the +-10 % wobble of one scan's sample
    (garbage collection and arena trimming move single readings by ~30 MB either way)."""
    early, late = max(rss[4:9]), max(rss[-5:])
    return (late - early) / early


@pytest.mark.slow
def test_twenty_warm_scans_hold_memory_and_time(prefect_api, sim_env):
    """The issue's bound (RSS +10 % max from scan 5 to 20) under the allocator setting a deployment should use."""
    f = run_load("2")
    print("\n" + describe("MALLOC_ARENA_MAX=2", f))
    check_common(f)
    growth = rss_growth(f["rss_mb"])
    assert growth < 0.10, f"RSS grew {growth:.1%} from scans 5-9 to scans 16-20: {f['rss_mb']}"


@pytest.mark.slow
def test_twenty_warm_scans_hold_memory_with_the_default_allocator(prefect_api, sim_env):
    """The same bound in a process started the ordinary way (no MALLOC_ARENA_MAX), as a Prefect worker would be."""
    f = run_load(None)
    print("\n" + describe("default malloc", f))
    check_common(f)
    growth = rss_growth(f["rss_mb"])
    assert growth < 0.10, f"RSS grew {growth:.1%} from scans 5-9 to scans 16-20: {f['rss_mb']}"
