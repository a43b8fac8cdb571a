"""Python entry points: `df, msg = run_scan(ScanConfig(max_symbols=6000))` runs the Prefect flow `scan`.

Entry points sit above the flows, but the library never imports the `flows` package by name: the flows register
themselves under the `technic_v4.flows` entry-point group (pyproject.toml) and are looked up here when called.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from technic_v4.aio import run_sync
from technic_v4.errors import ConfigError
from technic_v4.heap import freeze_startup_heap, tune_process
from technic_v4.pipeline.scan_config import ScanConfig
from technic_v4.startup import prepare_prefect_api

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ScanConfig", "run_scan", "run_scan_output", "load_flow_factory", "prepare_prefect_api"]


def load_flow_factory(name: str):
    """The registered factory `config -> Prefect flow` for flow `name` (e.g. "scan")."""
    # A temporary Prefect server started for this run must not phone home: offline machines log
    # "Failed to send telemetry" errors otherwise. An explicit setting in the environment wins.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    found = entry_points(group="technic_v4.flows", name=name)
    if not found:
        raise ConfigError(
            f"flow {name!r} is not registered; install the project with `pip install -e .` (make does) so the "
            "`technic_v4.flows` entry points exist"
        )
    return next(iter(found)).load()


def run_scan(config: ScanConfig | None = None, **overrides) -> tuple[pd.DataFrame, str]:
    """Run the `scan` flow and return (ranked results, human-readable summary with measured metrics).

    Safe to call from plain scripts and from inside a running event loop (Jupyter): in the latter case the flow
    runs on a worker thread with its own loop.
    """
    if config is None:
        config = ScanConfig.build(**overrides)
    elif overrides:
        config = ScanConfig.build(**{**config.model_dump(), **overrides})
    output = run_scan_output(config)
    return output.results, output.message


def run_scan_output(config: ScanConfig):
    """The flow's whole output: results, message and the typed summary."""
    tune_process()
    api = prepare_prefect_api()
    flow = load_flow_factory("scan")(config)
    freeze_startup_heap()  # after the imports: the flow's collections skip the import-time heap
    if api is not None:
        api.wait()
    return run_sync(lambda: flow(config=config))
