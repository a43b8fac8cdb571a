"""The universe on a budget: the listing (cheap, weekly), ticker details (one call per symbol, liquidity first), splits.

Polygon's listing (`/v3/reference/tickers`) is a few pages; ticker details (shares outstanding, SIC) cost one call per
symbol, ~6,000 for the market: 20 hours at the free tier's 5 requests a minute. So details are fetched only for the
symbols that can matter, ranked by what the grouped-daily bars already tell for free:

- candidates: among the `max_symbols` most liquid (20-day dollar volume), those passing every bar-only prescreen rule
  (history, not stale, not blacklisted, price floor, average volume) — market cap cannot change the fate of the rest;
- wanted: candidates whose details are missing (most liquid first), then those older than TECHNIC_DETAILS_MAX_AGE_DAYS
  (90: shares outstanding are reported quarterly) or older than a split of theirs (oldest first);
- per scan at most the budget of `details_budget` (TECHNIC_DETAILS_PER_SCAN: auto, a number, or all).

A candidate traded in grouped daily but not in the listing (a new listing since the weekly refresh, or a type the
listing leaves out) is handled explicitly: its details name its type; a listed type joins the universe at once, any other
type is remembered in state `unlisted_details` so it is not asked again before the refresh age (it stays
`not_in_reference` in the prescreen). A symbol whose shares outstanding are still unknown is kept and flagged
(prescreen `market_cap_unknown`, results `MarketCapUnknown`), never silently dropped.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from technic_v4.data.columns import SPLIT_COLUMNS, conform, empty_frame
from technic_v4.data.source import MarketDataSource
from technic_v4.errors import DataSourceError
from technic_v4.store.bar_store import BarStore

log = logging.getLogger(__name__)

REFERENCE_MAX_AGE = dt.timedelta(days=7)
DETAILS_MAX_AGE = dt.timedelta(days=90)
SCAN_CALL_TARGET = 100  # every daily scan, universe upkeep included
CALL_RESERVE = 5  # left for retries, so a retry or two does not push an auto-budget scan past the target
DETAIL_FIELDS = ("sic_code", "sector", "industry", "shares_outstanding", "list_date", "sic_description")
DETAIL_STATE = ("details_fetched_at", "details_status")
UNLISTED_STATE = "unlisted_details"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# ---- the listing ----------------------------------------------------------------------------------------------------


async def load_reference(
    store: BarStore,
    source: MarketDataSource,
    *,
    max_age: dt.timedelta = REFERENCE_MAX_AGE,
    force: bool = False,
    now: dt.datetime | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The cached universe when its listing is younger than `max_age` (weekly refresh), else a fresh listing merged
    with the details already stored. `force` with a source whose listing lacks details fetches every symbol's details
    (the refresh-reference deployment on a paid plan)."""
    now = now or _utcnow()
    cached = None if force else store.read_reference()
    if cached is not None:
        df, fetched_at = cached
        age = now - pd.Timestamp(fetched_at).to_pydatetime()
        if age <= max_age:
            df = with_detail_state(df, fetched_at)
            return df, {"reference": "cache", "reference_age_hours": round(age.total_seconds() / 3600, 2)}
        log.info("reference listing is %s old; refreshing", age)
    previous = store.read_reference()
    previous = with_detail_state(*previous) if previous else None
    listing = await source.listing()
    if listing.empty:
        raise DataSourceError(f"{source.name} returned an empty universe; refusing to cache it")
    df = merge_listing(listing, previous, now=now, has_details=source.listing_has_details)
    if force and not source.listing_has_details:
        df = apply_details(df, await source.ticker_details(list(df["symbol"])), now=now)
    with store.lock():
        store.write_reference(df, fetched_at=now)
    return df, {"reference": "fetched", "reference_age_hours": 0.0, "reference_symbols": len(df)}


def with_detail_state(df: pd.DataFrame, fetched_at: dt.datetime) -> pd.DataFrame:
    """A reference stored before details had their own age (full details at fetch time): rows with shares outstanding
    count as fetched with the reference, so an upgrade does not refetch every symbol's details."""
    if "details_fetched_at" in df:
        return df
    known = pd.to_numeric(df["shares_outstanding"], errors="coerce").notna()
    return df.assign(details_fetched_at=np.where(known, pd.Timestamp(fetched_at).isoformat(), None),
                     details_status=np.where(known, "ok", None))


def merge_listing(listing: pd.DataFrame, previous: pd.DataFrame | None, *, now: dt.datetime, has_details: bool) -> pd.DataFrame:
    """A fresh listing that keeps the stored details of symbols still listed (details outlive the weekly listing)."""
    out = listing.reset_index(drop=True).copy()
    for col in DETAIL_FIELDS:
        if col not in out:
            out[col] = None
    if has_details:  # the source's listing carries shares outstanding and SIC: every row is fresh
        out["details_fetched_at"], out["details_status"] = now.isoformat(), "ok"
        return out
    out["details_fetched_at"], out["details_status"] = None, None
    if previous is None or "details_fetched_at" not in previous:
        return out
    prev = previous.drop_duplicates("symbol", keep="last").set_index("symbol")
    known = prev["details_fetched_at"].notna()
    keep = out["symbol"].isin(prev.index[known]).to_numpy()
    for col in (*DETAIL_FIELDS, *DETAIL_STATE):
        if col in prev:
            carried = prev[col].reindex(out["symbol"]).to_numpy()
            out[col] = out[col].astype(carried.dtype if col == "shares_outstanding" else object)
            out.loc[keep, col] = carried[keep]
    return out


