"""The all-tickers snapshot: today's bar so far for every symbol, in one request (intraday scans)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from technic_v4.data.columns import DAY_COLUMNS, conform, empty_frame
from technic_v4.data.polygon.records import is_empty_bar
from technic_v4.data.polygon.policy import Call, Request

SNAPSHOT_PATH = "/v2/snapshot/locale/us/markets/stocks/tickers"

# Before the open the `day` bar is all zeros: fall back to the latest minute bar, then to the previous session's bar.
# Which one was used is counted in `frame.attrs["bar_source"]` so a pre-market scan can say what it looked at.
BAR_PREFERENCE = ("day", "min", "prevDay")


def _pick_bar(item: dict) -> tuple[str, dict] | None:
    for key in BAR_PREFERENCE:
        bar = item.get(key)
        if not is_empty_bar(bar):
            return key, bar
    return None


def snapshot_frame(tickers: list[dict] | None) -> pd.DataFrame:
    """Snapshot `tickers` -> DAY_COLUMNS; symbols with no usable bar at all are left out (and counted as 'none')."""
    sources: Counter = Counter()
    rows = {name: [] for name in ("symbol", "open", "high", "low", "close", "volume", "vwap", "transactions")}
    for item in tickers or ():
        picked = _pick_bar(item)
        if picked is None:
            sources["none"] += 1
            continue
        key, bar = picked
        sources[key] += 1
        rows["symbol"].append(item["ticker"])
        for name, short in (("open", "o"), ("high", "h"), ("low", "l"), ("close", "c"), ("vwap", "vw")):
            rows[name].append(bar.get(short, np.nan))
        # a minute bar's `av` is the day's accumulated volume, closer to "today so far" than the minute's `v`
        volume = (bar.get("av") or bar.get("v", np.nan)) if key == "min" else bar.get("v", np.nan)
        rows["volume"].append(volume)
        rows["transactions"].append(bar.get("n", np.nan))
    if not rows["symbol"]:
        frame = empty_frame(DAY_COLUMNS)
    else:
        frame = conform(pd.DataFrame(rows), DAY_COLUMNS).sort_values("symbol", kind="stable", ignore_index=True)
    frame.attrs["bar_source"] = dict(sources)
    return frame


def all_tickers(*, tickers: list[str] | None = None, include_otc: bool = False) -> Call[pd.DataFrame]:
    params = [("include_otc", "true" if include_otc else "false")]
    if tickers:
        params.append(("tickers", ",".join(tickers)))
    request = Request(kind="snapshot", path=SNAPSHOT_PATH, params=tuple(params), results_key="tickers")
    return Call(request, lambda payload: snapshot_frame(payload.get("tickers")))
