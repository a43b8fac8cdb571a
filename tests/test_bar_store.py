"""Bar store: day files with metadata, panel loading, split adjustment, atomic writes and the lock."""

import datetime as dt
import multiprocessing as mp
import time

import numpy as np
import pandas as pd
import pytest

from technic_v4.errors import StoreLockTimeout
from technic_v4.domain.panel_load import load_panel
from technic_v4.store.bar_store import BarStore

D1, D2, D3 = dt.date(2025, 3, 3), dt.date(2025, 3, 4), dt.date(2025, 3, 5)


def day_frame(symbols, close, volume=1e6):
    close = np.asarray(close, dtype=float)
    return pd.DataFrame({"symbol": symbols, "open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                         "volume": volume, "vwap": close, "transactions": 10.0})


def test_write_read_day_and_meta(tmp_path):
    store = BarStore(tmp_path)
    when = dt.datetime(2025, 3, 3, 22, 0, tzinfo=dt.timezone.utc)
    assert store.write_day(D1, day_frame(["AAA", "BBB"], [10, 20]), source="test", fetched_at=when) == 2
    info = store.day_info(D1)
    assert info["rows"] == 2 and info["fetched_at"] == when and info["final"] is True and info["source"] == "test"
    back = store.read_day(D1)
    assert back["symbol"].tolist() == ["AAA", "BBB"] and back["close"].tolist() == [10.0, 20.0]
    assert store.stored_days() == [D1] and store.day_info(D2) is None


def test_live_day_is_not_final(tmp_path):
    store = BarStore(tmp_path)
    store.write_day(D1, day_frame(["AAA"], [10]), source="test", final=False)
    assert not store.has_day(D1) and store.has_day(D1, final_only=False)


def test_load_panel_scatters_days_and_symbols(tmp_path):
    store = BarStore(tmp_path)
    store.write_day(D1, day_frame(["AAA", "BBB"], [10, 20]), source="t")
    store.write_day(D2, day_frame(["BBB", "CCC"], [21, 30]), source="t")
    p = load_panel(store, [D1, D2, D3])  # D3 not stored: skipped
    assert p.symbols.tolist() == ["AAA", "BBB", "CCC"]
    assert p.dates.tolist() == [D1, D2]
    np.testing.assert_array_equal(p.close, [[10, 20, np.nan], [np.nan, 21, 30]])
    sub = load_panel(store, [D1, D2], symbols=["CCC", "AAA", "ZZZ"])
    np.testing.assert_array_equal(sub.close, [[np.nan, 10, np.nan], [30, np.nan, np.nan]])


def test_split_adjusts_history_before_execution_only(tmp_path):
    store = BarStore(tmp_path)
    store.write_day(D1, day_frame(["AAA", "BBB"], [100, 50], volume=1000), source="t")
    store.write_day(D2, day_frame(["AAA", "BBB"], [102, 51], volume=1000), source="t")
    store.write_day(D3, day_frame(["AAA", "BBB"], [52, 52], volume=2000), source="t")  # AAA split 2-for-1 on D3
    splits = pd.DataFrame({"symbol": ["AAA", "BBB"], "execution_date": pd.to_datetime([D3, dt.date(2025, 3, 10)]),
                           "split_from": [1.0, 1.0], "split_to": [2.0, 4.0]})
    p = load_panel(store, [D1, D2, D3], splits=splits)
    np.testing.assert_allclose(p.close[:, 0], [50, 51, 52])
    np.testing.assert_allclose(p.volume[:, 0], [2000, 2000, 2000])
    np.testing.assert_allclose(p.close[:, 1], [50, 51, 52])  # BBB's split is after the panel: not applied
    raw = load_panel(store, [D1, D2, D3])
    np.testing.assert_allclose(raw.close[:, 0], [100, 102, 52])


def test_half_written_day_is_invisible(tmp_path):
    store = BarStore(tmp_path)
    folder = store.bars_dir / f"date={D1}"
    folder.mkdir(parents=True)
    (folder / "bars.parquet").write_bytes(b"PAR1 half a file")  # a crash before meta.json was written
    (folder / ".tmp-bars.parquet.abc").write_bytes(b"junk")
    assert not store.has_day(D1) and store.stored_days() == []
    store.write_day(D1, day_frame(["AAA"], [10]), source="t")
    assert store.read_day(D1)["close"].tolist() == [10.0]
    assert not list(folder.glob(".tmp-*bars.parquet.[!a]*"))


def _hold_lock(path, seconds, ready):
    store = BarStore(path, lock_timeout=5)
    with store.lock():
        ready.set()
        time.sleep(seconds)


def test_lock_times_out_with_clear_message(tmp_path):
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(tmp_path, 6, ready))
    proc.start()
    try:
        assert ready.wait(30)
        store = BarStore(tmp_path, lock_timeout=0.5)
        t0 = time.perf_counter()
        with pytest.raises(StoreLockTimeout, match="locked by another scan.*TECHNIC_LOCK_TIMEOUT"):
            with store.lock():
                pass
        assert 0.4 < time.perf_counter() - t0 < 3
    finally:
        proc.join(20)
    with BarStore(tmp_path, lock_timeout=0.5).lock():  # released when the holder exits
        pass


def test_reference_splits_state_roundtrip(tmp_path):
    store = BarStore(tmp_path)
    assert store.read_reference() is None and store.read_splits() is None and store.read_state("x") is None
    ref = pd.DataFrame({"symbol": ["AAA"], "name": ["A"], "type": ["CS"], "active": [True], "primary_exchange": ["XNAS"],
                        "sic_code": ["3674"], "sector": ["Information Technology"], "industry": ["Semiconductors"],
                        "shares_outstanding": [1e6], "list_date": ["2001-01-01"]})
    store.write_reference(ref)
    df, when = store.read_reference()
    assert df["symbol"].tolist() == ["AAA"] and (dt.datetime.now(dt.timezone.utc) - when).total_seconds() < 60
    store.write_state("scan", {"blacklist": {"AAA": 2}})
    assert store.read_state("scan") == {"blacklist": {"AAA": 2}}
