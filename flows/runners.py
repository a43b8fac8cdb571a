"""Task runners and the shared data store for the scoring fan-out.

Ray workers must talk to the flow's Prefect API: without PREFECT_API_URL every worker starts a temporary server of
its own (measured 28 s vs 4-8 s, see DESIGN.md). The runner below reads the API URL the flow is using at start and
hands it to the workers through Ray's runtime_env, which also covers workers of a cluster joined via RAY_ADDRESS.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from prefect.task_runners import ThreadPoolTaskRunner

log = logging.getLogger(__name__)


def current_api_url() -> str | None:
    """The Prefect API this process talks to (a running server or the flow's temporary one)."""
    from prefect import get_client
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if url:
        return str(url)
    try:
        with get_client(sync_client=True) as client:
            return str(client.api_url).rstrip("/")
    except Exception:  # no API at all: workers fall back to their own; logged, not fatal
        log.warning("could not determine the Prefect API URL for Ray workers", exc_info=True)
        return None


def make_task_runner(kind: str, max_workers: int, ray_address: str | None = None):
    """`thread` (rollback switch) or `ray` (RayTaskRunner that forwards the Prefect API URL)."""
    if kind == "thread":
        return ThreadPoolTaskRunner(max_workers=max_workers)
    if kind != "ray":
        raise ValueError(f"task runner {kind!r} is unknown; use 'ray' or 'thread'")
    from prefect_ray import RayTaskRunner

    class ApiAwareRayTaskRunner(RayTaskRunner):
        def __enter__(self):
            import ray

            if not ray.is_initialized():
                url = current_api_url()
                env = {"PREFECT_API_URL": url} if url else {}
                env.update({k: v for k, v in os.environ.items() if k.startswith("TECHNIC_")})
                runtime_env = dict(self.init_kwargs.get("runtime_env") or {})
                runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **env}
                self.init_kwargs["runtime_env"] = runtime_env
            return super().__enter__()

    init_kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    return ApiAwareRayTaskRunner(address=ray_address, init_kwargs=init_kwargs)


def is_ray_runner(task_runner) -> bool:
    if task_runner is None:
        return False
    from prefect_ray import RayTaskRunner

    return isinstance(task_runner, RayTaskRunner)


class SharedDataStore:
    """Big read-only inputs (panel, regime) go into Ray's object store once; every task gets the same handle.

    RayTaskRunner resolves a top-level ObjectRef argument with ray.get inside the worker (zero-copy for numpy),
    so the task receives the object itself. With the thread runner the object is shared in memory as it is.
    """

    def __init__(self, task_runner=None) -> None:
        # Only a Ray runner resolves ObjectRefs; a thread runner in a process where Ray happens to be up must get
        # the objects themselves.
        self._ray = None
        if is_ray_runner(task_runner):
            import ray

            self._ray = ray if ray.is_initialized() else None

    def put(self, obj):
        return self._ray.put(obj) if self._ray is not None else obj


def chunk_columns(n_symbols: int, n_chunks: int, priority: np.ndarray | None = None) -> list[np.ndarray]:
    """Split column indices into up to `n_chunks` near-equal chunks; priority columns go first in chunk 0."""
    order = np.arange(n_symbols)
    if priority is not None and priority.any():
        order = np.concatenate([order[priority], order[~priority]])
    n_chunks = max(1, min(n_chunks, n_symbols))
    return [c for c in np.array_split(order, n_chunks) if c.size]
