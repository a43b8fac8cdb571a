"""Small helpers every benchmark module shares: the repository root, a free port, ratios, rounding, temporary env."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from flows.prefect_api import free_port  # noqa: F401 - one home (flows/prefect_api.py), re-exported here

REPO = Path(__file__).resolve().parents[1]


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either side is missing or b is 0."""
    if a is None or b is None or not b:
        return None
    return a / b


def rnd(x, nd: int = 3):
    return None if x is None else round(float(x), nd)


@contextlib.contextmanager
def temp_env(**values: str | None) -> Iterator[None]:
    """Set (or, with None, remove) environment variables for the block, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
