"""The warm scanner (flows/warm_scanner.py): `technic scan` and `run_scan` handed to a process that already imported
everything. Served results equal a fresh process's; anything it cannot serve exactly falls back to the caller."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import child_env
from tests.test_local_stack import REPO, gone, start_stack

TECHNIC = str(Path(sys.executable).parent / "technic")
RUN_SCAN = """
import json, sys, time
t = time.monotonic()
from technic_v4.scanner_core import run_scan, ScanConfig
try:
    df, msg = run_scan(ScanConfig(max_symbols=int(sys.argv[2])))
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)})); sys.exit(0)
df.to_parquet(sys.argv[1])
print(json.dumps({"rows": len(df), "wall": time.monotonic() - t, "imported_prefect": "prefect" in sys.modules}))
"""


def run_scan_process(env: dict, out: Path, max_symbols: int = 6000) -> dict:
    done = subprocess.run([sys.executable, "-c", RUN_SCAN, str(out), str(max_symbols)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def warm_scanner(tmp_path, prefect_api):
    """A warm scanner on the session's Prefect API over a 1,500-symbol simulated market; yields (env, log path)."""
    env = child_env(TECHNIC_DATA_DIR=str(tmp_path / "data"), TECHNIC_DATA_SOURCE="simulated",
                    TECHNIC_SIM_SYMBOLS="1500", TECHNIC_TASK_RUNNER="thread")
    log = tmp_path / "warm-scanner.log"
    proc = subprocess.Popen([sys.executable, "-m", "flows.warm_scanner"], cwd=REPO, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    wait_for(lambda: "serving" in log.read_text() or proc.poll() is not None)
    assert proc.poll() is None, log.read_text()
    yield env, log
    proc.terminate()
    proc.wait(timeout=30)
    assert not (tmp_path / "data" / "run" / "warm-scanner.sock").exists()  # removed on SIGTERM


@pytest.mark.timeout(600)
def test_make_server_then_technic_scan_is_served_warm_with_default_settings(tmp_path):
    """The main path, nothing forced: `make server`, then `technic scan` twice in another shell (cold, then warm),
    against the same command with the warm scanner switched off. Same table; the warm command waits less."""
    proc, env, state, lines = start_stack(tmp_path)
    try:
        assert state["warm_scanner"] and "warm scanner pid" in "".join(lines)
        walls, outputs = {}, {}
        for name, extra in [("cold", {}), ("warm", {}), ("off", {"TECHNIC_WARM_SCANNER": "0"}), ("warm2", {})]:
            t0 = time.monotonic()
            done = subprocess.run([TECHNIC, "scan", "--top", "10"], cwd=tmp_path, env={**env, **extra},
                                  capture_output=True, text=True, timeout=300)
            walls[name] = time.monotonic() - t0
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            outputs[name] = done.stdout
        assert all("run by the warm scanner" in outputs[n] for n in ("cold", "warm", "warm2"))
        assert "run by the warm scanner" not in outputs["off"] and "Prefect API: local stack" in outputs["off"]

        def table(text: str) -> list[str]:
            return [line for line in text.splitlines() if line.startswith("│")]

        assert len(table(outputs["warm"])) == 10 and table(outputs["warm"]) == table(outputs["off"])
        warm = min(walls["warm"], walls["warm2"])
        print(f"technic scan with the stack up: warm scanner {warm:.2f} s, switched off {walls['off']:.2f} s, "
              f"cold first scan {walls['cold']:.2f} s")
        assert warm < walls["off"] - 0.5  # the imports it skips take ~1.9 s; measured 1.4 vs 3.1 s
    finally:
        stopped = subprocess.run(["make", "-s", "stop"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        proc.wait(timeout=30)
    assert "warm_scanner" in stopped.stdout and gone(state["warm_scanner"])
    assert not (tmp_path / "data" / "run" / "warm-scanner.sock").exists()


@pytest.mark.timeout(600)
def test_run_scan_served_warm_equals_a_fresh_process(warm_scanner, tmp_path):
    env, log = warm_scanner
    first = run_scan_process(env, tmp_path / "first.parquet", 1000)  # cold: fills the store
    served = run_scan_process(env, tmp_path / "served.parquet", 1000)
    local = run_scan_process({**env, "TECHNIC_WARM_SCANNER": "0"}, tmp_path / "local.parquet", 1000)
    assert log.read_text().count("scan -> child") == 2
    assert not served["imported_prefect"] and local["imported_prefect"]  # the served caller never imported Prefect
    a, b = pd.read_parquet(tmp_path / "served.parquet"), pd.read_parquet(tmp_path / "local.parquet")
    assert first["rows"] == served["rows"] == local["rows"] > 0
    pd.testing.assert_frame_equal(a, b)
    print(f"run_scan in a fresh process: served {served['wall']:.2f} s, local {local['wall']:.2f} s")


def test_other_prefect_settings_are_declined_and_the_caller_scans_itself(warm_scanner, tmp_path):
    env, log = warm_scanner
    done = subprocess.run([TECHNIC, "scan", "--max-symbols", "300", "--top", "3"], cwd=tmp_path,
                          env={**env, "PREFECT_LOGGING_LEVEL": "WARNING"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "run by the warm scanner" not in done.stdout and "Top 3" in done.stdout
    assert "declined: Prefect settings differ from the warm scanner's: PREFECT_LOGGING_LEVEL" in log.read_text()


def test_an_error_in_the_child_reaches_the_caller_as_itself(warm_scanner, tmp_path):
    env, log = warm_scanner
    got = run_scan_process({**env, "TECHNIC_DATA_SOURCE": "polygon"}, tmp_path / "x.parquet", 300)
    assert got["error"] == "ConfigError" and "POLYGON_API_KEY" in got["message"], got
    assert "scan -> child" in log.read_text()


@pytest.mark.timeout(300)
def test_ctrl_c_reaches_the_scan_in_the_child(warm_scanner, tmp_path):
    env, log = warm_scanner
    env = {**env, "TECHNIC_SIM_SYMBOLS": "6000", "TECHNIC_DATA_DIR": env["TECHNIC_DATA_DIR"]}
    # a different market size is the same settings for Prefect: served; cold, so it runs for several seconds
    proc = subprocess.Popen([TECHNIC, "scan"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for(lambda: "cli -> child" in log.read_text())
    child = int(log.read_text().split("cli -> child")[-1].split()[0])
    time.sleep(1.0)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C reaches the client's group only
    proc.communicate(timeout=60)
    took = time.monotonic() - t0
    assert proc.returncode != 0
    wait_for(lambda: gone(child), timeout=30)
    assert took < 20, took
    print(f"Ctrl-C: client exited {proc.returncode} after {took:.1f} s; child {child} gone")


def test_a_dead_server_leaves_callers_to_scan_themselves(tmp_path, monkeypatch):
    """A socket file nobody listens on (a killed server) or the switch set to 0: delegation returns None at once."""
    from technic_v4 import warm

    monkeypatch.setenv("TECHNIC_DATA_DIR", str(tmp_path))
    path = warm.socket_path()
    path.parent.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    t0 = time.monotonic()
    assert warm.delegate_cli(["technic", "scan"]) is None
    assert time.monotonic() - t0 < 0.5
    monkeypatch.setenv("TECHNIC_WARM_SCANNER", "0")
    assert warm.delegate_cli(["technic", "scan"]) is None


def test_decline_reasons(monkeypatch):
    from flows import warm_scanner

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    fingerprint = warm_scanner.code_fingerprint()
    base = {"PREFECT_HOME": "/h"}
    ok = {"env": {"PREFECT_HOME": "/h", "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}}
    assert warm_scanner.decline_reason(ok, base, fingerprint) is None
    assert "PREFECT_HOME" in warm_scanner.decline_reason({"env": {}}, base, fingerprint)
    other_api = {"env": {**ok["env"], "PREFECT_API_URL": "http://elsewhere:4200/api"}}
    assert warm_scanner.decline_reason(other_api, base, fingerprint) == "another PREFECT_API_URL"
    stale = (fingerprint[0], fingerprint[1] - 1, fingerprint[2])
    assert warm_scanner.decline_reason(ok, base, stale) == "project code changed"


def test_long_socket_paths_work(tmp_path, monkeypatch):
    """AF_UNIX paths are limited to 107 bytes; pytest's own tmp paths can be longer."""
    from technic_v4 import warm

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setenv("TECHNIC_DATA_DIR", str(deep))
    path = warm.socket_path()
    path.parent.mkdir()
    address, fd = warm.unix_address(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(address)
    os.close(fd)
    server.listen(1)
    assert len(str(path)) > 107 and path.exists()
    client = warm._connect()
    assert client is not None
    client.close()
    server.close()


@pytest.mark.parametrize("caller", ["cli", "scan"])
def test_a_failure_in_the_child_is_raised_in_the_caller_for_both_kinds(tmp_path, monkeypatch, caller):
    """The child answers with its pickled exception (an "E" frame): `technic scan` and `run_scan` both raise it,
    never read it as an exit code or a result."""
    import pickle
    import threading

    from technic_v4 import warm

    monkeypatch.setenv("TECHNIC_DATA_DIR", str(tmp_path))
    path = warm.socket_path()
    path.parent.mkdir(parents=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def child():
        conn, _ = server.accept()
        with conn:
            _kind, _payload, fds = warm.recv_frame(conn, maxfds=3)
            for fd in fds:
                os.close(fd)
            warm.send_frame(conn, b"J", json.dumps({"accepted": True, "pid": os.getpid()}).encode())
            warm.send_frame(conn, b"E", pickle.dumps(ValueError("broken in the child")))

    thread = threading.Thread(target=child)
    thread.start()
    try:
        with pytest.raises(ValueError, match="broken in the child"):
            if caller == "cli":
                warm.delegate_cli(["technic", "scan"])
            else:
                from technic_v4.pipeline.scan_config import ScanConfig

                warm.delegate_scan(ScanConfig())
    finally:
        thread.join(timeout=10)
        server.close()
