"""Reference data (the universe) and splits: cached in the bar store, refreshed when stale."""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd

from technic_v4.data.columns import SPLIT_COLUMNS, conform, empty_frame
from technic_v4.data.source import MarketDataSource
from technic_v4.store.bar_store import BarStore

log = logging.getLogger(__name__)

REFERENCE_MAX_AGE = dt.timedelta(days=7)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def load_reference(
    store: BarStore, source: MarketDataSource, *, max_age: dt.timedelta = REFERENCE_MAX_AGE, force: bool = False
) -> tuple[pd.DataFrame, dict]:
    """The cached universe when younger than `max_age` (weekly refresh), else a fresh one from the source."""
    cached = None if force else store.read_reference()
    if cached is not None:
        df, fetched_at = cached
        age = _utcnow() - pd.Timestamp(fetched_at).to_pydatetime()
        if age <= max_age:
            return df, {"reference": "cache", "reference_age_hours": round(age.total_seconds() / 3600, 2)}
        log.info("reference data is %s old; refreshing", age)
    df = await source.reference()
    if df.empty:
        raise ValueError(f"{source.name} returned an empty universe; refusing to cache it")
    with store.lock():
        store.write_reference(df)
    return df, {"reference": "fetched", "reference_age_hours": 0.0, "reference_symbols": len(df)}


async def refresh_splits(store: BarStore, source: MarketDataSource, as_of: dt.date) -> tuple[pd.DataFrame, list[str]]:
    """One splits call for what executed since the last check; returns all known splits and the symbols that are new.

    The store keeps raw bars, so a new split needs no refetch: the panel applies the factor on load. Symbols in the
    returned list are the ones whose adjusted history changed since the last scan (and so must be rescored).
    """
    known = store.read_splits()
    known = empty_frame(SPLIT_COLUMNS) if known is None else known
    state = store.read_state("splits") or {}
    since = dt.date.fromisoformat(state["checked_through"]) - dt.timedelta(days=7) if "checked_through" in state else None
    fresh = conform(await source.splits(since=since), SPLIT_COLUMNS)
    fresh = fresh[fresh["execution_date"] <= pd.Timestamp(as_of)]
    key = ["symbol", "execution_date"]
    merged = pd.concat([known, fresh], ignore_index=True).drop_duplicates(subset=key, keep="last")
    new_keys = set(map(tuple, fresh[key].itertuples(index=False))) - set(map(tuple, known[key].itertuples(index=False)))
    changed = sorted({sym for sym, _ in new_keys})
    if changed or known.empty:
        with store.lock():
            store.write_splits(merged.sort_values(key, ignore_index=True))
    with store.lock():
        store.write_state("splits", {"checked_through": as_of.isoformat()})
    return merged, changed
