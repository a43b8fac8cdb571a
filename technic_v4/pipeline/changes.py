"""Changed-symbol detection: rescore only symbols whose bars changed since the last scan.

Closed days never change in the store and split factors are applied on load, so a symbol's indicators can only change
when its last bar, its window start or its split adjustment changes. Each is in the fingerprint below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from technic_v4.pipeline.prescreen import last_valid
from technic_v4.domain.panel import FIELDS, Panel

SCORING_VERSION = "3"  # 2: MarketCapUnknown column; 3: flags, RS, weekly, plan rules. Bump when indicator/score definitions change, so old rows are never reused


def bar_fingerprints(panel: Panel, regime_label: str, reference: pd.DataFrame | None = None,
                     variant: str = "") -> pd.Series:
    """One int64 per symbol over what its row depends on: last bar, first bar, bar count, regime, version, the
    scan's plan settings (`variant`), and the reference fields shown on the row (name, sector, industry, shares
    outstanding -> MarketCap)."""
    first_idx = np.argmax(np.isfinite(panel.close), axis=0)
    cols = np.arange(panel.shape[1])
    last_date_idx = panel.shape[0] - 1 - np.argmax(np.isfinite(panel.close)[::-1], axis=0)
    frame = pd.DataFrame(
        {
            "symbol": panel.symbols,
            "as_of": str(panel.dates[-1]),
            "last_date": panel.dates[last_date_idx].astype(str),
            "bars": panel.bars_available(),
            "first_close": panel.close[first_idx, cols],
            "regime": regime_label,
            "version": SCORING_VERSION,
            "variant": variant,
            **{f"last_{f}": last_valid(getattr(panel, f)) for f in FIELDS},
        }
    )
    if reference is not None:
        ref = reference.drop_duplicates("symbol").set_index("symbol").reindex(panel.symbols)
        for col in ("name", "sector", "industry", "shares_outstanding"):
            if col in ref:
                frame[col] = ref[col].to_numpy()
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy().view(np.int64)  # int64 survives parquet
    return pd.Series(hashed, index=panel.symbols, name="fingerprint")


def split_reusable(
    fingerprints: pd.Series, previous: pd.DataFrame | None, force: list[str] | tuple[str, ...] = ()
) -> tuple[list[str], pd.DataFrame]:
    """(symbols to score, previous rows that can be reused as they are).

    `previous` is the last scan's result table with its `fingerprint` column; `force` lists symbols that must be
    rescored whatever their fingerprint says (new splits, watchlist).
    """
    if previous is None or previous.empty or "fingerprint" not in previous:
        return list(fingerprints.index), previous.iloc[0:0] if previous is not None else pd.DataFrame()
    prev = previous.drop_duplicates("Symbol").set_index("Symbol")
    old = prev["fingerprint"].astype(np.int64).reindex(fingerprints.index, fill_value=0)  # fill keeps int64 exact
    same = old.to_numpy() == fingerprints.to_numpy()
    same &= ~fingerprints.index.isin(list(force))
    reuse_syms = fingerprints.index[same]
    return list(fingerprints.index[~same]), prev.loc[reuse_syms].rename_axis("Symbol").reset_index()
