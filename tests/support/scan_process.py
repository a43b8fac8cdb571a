"""Run one scan in a process of its own, for the crash and concurrency tests (tests/test_reliability_*.py).

    python tests/support/scan_process.py '<ScanConfig JSON>' OUT.parquet

Settings come from the environment (TECHNIC_*, PREFECT_API_URL). RELIABILITY_SLOW_DAY_S=0.02 makes the simulated
source block that long per grouped-daily call, so a backfill lasts long enough to be killed half way.
RELIABILITY_KILL_AFTER=latest.csv SIGKILLs the process once publish has written a file whose path ends so (the run
folder's latest.csv; /manifest.json: the per-configuration manifest, the first of the two). On success the results go to
OUT.parquet and one JSON line with the summary's counts goes to stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    slow = float(os.environ.get("RELIABILITY_SLOW_DAY_S", "0") or 0)
    if slow:
        from technic_v4.data.simulated import SimulatedSource

        original = SimulatedSource.grouped_daily

        async def slow_grouped_daily(self, day):
            time.sleep(slow)  # blocking on purpose: days are then written one after another
            return await original(self, day)

        SimulatedSource.grouped_daily = slow_grouped_daily

    kill_after = os.environ.get("RELIABILITY_KILL_AFTER")
    if kill_after:
        import signal

        from technic_v4.pipeline import publish

        def killing(write):
            def wrapper(path, *args, **kwargs):
                done = write(path, *args, **kwargs)
                if str(path).endswith(kill_after):
                    os.kill(os.getpid(), signal.SIGKILL)
                return done
            return wrapper

        publish.atomic_write = killing(publish.atomic_write)
        publish.atomic_write_text = killing(publish.atomic_write_text)

    from technic_v4.api import ScanConfig, run_scan_output

    config = ScanConfig.build(**json.loads(sys.argv[1]))
    out = run_scan_output(config)
    out.results.to_parquet(sys.argv[2], index=False)
    m = out.summary["metrics"]
    print(json.dumps({
        "rows": len(out.results),
        "api_calls_by_endpoint": m["api_calls_by_endpoint"],
        "bars_fetched": m["bars_fetched"],
        "bars_reused": m["bars_reused"],
        "missing_days": out.summary["missing_days"],
    }), flush=True)


if __name__ == "__main__":
    main()
