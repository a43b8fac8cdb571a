"""A simulated market with exactly `n_listed` symbols in Polygon's listing of the scanner's types (CS, ADRC, ETF).

For budget tests against the loopback server: the surplus active stocks become preferreds (type PFD). They still trade
in grouped daily, as at Polygon where grouped daily holds ~11,000 tickers and the CS/ADRC/ETF listing ~6,000, so the
scanner meets liquid symbols that are not listed and must handle them explicitly. The most liquid surplus stocks are
the ones reclassified, so the case is not hidden among thin names.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

from technic_v4.data.simulated import SimulatedMarket

OTHER_TYPE = "PFD"
SYMBOLS_FOR_6000 = 6400  # ever-listed symbols whose active CS/ADRC/ETF listing passes 6,000 on the sessions used here


class ListedMarket(SimulatedMarket):
    """SimulatedMarket whose listing at `end` holds `n_listed` CS/ADRC/ETF symbols; the rest of the active stocks are PFD."""

    def __init__(self, n_listed: int = 6000, *, seed: int = 7, n_symbols: int = SYMBOLS_FOR_6000, end: dt.date | None = None):
        super().__init__(seed=seed, n_symbols=n_symbols, end=end)
        active = self.reference()
        surplus = len(active) - n_listed
        if surplus < 0:
            raise ValueError(f"{n_symbols} simulated symbols list only {len(active)} at {self.end}; raise n_symbols")
        stocks = active[active["type"] != "ETF"]
        volume = self.u.base_volume * self.u.price0
        cols = self._col.get_indexer(stocks["symbol"])
        chosen = cols[np.argsort(-volume[cols], kind="stable")[:surplus]]
        types = self.u.type.copy()
        types[chosen] = OTHER_TYPE
        self.u = dataclasses.replace(self.u, type=types)
        self.other_type_symbols = sorted(self.symbols[chosen])

    def __repr__(self) -> str:
        return f"ListedMarket({len(self.reference())} listed at {self.end}, {len(self.other_type_symbols)} {OTHER_TYPE})"
