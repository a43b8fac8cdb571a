"""Drop what is not tradeable before scoring, counting every symbol under exactly one reason.

Rules run in a fixed order and a symbol is counted under the first it fails, so `kept + sum(reasons) == universe`.
All rules are vectorized over the panel's last rows; the low-volume blacklist persists across scans.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class PrescreenResult:
    kept: list[str]
    counts: dict[str, int]
    universe: int
    blacklist: dict[str, int] = field(default_factory=dict)  # symbol -> consecutive low-volume scans

    def as_dict(self) -> dict:
        return {"universe": self.universe, "kept": len(self.kept), "filtered": dict(self.counts)}


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
    cap = ref["shares_outstanding"].to_numpy(dtype=float) * close
    protected = syms.isin(list(always_keep) + list(INDEX_ETFS))
    listed = ref["name"].notna().to_numpy()
    low_volume = ~(vol20 >= rules.min_avg_volume)
    streak = pd.Series(blacklist, dtype=float).reindex(syms).fillna(0).to_numpy()
    in_blacklist = streak >= rules.blacklist_after

    checks = {
        "not_in_reference": ~listed & ~protected,
        "short_history": bars < rules.min_history,
        "stale": ~recent,
        "blacklisted": in_blacklist & ~protected,
        "price_floor": ~(close >= rules.min_price) & ~protected,
        "market_cap": ~(cap >= rules.min_market_cap) & ~protected,
        "avg_volume": low_volume & ~protected,
        "sector": (~ref["sector"].isin(rules.sectors).to_numpy() & ~protected) if rules.sectors else np.zeros(len(syms), bool),
    }
    alive = np.ones(len(syms), dtype=bool)
    counts = {}
    for reason in REASONS:
        hit = checks[reason] & alive
        counts[reason] = int(hit.sum())
        alive &= ~hit

    # Blacklist bookkeeping: consecutive scans failing the volume rule; a liquid day resets the count.
    streak = np.where(low_volume & listed, streak + 1, 0)
    new_blacklist = {s: int(n) for s, n in zip(syms[streak > 0], streak[streak > 0])}
    return PrescreenResult(kept=list(syms[alive]), counts=counts, universe=len(syms), blacklist=new_blacklist)


def most_liquid(panel: Panel, n: int, protected: list[str] | tuple[str, ...] = ()) -> np.ndarray:
    """Column indices of the `n` symbols with the highest 20-day dollar volume, plus every protected symbol."""
    dollar = avg_volume(panel) * last_valid(panel.close)
    order = np.argsort(-np.nan_to_num(dollar, nan=-1.0), kind="stable")
    keep = np.zeros(panel.shape[1], dtype=bool)
    keep[order[:n]] = True
    keep |= pd.Index(panel.symbols).isin(list(protected) + list(INDEX_ETFS))
    return np.flatnonzero(keep)
