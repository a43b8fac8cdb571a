"""Each evaluated day's universe and regime, exactly as a scan as of that day decides them, for all days at once.

A scan as of d sees the `window` sessions ending at d, split-adjusted with the splits executed by d. The panel here is
adjusted as of its last day; `asof_factors` gives, per (day, symbol), the factor of the splits executed after that day,
so dividing a price (multiplying a volume) by it gives d's view. The prescreen rules are the scan's own
(`technic_v4.pipeline.prescreen.rule_checks`, which broadcasts over (days, symbols) arrays), evaluated on every
day's window; the stateful low-volume blacklist
is left out (it depends on which scans ran before, not on the data).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from technic_v4.data.columns import INDEX_ETFS, BAR_FIELDS
from technic_v4.domain.panel import Panel
from technic_v4.domain.panel_load import adjust_for_splits
from technic_v4.domain.market_proxy import MarketProxy, market_proxy
from technic_v4.domain.regime import Regime, compute_regime
from technic_v4.domain.scoring.history import count_in_window, last_row_on_or_before
from technic_v4.pipeline.prescreen import PrescreenRules, apply_rules, rule_checks


def asof_factors(panel: Panel, splits: pd.DataFrame | None) -> np.ndarray:
    """(T, N) product of split ratios executed after each row's day (within the panel): the panel's adjustment of
    that row's bars, by adjust_for_splits itself. A scan as of day d sees every price of its window / factor[d]."""
    factor, scratch = np.ones(panel.shape), np.ones(panel.shape)  # scratch takes the other fields' (unused) updates
    if splits is not None and len(splits):
        adjust_for_splits({**{f: scratch for f in BAR_FIELDS}, "close": factor}, panel.dates, panel.symbols, splits)
    return factor


def daily_regimes(panel: Panel, rows: np.ndarray, window: int) -> dict[int, Regime]:
    """Regime per panel row in `rows`, from SPY's bars in that day's window (compute_regime itself, per day); without
    SPY from the equal-weighted index of the panel, as the scan's regime (market_proxy), cut to each day's window."""
    if "SPY" not in set(panel.symbols):
        proxy = market_proxy(panel)
        empty = panel.select([])
        out = {}
        for r in rows.tolist():
            lo = max(0, r - window + 1)
            day = Panel(dates=panel.dates[lo : r + 1], symbols=empty.symbols,
                        **{f: getattr(empty, f)[lo : r + 1] for f in BAR_FIELDS})
            out[r] = compute_regime(day, MarketProxy(close=proxy.close[lo : r + 1], source=proxy.source))
        return out
    spy = panel.select(["SPY"])
    out = {}
    for r in rows.tolist():  # one column, a few hundred days: the regime's own code, not a copy of it
        lo = max(0, r - window + 1)
        day = Panel(dates=spy.dates[lo : r + 1], symbols=spy.symbols,
                    **{f: getattr(spy, f)[lo : r + 1] for f in BAR_FIELDS})
        out[r] = compute_regime(day)
    return out


def _avg_volume_20(volume: np.ndarray, rows: np.ndarray, window: int = 20) -> np.ndarray:
    """prescreen.avg_volume on each day's last 20 rows (the same nansum, so the same float result)."""
    out = np.full((len(rows), volume.shape[1]), np.nan)
    for i, r in enumerate(rows.tolist()):
        v = volume[max(0, r - window + 1) : r + 1]
        n = np.isfinite(v).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = np.where(n >= window * 0.75, np.nansum(v, axis=0) / n, np.nan)
    return out


def kept_mask(
    panel: Panel,
    reference: pd.DataFrame,
    rules: PrescreenRules,
    max_symbols: int,
    rows: np.ndarray,
    window: int,
    factor: np.ndarray,
) -> tuple[np.ndarray, dict[str, int]]:
    """(len(rows), N) True where the scan as of that day keeps the symbol; filtered counts summed over the days.

    `panel` is raw (not quarantined: the scan prescreens before quarantine), adjusted as of its last day.
    """
    syms = pd.Index(panel.symbols)
    ref = reference.drop_duplicates("symbol").set_index("symbol").reindex(syms)
    finite = np.isfinite(panel.close)
    cols = np.arange(len(syms))
    last = last_row_on_or_before(finite)[rows]
    seen = last > (rows - window)[:, None]
    f_day = factor[rows]
    close = np.where(seen, panel.close[np.maximum(last, 0), cols] / f_day, np.nan)
    vol20 = _avg_volume_20(panel.volume, rows) * f_day
    bars = count_in_window(finite, window)[rows]
    recent = count_in_window(finite, rules.max_stale_sessions)[rows] > 0
    protected = np.broadcast_to(syms.isin(INDEX_ETFS), close.shape)
    listed = ref["name"].notna().to_numpy()
    shares = pd.to_numeric(ref["shares_outstanding"], errors="coerce").to_numpy(dtype=float)
    sector_ok = ref["sector"].isin(rules.sectors).to_numpy() if rules.sectors else np.ones(len(syms), bool)

    dollar = np.nan_to_num(vol20 * close, nan=-1.0)
    order = np.argsort(-dollar, axis=1, kind="stable")
    liquid = np.zeros(close.shape, dtype=bool)
    np.put_along_axis(liquid, order[:, :max_symbols], True, axis=1)
    liquid |= protected
    checks = rule_checks(rules, listed=listed, protected=protected, bars=bars, recent=recent, close=close,
                         vol20=vol20, shares=shares, sector_ok=sector_ok, blacklisted=np.zeros(close.shape, bool))
    alive, counts = apply_rules(checks, liquid)
    return alive, counts
