"""Clear errors (issue 24, deliver 5): a full disk is the last line a user reads, naming the path and the space; an
empty TECHNIC_* value is the documented default, never the current directory; an as-of before the source's history
says so, without promising that a later scan fetches the missing sessions."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from typer.testing import CliRunner

from technic_v4.api import ScanConfig, run_scan_output
from technic_v4.cli import app, user_error
from technic_v4.config import Settings, load_settings
from technic_v4.errors import ConfigError, StoreWriteError
from technic_v4.store import atomic

AS_OF = dt.date(2026, 10, 12)


def small_sim(monkeypatch, d):
    for k, v in {"TECHNIC_DATA_DIR": str(d), "TECHNIC_DATA_SOURCE": "simulated", "TECHNIC_SIM_SYMBOLS": "300",
                 "TECHNIC_TASK_RUNNER": "thread"}.items():
        monkeypatch.setenv(k, v)


def test_full_disk_is_the_last_line_naming_path_and_space(prefect_api, tmp_path, monkeypatch):
    small_sim(monkeypatch, tmp_path / "data")
    from technic_v4.store import bar_store

    real = bar_store.atomic_write

    def disk_fills(path, write, **kw):
        def half_then_full(p):
            p.write_bytes(b"\0" * 300_000)
            raise OSError("[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device")
        return real(path, half_then_full if path.name == "bars.parquet" else write, **kw)

    monkeypatch.setattr(bar_store, "atomic_write", disk_fills)
    out = CliRunner().invoke(app, ["scan", "--as-of", AS_OF.isoformat(), "--max-symbols", "300"])
    assert out.exit_code == 1
    last = [line for line in out.output.splitlines() if line.strip()][-1]
    full = " ".join(out.output.split("scan failed:")[-1].split())
    assert last.startswith("scan failed") or "scan failed" in out.output.splitlines()[-3:][0] + last, out.output[-800:]
    assert "no space left on device writing" in full and "/bars/date=" in full and "bars.parquet" in full
    assert "0.3 MB written before the disk filled" in full and "MB free on that disk" in full
    assert "TECHNIC_DATA_DIR" in full
    assert not list((tmp_path / "data" / "bars").rglob(".tmp-*"))  # nothing half-written left behind


def test_os_error_under_a_server_error_is_what_the_user_reads():
    disk = atomic.write_error("/data/results/runs/x/latest.parquet", OSError(28, "No space left on device"), 2**20)
    try:
        try:
            raise disk
        except StoreWriteError:
            raise RuntimeError("Server error '500 Internal Server Error' for url .../set_state")
    except RuntimeError as exc:
        assert user_error(exc).startswith("no space left on device writing /data/results/runs/x/latest.parquet: "
                                          "it needs 1.0 MB")
    assert user_error(RuntimeError("a bug")) is None  # a bug keeps its traceback


def test_empty_values_are_the_documented_defaults_never_the_current_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("TECHNIC_DATA_DIR", "TECHNIC_FLATFILES_DIR", "TECHNIC_RATE_LIMIT", "TECHNIC_MAX_WORKERS",
                 "TECHNIC_REQUEST_DEADLINE", "POLYGON_API_KEY"):
        monkeypatch.setenv(name, "")
    s = load_settings()
    assert s.data_dir == Settings.model_fields["data_dir"].default and s.data_dir.resolve() != tmp_path
    assert s.flatfiles_dir is None and s.rate_limit == 0 and s.max_workers == 2 and s.request_deadline == 90
    monkeypatch.setenv("TECHNIC_DATA_DIR", "   ")
    assert load_settings().data_dir == s.data_dir and load_settings(data_dir="").data_dir == s.data_dir
    monkeypatch.setenv("TECHNIC_FLATFILES_DIR", "   ")  # a folder that is only blanks is an error naming it
    with pytest.raises(ConfigError, match="TECHNIC_FLATFILES_DIR='   '.*current directory"):
        load_settings()


def test_as_of_before_the_source_history_says_so(prefect_api, tmp_path, monkeypatch):
    small_sim(monkeypatch, tmp_path / "data")
    out = run_scan_output(ScanConfig.build(as_of=dt.date(2023, 5, 1), lookback_days=300, allow_short_history=True,
                                           max_symbols=300))
    h = out.summary["short_history"]
    assert h["source_starts"] == "2023-01-03" and h["sessions"] < 300
    assert f"only {h['sessions']} of 300 sessions exist: the source has no bars before 2023-01-03" in out.message
    assert "next scan fetches" not in out.message


def test_a_refused_socket_is_not_reported_as_a_disk_problem():
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError:
            raise RuntimeError("cannot reach the Prefect API")
    except RuntimeError as exc:
        assert user_error(exc) is None
    assert "cannot use /x/y.parquet: Permission denied" in user_error(PermissionError(13, "Permission denied",
                                                                                      "/x/y.parquet"))
