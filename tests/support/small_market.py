"""A small simulated market's bar store, generated once per test session and copied into each test's data dir, so
tests that need a few scans of the same market pay the cold fetch (simulating 260 sessions) once."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

SYMBOLS = 400
LOOKBACK = 260
STORE_PARTS = ("bars", "panel_cache", "reference")  # the store only: no results, scan state or alerts sent
_template: Path | None = None

ENV = {"TECHNIC_DATA_SOURCE": "simulated", "TECHNIC_SIM_SYMBOLS": str(SYMBOLS), "TECHNIC_TASK_RUNNER": "thread"}


def _build(last_day: dt.date) -> Path:
    from technic_v4.api import ScanConfig, run_scan_output

    root = Path(tempfile.mkdtemp(prefix="technic-small-market-"))
    saved = {k: os.environ.get(k) for k in [*ENV, "TECHNIC_DATA_DIR"]}
    os.environ.update(ENV, TECHNIC_DATA_DIR=str(root))
    try:
        run_scan_output(ScanConfig.build(as_of=last_day, max_symbols=SYMBOLS, lookback_days=LOOKBACK, chart_top=0))
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return root


def small_market(data_dir: Path, monkeypatch, last_day: dt.date = dt.date(2026, 10, 14)) -> Path:
    """`data_dir` with the stored bars of the small market up to `last_day`, and the environment that scans it."""
    global _template
    if _template is None:
        _template = _build(last_day)
    for part in STORE_PARTS:
        shutil.copytree(_template / part, data_dir / part)
    for k, v in {**ENV, "TECHNIC_DATA_DIR": str(data_dir)}.items():
        monkeypatch.setenv(k, v)
    return data_dir
