"""Smoke test of the benchmark suite: `benchmarks.run.main(quick=True)` end to end into a temporary docs folder.

Marked `benchmark`: excluded from `make test`; run with `pytest -m benchmark tests/test_benchmarks_smoke.py`
(it starts a real Prefect server and a local Ray, ~2-3 minutes on 2 cores).
"""

import json

import pytest


@pytest.mark.benchmark
def test_quick_benchmark_writes_docs(tmp_path, monkeypatch):
    from benchmarks import run as bench_run

    readme_before = bench_run.README.read_text() if bench_run.README.exists() else None
    out = tmp_path / "docs"
    report = bench_run.main(quick=True, out_dir=out)

    data = json.loads((out / "performance.json").read_text())
    assert (out / "performance.md").read_text().startswith("# Performance")
    assert {"machine", "modules", "plots", "quick", "total_seconds"} <= set(data)
    m = data["machine"]
    assert m["cpu_count"] > 0 and m["ram_gb"] > 0 and m["python"] and m["date"]
    assert data["quick"] is True and data["total_seconds"] > 0
    assert set(data["modules"]) == {"fetch", "scoring", "columns", "scan", "user_wait", "evaluate", "screens"}

    scan = data["modules"]["scan"]
    assert "error" not in scan, scan.get("error")
    assert {"sizes", "sweep", "figures", "seed_targets", "design_targets", "task_overhead", "market", "ray"} <= set(scan)
    size = scan["sizes"][0]
    for key in ("cold", "warm_ray", "warm_thread"):
        s = size[key]
        assert s["elapsed_s"] > 0 and s["flow_wall_s"] > 0 and s["symbols_scored"] > 0
        assert s["stages"]["score"] > 0 and s["stages"]["fetch"] > 0
        assert s["peak_rss_mb_flow_sampled"] > 0
    assert size["cold"]["api_calls"] > 100  # a 300-day backfill: one grouped-daily call per day
    assert 0 < size["warm_thread"]["api_calls"] <= 3 and size["warm_thread"]["cache_hit_rate"] > 0.99
    assert size["warm_ray"]["worker_processes"] > 0 and size["warm_ray"]["peak_rss_mb_workers_sampled"] > 0
    assert all(r["elapsed_s"] > 0 and r["score_s"] > 0 for r in scan["sweep"])
    assert {r["runner"] for r in scan["sweep"]} >= {"ray", "thread"}
    assert scan["task_overhead"]["per_day"]["ms_per_task_hit"] > 0

    for name in ("fetch", "scoring", "user_wait", "evaluate", "screens"):  # sibling modules: measured figures, or a recorded reason for skipping
        res = data["modules"][name]
        assert res.get("error") or res.get("seconds", 0) >= 0
    assert len(report["plots"]) == 2 and all((out / p.split("/")[-1]).stat().st_size > 1000 for p in report["plots"])
    # writing to a temporary folder never touches the repository's README
    if readme_before is not None:
        assert bench_run.README.read_text() == readme_before
