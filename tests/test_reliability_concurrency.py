"""Concurrency (issue 6 deliver 3, issue 24 deliver 3): two cold scans at once on one data dir both finish with the
same table and the backfill happens once; the bar-store lock times out with a clear StoreLockTimeout instead of
deadlocking, and a lock holder that dies frees the lock."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from collections import Counter

import pandas as pd
import pytest

from technic_v4.data.simulated import SimulatedMarket
from technic_v4.errors import StoreLockTimeout
from tests.support.polygon_server import PolygonServer
from technic_v4.api import ScanConfig, run_scan_output
from technic_v4.store.bar_store import BarStore
from tests.support.processes import SUPPORT, child_env, finish, start_scan

AS_OF = dt.date(2026, 10, 12)
LOOKBACK = 60


def hold_lock(data_dir, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(SUPPORT / "hold_lock.py"), str(data_dir), str(seconds)],
                            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
    return proc


@pytest.mark.slow  # ~50 s under load (two scan processes); a reliability path, not a main one
def test_two_cold_scans_at_once_backfill_once(prefect_api, tmp_path, use_loopback_polygon):
    """Two processes start a cold scan of one empty data dir together, against the loopback Polygon server: one
    fetches every day, the other waits on the backfill lock and reuses them. Counted at the server: each day asked
    once; both tables identical."""
    market = SimulatedMarket(seed=5, n_symbols=300, end=AS_OF)
    # 0.4 s per request, 2 at a time: the backfill lasts ~12 s, so the second scan arrives while it runs
    with PolygonServer(market, api_key="pk_conc_TEST", today=AS_OF, latency_ms=400) as server:
        data = use_loopback_polygon(server, "pk_conc_TEST", TECHNIC_MAX_CONCURRENCY="2", TECHNIC_DETAILS_PER_SCAN="0")
        config = {"as_of": AS_OF, "lookback_days": LOOKBACK, "allow_short_history": True, "max_symbols": 300}
        procs = [start_scan(config, tmp_path / f"out{i}.parquet") for i in range(2)]
        try:
            outs = [finish(p, timeout=300) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        per_day = Counter(server.requests.paths("grouped_daily"))
    a, b = (pd.read_parquet(tmp_path / f"out{i}.parquet") for i in range(2))
    assert len(a) > 50
    pd.testing.assert_frame_equal(a, b)
    assert len(per_day) == LOOKBACK and set(per_day.values()) == {1}, per_day  # the backfill happened once
    grouped = sorted(o["api_calls_by_endpoint"].get("grouped_daily", 0) for o in outs)
    assert grouped == [0, LOOKBACK], grouped  # one scan fetched all, the other none
    assert all(o["missing_days"] == {} for o in outs)
    assert len(BarStore(data).stored_days()) == LOOKBACK
    assert not list(data.rglob(".tmp-*")), "a temp file was left behind"
    print(f"\nconcurrent cold scans: grouped-daily requests at the server {sum(per_day.values())} for {LOOKBACK} "
          f"days (per scan {grouped}), {len(a)} rows each, identical")


def test_store_lock_contention_times_out_with_a_clear_message(tmp_path):
    holder = hold_lock(tmp_path, 20)
    try:
        store = BarStore(tmp_path, lock_timeout=0.5)
        t0 = time.monotonic()
        with pytest.raises(StoreLockTimeout) as info:
            with store.lock():
                pass
        waited = time.monotonic() - t0
        assert 0.4 <= waited < 3, waited
        msg = str(info.value)
        assert str(tmp_path) in msg and "TECHNIC_LOCK_TIMEOUT" in msg and "locked by another scan" in msg
        assert isinstance(info.value, TimeoutError)
    finally:
        holder.kill()
        holder.wait(timeout=10)
    # a holder that died (SIGKILL, no cleanup) does not leave a stale lock behind
    t0 = time.monotonic()
    with BarStore(tmp_path, lock_timeout=5).lock():
        assert time.monotonic() - t0 < 1


def test_lock_timeout_message_names_the_configured_seconds(tmp_path):
    holder = hold_lock(tmp_path, 20)
    try:
        with pytest.raises(StoreLockTimeout, match=r"more than 0\.5 s"):
            with BarStore(tmp_path, lock_timeout=0.5).lock():
                pass
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_lock_waits_for_a_holder_that_finishes_in_time(tmp_path):
    holder = hold_lock(tmp_path, 1.0)
    try:
        t0 = time.monotonic()
        with BarStore(tmp_path, lock_timeout=15).lock():
            waited = time.monotonic() - t0
        assert 0.5 <= waited < 10, waited
    finally:
        holder.wait(timeout=10)
    assert holder.stdout.read().strip() == "released"


def test_lock_is_reentrant_within_one_scan(tmp_path):
    """Nested lock() in one process (e.g. a helper that locks inside a locked block) must not deadlock itself."""
    store = BarStore(tmp_path, lock_timeout=1)
    with store.lock():
        with store.lock():
            store.write_state("x", {"a": 1})
    assert store.read_state("x") == {"a": 1}


@pytest.mark.slow
def test_scan_fails_clearly_when_another_process_holds_the_lock(prefect_api, sim_env, monkeypatch):
    """Flow level: with the lock held elsewhere, the scan ends with StoreLockTimeout (after its task retries) — it
    never hangs. Slow: refresh-splits retries 3 times with 2/5/15 s delays."""
    run_scan_output(ScanConfig.build(as_of=AS_OF, lookback_days=30, allow_short_history=True))  # reference cached: only splits/state lock
    monkeypatch.setenv("TECHNIC_LOCK_TIMEOUT", "0.5")
    holder = hold_lock(sim_env, 120)
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreLockTimeout, match="locked by another scan"):
            run_scan_output(ScanConfig.build(as_of=AS_OF, lookback_days=30, allow_short_history=True))
        assert time.monotonic() - t0 < 60
    finally:
        holder.kill()
        holder.wait(timeout=10)
