"""`technic chart SYMBOL [--as-of D]`: one chart of any stored symbol, with the plan of the scan published for that
session when the symbol was in it (pipeline/charts.py draws it)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from technic_v4.pipeline.charts import CHART_SESSIONS, SMA_PERIODS, ChartResult, render_chart, symbol_bars


def published_row(data_dir: Path, symbol: str, as_of) -> dict | None:
    """`symbol`'s row in the newest published table of session `as_of` (results/history), or None."""
    from technic_v4.pipeline.publish import results_dir

    folder = results_dir(data_dir) / "history" / f"as_of={pd.Timestamp(as_of).date().isoformat()}"
    for path in sorted(folder.glob("scan-*.parquet"), reverse=True):
        table = pd.read_parquet(path, filters=[("Symbol", "==", symbol)])
        if len(table):
            return table.iloc[0].to_dict()
    return None


def chart_symbol(data_dir: Path, symbol: str, out: Path, as_of=None, lock_timeout: float = 60.0) -> ChartResult:
    """`technic chart SYMBOL`: one chart from the bar store as of a session (default: the last stored), with the
    plan of the scan published for that session when the symbol was in it. Raises ValueError when the symbol or
    the session is not in the store."""
    from technic_v4.domain.market_proxy import market_proxy
    from technic_v4.domain.panel_load import load_panel
    from technic_v4.store.bar_store import BarStore

    store = BarStore(data_dir, lock_timeout=lock_timeout)
    days = [d for d in store.stored_days() if as_of is None or d <= as_of]
    if not days:
        raise ValueError(f"no stored session {'on or before ' + str(as_of) if as_of else ''} under {data_dir}; "
                         "run `technic scan` first")
    days = days[-(CHART_SESSIONS + max(SMA_PERIODS)):]  # enough for the SMA200 on the first charted session
    panel = load_panel(store, days, splits=store.read_splits())
    if symbol not in set(panel.symbols):
        raise ValueError(f"{symbol} has no bars in the {len(days)} stored sessions up to {days[-1]}")
    row = published_row(data_dir, symbol, days[-1]) or {"Symbol": symbol, "AsOf": days[-1]}
    simulated = (store.day_info(days[-1]) or {}).get("source") == "simulated"
    t0 = time.perf_counter()
    title = render_chart(symbol_bars(panel, symbol, market_proxy(panel)), row, out, simulated)
    return ChartResult(symbol=symbol, title=title, path=Path(out), seconds=time.perf_counter() - t0)
