"""Told when a screen changes: a `technic.screen.changed` event per changed screen (read back through the Prefect
API), and the apprise notifier (TECHNIC_ALERT_URLS) to a loopback JSON webhook: one message per change, none on an
unchanged re-run, a failing receiver retried and reported while the scan completes. Charts are off here (chart_top=0):
the notifier does not depend on them and test_report_html covers them."""

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from technic_v4.api import ScanConfig, run_scan_output
from technic_v4.pipeline.alerts import EVENT_NAME, notify, read_sent, screen_change
from tests.support.small_market import LOOKBACK, SYMBOLS

DAY1, DAY2, DAY3 = dt.date(2026, 10, 12), dt.date(2026, 10, 13), dt.date(2026, 10, 14)
LONGS = ["Strong Long", "Long"]


class Receiver:
    """A loopback JSON webhook: records every POST body; `status` is what it answers."""

    def __init__(self):
        self.messages, self.status = [], 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.messages.append({"path": self.path, "body": json.loads(body), "at": time.time()})
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def small_market(tmp_path, monkeypatch):
    from tests.support.small_market import small_market

    return small_market(tmp_path / "technic_data", monkeypatch)


def scan(as_of, **kw):
    return run_scan_output(ScanConfig.build(as_of=as_of, max_symbols=SYMBOLS, lookback_days=LOOKBACK, signals=LONGS,
                                            chart_top=0, **kw))


def read_events(since: dt.datetime, want: int, timeout: float = 20.0, resource: str | None = None) -> list[dict]:
    """Events named EVENT_NAME through the API's events filter, polled until the server has persisted `want`."""
    from prefect import get_client
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=10)  # the client sends events from a background worker: flush it first
    body = {"filter": {"event": {"name": [EVENT_NAME]}, "occurred": {"since": since.isoformat()},
                       **({"resource": {"id": [resource]}} if resource else {})}, "limit": 50}
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            events = client._client.post("/events/filter", json=body).json()["events"]
            if len(events) >= want or time.monotonic() > deadline:
                return events
            time.sleep(0.5)


def test_one_message_per_change_none_on_rerun_events_read_back_failures_reported(prefect_api, small_market, receiver,
                                                                     monkeypatch):
    monkeypatch.setenv("TECHNIC_ALERT_URLS", receiver.url)
    since = dt.datetime.now(dt.timezone.utc)  # the fixture's own scan (same screen) emitted just before: not ours
    first = scan(DAY1)
    assert len(receiver.messages) == 1  # the first scan of the screen: one summary, not one per name
    members = first.results["Symbol"].tolist()
    summary = receiver.messages[0]["body"]
    assert "first scan" in summary["title"] and f"{len(members)} members" in summary["title"]
    assert "SIMULATED" in summary["title"] and "key" not in summary["message"].lower()

    again = scan(DAY1)  # the same data again: nothing changed, nothing sent
    assert len(receiver.messages) == 1 and again.summary["seen"]["alerts"]["sent"] == []

    nxt = scan(DAY2)
    change = nxt.summary["changes"]
    assert any(change.values()), "the simulated market's next day changes some members"
    assert len(receiver.messages) == 2
    body = receiver.messages[1]["body"]
    assert f"{len(change['new'])} new, {len(change['dropped'])} dropped, {len(change['changed'])} flipped" \
        in body["title"]
    for sym in change["new"][:5]:
        assert sym in body["message"]
    shorts = set(nxt.results.loc[~nxt.results["Signal"].isin(LONGS), "Symbol"])
    assert not shorts and not set(change["new"]) - set(nxt.results["Symbol"])  # the run's filter applies

    resource = f"technic.screen.scan.{nxt.summary['config_key']}"  # this test's screen: other tests emit too
    events = [e for e in read_events(since, want=2, resource=resource) if e["resource"]["prefect.resource.id"] == resource]
    assert [e["payload"]["as_of"] for e in sorted(events, key=lambda e: e["occurred"])] == ["2026-10-12",
                                                                                            "2026-10-13"]
    last = max(events, key=lambda e: e["occurred"])
    assert last["resource"]["prefect.resource.id"] == f"technic.screen.scan.{nxt.summary['config_key']}"
    assert sorted(r["symbol"] for r in last["payload"]["new"]) == change["new"]
    assert sorted(r["symbol"] for r in last["payload"]["flipped"]) == change["changed"]
    assert all({"signal", "tech_rating"} <= set(r) for r in last["payload"]["new"] + last["payload"]["dropped"])

    receiver.status = 500  # a failing receiver: retried, reported, and the scan still completes
    failed = scan(DAY3)  # a Failed flow run would raise here
    alerts = failed.summary["seen"]["alerts"]
    assert len(receiver.messages) == 2 + 3 == 2 + alerts["attempts"]  # first try + 2 retries
    assert list(alerts["failed"].values())[0].startswith("json://127.0.0.1") and alerts["sent"] == []
    assert "DELIVERY FAILED" in failed.message
    assert len(read_sent(small_market)) == 2  # not recorded: the next scan of that data tries again


