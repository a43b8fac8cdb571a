"""Prefect flows: orchestration only. Each task is a thin wrapper over a plain function in technic_v4."""
