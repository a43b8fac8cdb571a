"""Which Prefect API a fresh process uses: a configured URL, a running local stack, else a temporary server started
before the flow's imports and stopped at exit. Each case runs in a fresh interpreter, as `technic scan` does."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading

import pytest

PROBE = """
import json, sys
from importlib.metadata import entry_points
(hook,) = entry_points(group="technic_v4.flows", name="prefect_api")
api = hook.load()()
imported_prefect = "prefect" in sys.modules
api.wait(timeout=120)
import urllib.request
up = urllib.request.urlopen(api.url + "/health", timeout=5).status if api.how != "configured" else None
print(json.dumps({"how": api.how, "url": api.url, "up": up, "imported_prefect": imported_prefect,
                  "env": __import__("os").environ.get("PREFECT_API_URL")}))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _probe(tmp_path, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    clean.update(PREFECT_HOME=str(tmp_path / "prefect_home"), PREFECT_SERVER_ANALYTICS_ENABLED="false", **env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=clean, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_configured_url_is_used_as_is(tmp_path):
    got = _probe(tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api", PREFECT_PORT=str(_free_port()))
    assert got["how"] == "configured" and got["url"] == "http://127.0.0.1:9/api" and not got["imported_prefect"]


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *args):
        pass


def test_running_local_stack_is_reused(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        got = _probe(tmp_path, PREFECT_PORT=str(port))
    finally:
        server.shutdown()
    assert got == {"how": "local stack", "url": f"http://127.0.0.1:{port}/api", "up": 200, "imported_prefect": False,
                   "env": f"http://127.0.0.1:{port}/api"}


def test_temporary_server_starts_before_prefect_is_imported_and_stops_at_exit(tmp_path):
    got = _probe(tmp_path, PREFECT_PORT=str(_free_port()))
    assert got["how"] == "temporary" and got["up"] == 200 and got["env"] == got["url"]
    assert not got["imported_prefect"]  # started first, so it comes up while the flow imports
    port = int(got["url"].rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as sock:  # the process exited: its server was stopped with it
        assert sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("profile", ["active = 'remote'\n[profiles.remote]\nPREFECT_API_URL = 'http://10.0.0.9:4200/api'\n"])
def test_url_of_the_active_profile_counts_as_configured(tmp_path, profile):
    home = tmp_path / "prefect_home"
    home.mkdir()
    (home / "profiles.toml").write_text(profile)
    got = _probe(tmp_path, PREFECT_PORT=str(_free_port()))
    assert got["how"] == "configured" and got["url"] == "http://10.0.0.9:4200/api" and got["env"] is None


def test_cli_import_leaves_pandas_prefect_and_the_flow_for_later():
    code = "import sys, technic_v4.cli; print(sorted(m for m in ('pandas', 'prefect', 'flows.scan') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr[-2000:]


def test_kept_temporary_server_is_reused_then_stops_when_idle(tmp_path):
    import time

    port = str(_free_port())  # no local stack there
    first = _probe(tmp_path, PREFECT_PORT=port, TECHNIC_PREFECT_SERVER_LINGER="4")
    state = tmp_path / "prefect_home" / "technic-temporary-server.json"
    keeper = json.loads(state.read_text())["pid"]
    try:
        second = _probe(tmp_path, PREFECT_PORT=port, TECHNIC_PREFECT_SERVER_LINGER="4")
        assert first["how"] == "temporary, kept 4 s after the last scan" and first["up"] == 200
        assert second == {**first, "how": "kept temporary"}  # same server, no start
        server_port = int(first["url"].rsplit(":", 1)[1].split("/")[0])
        deadline = time.monotonic() + 30
        while state.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not state.exists()  # idle for 4 s: the keeper stopped the server and left
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", server_port)) != 0
    finally:
        if state.exists():
            os.kill(keeper, 15)


def test_killing_the_keeper_stops_its_server(tmp_path):
    import time

    got = _probe(tmp_path, PREFECT_PORT=str(_free_port()), TECHNIC_PREFECT_SERVER_LINGER="300")
    state = tmp_path / "prefect_home" / "technic-temporary-server.json"
    os.kill(json.loads(state.read_text())["pid"], 15)
    server_port = int(got["url"].rsplit(":", 1)[1].split("/")[0])
    deadline = time.monotonic() + 20
    while state.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not state.exists()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", server_port)) != 0


def test_run_scan_default_linger_never_leaks_into_the_environment(monkeypatch):
    """technic_v4.api passes its 900 s default to the hook; child processes (tests, workers) inherit nothing."""
    from flows import prefect_api

    monkeypatch.delenv("TECHNIC_PREFECT_SERVER_LINGER", raising=False)
    assert prefect_api._linger_seconds(900.0) == 900.0
    monkeypatch.setenv("TECHNIC_PREFECT_SERVER_LINGER", "0")
    assert prefect_api._linger_seconds(900.0) == 0.0
    monkeypatch.setenv("TECHNIC_PREFECT_SERVER_LINGER", "soon")
    from technic_v4.errors import ConfigError

    with pytest.raises(ConfigError, match="TECHNIC_PREFECT_SERVER_LINGER='soon'"):
        prefect_api._linger_seconds(900.0)


@pytest.mark.parametrize("setting, expected", [(None, "false"), ("true", "true")])
def test_temporary_server_sends_no_telemetry_unless_asked(monkeypatch, setting, expected):
    """A server started with TECHNIC_PREFECT_SERVER_LINGER=0 logged 'Failed to send telemetry' on an offline box."""
    from flows import prefect_api

    seen = {}
    monkeypatch.setattr(prefect_api.subprocess, "Popen", lambda cmd, env, **kw: seen.update(env=env))
    if setting is None:
        monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED", raising=False)
    else:
        monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", setting)
    prefect_api._start_server(_free_port())
    assert seen["env"]["PREFECT_SERVER_ANALYTICS_ENABLED"] == expected


def test_database_migrations_are_skipped_only_for_a_database_this_version_migrated(tmp_path, monkeypatch):
    """A temporary server skips its migration check (0.18 s) only when the default SQLite database still has the
    revision a server of the same Prefect version left it at; a new, replaced or other-version database migrates."""
    import sqlite3

    from flows import prefect_api

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_DATABASE_CONNECTION_URL", raising=False)
    assert prefect_api._migrations_needed()  # no database yet
    with sqlite3.connect(tmp_path / "prefect.db") as con:
        con.execute("CREATE TABLE alembic_version (version_num TEXT)")
        con.execute("INSERT INTO alembic_version VALUES ('rev1')")
    assert prefect_api._migrations_needed()  # never migrated by us
    prefect_api._remember_migrated()
    assert not prefect_api._migrations_needed()
    seen = {}
    monkeypatch.setattr(prefect_api.subprocess, "Popen", lambda cmd, env, **kw: seen.update(env=env))
    assert prefect_api._start_server(_free_port())[1] is False
    assert seen["env"]["PREFECT_API_DATABASE_MIGRATE_ON_START"] == "false"
    with sqlite3.connect(tmp_path / "prefect.db") as con:
        con.execute("UPDATE alembic_version SET version_num = 'rev2'")  # upgraded by another Prefect
    assert prefect_api._migrations_needed()
    assert prefect_api._start_server(_free_port())[1] is True
    assert "PREFECT_API_DATABASE_MIGRATE_ON_START" not in seen["env"]
    (tmp_path / "prefect.db").unlink()  # a wiped database is created and migrated again
    assert prefect_api._migrations_needed()
