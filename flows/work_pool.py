"""The process work pool that `make server` (and the deployment tests, which take the same path) runs flows in.

Prefect 3.9's process worker starts a flow run through a workspace supervisor when the pool names no start command:
a first Python process imports Prefect, resolves the deployment's workspace dependencies, then starts the engine as a
second Python process that imports Prefect again (about 2 s of a warm run on this box). technic_v4 is installed in
the worker's own environment and declares no workspace dependencies, so the pool's `command` job variable (Prefect's
documented way to choose how a flow run starts) names the engine of that environment directly: one process per run.
A deployment or a custom run can still set its own `command`."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from technic_v4.store.atomic import atomic_write_text

POOL = "technic-pool"


def engine_command(python: str = sys.executable) -> str:
    return shlex.join([python, "-m", "prefect.engine"])


def base_job_template(python: str = sys.executable) -> dict:
    """Prefect's own process template with `command` defaulting to this environment's engine."""
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    template["variables"]["properties"]["command"]["default"] = engine_command(python)
    return template


def ensure_pool(prefect: str, env: dict, folder: Path) -> None:
    """Create (or update in place) the pool with `base_job_template()`; raises CalledProcessError with Prefect's
    output when the CLI refuses."""
    path = Path(folder) / "work-pool-template.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(base_job_template(), indent=2))
    subprocess.run([prefect, "work-pool", "create", POOL, "--type", "process", "--base-job-template", str(path),
                    "--overwrite"], env=env, check=True, capture_output=True, text=True)
