"""Drop what is not tradeable before scoring, counting every symbol under exactly one reason.

Rules run in a fixed order and a symbol is counted under the first it fails, so `kept + sum(reasons) == universe`.
All rules are vectorized over the panel's last rows; the low-volume blacklist persists across scans.

Unknown market cap (shares outstanding not fetched yet, see pipeline.universe) is never a silent drop. The rule
`unknown_market_cap="keep"` (default) keeps such a symbol when it passes every other rule and reports it under
`flagged["market_cap_unknown"]` (MarketCap NaN, MarketCapUnknown true in the results) until its details arrive;
`"drop"` filters it under its own reason `market_cap_unknown` instead of `market_cap`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from technic_v4.data.columns import INDEX_ETFS
from technic_v4.domain.panel import Panel

REASONS = (
    "not_in_reference",
    "short_history",
    "stale",
    "blacklisted",
    "price_floor",
    "market_cap_unknown",
    "market_cap",
    "avg_volume",
    "sector",
)


@dataclass(frozen=True)
class PrescreenRules:
    min_market_cap: float = 500e6
    min_avg_volume: float = 1e6
    min_price: float = 5.0
    min_history: int = 21  # bars; fewer cannot give a 20-day average volume
    max_stale_sessions: int = 5  # no bar in the last N sessions = halted or gone
    sectors: tuple[str, ...] | None = None
    blacklist_after: int = 5  # scans in a row failing avg volume before a symbol is blacklisted
    unknown_market_cap: Literal["keep", "drop"] = "keep"  # see the module docstring


DEFAULT_RULES = PrescreenRules()  # the one home of the floors' defaults (ScanConfig and EvalConfig start from it)
MARKET_CAP_UNIT = 1e6  # the configs take the market-cap floor in $M, what a trader types; the rules work in USD


def market_cap_floor_m(value: float) -> float:
    """A config's market-cap floor in $M. A value that reads as US dollars (a floor of $10 trillion or more) is
    refused with the figure to write, rather than run as a floor that no stock passes."""
    if value >= 1e7:  # $10 trillion in $M; any dollar figure above $10M reads as more
        raise ValueError(f"min_market_cap is in $M (500 = $500M): {value:,.0f} reads as US dollars, "
                         f"write {value / MARKET_CAP_UNIT:g}")
    return value


@dataclass
class PrescreenResult:
    kept: list[str]
    counts: dict[str, int]
    universe: int
    blacklist: dict[str, int] = field(default_factory=dict)  # symbol -> consecutive low-volume scans
    flagged: dict[str, int] = field(default_factory=dict)  # kept with a caveat: {"market_cap_unknown": n}

    def as_dict(self) -> dict:
        return {"universe": self.universe, "kept": len(self.kept), "filtered": dict(self.counts),
                "kept_flagged": dict(self.flagged)}


def last_valid(values: np.ndarray) -> np.ndarray:
    """Per column, the last finite value (NaN when none) without a loop over symbols."""
    finite = np.isfinite(values)
    idx = values.shape[0] - 1 - np.argmax(finite[::-1], axis=0)
    out = values[idx, np.arange(values.shape[1])]
    return np.where(finite.any(axis=0), out, np.nan)


def avg_volume(panel: Panel, window: int = 20) -> np.ndarray:
    """Mean volume over each symbol's last `window` sessions with a bar (NaN if fewer)."""
    v = panel.volume[-window:]
    n = np.isfinite(v).sum(axis=0)
    total = np.nansum(v, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= window * 0.75, total / n, np.nan)


def rule_checks(rules: PrescreenRules, *, listed, protected, bars, recent, close, vol20, shares, sector_ok,
                blacklisted) -> dict[str, np.ndarray]:
    """Every rule's failures, one bool array per reason. The inputs broadcast: (N,) for one scan's last day, or
    (days, N) for the walk-forward evaluation's every day at once; this is the one definition of the rules."""
    cap_unknown = ~(shares > 0)
    keep = ~protected
    return {
        "not_in_reference": ~listed & keep,
        "short_history": bars < rules.min_history,
        "stale": ~recent,
        "blacklisted": blacklisted & keep,
        "price_floor": ~(close >= rules.min_price) & keep,
        "market_cap_unknown": cap_unknown & keep & (rules.unknown_market_cap == "drop"),
        "market_cap": ~(shares * close >= rules.min_market_cap) & ~cap_unknown & keep,
        "avg_volume": ~(vol20 >= rules.min_avg_volume) & keep,
        "sector": ~sector_ok & keep,
    }


