"""Scans and an evaluation of the real S&P 500 fixture (tests/fixtures/sp500) through the csv source, and the same
bars scanned through the Polygon client over the loopback server: the tables must be equal. One data dir for the
module: the evaluation reuses the sessions the scans imported."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from technic_v4.api import ScanConfig, run_scan, run_scan_output
from technic_v4.evaluation import EvalConfig, run_evaluation
from technic_v4.store.bar_store import BarStore
from technic_v4.store.csv_import import CsvImport
from tests.support.csv_market import CsvMarket

FIXTURE = Path(__file__).parent / "fixtures" / "sp500"
LAST = dt.date(2015, 12, 31)
START, END, CHECK_DAY = dt.date(2015, 10, 1), dt.date(2015, 11, 30), dt.date(2015, 11, 2)  # the evaluated window


def use_csv(monkeypatch, data_dir: Path, folder: Path = FIXTURE) -> None:
    """The user's path: the two variables, every other setting at its default (auto runner: threads here)."""
    for k, v in {"TECHNIC_DATA_DIR": str(data_dir), "TECHNIC_DATA_SOURCE": "csv", "TECHNIC_CSV_DIR": str(folder)}.items():
        monkeypatch.setenv(k, v)


def schema_failures(folder: Path, first: dt.date, symbols) -> set[tuple[str, str]]:
    """(symbol, ISO day) of the rows, read straight from the files, that break a bar rule: a price missing or not
    above 0, high below open/close, low above open/close."""
    out = set()
    for s in symbols:
        path = next(folder.glob(f"*{s}.csv.gz"))
        df = pd.read_csv(path)
        df = df[pd.to_datetime(df["Date"]).dt.date >= first]
        o, h, lo, c = (df[k] for k in ("Open", "High", "Low", "Close"))
        bad = o.isna() | h.isna() | lo.isna() | c.isna() | (h < np.maximum(o, c)) | (lo > np.minimum(o, c))
        out |= {(s, d) for d in df.loc[bad, "Date"]}
    return out


@pytest.fixture(scope="module")
def fixture_scans(tmp_path_factory, prefect_api):
    """A cold and a warm scan of the fixture with the defaults (as_of = the files' last session)."""
    mp = pytest.MonkeyPatch()
    data = tmp_path_factory.mktemp("csv-scan") / "data"
    use_csv(mp, data)
    try:
        cold = run_scan_output(ScanConfig.build())
        warm = run_scan_output(ScanConfig.build())
    finally:
        mp.undo()
    return cold, warm, data


def test_the_fixture_scan_runs_on_real_prices_with_the_files_defaults(fixture_scans):
    cold, _, _ = fixture_scans
    s = cold.summary
    assert s["as_of"] == LAST.isoformat() and s["source"] == "csv" and not s["simulated"]
    assert s["metrics"]["api_calls"] == 0 and "[csv source: local files, no requests]" in cold.message
    assert s["metrics"]["task_runner"] == "thread"  # the auto policy without a Ray cluster
    assert s["regime_detail"]["market"] == "equal-weighted index of 40 symbols" and s["regime"] != "UNKNOWN"
    assert "regime from the equal-weighted index of 40 symbols (no SPY in the data)" in cold.message
    assert s["data_import"]["files"] == 40 and s["data_import"]["files_read"] == 40
    kept = s["prescreen"]["kept"]
    assert kept == len(cold.results) and kept >= 30  # real large caps: most pass the liquidity rules
    assert s["prescreen"]["kept_flagged"]["market_cap_unknown"] == kept  # no shares outstanding: kept and flagged
    assert cold.results["MarketCapUnknown"].all() and cold.results["MarketCap"].isna().all()
    assert set(cold.results["AsOf"].astype(str)) == {LAST.isoformat()}


def test_the_fixture_scan_quarantines_exactly_the_bad_rows_of_the_files(fixture_scans):
    cold, _, data = fixture_scans
    store = BarStore(data)
    first = store.stored_days()[0]
    kept = set(cold.results["Symbol"])
    expected = schema_failures(FIXTURE, first, kept)
    got = {(q["symbol"], q["date"]) for q in cold.summary["quarantine"]}
    assert got == expected and len(expected) >= 3  # HPQ's two October 2015 rows, MO 2015-08-24, WRK 2015-06-26
    assert cold.summary["metrics"]["bars_quarantined"] == len(cold.summary["quarantine"])


