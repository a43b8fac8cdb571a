"""Run one cold scan then N warm scans in this process; print one JSON line of per-scan figures (load test).

    python tests/support/load_scans.py N '<ScanConfig JSON>'

Figures per warm scan: RSS after a gc (MB), wall seconds, result rows, grouped-daily calls, live gc objects.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    import psutil

    from technic_v4.api import ScanConfig, run_scan_output

    n, config = int(sys.argv[1]), ScanConfig.build(**json.loads(sys.argv[2]))
    proc = psutil.Process()
    cold = run_scan_output(config)
    figures = {"cold_rows": len(cold.results), "rss_mb": [], "wall_s": [], "rows": [], "grouped": [], "objects": []}
    for _ in range(n):
        t0 = time.perf_counter()
        out = run_scan_output(config)
        figures["wall_s"].append(round(time.perf_counter() - t0, 3))
        gc.collect()
        figures["rss_mb"].append(round(proc.memory_info().rss / 2**20, 1))
        figures["rows"].append(len(out.results))
        figures["grouped"].append(out.summary["metrics"]["api_calls_by_endpoint"].get("grouped_daily", 0))
        figures["objects"].append(len(gc.get_objects()))
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
