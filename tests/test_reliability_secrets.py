"""Secrets (issue 6, deliver 5): the Polygon API key never appears in logs, exceptions, files under TECHNIC_DATA_DIR,
Prefect flow-run parameters, task runs, logs or artifacts — checked by searching all of them for the key string.

A polygon-source scan runs against the loopback server with retries provoked (so retry/warning log lines are written),
then a failing scan (403 on grouped daily) and direct client failures (401, 403, retries exhausted, a proxy echoing
the key into next_url) are searched too.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import traceback

import pyarrow.parquet as pq
import pytest

from technic_v4.config import load_settings
from technic_v4.data.polygon import reference as polygon_reference
from technic_v4.data.polygon.source import PolygonSource
from technic_v4.data.simulated import SimulatedMarket
from technic_v4.errors import TechnicError
from technic_v4.api import ScanConfig, run_scan_output
from tests.support.polygon_server import PolygonServer

AS_OF = dt.date(2026, 10, 12)
KEY = "sk_SECRETS_c0ffee_4242_do_not_leak"
WRONG_KEY = "sk_WRONG_badc0de_9999_do_not_leak"
SECRETS = (KEY, WRONG_KEY)


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        try:
            self.lines.append(self.format(record))
        except Exception as exc:  # a record that cannot be formatted is still searched by its parts
            self.lines.append(f"{record.msg!r} {record.args!r} {exc!r}")
        if record.exc_info:
            self.lines.append("".join(traceback.format_exception(*record.exc_info)))


@pytest.fixture
def all_logs(caplog):
    """Every record of every logger at DEBUG (Prefect's loggers do not propagate to the root, so hook them too)."""
    caplog.set_level(logging.DEBUG)
    handler = Collect()
    names = ["", "prefect", "prefect.flow_runs", "prefect.task_runs", "technic_v4", "flows", "aiohttp", "httpx"]
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield handler.lines
    for lg, level in saved:
        lg.removeHandler(handler)
        lg.setLevel(level)


@pytest.fixture(scope="module")
def market():
    return SimulatedMarket(seed=7, n_symbols=300, end=AS_OF)


@pytest.fixture
def server(market):
    with PolygonServer(market, api_key=KEY, today=AS_OF, leak_key_in_next_url=True) as srv:
        yield srv


@pytest.fixture
def poly_env(prefect_api, server, use_loopback_polygon):
    return use_loopback_polygon(server, KEY, TECHNIC_MAX_RETRIES="3", TECHNIC_REQUEST_TIMEOUT="2")


def leaks(text: str, where: str) -> list[str]:
    return [f"{where}: {s[:12]}..." for s in SECRETS if s in text]


def file_texts(root):
    """(path, searchable text) for every file under root: raw bytes, parquet contents, Prefect results unpickled-ish."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        yield str(path), raw.decode("latin-1")
        if raw[:4] == b"PAR1":
            yield f"{path} (parquet rows)", pq.read_table(path).to_pandas().to_csv()
            yield f"{path} (parquet metadata)", str(pq.read_metadata(path).metadata)
        if raw[:1] == b"{":
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("result"), str):  # Prefect result: base64 cloudpickle
                try:
                    yield f"{path} (result payload)", base64.b64decode(obj["result"]).decode("latin-1")
                except ValueError:
                    pass


def prefect_texts() -> list[tuple[str, str]]:
    """Flow runs (parameters, state messages), task runs, logs and artifacts as the Prefect API serves them."""
    from prefect import get_client

    out = []
    with get_client(sync_client=True) as client:
        for fr in client.read_flow_runs(limit=200):
            out.append((f"flow run {fr.name} parameters", json.dumps(fr.parameters, default=str)))
            out.append((f"flow run {fr.name}", fr.model_dump_json()))
        for tr in client.read_task_runs(limit=200):
            out.append((f"task run {tr.name}", tr.model_dump_json()))
        for a in client.read_artifacts(limit=200):
            out.append((f"artifact {a.key}", f"{a.data} {a.description}"))
        out.append(("logs", "\n".join(log.message for log in client.read_logs(limit=200))))
    return out


def test_key_never_leaks_from_a_polygon_scan(poly_env, server, all_logs, capfd, monkeypatch):
    # provoke retry and warning log lines that quote requests: 429s, a cut body, a day that stays broken
    server.fail("grouped_daily", 429, times=3, retry_after=0.1)
    server.fail("ticker_details", "truncate", times=2)
    server.fail(PolygonServer.grouped_path(AS_OF - dt.timedelta(days=3)), 500)  # Friday 2026-10-09: always 500
    out = run_scan_output(ScanConfig.build(as_of=AS_OF, lookback_days=30, allow_short_history=True))
    assert out.summary["missing_days"] and len(out.results) > 20
    assert server.requests.count(status=429) == 3 and server.requests.count(status=500) >= 4

    # a failing scan: 403 on every grouped-daily call (the server's message ends up in the exception)
    server.not_authorized.add("grouped_daily")
    monkeypatch.setenv("TECHNIC_DATA_DIR", str(poly_env.parent / "technic_data_2"))
    with pytest.raises(Exception) as failed:
        run_scan_output(ScanConfig.build(as_of=AS_OF, lookback_days=30, allow_short_history=True))
    exc_text = "".join(traceback.format_exception(failed.value)) + repr(failed.value)

    found = leaks(exc_text, "exception of the failing scan")
    found += leaks("\n".join(all_logs), "log records")
    captured = capfd.readouterr()
    found += leaks(captured.out + captured.err, "stdout/stderr")
    found += leaks(out.message + json.dumps(out.summary, default=str) + out.results.to_csv(), "scan output")
    files = 0
    for root in (poly_env, poly_env.parent / "technic_data_2"):
        for where, text in file_texts(root):
            files += 1
            found += leaks(text, where)
    prefect = prefect_texts()
    for where, text in prefect:
        found += leaks(text, where)
    assert not found, found
    assert files > 30 and any("prefect-results" in w for w, _ in file_texts(poly_env)) and len(prefect) > 10
    assert len(all_logs) > 50 and any("retry" in line for line in all_logs)  # the search had material to search
    print(f"\nsecrets: searched {len(all_logs)} log records, {files} file views, {len(prefect)} Prefect objects: 0 hits")


async def _expect_failure(coro) -> str:
    try:
        await coro
    except TechnicError as exc:
        return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)
    raise AssertionError("expected a failure")


def test_key_never_in_client_exceptions_or_reprs(server, monkeypatch, all_logs):
    monkeypatch.setenv("POLYGON_BASE_URL", server.url)
    monkeypatch.setenv("TECHNIC_MAX_RETRIES", "1")

    async def run():
        texts = []
        monkeypatch.setenv("POLYGON_API_KEY", WRONG_KEY)
        src = PolygonSource.from_settings(load_settings())
        texts.append(await _expect_failure(src.reference()))  # 401
        texts.append(repr(src) + repr(src.client) + str(vars(src.client._http).get("_redact")))
        await src.aclose()

        monkeypatch.setenv("POLYGON_API_KEY", KEY)
        src = PolygonSource.from_settings(load_settings())
        server.not_authorized.add("splits")
        texts.append(await _expect_failure(src.splits()))  # 403
        server.fail(PolygonServer.grouped_path(AS_OF), "truncate")
        texts.append(await _expect_failure(src.grouped_daily(AS_OF)))  # retries exhausted
        # a proxy that echoes the key into next_url: the client must drop it from the next request
        pages = await src.client._http.run(polygon_reference.list_tickers(limit=50))
        assert len(pages) > 100
        texts.append(repr(src) + repr(load_settings()) + str(load_settings().model_dump()))
        await src.aclose()
        return texts

    texts = asyncio.run(run())
    assert "401" in texts[0] and "403" in texts[2] and "gave up" in texts[3]
    found = [w for i, t in enumerate(texts) for w in leaks(t, f"text {i}")]
    found += leaks("\n".join(all_logs), "log records")
    assert not found, found
    assert server.requests.count("tickers") > 6  # pagination followed next_urls that carried the echoed key
