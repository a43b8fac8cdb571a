"""The market a scan measures against: SPY's closes when the panel has SPY, else an equal-weighted index of the panel.

Per-symbol CSV folders (the real S&P 500 sample, broker exports) often carry no SPY file. Rather than report every
market-relative reading as unknown, the scan then uses the equal-weighted index of the symbols it loaded: each session's
return is the mean of the day-over-day close returns of the symbols that traded on both days, chained from 100. Whoever
uses the proxy says which one it is (`MarketProxy.source`), so a report never passes an index off as SPY.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from technic_v4.domain.panel import Panel

MARKET_SYMBOL = "SPY"
EQUAL_WEIGHTED = "equal-weighted index"
MIN_PROXY_SYMBOLS = 20  # fewer names than this make a noisy index: no proxy (NaN) rather than a misleading one


@dataclass(frozen=True)
class MarketProxy:
    close: np.ndarray  # (T,) float64 aligned with panel.dates; NaN where the market has no reading
    source: str  # "SPY", "equal-weighted index of N symbols" or "none"

    @property
    def is_spy(self) -> bool:
        return self.source == MARKET_SYMBOL


def equal_weighted_index(close: np.ndarray, min_symbols: int = MIN_PROXY_SYMBOLS) -> np.ndarray:
    """(T,) index level from (T, N) closes: 100 at the first session, then chained mean daily returns.

    A session where fewer than `min_symbols` symbols traded on it and the session before is NaN (no reading)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = close[1:] / close[:-1] - 1.0
    counts = np.isfinite(rets).sum(axis=1)
    mean = np.full(len(rets), np.nan)
    ok = counts >= min_symbols
    mean[ok] = np.nanmean(rets[ok], axis=1)
    level = np.full(close.shape[0], np.nan)
    if close.shape[0] == 0:
        return level
    level[0] = 100.0
    level[1:] = 100.0 * np.cumprod(1.0 + np.where(ok, mean, 0.0))
    level[1:][~ok] = np.nan  # a session without a reading stays NaN; the chain carries on after it
    return level


def market_proxy(panel: Panel, min_symbols: int = MIN_PROXY_SYMBOLS) -> MarketProxy:
    """SPY's closes when SPY is in the panel, else the equal-weighted index of every symbol in it."""
    hit = np.flatnonzero(panel.symbols == MARKET_SYMBOL)
    if hit.size:
        return MarketProxy(close=np.asarray(panel.close[:, hit[0]], dtype=float), source=MARKET_SYMBOL)
    n = panel.shape[1]
    if n < min_symbols:
        return MarketProxy(close=np.full(panel.shape[0], np.nan), source="none")
    return MarketProxy(close=equal_weighted_index(panel.close, min_symbols), source=f"{EQUAL_WEIGHTED} of {n} symbols")
