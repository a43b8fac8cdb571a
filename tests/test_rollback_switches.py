"""Rollback switches give the same scan: TECHNIC_ASYNC_IO=0 (sync HTTP client) against the loopback Polygon server."""

import datetime as dt

import pandas as pd
import pytest

from technic_v4.data.simulated import SimulatedMarket
from technic_v4.api import ScanConfig, run_scan_output
from tests.support.polygon_server import PolygonServer

AS_OF = dt.date(2026, 10, 12)
KEY = "pk_rollback_test_key"


@pytest.fixture(scope="module")
def server():
    with PolygonServer(SimulatedMarket(seed=7, n_symbols=200, end=AS_OF), api_key=KEY, today=AS_OF) as srv:
        yield srv


def scan(configure, server, tmp_path, async_io: str):
    configure(server, KEY, data_dir=tmp_path / async_io, TECHNIC_ASYNC_IO=async_io)
    return run_scan_output(ScanConfig.build(as_of=AS_OF, lookback_days=40, allow_short_history=True, min_avg_volume=0, min_market_cap=0))


def test_sync_io_rollback_matches_async(prefect_api, server, tmp_path, use_loopback_polygon):
    server.faults.latency_ms = 20  # long enough for concurrent requests to overlap at the server
    server.requests.reset()
    sync = scan(use_loopback_polygon, server, tmp_path, "0")
    sync_requests, sync_peak = server.requests.count("grouped_daily"), server.requests.peak_in_flight
    server.requests.reset()
    fast = scan(use_loopback_polygon, server, tmp_path, "1")
    assert sync_requests == server.requests.count("grouped_daily") == 40
    assert sync.summary["metrics"]["api_calls_by_endpoint"] == fast.summary["metrics"]["api_calls_by_endpoint"]
    assert sync_peak == 1 and server.requests.peak_in_flight > 1  # sequential vs concurrent, measured at the server
    pd.testing.assert_frame_equal(sync.results, fast.results)
