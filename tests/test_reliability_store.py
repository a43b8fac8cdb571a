"""Every stored file is verified before use and repaired from its source (issue 24, deliver 1), through the real flow
against the loopback Polygon server (300 symbols, 30 sessions): a day file truncated or with bytes changed mid-file,
the panel cache overwritten with random bytes (size and .npy header kept), the reference folder deleted. Each rescan
must give exactly the clean scan's table (or fail naming the file), with the requests the repair needs counted at
the server."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time

import numpy as np
import pandas as pd
import pytest

from technic_v4.api import ScanConfig, run_scan_output
from technic_v4.calendar import previous_trading_days
from technic_v4.data.simulated import SimulatedMarket
from technic_v4.errors import StoreCorruption
from technic_v4.store.bar_store import DAMAGED_NAME, BarStore
from technic_v4.store.panel_cache import CACHE_DIR
from tests.support.polygon_server import PolygonServer

AS_OF = dt.date(2026, 10, 12)
LOOKBACK = 30
DAYS = previous_trading_days(AS_OF, LOOKBACK)
KEY = "pk_store_TEST_KEY"
TIMES: dict[str, float] = {}  # scenario -> wall seconds of the repairing scan, for the closing note


@pytest.fixture(scope="module")
def server():
    with PolygonServer(SimulatedMarket(seed=11, n_symbols=300, end=AS_OF), api_key=KEY, today=AS_OF) as srv:
        yield srv


@pytest.fixture(scope="module")
def clean(prefect_api, server, tmp_path_factory):
    """One clean scan; each test gets a copy of its data dir."""
    d = tmp_path_factory.mktemp("clean") / "data"
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env(server, d).items():
            mp.setenv(k, v)
        out = scan()
    return d, out.results


def env(server, d) -> dict[str, str]:
    return {"TECHNIC_DATA_DIR": str(d), "TECHNIC_DATA_SOURCE": "polygon", "POLYGON_BASE_URL": server.url,
            "POLYGON_API_KEY": KEY, "TECHNIC_TASK_RUNNER": "thread", "TECHNIC_DETAILS_PER_SCAN": "0"}


def scan():
    return run_scan_output(ScanConfig.build(as_of=AS_OF, lookback_days=LOOKBACK, allow_short_history=True,
                                            reuse_scores=False, max_symbols=300))


@pytest.fixture
def data_dir(clean, server, tmp_path, monkeypatch):
    d = tmp_path / "data"
    shutil.copytree(clean[0], d, symlinks=True)
    for k, v in env(server, d).items():
        monkeypatch.setenv(k, v)
    return d


def rescan(server, name: str):
    mark, t0 = server.requests.mark(), time.perf_counter()
    out = scan()
    TIMES[name] = round(time.perf_counter() - t0, 2)
    return out, server.requests.since(mark)


def truncate_day(d, day=DAYS[10]):
    path = BarStore(d).day_file(day)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return {"grouped_daily": 1}


def change_bytes_mid_file(d, day=DAYS[20]):
    path = BarStore(d).day_file(day)
    size = path.stat().st_size
    with open(path, "r+b") as fh:  # same size, parquet magic at both ends intact
        fh.seek(size // 2)
        fh.write(os.urandom(64))
    return {"grouped_daily": 1}


def random_bytes_in_panel_cache(d):
    (gen,) = [p for p in (d / CACHE_DIR).glob("gen-*")]
    path = gen / "close.npy"
    with open(path, "rb") as fh:
        np.lib.format.read_array_header_1_0(fh) if np.lib.format.read_magic(fh) == (1, 0) else None
        header = fh.tell()
    raw = path.read_bytes()
    path.write_bytes(raw[:header] + os.urandom(len(raw) - header))  # same size, same header: loads "fine"
    assert np.load(path, mmap_mode="r").shape[0] == LOOKBACK
    return {"grouped_daily": 0}


def delete_reference(d):
    shutil.rmtree(d / "reference")
    return {"grouped_daily": 0, "splits": 1}


DAMAGE = {"truncated day": truncate_day, "bytes changed mid-file": change_bytes_mid_file,
          "panel cache random bytes": random_bytes_in_panel_cache, "reference deleted": delete_reference}


def assert_repaired(data_dir, clean, out, calls, wanted: dict) -> None:
    pd.testing.assert_frame_equal(out.results, clean[1])  # exactly the clean scan's table
    assert out.summary["missing_days"] == {} and out.summary["metrics"]["bars_quarantined"] == 0
    for kind, n in wanted.items():
        assert calls[kind] == n, (kind, calls)
    splits = pd.read_parquet(data_dir / "reference" / "splits.parquet")
    pd.testing.assert_frame_equal(splits, pd.read_parquet(clean[0] / "reference" / "splits.parquet"))
    assert len(splits) >= 2  # every split refetched, not the last week's only
    assert all(BarStore(data_dir).damaged(d) is None and BarStore(data_dir).has_day(d) for d in DAYS)


def test_every_kind_of_damage_at_once_is_repaired_to_the_clean_table(data_dir, clean, server, caplog):
    wanted = {}
    for damage in DAMAGE.values():
        for kind, n in damage(data_dir).items():
            wanted[kind] = wanted.get(kind, 0) + n
    out, calls = rescan(server, "all four at once")
    assert_repaired(data_dir, clean, out, calls, wanted)
    assert "close.npy failed its checksum" in caplog.text
    assert "size " in caplog.text and "checksum mismatch" in caplog.text  # the two day files, by name
    assert (BarStore(data_dir).day_file(DAYS[10]).parent / DAMAGED_NAME).exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DAMAGE))
def test_each_kind_of_damage_alone_is_repaired(data_dir, clean, server, name):
    wanted = DAMAGE[name](data_dir)
    out, calls = rescan(server, name)
    assert_repaired(data_dir, clean, out, calls, wanted)


def test_damaged_day_the_source_cannot_give_again_fails_naming_the_file(data_dir, clean, server):
    path = BarStore(data_dir).day_file(DAYS[5])
    path.write_bytes(b"PAR1" + os.urandom(path.stat().st_size - 8) + b"PAR1")
    server.fail(PolygonServer.grouped_path(DAYS[5]), 404)  # gone at the source
    t0 = time.perf_counter()
    try:
        with pytest.raises(StoreCorruption) as info:
            scan()
    finally:
        server.script.clear()
    TIMES["unrecoverable day (fails)"] = round(time.perf_counter() - t0, 2)
    msg = str(info.value)
    assert str(path) in msg and "could not give the day again" in msg and "restore the day from a backup" in msg
    published = json.loads((data_dir / "results" / "latest.json").read_text())
    assert published["as_of"] == AS_OF.isoformat()  # the clean scan is still latest, nothing half-published
    assert pd.read_csv(data_dir / "results" / "latest.csv")["Symbol"].tolist() == clean[1]["Symbol"].tolist()


def test_closing_note():
    print(f"\nrepair scans, wall s: {TIMES}")


# ---- the checks themselves, on a store without the flow (fast) ------------------------------------------------------

def _bars(n=200, seed=0):
    rng = np.random.default_rng(seed)
    close = rng.uniform(5, 100, n)
    return pd.DataFrame({"symbol": [f"S{i:03d}" for i in range(n)], "open": close, "high": close * 1.01,
                         "low": close * 0.99, "close": close, "volume": rng.uniform(1e5, 1e6, n), "vwap": close,
                         "transactions": 10.0})


def test_day_file_checks_catch_each_kind_of_damage(tmp_path):
    store = BarStore(tmp_path)
    a, b = DAYS[0], DAYS[1]
    store.write_day(a, _bars(seed=1), source="t")
    store.write_day(b, _bars(seed=2), source="t")
    assert store.damaged(a) is None and store.damaged(b) is None
    path = store.day_file(a)
    good = path.read_bytes()
    path.write_bytes(good[:-100])
    assert "truncated or overwritten" in store.damaged(a)
    path.write_bytes(good[:500] + bytes(x ^ 0xFF for x in good[500:510]) + good[510:])
    assert "checksum mismatch" in store.damaged(a)
    path.write_bytes(good)
    assert store.damaged(a) is None
    os_replace_other = store.day_file(b).read_bytes()  # a valid parquet of another day renamed in, meta not updated
    path.write_bytes(os_replace_other)
    assert store.damaged(a) is not None
    with pytest.raises(StoreCorruption, match=f"{path}.*run the scan again and it refetches the day"):
        store.read_day(a)
    assert not store.has_day(a, final_only=False) and (path.parent / DAMAGED_NAME).exists()  # set aside: refetched


def test_day_stored_before_checksums_is_checked_by_its_row_count(tmp_path):
    store = BarStore(tmp_path)
    store.write_day(DAYS[0], _bars(), source="t")
    meta_path = store.day_file(DAYS[0]).parent / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["checksum"], meta["bytes"]
    meta_path.write_text(json.dumps(meta))
    assert store.damaged(DAYS[0]) is None
    path = store.day_file(DAYS[0])
    path.write_bytes(path.read_bytes()[:1000])
    assert "not a readable parquet file" in store.damaged(DAYS[0])


def test_splits_coverage_lives_in_the_splits_file(tmp_path):
    store = BarStore(tmp_path)
    splits = pd.DataFrame({"symbol": ["A"], "execution_date": [pd.Timestamp("2026-01-05")], "split_from": [1.0],
                           "split_to": [2.0]})
    store.write_splits(splits, checked_through=AS_OF)
    assert store.splits_checked_through() == AS_OF
    state = tmp_path / "state" / "splits.json"  # what the old layout kept (and outlived a deleted reference/)
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"checked_through": AS_OF.isoformat()}))
    shutil.rmtree(tmp_path / "reference")
    assert store.splits_checked_through() is None  # no claim of coverage without the splits themselves


def test_backfill_lock_waits_while_the_holder_stores_days_then_times_out_when_it_stops(tmp_path):
    import threading

    holder = BarStore(tmp_path, lock_timeout=1.0).acquire_fetch_lock()
    waiter = BarStore(tmp_path, lock_timeout=1.0)
    stop = threading.Event()

    def store_days():  # the holder keeps storing a day every 0.3 s for 2.4 s, then stalls
        for i, day in enumerate(DAYS[:8]):
            if stop.wait(0.3):
                return
            waiter.write_day(day, _bars(20, i), source="t")

    threading.Thread(target=store_days, daemon=True).start()
    seen, t0 = [], time.monotonic()
    try:
        with pytest.raises(Exception, match="stored no day for more than 1 s") as info:
            waiter.acquire_fetch_lock(on_wait=lambda s, n: seen.append(n), poll=0.2)
    finally:
        stop.set()
        holder.release()
    waited = time.monotonic() - t0
    assert 2.4 <= waited < 6, waited  # patient while days arrived, bounded once they stopped
    assert seen and seen[-1] == 8 and type(info.value).__name__ == "StoreLockTimeout"
    waiter.acquire_fetch_lock(poll=0.2).release()  # free again once released
