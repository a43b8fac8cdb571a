"""Session-wide test setup: a clean environment so a developer's own TECHNIC_*/POLYGON_* values never leak in."""

import os

import pytest

for _k in list(os.environ):
    if _k.startswith(("TECHNIC_", "POLYGON_")) or _k == "RAY_ADDRESS":
        del os.environ[_k]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "technic_data"
    monkeypatch.setenv("TECHNIC_DATA_DIR", str(d))
    return d
