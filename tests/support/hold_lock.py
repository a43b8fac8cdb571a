"""Hold the bar-store lock of DATA_DIR for SECONDS, printing `locked` once held (lock-contention tests).

    python tests/support/hold_lock.py DATA_DIR SECONDS
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from technic_v4.store.bar_store import BarStore  # noqa: E402

if __name__ == "__main__":
    store = BarStore(sys.argv[1], lock_timeout=30)
    with store.lock():
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
    print("released", flush=True)