def test_dedupe_key_survives_a_retried_notify(tmp_path):
    import pandas as pd

    table = pd.DataFrame({"Symbol": ["A", "B"], "Signal": ["Long", "Short"], "TechRating": [20.0, -19.0]})
    change = screen_change("scan", "k1", "2026-10-12", None, None, table, None)
    sent = []
    deliver = lambda url, title, body: sent.append((url, title, body)) or True  # noqa: E731
    first = notify([change], ["json://127.0.0.1:9/x"], tmp_path, simulated=False, deliver=deliver)
    second = notify([change], ["json://127.0.0.1:9/x"], tmp_path, simulated=False, deliver=deliver)
    assert len(sent) == 1 and first.sent == [change.dedupe_key] and second.duplicates == [change.dedupe_key]
    assert "B (Short -19.0)" in sent[0][2] and "A (Long 20.0)" in sent[0][2]


def test_alert_urls_setting_is_validated_and_never_echoed(monkeypatch):
    from technic_v4.config import load_settings
    from technic_v4.errors import ConfigError

    monkeypatch.setenv("TECHNIC_ALERT_URLS", "json://127.0.0.1:9/a, slack://tokenA/tokenB")
    assert load_settings().alert_url_list() == ["json://127.0.0.1:9/a", "slack://tokenA/tokenB"]
    assert "tokenA" not in repr(load_settings())
    monkeypatch.setenv("TECHNIC_ALERT_URLS", "json://ok/x secret-token-no-scheme")
    with pytest.raises(ConfigError, match="TECHNIC_ALERT_URLS") as err:
        load_settings()
    assert "secret-token" not in str(err.value) and "[2]" in str(err.value)


def test_changes_respect_the_runs_signals_filter():
    import pandas as pd

    from technic_v4.pipeline.publish import signal_changes

    prev = pd.DataFrame({"Symbol": ["A", "B", "C", "D"], "Signal": ["Long", "Short", "Long", "Strong Long"],
                         "TechRating": [17.0, -17.0, 16.5, 23.0]})
    cur = pd.DataFrame({"Symbol": ["A", "B", "C", "D", "E"], "Signal": ["Strong Long", "Strong Short", "Avoid",
                                                                        "Strong Long", "Short"],
                        "TechRating": [22.5, -23.0, 3.0, 24.0, -16.2]})
    longs = ["Strong Long", "Long"]
    assert signal_changes(prev, cur, longs) == {"new": [], "dropped": ["C"], "changed": ["A"]}
    assert signal_changes(prev, cur) == {"new": ["E"], "dropped": ["C"], "changed": ["A", "B"]}
    change = screen_change("scan", "k", "2026-10-13", prev, "2026-10-12", cur, longs)
    assert [r["symbol"] for r in change.dropped] == ["C"] and change.flipped == [
        {"symbol": "A", "signal": "Strong Long", "tech_rating": 22.5, "previous_signal": "Long"}]
    assert change.members == 2 and not change.new
