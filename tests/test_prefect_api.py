"""Which Prefect API a fresh process uses (flows/prefect_api.py): a configured URL, a running local stack, this
PREFECT_HOME's kept temporary server (shared by concurrent scans, paused while idle, stopped after the linger), or
Prefect's own temporary server. Each case runs in a fresh interpreter, as `technic scan` does."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

from flows import prefect_api
from flows.prefect_api import free_port

PROBE = """
import json, os, sys
from importlib.metadata import entry_points
(hook,) = entry_points(group="technic_v4.flows", name="prefect_api")
api = hook.load()(float(os.environ.get("TECHNIC_PREFECT_SERVER_LINGER", "0")))
imported_prefect = "prefect" in sys.modules
try:
    api.wait(timeout=float(os.environ.get("PROBE_TIMEOUT", "170")))
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
    sys.exit(0)
import urllib.request
up = urllib.request.urlopen(api.url + "/health", timeout=5).status if api.keeper or api.how == "local stack" else None
print(json.dumps({"how": api.how, "url": api.url, "up": up, "imported_prefect": imported_prefect, "keeper": api.keeper,
                  "env": os.environ.get("PREFECT_API_URL"),
                  "timeout": os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")}))
"""


def _env(tmp_path, **env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TECHNIC_"))}
    clean.update({"PREFECT_HOME": str(tmp_path / "prefect_home"), "PREFECT_PORT": str(free_port()), **env})
    return clean


def _probe(tmp_path, **env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], env=_env(tmp_path, **env), capture_output=True, text=True,
                         timeout=200)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def test_configured_url_is_used_as_is(tmp_path):
    got = _probe(tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api")
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
        got = _probe(tmp_path, PREFECT_PORT=str(port), TECHNIC_PREFECT_SERVER_LINGER="900")
    finally:
        server.shutdown()
    assert got["how"] == "local stack" and got["url"] == f"http://127.0.0.1:{port}/api" == got["env"]
    assert got["up"] == 200 and not got["imported_prefect"] and got["keeper"] is None


def test_url_of_the_active_profile_counts_as_configured(tmp_path):
    home = tmp_path / "prefect_home"
    home.mkdir()
    profile = "active = 'remote'\n[profiles.remote]\nPREFECT_API_URL = 'http://10.0.0.9:4200/api'\n"
    (home / "profiles.toml").write_text(profile)
    got = _probe(tmp_path)
    assert got["how"] == "configured" and got["url"] == "http://10.0.0.9:4200/api" and got["env"] is None


def test_linger_zero_leaves_the_server_to_prefect_with_time_to_start(tmp_path):
    got = _probe(tmp_path, TECHNIC_PREFECT_SERVER_LINGER="0")
    assert got["how"] == "Prefect's own temporary server" and got["url"] is None and got["env"] is None
    assert got["timeout"] == str(prefect_api.STARTUP_TIMEOUT_S) and not (tmp_path / "prefect_home").exists()


def test_cli_import_leaves_pandas_prefect_and_the_flow_for_later():
    code = ("import sys, technic_v4.cli\n"
            "print(sorted(m for m in ('pandas', 'prefect', 'flows.scan') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr[-2000:]


def _cpu_seconds(pid: int, over: float) -> float:
    proc = psutil.Process(pid)
    before = sum(proc.cpu_times()[:2])
    time.sleep(over)
    return sum(proc.cpu_times()[:2]) - before


@pytest.mark.slow  # not a main path; kept out of the 6-minute default suite
@pytest.mark.timeout(400)
def test_concurrent_scans_share_one_kept_server_paused_while_idle_and_stopped_after_the_linger(tmp_path):
    env = _env(tmp_path, TECHNIC_PREFECT_SERVER_LINGER="12")
    probes = [subprocess.Popen([sys.executable, "-c", PROBE], env=env, stdout=subprocess.PIPE, text=True)
              for _ in range(2)]
    first, second = (json.loads(p.communicate(timeout=200)[0].strip().splitlines()[-1]) for p in probes)
    state = json.loads((tmp_path / "prefect_home" / "technic-server.json").read_text())
    try:
        assert first["up"] == second["up"] == 200 and first["url"] == second["url"] == state["url"]
        assert first["keeper"] == second["keeper"] == state["keeper"]  # one server for the home, not two
        assert sorted(p["how"].split(",")[1].split()[0] for p in (first, second)) == ["reused", "started"]
        assert not first["imported_prefect"]  # started before the flow's imports, so it comes up meanwhile
        third = _probe(tmp_path, TECHNIC_PREFECT_SERVER_LINGER="12")
        assert third["how"] == "kept temporary server, reused" and third["url"] == first["url"]
        deadline = time.monotonic() + 15
        while psutil.Process(state["server"]).status() != psutil.STATUS_STOPPED and time.monotonic() < deadline:
            time.sleep(0.2)
        assert psutil.Process(state["server"]).status() == psutil.STATUS_STOPPED  # paused: no scan uses it
        idle_cpu = _cpu_seconds(state["server"], 3) + _cpu_seconds(state["keeper"], 0)
        assert idle_cpu < 0.02, f"an idle kept server used {idle_cpu:.3f} s of CPU in 3 s"
        deadline = time.monotonic() + 40
        while prefect_api.alive(state["keeper"]) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not prefect_api.alive(state["keeper"]) and not prefect_api.alive(state["server"])
        assert not (tmp_path / "prefect_home" / "technic-server.json").exists()
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", _port(first["url"]))) != 0
    finally:
        if prefect_api.alive(state["keeper"]):
            os.kill(state["keeper"], signal.SIGTERM)


@pytest.mark.slow  # a failure path, not a main one: one server start that fails (~8 s quiet, 30 s loaded)
@pytest.mark.timeout(300)
def test_a_server_that_cannot_start_says_why_and_what_to_do(tmp_path):
    got = _probe(tmp_path, TECHNIC_PREFECT_SERVER_LINGER="60",
                 PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/prefect.db")
    error = got["error"]
    assert error.startswith("PrefectServerError: the temporary Prefect server at http://127.0.0.1:")
    assert "last lines of" in error and "technic-server.log" in error and "unable to open database file" in error
    assert "make server" in error and "TECHNIC_PREFECT_SERVER_LINGER=0" in error


def test_kept_servers_beyond_the_bound_stop_least_recently_used_first(tmp_path, monkeypatch):
    monkeypatch.setattr(prefect_api, "_registry", lambda: tmp_path)
    fake_keeper = [sys.executable, "-c", "import time; time.sleep(60)", "flows.prefect_api", "keep"]
    keepers = [subprocess.Popen(fake_keeper, start_new_session=True) for _ in range(prefect_api.MAX_KEPT + 2)]
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a pid a gone keeper's entry now names
    keepers.append(stranger)
    try:
        now = time.time()
        for age, keeper in enumerate(keepers):  # keepers[-1] is the least recently used
            entry = tmp_path / f"{keeper.pid}.json"
            entry.write_text("{}")
            os.utime(entry, (now - 60 * (age + 1),) * 2)
        (tmp_path / "999999999.json").write_text("{}")  # a keeper that is gone: forgotten, not counted
        prefect_api._stop_least_recently_used()
        n = prefect_api.MAX_KEPT
        codes = [k.wait(timeout=10) if n <= i < n + 2 else k.poll() for i, k in enumerate(keepers)]
        assert codes == [None] * n + [-signal.SIGTERM] * 2 + [None]  # the oldest two; never the stranger
        assert not (tmp_path / "999999999.json").exists()
    finally:
        for keeper in keepers:
            keeper.kill()
            keeper.wait()