# ---- which details to fetch -------------------------------------------------------------------------------------------


@dataclass
class DetailPlan:
    """Details wanted this scan: `missing` (never fetched; most liquid first), then `stale` (oldest first)."""

    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    budget: int | None = None  # None = no limit (TECHNIC_DETAILS_PER_SCAN=all)

    @property
    def to_fetch(self) -> list[str]:
        wanted = self.missing + self.stale
        return wanted if self.budget is None else wanted[: self.budget]

    @property
    def missing_after(self) -> int:
        """Missing symbols this scan's budget does not reach (fetched by the next scans)."""
        return max(0, len(self.missing) - len(self.to_fetch))


def details_budget(setting: int | str, *, calls_so_far: int, cold: bool) -> int | None:
    """Ticker-details calls this scan may send. `auto`: fill the scan up to SCAN_CALL_TARGET calls minus a retry
    reserve, none on a cold scan (it already pays for the backfill: 300 calls, an hour on the free tier);
    a number: at most that many; `all`: no limit (None)."""
    if setting == "all":
        return None
    if setting == "auto":
        return 0 if cold else max(0, SCAN_CALL_TARGET - CALL_RESERVE - calls_so_far)
    return int(setting)


def plan_detail_fetches(
    reference: pd.DataFrame,
    liquidity: pd.Series,
    *,
    now: dt.datetime,
    budget: int | None,
    max_age: dt.timedelta = DETAILS_MAX_AGE,
    splits: pd.DataFrame | None = None,
    unlisted: dict | None = None,
) -> DetailPlan:
    """Plan the details calls. `liquidity`: candidate symbol -> 20-day dollar volume (see prescreen.details_candidates);
    `unlisted`: state of traded-but-unlisted symbols already asked ({symbol: {"type", "fetched_at"}})."""
    ranked = liquidity.sort_values(ascending=False, kind="stable").index
    ref = reference.drop_duplicates("symbol", keep="last").set_index("symbol")
    listed_at = _utc_times(ref["details_fetched_at"] if "details_fetched_at" in ref else pd.Series(dtype=object))
    asked_at = _utc_times(pd.Series({s: v["fetched_at"] for s, v in (unlisted or {}).items()}, dtype=object))
    listed = ranked.isin(ref.index)
    when = listed_at.reindex(ranked).where(listed, asked_at.reindex(ranked))
    missing = ranked[when.isna().to_numpy()]
    old = (when < pd.Timestamp(now - max_age)) | (when < _last_split(splits).reindex(ranked))
    stale = when[old.to_numpy()].sort_values(kind="stable").index  # the oldest first
    return DetailPlan(missing=list(missing), stale=list(stale), budget=budget)


def _utc_times(values: pd.Series) -> pd.Series:
    """ISO strings / None -> tz-aware UTC timestamps / NaT, same index."""
    return pd.to_datetime(values.astype(object), utc=True, errors="coerce", format="ISO8601")


def _last_split(splits: pd.DataFrame | None) -> pd.Series:
    """Symbol -> its latest split's execution date (UTC midnight), for details fetched before it."""
    if splits is None or splits.empty:
        return pd.Series(dtype="datetime64[ns, UTC]")
    return pd.to_datetime(splits.groupby("symbol")["execution_date"].max()).dt.tz_localize("UTC")


# ---- fetching them --------------------------------------------------------------------------------------------------


async def fetch_details(
    store: BarStore, source: MarketDataSource, reference: pd.DataFrame, plan: DetailPlan, *, now: dt.datetime
) -> tuple[pd.DataFrame, dict]:
    """Send the plan's details calls, fold the answers into the stored reference; returns it and what was done."""
    symbols = plan.to_fetch
    info = {"details_fetched": 0, "details_still_missing": plan.missing_after, "details_stale": len(plan.stale),
            "details_added_to_universe": [], "details_unlisted_types": {}}
    if not symbols:
        return reference, info
    answers = await source.ticker_details(symbols)
    listed = answers["symbol"].isin(reference["symbol"])
    listed_types = set(reference["type"].dropna())
    joining = answers[~listed & answers["type"].isin(listed_types) & (answers["details_status"] == "ok")]
    others = answers[~listed & ~answers["symbol"].isin(joining["symbol"])]
    updated = apply_details(reference, answers[listed], now=now)
    if len(joining):
        new_rows = joining.assign(details_fetched_at=now.isoformat())
        updated = pd.concat([updated, new_rows[updated.columns.intersection(new_rows.columns)]], ignore_index=True)
        updated = updated.sort_values("symbol", ignore_index=True)
    unlisted = store.read_state(UNLISTED_STATE) or {}
    unlisted.update({r.symbol: {"type": r.type, "fetched_at": now.isoformat()} for r in others.itertuples(index=False)})
    with store.lock():
        cached = store.read_reference()
        store.write_reference(updated, fetched_at=cached[1] if cached else now)  # the listing's age is unchanged
        store.write_state(UNLISTED_STATE, unlisted)
    info.update(details_fetched=len(answers), details_added_to_universe=sorted(joining["symbol"]),
                details_unlisted_types={r.symbol: r.type for r in others.itertuples(index=False)})
    return updated, info


