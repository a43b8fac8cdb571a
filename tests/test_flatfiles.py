"""FlatFileSource: Polygon day-aggregate files, both folder layouts, every malformed-file error, reference delegation."""

from __future__ import annotations

import datetime as dt
import gzip

import numpy as np
import pandas as pd
import pytest

from technic_v4.config import load_settings
from technic_v4.data.factory import make_source
from technic_v4.data.flatfiles import FLAT_COLUMNS, FlatFileSource, window_start_ns, write_flat_file
from technic_v4.data.columns import DAY_COLUMNS
from technic_v4.data.polygon import PolygonClient
from technic_v4.data.polygon.source import PolygonSource
from technic_v4.errors import DataSourceError
from tests.support.fake_market import TinyMarket
from tests.support.polygon_server import PolygonServer

DAY = dt.date(2024, 1, 3)
HOLIDAY = dt.date(2024, 1, 15)


@pytest.fixture
def market():
    return TinyMarket()


def write_raw(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    return path


def good_csv(rows: list[str]) -> str:
    return ",".join(FLAT_COLUMNS) + "\n" + "\n".join(rows) + "\n"


def row(ticker="AAA", volume="100", o="1.0", c="1.5", h="2.0", low="0.5", start=None, n="7") -> str:
    return ",".join([ticker, volume, o, c, h, low, str(window_start_ns(DAY) if start is None else start), n])


async def test_round_trip_in_the_exact_format(tmp_path, market):
    bars = market.day(DAY)
    path = write_flat_file(tmp_path, bars, DAY)
    assert path.name == "2024-01-03.csv.gz"
    with gzip.open(path, "rt") as fh:
        header, first = fh.readline().strip(), fh.readline().strip().split(",")
    assert header == "ticker,volume,open,close,high,low,window_start,transactions"
    assert first[6] == "1704258000000000000" and first[1].isdigit()  # midnight New York in ns; integer volume
    got = await FlatFileSource(tmp_path).grouped_daily(DAY)
    expected = bars.assign(vwap=np.nan)  # flat files carry no VWAP
    pd.testing.assert_frame_equal(got, expected)
    assert list(got.columns) == list(DAY_COLUMNS)


async def test_polygon_s3_layout_is_found(tmp_path, market):
    days = market.sessions[:3]
    for d in days:
        write_flat_file(tmp_path / "us_stocks_sip" / "day_aggs_v1" / f"{d:%Y}" / f"{d:%m}", market.day(d), d)
    source = FlatFileSource(tmp_path)
    assert sorted(source.files()) == days
    assert len(await source.grouped_daily(days[2])) == len(market.day(days[2]))


async def test_non_session_is_empty_and_missing_trading_day_names_the_file(tmp_path, market):
    write_flat_file(tmp_path, market.day(DAY), DAY)
    source = FlatFileSource(tmp_path)
    assert (await source.grouped_daily(HOLIDAY)).empty
    assert (await source.grouped_daily(dt.date(2024, 1, 6))).empty
    with pytest.raises(DataSourceError, match=r"no flat file 2024-01-04\.csv\.gz for trading day 2024-01-04"):
        await source.grouped_daily(dt.date(2024, 1, 4))
    write_flat_file(tmp_path, market.day(dt.date(2024, 1, 4)), dt.date(2024, 1, 4))  # added later: found on the next ask
    assert len(await source.grouped_daily(dt.date(2024, 1, 4))) > 0


@pytest.mark.parametrize(
    "text, message",
    [
        ("ticker,volume,open,close,high,low,transactions\nAAA,1,1,1,1,1,1\n", r"missing columns \['window_start'\]"),
        (good_csv([row(), row("BBB", c="abc"), row("CCC", volume="")]), r"2 malformed row\(s\) of 3 .*line 3: close='abc'"),
        (good_csv([row(), row("BBB", start=window_start_ns(dt.date(2024, 1, 2)))]), r"1 malformed row.*is 2024-01-02, not 2024-01-03"),
        (good_csv([row(), row("AAA")]), r"ticker 'AAA' appears twice"),
        (good_csv([row(ticker="")]), r"empty ticker"),
        ("", r"empty file"),
    ],
    ids=["missing-column", "non-numeric", "wrong-day", "duplicate", "empty-ticker", "empty-file"],
)
async def test_malformed_files_name_the_file_and_rows(tmp_path, text, message):
    path = write_raw(tmp_path / "2024-01-03.csv.gz", text)
    with pytest.raises(DataSourceError, match=message) as info:
        await FlatFileSource(tmp_path).grouped_daily(DAY)
    assert str(path) in str(info.value)


async def test_not_gzip_and_duplicate_days(tmp_path, market):
    (tmp_path / "2024-01-03.csv.gz").write_text("plain text, not gzip")
    with pytest.raises(DataSourceError, match="not a readable gzip CSV"):
        await FlatFileSource(tmp_path).grouped_daily(DAY)
    (tmp_path / "2024-01-03.csv.gz").unlink()
    write_flat_file(tmp_path / "a", market.day(DAY), DAY)
    write_flat_file(tmp_path / "b", market.day(DAY), DAY)
    with pytest.raises(DataSourceError, match="two flat files for 2024-01-03"):
        FlatFileSource(tmp_path).files()
    with pytest.raises(DataSourceError, match="does not exist"):
        FlatFileSource(tmp_path / "nowhere").files()


async def test_reference_without_rest_is_a_clear_error(tmp_path):
    source = FlatFileSource(tmp_path)
    with pytest.raises(DataSourceError, match="POLYGON_API_KEY"):
        await source.reference()
    with pytest.raises(DataSourceError, match="POLYGON_API_KEY"):
        await source.splits()


async def test_reference_and_splits_come_from_polygon_and_are_counted(tmp_path, market):
    write_flat_file(tmp_path, market.day(DAY), DAY)
    async with PolygonServer(market, api_key="ff-key", today=market.sessions[-1]) as server:
        rest = PolygonSource(PolygonClient("ff-key", server.url))
        async with FlatFileSource(tmp_path, reference_source=rest) as source:
            assert len(await source.grouped_daily(DAY)) == len(market.day(DAY))
            ref = await source.reference()
            splits = await source.splits(since=market.split_day)
        assert list(ref["symbol"]) == ["AAA", "BBB", "CCC", "SPY", "ZZZ"] and list(splits["symbol"]) == ["AAA"]
        assert source.counter is rest.counter and source.counter.attempts == server.requests.total > 0


def test_factory_builds_flatfiles_with_and_without_a_key(tmp_path):
    settings = load_settings(TECHNIC_DATA_SOURCE="flatfiles", TECHNIC_FLATFILES_DIR=str(tmp_path))
    source = make_source(settings)
    assert isinstance(source, FlatFileSource) and source.reference_source is None
    keyed = make_source(settings.model_copy(update={"polygon_api_key": load_settings(POLYGON_API_KEY="x").polygon_api_key}))
    assert isinstance(keyed.reference_source, PolygonSource)