def test_a_warm_scan_reads_no_file_and_no_day_again(fixture_scans):
    cold, warm, _ = fixture_scans
    imp = warm.summary["data_import"]
    assert (imp["files_read"], imp["files_unchanged"], imp["sessions_changed"]) == (0, 40, 0)
    assert warm.summary["metrics"]["bars_fetched"] == 0 and warm.summary["metrics"]["cache_hit_rate"] == 1.0
    pd.testing.assert_frame_equal(warm.results.reset_index(drop=True), cold.results.reset_index(drop=True))


def test_the_csv_scan_equals_the_scan_of_the_same_bars_over_the_loopback_polygon_server(
        fixture_scans, tmp_path, monkeypatch, use_loopback_polygon):
    from tests.support.polygon_server import PolygonServer

    cold, _, data = fixture_scans
    bars, _ = CsvImport(BarStore(data), FIXTURE).sync()  # the scans' import, up to date: nothing parsed again
    with PolygonServer(CsvMarket(bars), api_key="k-csv", today=LAST) as server:
        use_loopback_polygon(server, "k-csv", data_dir=tmp_path / "polygon")
        over_http = run_scan_output(ScanConfig.build(as_of=LAST))
        assert server.requests.count("grouped_daily") == len(BarStore(tmp_path / "polygon").stored_days())
    assert over_http.summary["source"] == "polygon" and over_http.summary["metrics"]["api_calls"] > 250
    for key in ("regime", "prescreen", "signals"):
        assert over_http.summary[key] == cold.summary[key], key
    pd.testing.assert_frame_equal(pd.DataFrame(over_http.summary["quarantine"]), pd.DataFrame(cold.summary["quarantine"]))
    pd.testing.assert_frame_equal(over_http.results.reset_index(drop=True), cold.results.reset_index(drop=True))


# ---- the walk-forward evaluation on real prices ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def evaluated(fixture_scans):
    """The evaluation of two months of the fixture, and a scan as of one of its days."""
    with pytest.MonkeyPatch.context() as mp:
        use_csv(mp, fixture_scans[2])
        scores, summary = run_evaluation(EvalConfig(start=START, end=END))
        scan, _ = run_scan(as_of=CHECK_DAY, reuse_scores=False)
    return scores, summary, scan


def test_the_evaluation_runs_on_the_files_and_says_survivorship(evaluated):
    scores, summary, _ = evaluated
    meta = summary["meta"]
    assert meta["source"] == "csv" and not meta["simulated"] and meta["survivorship_bias"] is True
    assert "survivorship bias" in meta["listing"] and meta["metrics"]["api_calls"] == 0
    assert "Survivorship bias:" in summary["report_md"] and "survivorship bias:" in summary["message"]
    days = sorted(scores["Date"].dt.date.unique())
    assert days[0] == START and days[-1] == END and len(days) == 42  # 22 October and 20 November sessions
    assert "UNKNOWN" not in set(scores["Regime"])  # the equal-weighted index stands in for SPY on every day
    for h in (1, 5, 21):
        assert np.isfinite(summary["horizons"][h]["ic"]["mean"])


def test_a_day_of_the_evaluation_is_what_a_scan_as_of_that_day_gives(evaluated):
    scores, _, scan = evaluated
    day = scores[scores["Date"] == pd.Timestamp(CHECK_DAY)]
    mine = day.set_index(day["Symbol"].astype(str)).sort_index()
    theirs = scan.set_index("Symbol").sort_index()
    assert list(mine.index) == list(theirs.index) and len(mine) >= 30
    np.testing.assert_allclose(mine["TechRating"], theirs["TechRating"], rtol=1e-9)
    assert (mine["Signal"].astype(str) == theirs["Signal"]).all() and (mine["Regime"] == theirs["Regime"]).all()


def test_forward_returns_are_the_files_close_ratios(evaluated):
    scores, _, _ = evaluated
    # HPQ: two bad rows in October 2015, quarantined: no return ends on them, and a scan as of such a day measures
    # from the last valid close (the row's Close)
    for symbol in ("AAPL", "GE", "MO", "HPQ"):
        bars = pd.read_csv(FIXTURE / f"{symbol}.csv.gz", index_col="Date", parse_dates=True)
        o, h, lo, c = (bars[k] for k in ("Open", "High", "Low", "Close"))
        closes = c.where((h >= np.maximum(o, c)) & (lo <= np.minimum(o, c)))
        mine = scores[scores["Symbol"].astype(str) == symbol].set_index("Date")
        for h in (1, 21):
            expected = (closes.shift(-h) / closes.ffill() - 1).reindex(mine.index)
            np.testing.assert_allclose(mine[f"fwd_ret_{h}d"], expected, rtol=1e-12, err_msg=f"{symbol} {h}d")
