"""Crash safety (issue 6, deliver 2): a scan SIGKILLed mid-backfill loses nothing that was stored, leaves nothing
half-written that a later scan would read, and the next scan fetches exactly the days that are missing.

The killed scan runs in a process of its own (tests/support/scan_process.py) against the session's Prefect server,
with a simulated source slowed to ~20 ms per grouped-daily call so the backfill lasts long enough to be cut.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
from pathlib import Path

import pandas as pd
import pyarrow.dataset
import pyarrow.parquet
import pytest

from technic_v4.calendar import previous_trading_days
from technic_v4.api import ScanConfig, run_scan_output
from technic_v4.store.atomic import TMP_PREFIX
from technic_v4.store.bar_store import BarStore
from tests.support.processes import start_scan

AS_OF = dt.date(2026, 10, 12)
SMALL, LARGE = 30, 400  # lookback of the first (complete) scan and of the killed backfill


def stored_days(data_dir: Path) -> list[str]:
    return sorted(p.parent.name.removeprefix("date=") for p in (data_dir / "bars").glob("date=*/meta.json"))


@pytest.fixture
def read_log(monkeypatch):
    """Every path the process opens through pyarrow/pandas parquet readers while the fixture is active."""
    seen: list[str] = []

    def spy(module, name):
        original = getattr(module, name)

        def wrapper(source, *args, **kwargs):
            items = source if isinstance(source, (list, tuple)) else [source]
            seen.extend(str(s) for s in items)
            return original(source, *args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    spy(pyarrow.parquet, "read_table")
    spy(pyarrow.dataset, "dataset")
    spy(pd, "read_parquet")
    return seen


@pytest.mark.slow  # a crash path (kill mid-backfill), not a main one
def test_killed_backfill_loses_nothing_and_next_scan_reuses_every_stored_day(prefect_api, sim_env, read_log):
    # 1. a complete small scan publishes results/latest.* (the files a killed run must not damage)
    first = run_scan_output(ScanConfig.build(as_of=AS_OF, lookback_days=SMALL, allow_short_history=True))
    latest_before = pd.read_parquet(sim_env / "results" / "latest.parquet")
    assert len(first.results) > 0

    # 2. a large cold backfill in a subprocess, SIGKILLed once a good part of it is stored
    proc = start_scan({"as_of": AS_OF, "lookback_days": LARGE, "allow_short_history": True}, sim_env.parent / "killed.parquet",
                      RELIABILITY_SLOW_DAY_S="0.02")
    try:
        deadline = time.monotonic() + 120
        while len(stored_days(sim_env)) < SMALL + 60:
            assert proc.poll() is None, f"scan ended before it could be killed:\n{proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "backfill never progressed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    at_kill = stored_days(sim_env)
    needed = [d.isoformat() for d in previous_trading_days(AS_OF, LARGE)]
    assert SMALL + 60 <= len(at_kill) < LARGE, f"kill did not land mid-backfill: {len(at_kill)} of {LARGE} days stored"

    # 3. what a kill between the two writes of a day, or mid-write, would leave behind (plus whatever the kill left)
    store = BarStore(sim_env)
    missing = [d for d in needed if d not in at_kill]
    half_day, tmp_day = sim_env / "bars" / f"date={missing[0]}", sim_env / "bars" / f"date={missing[1]}"
    half_day.mkdir(parents=True, exist_ok=True)
    (half_day / "bars.parquet").write_bytes(b"PAR1 half a parquet file")  # parquet written, meta.json never was
    tmp_day.mkdir(parents=True, exist_ok=True)
    (tmp_day / f"{TMP_PREFIX}bars.parquet.x1").write_bytes(b"PAR1 cut")
    (sim_env / "results" / f"{TMP_PREFIX}latest.parquet.x2").write_bytes(b"PAR1 cut")
    # Prefect writes a task result in place (not temp + rename): a kill mid-write leaves a cut cache file
    cached = sorted((sim_env / "prefect-results").glob("bars-*"))
    assert cached, "the killed run stored no month result"
    cut = cached[-1].read_bytes()
    cached[-1].write_bytes(cut[: len(cut) // 2])

    # no file without meta is counted; every counted day reads back whole
    assert [d.isoformat() for d in store.stored_days()] == at_kill
    assert not store.has_day(dt.date.fromisoformat(missing[0]), final_only=False)
    for day in at_kill:
        frame = store.read_day(day)
        assert len(frame) == store.day_info(day)["rows"] > 1000, day

    # results of the killed run were never half-written: latest.* are still the first scan's, complete and consistent
    results = sim_env / "results"
    pd.testing.assert_frame_equal(pd.read_parquet(results / "latest.parquet"), latest_before)
    assert len(pd.read_csv(results / "latest.csv")) == len(latest_before)
    assert json.loads((results / "latest.json").read_text())["as_of"] == AS_OF.isoformat()
    assert (results / "latest.md").read_text().strip()

    # 4. the next scan fetches exactly the missing days, never reads a temp file, and completes
    read_log.clear()
    again = run_scan_output(ScanConfig.build(as_of=AS_OF, lookback_days=LARGE, allow_short_history=True))
    m = again.summary["metrics"]
    assert m["api_calls_by_endpoint"].get("grouped_daily", 0) == LARGE - len(at_kill)
    assert again.summary["missing_days"] == {}
    assert m["bars_reused"] == sum(store.day_info(d)["rows"] for d in at_kill)
    assert len(again.results) > 0
    assert [d.isoformat() for d in store.stored_days()] == sorted(set(needed) | set(at_kill))
    assert read_log and not [p for p in read_log if TMP_PREFIX in Path(p).name], read_log
    assert (half_day / "meta.json").exists() and len(store.read_day(missing[0])) > 1000  # the half day was refetched
    assert json.loads(cached[-1].read_bytes())["result"]  # the cut cache file was treated as a miss and rewritten
    print(f"\nkill: {len(at_kill)}/{LARGE} days stored at SIGKILL, next scan fetched {LARGE - len(at_kill)}, lost 0")
