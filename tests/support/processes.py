"""Start the helper scripts of this folder (scan_process.py, hold_lock.py, ...) in processes of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
ROOT = SUPPORT.parents[1]


def child_env(**extra: str) -> dict[str, str]:
    """The current environment (TECHNIC_* set by the test, PREFECT_API_URL of the session harness) plus `extra`."""
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    api = PREFECT_API_URL.value()
    if api:
        env["PREFECT_API_URL"] = api
    env.update(extra)
    return env


def start_scan(config: dict, out: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SUPPORT / "scan_process.py"), json.dumps(config, default=str), str(out)],
        cwd=ROOT, env=child_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> dict:
    stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"scan process failed ({proc.returncode}):\n{stderr[-4000:]}"
    return json.loads(stdout.strip().splitlines()[-1])


def reseal_day(store, day) -> None:
    """Record a day file edited by hand (bad bars, duplicates) as the day's stored content: its meta gets the file's
    size, checksum and row count, as if the source had delivered those bars. Without it the store sets it aside."""
    import pyarrow.parquet as pq

    from technic_v4.store.atomic import atomic_write_text, file_digest

    path = store.day_file(day)
    meta_path = path.parent / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta.update(bytes=path.stat().st_size, checksum=file_digest(path), rows=pq.read_metadata(path).num_rows)
    atomic_write_text(meta_path, json.dumps(meta))
