"""The per-symbol CSV source: header aliases, bad rows by rule, unreadable files, the incremental import and a scan of
the real S&P 500 fixture (tests/fixtures/sp500, 40 files copied from the project's real-data sample)."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from technic_v4.data import csvdir
from technic_v4.data.csvdir import (
    BAD_DATE, DUPLICATE_DATE, NOT_A_NUMBER, NOT_A_SESSION, OUTSIDE_CALENDAR, CsvDirSource, list_folder, read_symbol_file,
)
from technic_v4.data.csvref import listing_frame, read_reference_file
from technic_v4.errors import ConfigError, DataSourceError
from technic_v4.store.bar_store import BarStore
from technic_v4.store.csv_import import CsvImport

FIXTURE = Path(__file__).parent / "fixtures" / "sp500"
SAMPLE = Path(__file__).resolve().parents[1].parent.parent / "shared" / "data" / "sp500-daily-2012-2015"

ROWS = [  # three sessions of made-up but valid bars
    ("2024-01-02", 10.0, 11.0, 9.5, 10.5, 1000),
    ("2024-01-03", 10.5, 11.5, 10.0, 11.0, 2000),
    ("2024-01-04", 11.0, 12.0, 10.5, 11.5, 3000),
]


def write(path: Path, header: str, rows, gz: bool = False) -> Path:
    text = header + "\n" + "".join(",".join(str(v) for v in r) + "\n" for r in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


# ---- parsing ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("header", [
    "Date,Open,High,Low,Close,Volume",
    "date,open,high,low,close,volume",
    "timestamp,o,h,l,c,v",
    " Date , OPEN , High , Low , Close/Last , Vol ",
    "Datetime,Open,High,Low,Close,Volume,Adj Close",
    "trade_date,Open,High,Low,Close,Volume,Adj_Close",
])
def test_every_header_alias_reads_the_same_bars(tmp_path, header):
    rows = [r + (r[4] * 0.9,) for r in ROWS] if "adj" in header.lower() else ROWS
    parsed = read_symbol_file(write(tmp_path / "abc.csv", header, rows))
    assert parsed.symbol == "ABC" and parsed.rows == 3 and parsed.rejects == [] and parsed.not_numbers == []
    assert parsed.bars["date"].dt.date.tolist() == [dt.date(2024, 1, d) for d in (2, 3, 4)]
    assert parsed.bars[["open", "high", "low", "close", "volume"]].to_numpy().tolist() == [list(r[1:6]) for r in ROWS]


@pytest.mark.parametrize("name_column", ["Name", "ticker", "Symbol"])
def test_a_ticker_column_must_agree_with_the_file_name(tmp_path, name_column):
    header = f"Date,Open,High,Low,Close,Volume,{name_column}"
    ok = read_symbol_file(write(tmp_path / "NYSE:LMT.csv.gz", header, [r + ("NYSE:LMT",) for r in ROWS], gz=True))
    assert ok.symbol == "LMT" and len(ok.bars) == 3
    with pytest.raises(DataSourceError, match=r"XYZ\.csv: line 3 is a row of 'ABC', not of XYZ"):
        read_symbol_file(write(tmp_path / "XYZ.csv", header, [ROWS[0] + ("XYZ",), ROWS[1] + ("ABC",)]))


def test_timestamps_and_other_date_formats_become_sessions(tmp_path):
    rows = [("2024-01-02 00:00:00",) + ROWS[0][1:], ("01/03/2024",) + ROWS[1][1:],
            ("2024-01-04T05:00:00Z",) + ROWS[2][1:]]  # 05:00 UTC is midnight in New York
    parsed = read_symbol_file(write(tmp_path / "A.csv", "timestamp,open,high,low,close,volume", rows))
    assert parsed.bars["date"].dt.date.tolist() == [dt.date(2024, 1, d) for d in (2, 3, 4)] and not parsed.rejects


def test_bad_rows_are_rejected_by_rule_and_empty_fields_kept_as_nan(tmp_path):
    rows = [
        ROWS[0],
        ("2024-01-06",) + ROWS[1][1:],  # a Saturday
        ("1995-01-03",) + ROWS[1][1:],  # a session, but before the exchange calendar's range
        ("not a day",) + ROWS[1][1:],
        ROWS[1],
        ("2024-01-03",) + ROWS[2][1:],  # the same session again
        ("2024-01-04", "", 12.0, 10.5, 11.5, ""),  # empty fields: stored as NaN, quarantined later by the bar schema
        ("2024-01-05", "n/a?", 12.0, 10.5, 11.5, 0),  # text that is not a number; zero volume
    ]
    parsed = read_symbol_file(write(tmp_path / "BAD.csv", "Date,Open,High,Low,Close,Volume", rows))
    assert [(r["line"], r["rule"]) for r in parsed.rejects] == [(3, NOT_A_SESSION), (4, OUTSIDE_CALENDAR), (5, BAD_DATE),
                                                                (7, DUPLICATE_DATE)]
    assert [(r["line"], r["rule"], r["value"]) for r in parsed.not_numbers] == [(9, NOT_A_NUMBER, "open='n/a?'")]
    bars = parsed.bars.set_index(parsed.bars["date"].dt.day)
    assert parsed.rows == 8 and list(bars.index) == [2, 3, 4, 5]
    assert bars.loc[3, "close"] == 11.0  # the first row of a session wins
    assert np.isnan(bars.loc[4, "open"]) and np.isnan(bars.loc[4, "volume"]) and bars.loc[4, "high"] == 12.0
    assert np.isnan(bars.loc[5, "open"]) and bars.loc[5, "volume"] == 0


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"Date,Open,High,Low,Close\n2024-01-02,1,2,0.5,1.5\n", r"no column for \['volume'\]"),
    (b"Date,Open,High,Low,Close,Volume\nyesterday,1,2,0.5,1.5,10\n", "no parseable date"),
    (b"\xff\xfe\x00garbage", "not a readable CSV file"),
])
def test_an_unreadable_file_is_an_error_naming_it(tmp_path, content, message):
    path = tmp_path / "BROKEN.csv"
    path.write_bytes(content)
    with pytest.raises(DataSourceError, match=f"BROKEN.csv: .*{message}"):
        read_symbol_file(path)
    gz = tmp_path / "GZ.csv.gz"
    gz.write_bytes(b"this is not gzip")
    with pytest.raises(DataSourceError, match="GZ.csv.gz: not a readable CSV file"):
        read_symbol_file(gz)


def test_the_folder_listing_skips_other_files_and_refuses_two_files_of_one_symbol(tmp_path):
    write(tmp_path / "AAA.csv", "Date,Open,High,Low,Close,Volume", ROWS)
    write(tmp_path / "bbb.csv.gz", "Date,Open,High,Low,Close,Volume", ROWS, gz=True)
    (tmp_path / "README.md").write_text("notes")
    (tmp_path / "all stocks.csv").write_text("x")
    (tmp_path / csvdir.REFERENCE_FILE).write_text("symbol,name\nAAA,Alpha\n")
    listing = list_folder(tmp_path)
    assert list(listing.files) == ["AAA", "BBB"] and listing.reference.name == csvdir.REFERENCE_FILE
    assert listing.skipped == ["README.md", "all stocks.csv"]
    write(tmp_path / "AAA.csv.gz", "Date,Open,High,Low,Close,Volume", ROWS, gz=True)
    with pytest.raises(DataSourceError, match="two files for AAA"):
        list_folder(tmp_path)
    with pytest.raises(DataSourceError, match="does not exist"):
        list_folder(tmp_path / "nowhere")


def test_the_reference_file_gives_names_sectors_and_shares(tmp_path):
    path = tmp_path / csvdir.REFERENCE_FILE
    path.write_text("Ticker,Company,Sector,Industry,Shares Outstanding\nAAA,Alpha Inc,Technology,Software,\"1,500,000\"\n"
                    "bbb,Beta Co,,,\n")
    ref = read_reference_file(path)
    listing = listing_frame(["AAA", "BBB", "SPY", "ZZZ"], ref)
    rows = listing.set_index("symbol")
    assert rows.loc["AAA", ["name", "sector", "industry"]].tolist() == ["Alpha Inc", "Technology", "Software"]
    assert rows.loc["AAA", "shares_outstanding"] == 1.5e6 and np.isnan(rows.loc["BBB", "shares_outstanding"])
    assert rows.loc["ZZZ", "name"] == "ZZZ" and rows.loc["ZZZ", "type"] == "CS" and rows.loc["SPY", "type"] == "ETF"
    path.write_text("symbol,shares_outstanding\nAAA,lots\n")
    with pytest.raises(DataSourceError, match="shares_outstanding 'lots' is not a number"):
        read_reference_file(path)


# ---- the incremental import -------------------------------------------------------------------------------------------

def count_parses(monkeypatch) -> list[str]:
    """The symbols whose file the import parses (threads: in any order)."""
    parsed: list[str] = []
    real = csvdir.read_symbol_file

    def counting(path, symbol=None, data=None):
        parsed.append(symbol)
        return real(path, symbol, data)

    monkeypatch.setattr("technic_v4.store.csv_import.read_symbol_file", counting)
    return parsed


def test_the_import_reads_only_new_or_changed_files_and_drops_the_sessions_they_change(tmp_path, monkeypatch):
    folder, store = tmp_path / "csv", BarStore(tmp_path / "data")
    header = "Date,Open,High,Low,Close,Volume"
    for s in ("AAA", "BBB", "CCC"):
        write(folder / f"{s}.csv", header, ROWS)
    parsed = count_parses(monkeypatch)
    bars, report = CsvImport(store, folder).sync()
    assert sorted(parsed) == ["AAA", "BBB", "CCC"] and report.files_read == 3 and report.sessions == 3
    assert bars.last_session == dt.date(2024, 1, 4) and len(bars.day(dt.date(2024, 1, 3))) == 3
    for d in (2, 3, 4):  # as if a scan had stored the days
        store.write_day(dt.date(2024, 1, d), bars.day(dt.date(2024, 1, d)), source="csv")

    parsed.clear()
    _, report = CsvImport(store, folder).sync()
    assert parsed == [] and report.files_unchanged == 3 and report.sessions_changed == 0
    os.utime(folder / "BBB.csv")  # touched, same bytes: hashed, not parsed
    _, report = CsvImport(store, folder).sync()
    assert parsed == [] and report.files_unchanged == 3

    write(folder / "BBB.csv", header, ROWS[:2] + [("2024-01-04", 11.0, 12.0, 10.5, 11.75, 3000)])  # a fixed close
    write(folder / "DDD.csv", header, ROWS[2:])
    bars, report = CsvImport(store, folder).sync()
    assert sorted(parsed) == ["BBB", "DDD"] and (report.files_read, report.files_unchanged) == (2, 2)
    assert report.sessions_changed == 1 and store.stored_days() == [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    day = bars.day(dt.date(2024, 1, 4)).set_index("symbol")
    assert day.loc["BBB", "close"] == 11.75 and list(day.index) == ["AAA", "BBB", "CCC", "DDD"]

    (folder / "AAA.csv").unlink()
    parsed.clear()
    bars, report = CsvImport(store, folder).sync()
    assert parsed == [] and report.files_removed == 1 and report.sessions_changed == 3 and store.stored_days() == []
    assert "AAA" not in set(bars.day(dt.date(2024, 1, 2))["symbol"]) and "AAA" not in set(bars.listing["symbol"])


def test_sessions_another_source_or_folder_stored_are_replaced(tmp_path):
    store, header = BarStore(tmp_path / "data"), "Date,Open,High,Low,Close,Volume"
    one, two = write(tmp_path / "one" / "AAA.csv", header, ROWS).parent, write(tmp_path / "two" / "BBB.csv", header, ROWS).parent
    simulated = pd.DataFrame({"symbol": ["SIM"], "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0], "volume": [1.0]})
    for d in (2, 3, 10):
        store.write_day(dt.date(2024, 1, d), simulated, source="simulated")
    store.write_splits(pd.DataFrame({"symbol": ["AAA"], "execution_date": [pd.Timestamp("2024-01-03")],
                                     "split_from": [1.0], "split_to": [2.0]}))  # the other source's split of AAA
    bars, report = CsvImport(store, one).sync()
    assert report.sessions_replaced == 2 and store.stored_days() == [dt.date(2024, 1, 10)]  # outside the files: kept
    assert report.splits_dropped and store.read_splits().empty  # the files are split-adjusted already

    def serve(bars):  # what the scan's fetch stage does with the missing days
        for d in (2, 3, 4):
            store.write_day(dt.date(2024, 1, d), bars.day(dt.date(2024, 1, d)), source="csv")

    serve(bars)
    assert CsvImport(store, one).sync()[1].sessions_replaced == 0  # its own days stay
    bars, report = CsvImport(store, two).sync()  # another folder, same data dir
    assert report.sessions_replaced == 3
    serve(bars)
    bars, report = CsvImport(store, one).sync()  # and back: folder two's days are not folder one's bars
    assert report.sessions_replaced == 3 and report.files_read == 0


def test_the_import_lists_the_reference_file_and_a_changed_one_refreshes_the_cached_listing(tmp_path):
    folder, store = tmp_path / "csv", BarStore(tmp_path / "data")
    write(folder / "AAA.csv", "Date,Open,High,Low,Close,Volume", ROWS)
    ref = folder / csvdir.REFERENCE_FILE
    ref.write_text("symbol,name,sector,shares_outstanding\nAAA,Alpha Inc,Technology,2000000\n")
    bars, report = CsvImport(store, folder).sync()
    assert report.reference_file and report.reference_changed and report.reference_rows == 1
    row = bars.listing.set_index("symbol").loc["AAA"]
    assert (row["name"], row["sector"], row["shares_outstanding"]) == ("Alpha Inc", "Technology", 2e6)
    store.write_reference(bars.listing)  # what the scan's load_reference caches for a week
    _, report = CsvImport(store, folder).sync()
    assert not report.reference_changed and store.read_reference() is not None
    ref.write_text("symbol,name,sector,shares_outstanding\nAAA,Alpha Inc,Technology,3000000\n")
    bars, report = CsvImport(store, folder).sync()
    assert report.reference_changed and store.read_reference() is None  # the next scan lists the universe again
    assert bars.listing["shares_outstanding"].tolist() == [3e6]


def test_an_unreadable_file_stops_the_import_and_names_it(tmp_path):
    folder = tmp_path / "csv"
    write(folder / "AAA.csv", "Date,Open,High,Low,Close,Volume", ROWS)
    (folder / "BAD.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataSourceError, match=r"BAD\.csv\.gz: not a readable CSV file"):
        CsvImport(BarStore(tmp_path / "data"), folder).sync()


def test_the_source_serves_days_and_a_listing_without_any_request(tmp_path):
    import asyncio

    folder = tmp_path / "csv"
    write(folder / "AAA.csv", "Date,Open,High,Low,Close,Volume", ROWS)
    source = CsvDirSource(folder)
    day = asyncio.run(source.grouped_daily(dt.date(2024, 1, 3)))
    assert day[["symbol", "close"]].values.tolist() == [["AAA", 11.0]]
    assert asyncio.run(source.grouped_daily(dt.date(2024, 1, 6))).empty  # a Saturday: no session, no error
    with pytest.raises(DataSourceError, match="no file in .* has a row for session 2024-01-05"):
        asyncio.run(source.grouped_daily(dt.date(2024, 1, 5)))
    assert asyncio.run(source.splits()).empty and source.last_session() == dt.date(2024, 1, 4)
    assert source.counter.snapshot()["attempts"] == 0


def test_the_csv_source_needs_its_folder(monkeypatch):
    from technic_v4.config import load_settings
    from technic_v4.data.factory import make_source

    with pytest.raises(ConfigError, match="TECHNIC_CSV_DIR"):
        make_source(load_settings(TECHNIC_DATA_SOURCE="csv"))
    assert isinstance(make_source(load_settings(TECHNIC_DATA_SOURCE="csv", TECHNIC_CSV_DIR=str(FIXTURE))), CsvDirSource)


# ---- the real fixture --------------------------------------------------------------------------------------------------

def test_the_fixture_import_counts_what_its_readme_says(tmp_path):
    _, report = CsvImport(BarStore(tmp_path / "data"), FIXTURE).sync()
    assert (report.files, report.rows, report.sessions) == (40, 30_210, 852)
    assert report.rows_rejected == {} and report.skipped == ["LICENSE", "README.md"]
    assert report.empty_fields == {"open": 3, "high": 1, "low": 1, "volume": 406} and report.zero_volume == 1
    assert (report.first_session, report.last_session) == ("2012-08-13", "2015-12-31")


@pytest.mark.slow
@pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"the real-data sample {SAMPLE} is not on this machine")
def test_the_whole_sample_imports_with_its_readme_counts(tmp_path):
    _, report = CsvImport(BarStore(tmp_path / "data"), SAMPLE).sync()
    assert (report.files, report.rows, report.sessions) == (494, 405_429, 852)
    assert sum(report.empty_fields.values()) == 409 + 2 and report.zero_volume == 1  # WRK's row lacks three fields


def test_a_scan_on_a_folder_defaults_to_its_last_session_and_asks_for_no_day_before_its_first(tmp_path, monkeypatch):
    import dataclasses

    from technic_v4.pipeline.runtime import open_runtime
    from technic_v4.pipeline.scan_config import ScanConfig

    monkeypatch.setenv("TECHNIC_DATA_DIR", str(tmp_path / "data"))
    run = open_runtime(ScanConfig.build(data_source="csv", csv_dir=FIXTURE))
    assert run.as_of == dt.date(2015, 12, 31) and run.data_import["files_read"] == 40
    assert len(run.lookback_days()) == 300 and run.lookback_days()[-1] == run.as_of
    early = dataclasses.replace(run, as_of=dt.date(2012, 10, 1))
    assert early.lookback_days()[0] == dt.date(2012, 8, 13) and len(early.lookback_days()) == 35
    again = open_runtime(ScanConfig.build(csv_dir=FIXTURE, as_of=dt.date(2014, 6, 2)))  # the folder picks the source
    assert again.source.name == "csv" and again.as_of == dt.date(2014, 6, 2) and again.data_import["files_read"] == 0