def apply_rules(checks: dict[str, np.ndarray], alive: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Rules in REASONS order; each symbol counted under the first it fails. Returns (kept mask, counts)."""
    alive = alive.copy()
    counts = {}
    for reason in REASONS:
        hit = checks[reason] & alive
        counts[reason] = int(hit.sum())
        alive &= ~hit
    return alive, counts


def prescreen(
    panel: Panel,
    reference: pd.DataFrame,
    rules: PrescreenRules,
    *,
    blacklist: dict[str, int] | None = None,
    always_keep: tuple[str, ...] = (),
) -> PrescreenResult:
    """Apply the rules in REASONS order. `always_keep` (watchlist, index ETFs) skips the liquidity/size rules."""
    blacklist = dict(blacklist or {})
    syms = pd.Index(panel.symbols)
    ref = reference.drop_duplicates("symbol").set_index("symbol").reindex(syms)
    close = last_valid(panel.close)
    bars = panel.bars_available()
    recent = np.isfinite(panel.close[-rules.max_stale_sessions :]).any(axis=0)
    vol20 = avg_volume(panel)
    shares = pd.to_numeric(ref["shares_outstanding"], errors="coerce").to_numpy(dtype=float)
    cap_unknown = ~(shares > 0)
    protected = syms.isin(list(always_keep) + list(INDEX_ETFS))
    listed = ref["name"].notna().to_numpy()
    low_volume = ~(vol20 >= rules.min_avg_volume)
    streak = pd.Series(blacklist, dtype=float).reindex(syms).fillna(0).to_numpy()
    in_blacklist = streak >= rules.blacklist_after

    sector_ok = ref["sector"].isin(rules.sectors).to_numpy() if rules.sectors else np.ones(len(syms), bool)
    checks = rule_checks(rules, listed=listed, protected=protected, bars=bars, recent=recent, close=close,
                         vol20=vol20, shares=shares, sector_ok=sector_ok, blacklisted=in_blacklist)
    alive, counts = apply_rules(checks, np.ones(len(syms), dtype=bool))

    # Blacklist bookkeeping: consecutive scans failing the volume rule; a liquid day resets the count.
    streak = np.where(low_volume & listed, streak + 1, 0)
    new_blacklist = {s: int(n) for s, n in zip(syms[streak > 0], streak[streak > 0])}
    flagged = {"market_cap_unknown": int((alive & cap_unknown & listed).sum())}
    return PrescreenResult(kept=list(syms[alive]), counts=counts, universe=len(syms), blacklist=new_blacklist,
                           flagged=flagged)


def details_candidates(
    panel: Panel, rules: PrescreenRules, *, max_symbols: int | None, blacklist: dict[str, int] | None = None,
    always_keep: tuple[str, ...] = (),
) -> pd.Series:
    """Symbol -> 20-day dollar volume for the symbols whose market cap can matter: among the `max_symbols` most liquid,
    those passing every rule the bars alone decide (history, stale, blacklist, price floor, average volume).
    `max_symbols=None`: the panel is already the most liquid (a scan's, from load_liquid_panel)."""
    if max_symbols is not None:
        panel = panel.take_columns(most_liquid(panel, max_symbols, always_keep))
    syms = pd.Index(panel.symbols)
    close, vol20 = last_valid(panel.close), avg_volume(panel)
    streak = pd.Series(blacklist or {}, dtype=float).reindex(syms).fillna(0).to_numpy()
    protected = syms.isin(list(always_keep) + list(INDEX_ETFS))
    ok = (panel.bars_available() >= rules.min_history) & np.isfinite(panel.close[-rules.max_stale_sessions :]).any(axis=0)
    ok &= protected | ((streak < rules.blacklist_after) & (close >= rules.min_price) & (vol20 >= rules.min_avg_volume))
    dollar = np.nan_to_num(vol20 * close, nan=0.0)
    return pd.Series(dollar[ok], index=syms[ok], name="dollar_volume").sort_values(ascending=False, kind="stable")


def most_liquid(panel: Panel, n: int, protected: list[str] | tuple[str, ...] = ()) -> np.ndarray:
    """Column indices of the `n` symbols with the highest 20-day dollar volume, plus every protected symbol."""
    dollar = avg_volume(panel) * last_valid(panel.close)
    order = np.argsort(-np.nan_to_num(dollar, nan=-1.0), kind="stable")
    keep = np.zeros(panel.shape[1], dtype=bool)
    keep[order[:n]] = True
    keep |= pd.Index(panel.symbols).isin(list(protected) + list(INDEX_ETFS))
    return np.flatnonzero(keep)