def apply_details(reference: pd.DataFrame, answers: pd.DataFrame, *, now: dt.datetime) -> pd.DataFrame:
    """Write details answers (REFERENCE_COLUMNS + sic_description + details_status) into the reference rows."""
    out = reference.copy()
    for col in (*DETAIL_FIELDS, *DETAIL_STATE):
        if col not in out:
            out[col] = None
    if answers.empty:
        return out
    rows = out.reset_index(drop=True).set_index("symbol")
    new = answers.drop_duplicates("symbol", keep="last").set_index("symbol")
    for col in DETAIL_FIELDS:
        rows[col] = rows[col].astype(object) if col != "shares_outstanding" else rows[col].astype(float)
        rows.loc[new.index, col] = new[col]
    rows["details_fetched_at"] = rows["details_fetched_at"].astype(object)
    rows.loc[new.index, "details_fetched_at"] = now.isoformat()
    rows.loc[new.index, "details_status"] = new["details_status"]
    return rows.reset_index()


async def upkeep_details(
    store: BarStore,
    source: MarketDataSource,
    reference: pd.DataFrame,
    liquidity: pd.Series,
    *,
    setting: int | str,
    calls_so_far: int,
    cold: bool,
    now: dt.datetime | None = None,
    max_age: dt.timedelta = DETAILS_MAX_AGE,
    splits: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Plan and fetch this scan's ticker details (nothing for a source whose listing already carries them)."""
    if source.listing_has_details:
        return reference, {"details_fetched": 0, "details_still_missing": 0, "details_stale": 0}
    now = now or _utcnow()
    budget = details_budget(setting, calls_so_far=calls_so_far, cold=cold)
    plan = plan_detail_fetches(reference, liquidity, now=now, budget=budget, max_age=max_age, splits=splits,
                               unlisted=store.read_state(UNLISTED_STATE))
    reference, info = await fetch_details(store, source, reference, plan, now=now)
    return reference, {**info, "details_budget": "all" if budget is None else budget}


async def upkeep_details_for_scan(run, reference: pd.DataFrame, panel, splits: pd.DataFrame, *, blacklist: dict,
                                  cold: bool, calls_so_far: int) -> tuple[pd.DataFrame, dict]:
    """The scan's details stage: candidates from its panel and prescreen rules, budget from its settings."""
    from technic_v4.pipeline.prescreen import details_candidates
    from technic_v4.pipeline.screen import rules_for

    liquidity = details_candidates(panel, rules_for(run.config), max_symbols=None,  # already the most liquid
                                   blacklist=blacklist, always_keep=tuple(run.config.watchlist))
    return await upkeep_details(
        run.store, run.source, reference, liquidity, setting=run.settings.details_per_scan, calls_so_far=calls_so_far,
        cold=cold, max_age=dt.timedelta(days=run.settings.details_max_age_days), splits=splits)


# ---- splits -----------------------------------------------------------------------------------------------------------


async def refresh_splits(store: BarStore, source: MarketDataSource, as_of: dt.date) -> tuple[pd.DataFrame, list[str]]:
    """One splits call for what executed since the last check; returns all known splits and the symbols that are new.

    The store keeps raw bars, so a new split needs no refetch: the panel applies the factor on load. Symbols in the
    returned list are the ones whose adjusted history changed since the last scan (and so must be rescored).
    """
    known = store.read_splits()
    known = empty_frame(SPLIT_COLUMNS) if known is None else known
    # coverage is read from the splits file itself: without it (reference/ deleted) every split is asked again
    checked = store.splits_checked_through()
    since = checked - dt.timedelta(days=7) if checked is not None else None
    fresh = conform(await source.splits(since=since), SPLIT_COLUMNS)
    fresh = fresh[fresh["execution_date"] <= pd.Timestamp(as_of)]
    key = ["symbol", "execution_date"]
    merged = pd.concat([known, fresh], ignore_index=True).drop_duplicates(subset=key, keep="last")
    new_keys = set(map(tuple, fresh[key].itertuples(index=False))) - set(map(tuple, known[key].itertuples(index=False)))
    changed = sorted({sym for sym, _ in new_keys})
    with store.lock():  # a small file; rewritten every scan because it carries checked_through
        store.write_splits(merged.sort_values(key, ignore_index=True), checked_through=max(as_of, checked or as_of))
    return merged, changed
