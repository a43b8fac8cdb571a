"""Session-wide test setup: a clean environment so a developer's own TECHNIC_*/POLYGON_* values never leak in."""

import os

import pytest

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # no telemetry calls from test servers (no network here)
for _k in list(os.environ):
    if _k.startswith(("TECHNIC_", "POLYGON_")) or _k == "RAY_ADDRESS":
        del os.environ[_k]


# The longest test files (measured wall, quiet 2-core box, 2026-12-04) start first under `make test`'s pytest-xdist
# workers (--dist loadfile --no-loadscope-reorder): files go to workers in collection order, so a 2-minute file
# collected last would be the suite's tail.
LONGEST_FIRST = ("test_deployment.py", "test_local_stack.py", "test_alerts.py", "test_screens_saved.py",
                 "test_csv_scan.py", "test_reliability_api.py", "test_scan_flow.py", "test_reliability_input.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep pytest's order


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "technic_data"
    monkeypatch.setenv("TECHNIC_DATA_DIR", str(d))
    return d


@pytest.fixture(scope="session")
def prefect_api():
    """One temporary Prefect server for the whole session (each costs ~5 s); yields its API URL."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.prefect_api import STARTUP_TIMEOUT_S

    with prefect_test_harness(server_startup_timeout=STARTUP_TIMEOUT_S):  # a loaded box is slow, not broken
        from flows.runners import current_api_url

        yield current_api_url()


@pytest.fixture(scope="session")
def ray_session(prefect_api):
    """One local Ray for the session; workers get the harness's API URL so they never start a server of their own."""
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PREFECT_API_URL": prefect_api}},
    )
    yield ray
    ray.shutdown()


@pytest.fixture
def sim_env(tmp_path, monkeypatch):
    """A small simulated market (1,500 stocks) in a fresh data dir, thread runner: fast flow tests."""
    d = tmp_path / "technic_data"
    for k, v in {"TECHNIC_DATA_DIR": str(d), "TECHNIC_DATA_SOURCE": "simulated", "TECHNIC_SIM_SYMBOLS": "1500",
                 "TECHNIC_TASK_RUNNER": "thread"}.items():
        monkeypatch.setenv(k, v)
    return d


@pytest.fixture
def use_loopback_polygon(tmp_path, monkeypatch):
    """Point scans at a loopback Polygon server: polygon source, its URL and key, a fresh data dir, thread runner.
    Call it with the server, the key and any extra TECHNIC_* overrides; returns the data dir."""

    def configure(server, key: str, data_dir=None, **extra: str):
        d = data_dir or tmp_path / "technic_data"
        env = {"TECHNIC_DATA_DIR": str(d), "TECHNIC_DATA_SOURCE": "polygon", "POLYGON_BASE_URL": server.url,
               "POLYGON_API_KEY": key, "TECHNIC_TASK_RUNNER": "thread", **extra}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        return d

    return configure
