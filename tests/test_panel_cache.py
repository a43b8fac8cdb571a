"""Panel cache: every load equals a read of the day files (values, NaNs, symbols, split adjustment, duplicates),
across a new day, a provisional day turning final, a day rewritten by hand, a shorter window and a lost generation."""

import datetime as dt
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from technic_v4.domain.panel import FIELDS
from technic_v4.domain.panel_load import load_panel
from technic_v4.pipeline import prescreen as ps
from technic_v4.pipeline.liquid_load import load_liquid_panel, most_liquid_symbols
from technic_v4.store.bar_store import BarStore
from technic_v4.store.panel_cache import CACHE_DIR
from tests.support.processes import reseal_day

DAYS = list(pd.bdate_range("2025-01-02", periods=40).date)


def _day(rng, day_index: int, symbols: list[str]) -> pd.DataFrame:
    """Bars of the symbols trading that day, some with NaN fields (bad prints kept as stored)."""
    n = len(symbols)
    close = rng.uniform(5, 200, n).round(2)
    frame = pd.DataFrame({"symbol": symbols, "open": close * 0.99, "high": close * 1.02, "low": close * 0.97,
                          "close": close, "volume": rng.integers(1e3, 5e6, n).astype(float), "vwap": close,
                          "transactions": 100.0})
    frame.loc[rng.random(n) < 0.03, "high"] = np.nan
    return frame


def _market(store: BarStore, days, seed=1):
    """60 symbols; S00..S04 list late (IPO), S05..S09 stop trading early (delisted), S10 trades every other day."""
    rng = np.random.default_rng(seed)
    symbols = [f"S{i:02d}" for i in range(60)] + ["SPY"]
    for i, day in enumerate(days):
        today = [s for s in symbols if not (s < "S05" and i < 25) and not ("S05" <= s < "S10" and i > 12)
                 and not (s == "S10" and i % 2)]
        store.write_day(day, _day(rng, i, today), source="test")


def _splits():
    return pd.DataFrame({"symbol": ["S20", "S21", "S22", "SPY"],
                         "execution_date": pd.to_datetime([DAYS[30], DAYS[5], DAYS[45 % 40], dt.date(2030, 1, 1)]),
                         "split_from": [1.0, 3.0, 1.0, 1.0], "split_to": [4.0, 1.0, 2.0, 10.0]})


def assert_same(cached, uncached):
    assert cached.symbols.tolist() == uncached.symbols.tolist()
    assert cached.dates.tolist() == uncached.dates.tolist()
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(cached, f), getattr(uncached, f), err_msg=f)


def both(store, days, **kw):
    dups_c, dups_u = [], []
    cached = load_panel(store, days, duplicates=dups_c, cache=True, **kw)
    uncached = load_panel(store, days, duplicates=dups_u, cache=False, **kw)
    assert_same(cached, uncached)
    assert dups_c == dups_u
    return cached, dups_c


@pytest.fixture
def store(tmp_path):
    s = BarStore(tmp_path)
    _market(s, DAYS[:39])
    return s


def _generation(store):
    return sorted(p.name for p in (store.root / CACHE_DIR).glob("gen-*"))


def test_cached_load_equals_day_files_with_splits_and_nans(store):
    window = DAYS[:39]
    first, _ = both(store, window, splits=_splits())
    gen = _generation(store)
    again, _ = both(store, window, splits=_splits())  # served from the cache: no new generation
    assert _generation(store) == gen and len(gen) == 1
    assert np.isnan(first.high).any() and np.isnan(first.close[:25, first.column("S00")]).all()
    s20 = first.column("S20")  # 1-for-4 on day 30: earlier prices x 1/4
    raw = load_panel(store, window, cache=True)
    np.testing.assert_allclose(first.close[:30, s20], raw.close[:30, s20] / 4)
    np.testing.assert_allclose(first.volume[:30, s20], raw.volume[:30, s20] * 4)
    assert raw.close[0, s20] != first.close[0, s20]  # the split adjusted a copy, never the cached file
    assert again.close[0, s20] == first.close[0, s20]


def test_new_day_reads_only_that_day(store, monkeypatch):
    both(store, DAYS[1:39])
    _market(store, DAYS, seed=1)  # rewrites every day with identical bars: new files
    both(store, DAYS[1:39])  # whole window re-read because every file changed
    rng = np.random.default_rng(9)
    store.write_day(DAYS[39], _day(rng, 39, ["S11", "S12", "NEW1"]), source="test")
    read = []
    real = BarStore.read_bars

    def spy(self, days, columns):
        if columns:  # reads of bars (a read of only the symbol column comes first)
            read.append(list(days))
        return real(self, days, columns)

    monkeypatch.setattr(BarStore, "read_bars", spy)
    cached, _ = both(store, DAYS[2:40])  # the window slides by one day
    assert read[0] == [DAYS[39]]  # the cached load read the new day alone (read[1] is the uncached reference)
    assert "NEW1" in cached.symbols.tolist()
    later, _ = both(store, DAYS[13:40])
    assert len(read) == 3 and "S05" not in later.symbols.tolist()  # served from the cache; S05 left on day 12


