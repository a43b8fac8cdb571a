"""Runner policy (TECHNIC_TASK_RUNNER=auto) and a two-node Ray cluster scoring chunks identically to threads."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import psutil
import pytest
from prefect import flow

from flows import runners
from flows.runners import choose_runner, chunk_columns, make_task_runner
from technic_v4.config import load_settings
from technic_v4.domain.panel import Panel
from technic_v4.domain.regime import TRENDING_UP, Regime
from technic_v4.errors import ConfigError


def test_auto_uses_a_configured_cluster_and_threads_otherwise(monkeypatch):
    local, cluster = load_settings(), load_settings(ray_address="auto")
    assert choose_runner("auto", 6000, local)[0] == "thread"
    assert choose_runner(None, 60_000, local)[0] == "thread"  # no crossover measured on this box
    kind, why = choose_runner("auto", 6000, cluster)
    assert kind == "ray" and "RAY_ADDRESS=auto" in why
    kind, why = choose_runner("auto", 0, cluster)  # nothing to score: no Ray start, even with a cluster
    assert kind == "thread" and "nothing to score" in why
    assert choose_runner("ray", 10, local) == ("ray", "ray asked for: a local Ray")
    assert choose_runner("THREAD", 10, cluster)[0] == "thread"
    monkeypatch.setattr(runners, "LOCAL_RAY_MIN_SYMBOLS", 50_000)
    assert choose_runner("auto", 60_000, local)[0] == "ray" and choose_runner("auto", 6000, local)[0] == "thread"
    with pytest.raises(ConfigError, match="'dask' is unknown"):
        choose_runner("dask", 10, local)


def test_auto_is_the_default_and_accepted_everywhere(monkeypatch):
    from technic_v4.pipeline.scan_config import ScanConfig

    monkeypatch.delenv("TECHNIC_TASK_RUNNER", raising=False)
    assert load_settings().task_runner == "auto"
    assert ScanConfig(task_runner="auto").task_runner == "auto"
    with pytest.raises(ConfigError, match="'auto' is unknown"):  # resolved by choose_runner, never passed on
        make_task_runner("auto", 2, None)


def _panel(n_symbols: int = 240, n_days: int = 260) -> tuple[Panel, pd.DataFrame]:
    rng = np.random.default_rng(5)
    symbols = np.array([f"S{i:03d}" for i in range(n_symbols)], dtype=object)
    close = 50 * np.exp(np.cumsum(rng.normal(0.0004, 0.02, (n_days, n_symbols)), axis=0))
    close[: rng.integers(0, n_days // 2), 7] = np.nan  # a young listing
    open_ = np.vstack([close[:1], close[:-1]])
    volume = rng.lognormal(14, 1, (n_days, n_symbols))
    panel = Panel(dates=np.datetime64("2024-01-02") + np.arange(n_days), symbols=symbols, open=open_,
                  high=np.fmax(open_, close) * 1.01, low=np.fmin(open_, close) * 0.99, close=close, volume=volume)
    reference = pd.DataFrame({"symbol": symbols, "name": symbols, "sector": "Tech", "industry": "Chips",
                              "shares_outstanding": 1e9})
    return panel, reference


def _score_with(runner, panel, reference, regime, n_chunks, raylets):
    from flows.runners import SharedDataStore
    from flows.tasks import score_chunk

    with runner:
        shared = SharedDataStore(runner)
        panel_ref, regime_ref = shared.put(panel), shared.put(regime)
        futures = [runner.submit(score_chunk, {"panel": panel_ref, "columns": cols, "reference": reference,
                                               "regime": regime_ref})
                   for cols in chunk_columns(panel.shape[1], n_chunks)]
        outs = [f.result() for f in futures]
        for _, record in outs:  # while the job's workers are alive
            record["node"] = _raylet_of(record["pid"], dict(raylets))
    frame = pd.concat([o[0] for o in outs], ignore_index=True).sort_values("Symbol", ignore_index=True)
    return frame, [o[1] for o in outs]


def _raylet_of(pid: int, raylets: dict[int, str]) -> str | None:
    """The node whose raylet started this worker process (workers are the raylet's descendants)."""
    proc = psutil.Process(pid)
    while proc is not None:
        if proc.pid in raylets:
            return raylets[proc.pid]
        proc = proc.parent()
    return None


@flow
def score_on(kind: str, address: str | None, n_chunks: int, raylets: list[tuple[int, str]]):
    """Module level: Ray pickles the flow run context (the flow included) into every task."""
    panel, reference = _panel()
    runner = make_task_runner(kind, n_chunks, address)
    return _score_with(runner, panel, reference, Regime(trend=TRENDING_UP), n_chunks, raylets)


@pytest.mark.slow
def test_two_node_cluster_runs_chunks_on_both_nodes_like_threads(prefect_api):
    ray = pytest.importorskip("ray")
    import cloudpickle
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # the session's local Ray (ray_session) would keep this test off the cluster
        pytest.skip("a local Ray is already running in this test process")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import the tests package
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        (worker,) = cluster.worker_nodes
        raylets = [(cluster.head_node.all_processes["raylet"][0].process.pid, "head"),
                   (worker.all_processes["raylet"][0].process.pid, "worker")]
        thread_frame, thread_records = score_on("thread", None, 4, raylets)
        ray_frame, records = score_on("ray", cluster.address, 4, raylets)
        nodes = {r["node"] for r in records}
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        ray.shutdown()
        cluster.shutdown()
    assert nodes == {"head", "worker"}, f"chunks ran on {nodes}"
    assert {r["node"] for r in thread_records} == {None}  # threads: the test process, under no raylet
    assert sum(r["symbols"] for r in records) == 240 and len(ray_frame) == 240
    pd.testing.assert_frame_equal(thread_frame, ray_frame)
