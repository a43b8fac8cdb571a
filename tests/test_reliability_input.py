"""Bad input (issue 6, deliver 4): every bad value gives a clear error naming what is wrong, or a report of what was
set aside while the rest of the scan goes on — never a cryptic crash or a silently wrong table."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from technic_v4.calendar import previous_trading_days
from technic_v4.data.flatfiles import FlatFileSource, window_start_ns, write_flat_file
from technic_v4.data.columns import INDEX_ETFS
from technic_v4.data.simulated import SimulatedMarket
from technic_v4.errors import ConfigError, DataSourceError
from technic_v4.api import ScanConfig, run_scan, run_scan_output
from technic_v4.store.bar_store import BarStore
from tests.support.polygon_server import PolygonServer
from tests.support.processes import ROOT, child_env, reseal_day

AS_OF = dt.date(2026, 10, 12)
LOOKBACK = 30
OPEN_DOOR = {"min_market_cap": 0, "min_avg_volume": 0, "min_price": 0}


def scan(**kw):
    return run_scan_output(ScanConfig.build(as_of=AS_OF, lookback_days=kw.pop("lookback_days", LOOKBACK),
                                               allow_short_history=True, **kw))


# ---- environment and ScanConfig values -------------------------------------------------------------------------

BAD_ENV = [
    ("TECHNIC_MAX_WORKERS", "abc", "valid integer"),
    ("TECHNIC_DATA_SOURCE", "yahoo", "'auto', 'polygon', 'flatfiles', 'csv' or 'simulated'"),
    ("TECHNIC_MAX_RETRIES", "-1", "greater than or equal to 0"),
    ("TECHNIC_REQUEST_TIMEOUT", "0", "greater than 0"),
    ("TECHNIC_LOCK_TIMEOUT", "soon", "valid number"),
    ("TECHNIC_MAX_CONCURRENCY", "0", "greater than or equal to 1"),
    ("TECHNIC_SIM_SYMBOLS", "10", "greater than or equal to 50"),
]


@pytest.mark.parametrize("var, value, fragment", BAD_ENV)
def test_bad_env_value_stops_the_scan_before_it_starts(prefect_api, sim_env, monkeypatch, var, value, fragment):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        scan()
    assert f"{var}={value!r}" in str(info.value) and fragment in str(info.value)
    assert not (sim_env / "bars").exists()  # nothing was fetched or written


def test_bad_env_in_a_worker_fails_the_run_naming_the_variable():
    """The runner and settings are read per run, not at import: a worker importing flows.scan (deployment entry
    point) imports fine with a bad env, and the run itself fails with a message that names the variable."""
    env = child_env(TECHNIC_MAX_WORKERS="abc")
    imported = subprocess.run([sys.executable, "-c", "import flows.scan"], cwd=ROOT, capture_output=True, text=True,
                              env=env, timeout=120)
    assert imported.returncode == 0, imported.stderr
    proc = subprocess.run([sys.executable, "-c", "from technic_v4.api import run_scan; run_scan()"], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    assert "ConfigError" in proc.stderr and "TECHNIC_MAX_WORKERS='abc'" in proc.stderr


@pytest.mark.parametrize("values, field", [
    ({"max_symbols": 0}, "max_symbols"), ({"max_symbols": -1}, "max_symbols"), ({"max_symbols": "lots"}, "max_symbols"),
    ({"lookback_days": 29}, "lookback_days"), ({"lookback_days": 251}, "allow_short_history"),
    ({"data_source": "yahoo"}, "data_source"),
    ({"on_missing_day": "ignore"}, "on_missing_day"), ({"min_price": -1}, "min_price"),
    ({"watchlist": "AAPL, $$$"}, "watchlist"), ({"task_runner": "dask"}, "task_runner"),
])
def test_bad_scan_values_through_run_scan(values, field):
    with pytest.raises(ConfigError, match=field):
        run_scan(**values)
    with pytest.raises(ConfigError, match=field):
        run_scan(ScanConfig(), **values)


def test_missing_polygon_key_is_a_clear_error(prefect_api, sim_env, monkeypatch):
    monkeypatch.setenv("TECHNIC_DATA_SOURCE", "polygon")
    with pytest.raises(ConfigError, match="POLYGON_API_KEY is not set"):
        scan()


def test_flatfiles_without_a_folder_is_a_clear_error(prefect_api, sim_env, monkeypatch):
    monkeypatch.setenv("TECHNIC_DATA_SOURCE", "flatfiles")
    with pytest.raises(ConfigError, match="TECHNIC_FLATFILES_DIR"):
        scan()


# ---- watchlist and universe ----------------------------------------------------------------------------------------

def test_unknown_watchlist_symbols_are_reported_and_known_ones_scored(prefect_api, sim_env):
    out = scan(watchlist="zzzz qqq, NOPE1", max_symbols=50)
    assert out.summary["unknown_watchlist"] == ["NOPE1", "ZZZZ"]
    assert "watchlist symbols not found: NOPE1, ZZZZ" in out.message
    assert "QQQ" in set(out.results["Symbol"])


def test_watchlist_of_only_unknown_symbols_still_scans(prefect_api, sim_env):
    out = scan(watchlist=["NOPE1", "NOPE2"], max_symbols=100)
    assert out.summary["unknown_watchlist"] == ["NOPE1", "NOPE2"] and len(out.results) > 7


def test_filters_nothing_passes_leave_only_index_etfs_and_say_so(prefect_api, sim_env):
    out = scan(min_market_cap=9_000_000)
    pre = out.summary["prescreen"]
    assert pre["kept"] == len(INDEX_ETFS) and pre["filtered"]["market_cap"] > 1000
    assert set(out.results["Symbol"]) == set(INDEX_ETFS)
    assert f"kept {len(INDEX_ETFS)}" in out.message


def test_signal_filter_matching_nothing_gives_an_empty_table_not_an_error(prefect_api, sim_env):
    out = scan(min_market_cap=9_000_000, signals=["Strong Long"])
    assert out.results.empty and "Signal" in out.results.columns
    assert out.summary["prescreen"]["kept"] == len(INDEX_ETFS)


def test_unknown_sector_is_a_clear_error(prefect_api, sim_env):
    with pytest.raises(ConfigError, match="Nonexistent"):
        scan(sectors=["Nonexistent"])


# ---- malformed flat files ------------------------------------------------------------------------------------------

FLAT_DAY = dt.date(2026, 10, 9)


@pytest.fixture(scope="module")
def small_market():
    return SimulatedMarket(seed=7, n_symbols=300, end=AS_OF)


def write_csv_gz(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    return path


def good_flat_text(small_market, day=FLAT_DAY) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_flat_file(Path(tmp), small_market.day(day), day)
        return gzip.decompress(path.read_bytes()).decode()


def read_flat(folder, day=FLAT_DAY):
    return asyncio.run(FlatFileSource(folder).grouped_daily(day))


def test_good_flat_file_round_trips(small_market, tmp_path):
    write_csv_gz(tmp_path / f"{FLAT_DAY}.csv.gz", good_flat_text(small_market))
    frame = read_flat(tmp_path)
    expected = small_market.day(FLAT_DAY)
    assert len(frame) == len(expected) > 250
    assert frame.set_index("symbol")["close"].to_dict() == pytest.approx(expected.set_index("symbol")["close"].to_dict())


def _edit_lines(text: str, edit) -> str:
    lines = text.splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    edit(header, rows)
    return "\n".join(",".join(r) for r in [header, *rows]) + "\n"


def _drop_high(header, rows):
    i = header.index("high")
    for r in [header, *rows]:
        del r[i]


def _bad_numbers(header, rows):
    rows[3][header.index("close")] = "abc"
    rows[7][header.index("volume")] = "12x"
    rows[9][header.index("open")] = ""


def _wrong_date(header, rows):
    for r in rows[:5]:
        r[header.index("window_start")] = str(window_start_ns(FLAT_DAY - dt.timedelta(days=1)))


def _duplicate_ticker(header, rows):
    rows.append(list(rows[0]))


@pytest.mark.parametrize("edit, expected", [
    (_drop_high, r"missing columns \['high'\]"),
    (_bad_numbers, r"3 malformed row\(s\) of \d+ \(line 5: close='abc' is not a number"),
    (_wrong_date, r"5 malformed row\(s\).*window_start \d+ is 2026-10-08, not 2026-10-09"),
    (_duplicate_ticker, r"1 malformed row\(s\).*appears twice"),
])
def test_malformed_flat_file_is_a_clear_error_naming_file_and_rows(small_market, tmp_path, edit, expected):
    path = write_csv_gz(tmp_path / f"{FLAT_DAY}.csv.gz", _edit_lines(good_flat_text(small_market), edit))
    with pytest.raises(DataSourceError, match=expected) as info:
        read_flat(tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content, expected", [
    (b"\x1f\x8b\x08\x00 cut gzip", "not a readable gzip CSV"),
    (b"", "not a readable gzip CSV|empty file"),
    (None, "no flat file 2026-10-09.csv.gz for trading day 2026-10-09"),
])
def test_unreadable_or_missing_flat_file(tmp_path, content, expected):
    tmp_path.mkdir(exist_ok=True)
    if content is not None:
        (tmp_path / f"{FLAT_DAY}.csv.gz").write_bytes(content)
    with pytest.raises(DataSourceError, match=expected):
        read_flat(tmp_path)


def test_flat_file_scan_with_one_malformed_day_goes_on(prefect_api, small_market, tmp_path, monkeypatch):
    """Flat files for bars + loopback REST for reference data: the malformed day is reported missing, the rest stored."""
    days = previous_trading_days(AS_OF, LOOKBACK)
    flat = tmp_path / "flat"
    for d in days:
        write_flat_file(flat, small_market.day(d), d)
    bad = days[10]
    write_csv_gz(flat / f"{bad}.csv.gz", _edit_lines(good_flat_text(small_market, bad), _bad_numbers))
    with PolygonServer(small_market, api_key="k-flat", today=AS_OF) as server:
        for k, v in {"TECHNIC_DATA_DIR": str(tmp_path / "data"), "TECHNIC_DATA_SOURCE": "flatfiles",
                     "TECHNIC_FLATFILES_DIR": str(flat), "POLYGON_BASE_URL": server.url, "POLYGON_API_KEY": "k-flat",
                     "TECHNIC_TASK_RUNNER": "thread"}.items():
            monkeypatch.setenv(k, v)
        out = scan(on_missing_day="skip")
        assert server.requests.count("grouped_daily") == 0  # bars came from the files only
    assert list(out.summary["missing_days"]) == [bad.isoformat()]
    assert "malformed row(s)" in out.summary["missing_days"][bad.isoformat()]
    assert BarStore(tmp_path / "data").stored_days() == [d for d in days if d != bad]
    assert len(out.results) > 20 and out.summary["source"] == "flatfiles"


# ---- bars violating the schema, injected into the store -------------------------------------------------------------

def test_bad_bars_in_the_store_are_quarantined_by_name_and_the_scan_goes_on(prefect_api, sim_env):
    clean = scan(max_symbols=400, reuse_scores=False)
    store = BarStore(sim_env)
    day = store.stored_days()[-10]
    frame = store.read_day(day)
    a, b = clean.results["Symbol"].iloc[0], clean.results["Symbol"].iloc[1]
    frame.loc[frame["symbol"] == a, "close"] = -5.0  # negative price
    hb = frame["symbol"] == b
    frame.loc[hb, "high"] = frame.loc[hb, "low"] * 0.9  # high < low
    table = pq.read_table(store._day_dir(day) / "bars.parquet").schema
    pq.write_table(pa.Table.from_pandas(frame.assign(date=day)[table.names], schema=table, preserve_index=False),
                   store._day_dir(day) / "bars.parquet")
    reseal_day(store, day)  # as if the source had delivered these bars

    out = scan(max_symbols=400, reuse_scores=False)
    q = pd.DataFrame(out.summary["quarantine"])
    got = set(zip(q["symbol"], q["date"], q["check"]))
    assert (a, day.isoformat(), "greater_than(0)") in got
    assert (b, day.isoformat(), "high_ge_max_open_close") in got
    assert set(q["symbol"]) == {a, b}
    assert out.summary["metrics"]["bars_quarantined"] == len(q) >= 2
    assert f"quarantined bars {len(q)}" in out.message
    # the rest of the scan goes on: same symbols scored, the two still ranked (the bad bar treated as missing)
    assert set(out.results["Symbol"]) == set(clean.results["Symbol"])
    md = (sim_env / "results" / "latest.md").read_text()
    assert "Quarantined bars" in md and a in md and b in md


def test_duplicate_rows_in_the_store_are_reported(prefect_api, sim_env):
    """Two rows for one (symbol, date) in a day file written outside write_day: reported, not silently collapsed."""
    clean = scan(max_symbols=400)
    store = BarStore(sim_env)
    day = store.stored_days()[-10]
    path = store._day_dir(day) / "bars.parquet"
    table = pq.read_table(path)
    frame = table.to_pandas()
    sym = clean.results["Symbol"].iloc[0]
    dup = frame[frame["symbol"] == sym].assign(close=lambda f: f["close"] * 1.5, high=lambda f: f["high"] * 1.5)
    pq.write_table(pa.Table.from_pandas(pd.concat([frame, dup]), schema=table.schema, preserve_index=False), path)
    reseal_day(store, day)
    out = scan(max_symbols=400)
    q = pd.DataFrame(out.summary["quarantine"])
    assert len(q) and (sym, day.isoformat()) in set(zip(q["symbol"], q["date"]))
    assert sym in set(out.results["Symbol"])  # the symbol is still scored, without the ambiguous bar
