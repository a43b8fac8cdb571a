"""Bounded waits with feedback (issue 24, deliver 4): a server that accepts and never answers fails the scan within
TECHNIC_REQUEST_DEADLINE, naming host, endpoint and what to set, with a warning line while it retries; a port with
nothing listening is named; an HTML page is reported by its title."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time

import pytest

from technic_v4.api import ScanConfig, run_scan_output
from technic_v4.data.polygon.policy import RawResponse, Redactor, Request, RetryPolicy, classify, exchange
from technic_v4.data.simulated import SimulatedMarket
from technic_v4.data.source import RequestCounter
from technic_v4.errors import BadResponse, DeadlineExceeded, RetryExhausted
from tests.support.polygon_server import PolygonServer

AS_OF = dt.date(2026, 10, 12)
KEY = "pk_deadline_TEST"


def scan():
    return run_scan_output(ScanConfig.build(as_of=AS_OF, lookback_days=30, allow_short_history=True, max_symbols=300))


@pytest.fixture
def hanging_server():
    with PolygonServer(SimulatedMarket(seed=3, n_symbols=300, end=AS_OF), api_key=KEY, today=AS_OF) as server:
        server.faults.hang_seconds = 3600  # accepts, never answers
        server.fail("*", "hang")
        yield server


def test_hanging_server_fails_the_scan_within_the_deadline(prefect_api, hanging_server, use_loopback_polygon, caplog):
    use_loopback_polygon(hanging_server, KEY, TECHNIC_REQUEST_DEADLINE="4", TECHNIC_REQUEST_TIMEOUT="1.5")
    t0 = time.perf_counter()
    with caplog.at_level(logging.INFO), pytest.raises(DeadlineExceeded) as info:
        scan()
    waited = time.perf_counter() - t0
    msg = str(info.value)
    host = hanging_server.url.split("//")[1].rstrip("/")
    assert host in msg and "/v3/reference/tickers" in msg and "4 s deadline" in msg
    assert "TECHNIC_REQUEST_DEADLINE" in msg and "no answer from" in msg
    assert waited < 4 + 15, waited  # the deadline plus the flow's start-up: no task retries on top
    assert hanging_server.requests.count("tickers") <= 4  # ~deadline / timeout attempts, then no more
    print(f"\nhanging server: scan failed after {waited:.1f} s (deadline 4 s, timeout 1.5 s/attempt)")


@pytest.mark.slow
def test_hanging_server_with_default_settings_ends_within_two_minutes(prefect_api, hanging_server,
                                                                        use_loopback_polygon, capfd):
    use_loopback_polygon(hanging_server, KEY)
    t0 = time.perf_counter()
    with pytest.raises(DeadlineExceeded, match="90 s deadline"):
        scan()
    waited = time.perf_counter() - t0
    assert waited <= 120, waited
    print(f"\nhanging server, default settings: scan failed after {waited:.1f} s")


def test_nothing_listening_is_named_by_host_and_port(prefect_api, use_loopback_polygon, tmp_path, monkeypatch):
    with socket.socket() as s:  # a free port, closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {"TECHNIC_DATA_DIR": str(tmp_path / "d"), "TECHNIC_DATA_SOURCE": "polygon",
                 "POLYGON_BASE_URL": f"http://127.0.0.1:{port}", "POLYGON_API_KEY": KEY,
                 "TECHNIC_TASK_RUNNER": "thread", "TECHNIC_MAX_RETRIES": "1"}.items():
        monkeypatch.setenv(k, v)
    t0 = time.perf_counter()
    with pytest.raises(RetryExhausted) as info:
        scan()
    assert f"cannot connect to 127.0.0.1:{port}" in str(info.value)
    assert time.perf_counter() - t0 < 20  # no task retries on top of the client's


def test_retries_past_a_few_seconds_print_a_warning_line_with_the_time_left(caplog):
    """The exchange generator, driven by hand with a fake clock: each attempt times out after 10 s."""
    clock = [0.0]
    steps = exchange(Request("tickers", "/v3/reference/tickers"), RetryPolicy(max_retries=9, deadline=45.0,
                     slow_after=10.0), RequestCounter(), Redactor(KEY), host="api.example:443", clock=lambda: clock[0])
    from technic_v4.data.polygon.policy import Send, Sleep, TransportFailure

    step, sent = next(steps), 0
    with caplog.at_level(logging.INFO, logger="technic_v4.data.polygon"), pytest.raises(DeadlineExceeded) as info:
        while True:
            if isinstance(step, Send):
                sent += 1
                clock[0] += min(10.0, step.timeout)
                step = steps.send(TransportFailure("timeout", "no answer from api.example:443 within 10 s"))
            else:
                assert isinstance(step, Sleep)
                clock[0] += step.seconds
                step = steps.send(None)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "s of the 45 s deadline left" in warnings[0].getMessage()
    assert "api.example:443" in str(info.value) and 4 <= sent <= 5 < 10  # the deadline, not the retry count, ended it
    assert clock[0] <= 45 + 1e-9  # and no attempt ran past it


def test_html_instead_of_json_is_reported_by_its_title():
    body = b"<!DOCTYPE html>\n<html><head><title>Sign in - Corporate Proxy</title></head><body>...</body></html>"
    with pytest.raises(BadResponse, match=r"an HTML page instead of JSON \(title 'Sign in - Corporate Proxy'"):
        classify(Request("grouped_daily", "/v2/aggs/x"), RawResponse(200, body), Redactor(KEY))
