"""Task runners and the shared data store for the scoring fan-out.

Ray workers must talk to the flow's Prefect API: without PREFECT_API_URL every worker starts a temporary server of
its own (measured 28 s vs 4-8 s for 8 trivial tasks, prefect 3.9.1 + ray 2.60). The runner reads the flow API URL at start and
hands it to the workers through Ray's runtime_env, which also covers workers of a cluster joined via RAY_ADDRESS.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from prefect.task_runners import ThreadPoolTaskRunner

from technic_v4.errors import ConfigError

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


# Runner policy for TECHNIC_TASK_RUNNER=auto, measured on this box (2 cores, score stage of chunked score_chunk tasks,
# a fresh local Ray each time as in a fresh process, box shared and loaded; benchmarks/bench_user_wait.py re-measures):
#     symbols    threads   local Ray
#      6,000      0.7 s     26.2 s
#     20,000      2.6 s     18.4 s
#     57,606      9.7 s     30.4 s
# ray.init plus per-job worker start-up and imports dominate, and two local processes add no cores that threads lack,
# so a local Ray never wins here: auto starts one only at LOCAL_RAY_MIN_SYMBOLS (None = never). A configured cluster
# (RAY_ADDRESS) is already running and may bring cores this process does not have, so auto uses it whenever there is
# work. A running head on this same 2-core box is no such cluster: warm 6,000-symbol rescore, score stage 5.3-6.9 s on
# it vs 0.45-0.53 s on threads (process wall 9.4-11.7 s vs 5.0-5.3 s), nearly all of it each job starting fresh
# workers that import Prefect and technic_v4; leave RAY_ADDRESS unset there.
LOCAL_RAY_MIN_SYMBOLS: int | None = None
RUNNERS = ("auto", "ray", "thread")


def choose_runner(kind: str | None, n_symbols: int, settings) -> tuple[str, str]:
    """(runner kind, human reason) for scoring `n_symbols`: `kind` (ScanConfig.task_runner or TECHNIC_TASK_RUNNER,
    default auto) as asked, with auto resolved by the measured policy above."""
    kind = (kind or "auto").strip().lower()
    if kind not in RUNNERS:
        raise ConfigError(f"task runner {kind!r} is unknown; use {', '.join(RUNNERS)}")
    if kind == "ray":
        where = f"the Ray cluster at {settings.ray_address}" if settings.ray_address else "a local Ray"
        return "ray", f"ray asked for: {where}"
    if kind == "thread":
        return "thread", "thread asked for: threads in the flow process"
    if n_symbols == 0:
        return "thread", "auto: nothing to score, so no Ray is started"
    if settings.ray_address:
        return "ray", f"auto: RAY_ADDRESS={settings.ray_address} configures a running cluster"
    if LOCAL_RAY_MIN_SYMBOLS is not None and n_symbols >= LOCAL_RAY_MIN_SYMBOLS:
        return "ray", f"auto: {n_symbols:,} symbols >= {LOCAL_RAY_MIN_SYMBOLS:,}, where a local Ray beats threads"
    return "thread", (f"auto: no RAY_ADDRESS, {n_symbols:,} symbols; threads beat a local Ray at every size measured "
                      "(its start-up costs more than the scoring)")


def make_task_runner(kind: str, max_workers: int, ray_address: str | None = None):
    """`thread` or `ray` (RayTaskRunner that forwards the Prefect API URL); resolve `auto` with choose_runner first."""
    if kind == "thread":
        return ThreadPoolTaskRunner(max_workers=max_workers)
    if kind != "ray":
        raise ConfigError(f"task runner {kind!r} is unknown; use 'ray' or 'thread'")
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