def test_provisional_day_turning_final_is_reread(store):
    store.write_day(DAYS[39], _day(np.random.default_rng(3), 39, ["S11", "S12"]), source="test", final=False)
    p1, _ = both(store, DAYS[:40])
    store.write_day(DAYS[39], _day(np.random.default_rng(4), 39, ["S11", "S12", "S13"]), source="test", final=True)
    p2, _ = both(store, DAYS[:40])
    assert p1.close[-1, p1.column("S11")] != p2.close[-1, p2.column("S11")]


def test_duplicates_written_by_hand_are_quarantined_like_the_day_files(store):
    both(store, DAYS[:39])  # cache built before the day file is edited under the same meta.json
    path = store._day_dir(DAYS[10]) / "bars.parquet"
    table = pq.read_table(path)
    frame = table.to_pandas()
    dup = frame[frame["symbol"].isin(["S30", "S31"])].assign(close=lambda f: f["close"] * 1.5)
    pq.write_table(pa.Table.from_pandas(pd.concat([frame, dup]), schema=table.schema, preserve_index=False), path)
    reseal_day(store, DAYS[10])
    panel, dups = both(store, DAYS[:39])
    assert [(d["symbol"], d["date"]) for d in dups] == [("S30", str(DAYS[10])), ("S31", str(DAYS[10]))]
    assert np.isnan(panel.close[10, panel.column("S30")]) and np.isfinite(panel.close[11, panel.column("S30")])
    _, picked = both(store, DAYS[:39], symbols=["S31", "S02", "NOPE"])
    assert [d["symbol"] for d in picked] == ["S31"]


def test_shorter_or_gapped_windows_are_served_without_a_rewrite(store):
    both(store, DAYS[:39])
    gen = _generation(store)
    short, _ = both(store, DAYS[:12])  # S00..S04 not listed yet: not in the panel
    assert "S00" not in short.symbols.tolist()
    both(store, DAYS[:39:2], splits=_splits())
    assert _generation(store) == gen


def test_lost_or_torn_generation_falls_back_to_the_day_files(store):
    both(store, DAYS[:39])
    (gen,) = _generation(store)
    (store.root / CACHE_DIR / gen / "close.npy").write_bytes(b"\x93NUMPY torn")
    both(store, DAYS[:39])
    shutil.rmtree(store.root / CACHE_DIR / _generation(store)[0])
    both(store, DAYS[:39])


def test_most_liquid_symbols_match_the_full_panel_choice(store):
    splits = _splits()
    full = load_panel(store, DAYS[:39], splits=splits, cache=False)
    want = full.symbols[ps.most_liquid(full, 15, ["S03"])].tolist()
    assert most_liquid_symbols(store, DAYS[:39], 15, ["S03"], splits) == want
    dups = []
    liquid = load_liquid_panel(store, DAYS[:39], 15, ["S03"], splits, dups)
    assert_same(liquid, full.select(want))
    assert "SPY" in want and "S03" in want and len(want) == 17


def test_rollback_switch_reads_the_day_files_only(store):
    """TECHNIC_PANEL_CACHE=0 reaches load_panel as cache=False (the scan passes its setting)."""
    off = load_panel(store, DAYS[:39], cache=False)
    assert not (store.root / CACHE_DIR).exists()
    assert_same(load_panel(store, DAYS[:39], cache=True), off)
    assert len(_generation(store)) == 1


@pytest.mark.parametrize("per_read", [1, 7, 1000])
def test_day_files_read_in_groups_equal_one_read(store, monkeypatch, per_read):
    """read_raw_bars decodes DAYS_PER_READ days at a time (memory); the group size never changes a value, a symbol,
    a NaN or a duplicate, also when a symbol is in some groups only and a duplicate sits in a later group."""
    from technic_v4.store import panel_cache

    path = store._day_dir(DAYS[30]) / "bars.parquet"
    table = pq.read_table(path)
    frame = table.to_pandas()
    dup = frame[frame["symbol"] == "S40"].assign(close=1.0)
    pq.write_table(pa.Table.from_pandas(pd.concat([frame, dup]), schema=table.schema, preserve_index=False), path)
    reseal_day(store, DAYS[30])
    whole = panel_cache.read_raw_bars(store, DAYS[:39])
    monkeypatch.setattr(panel_cache, "DAYS_PER_READ", per_read)
    grouped = panel_cache.read_raw_bars(store, DAYS[:39])
    assert grouped.symbols.tolist() == whole.symbols.tolist() and "S00" in grouped.symbols.tolist()
    for f in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(grouped.fields[f], whole.fields[f])
    np.testing.assert_array_equal(grouped.present, whole.present)
    assert grouped.duplicates == whole.duplicates == [("S40", str(DAYS[30]))]
    picked = panel_cache.read_raw_bars(store, DAYS[:39], symbols=["S40", "S01", "NOPE"])
    assert picked.symbols.tolist() == ["S40", "S01", "NOPE"] and np.isnan(picked.fields["close"][:, 2]).all()
    assert picked.duplicates == [("S40", str(DAYS[30]))]
