"""The first thing a scanning entry point (`technic scan`, run_scan) does: find the Prefect API, or start this
PREFECT_HOME's kept temporary server without waiting, so it comes up while the flow imports (flows/prefect_api.py,
reached through the `prefect_api` entry point). Imports only the settings: everything heavy comes after it."""

from __future__ import annotations

from importlib.metadata import entry_points


def prepare_prefect_api():
    """The PrefectApi this process uses (`.wait()` before the first flow run), or None without the flows installed."""
    from technic_v4.config import load_settings

    linger = load_settings().prefect_server_linger
    found = entry_points(group="technic_v4.flows", name="prefect_api")
    return next(iter(found)).load()(linger) if found else None
