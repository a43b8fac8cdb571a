"""Which symbols to score and which rows to reuse: a row is reused when its bar fingerprint equals the one in the
previous scan of the same configuration; new splits and the watchlist are always rescored."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from technic_v4.domain.panel import Panel
from technic_v4.domain.scoring.relative_strength import add_relative_strength, market_return
from technic_v4.pipeline.changes import bar_fingerprints, split_reusable


@dataclass
class RescorePlan:
    to_score: list[str]
    reused: pd.DataFrame  # previous rows kept as they are
    fingerprints: pd.Series  # symbol -> int64
    priority: np.ndarray  # bool per symbol of to_score: watchlist and last scan's signals go first


def plan_rescore(panel: Panel, reference: pd.DataFrame, regime_label: str, previous: pd.DataFrame | None, *,
                 force: list[str], first: list[str], reuse: bool = True, variant: str = "") -> RescorePlan:
    fingerprints = bar_fingerprints(panel, regime_label, reference, variant)
    to_score, reused = split_reusable(fingerprints, previous if reuse else None, force=force)
    return RescorePlan(to_score, reused, fingerprints, np.isin(to_score, first))


def assemble_results(scored: pd.DataFrame, plan: RescorePlan, market_close: np.ndarray | None = None) -> pd.DataFrame:
    """Scored rows (with their fingerprints) and reused rows in one table ranked by TechRating, with the
    cross-sectional columns (relative strength, tt_8, trend_template) computed across all of them: a reused row's
    rank is today's. `market_close` is the market proxy's (T,) closes (NaN rs_vs_market_63d without it)."""
    if len(scored):
        scored = scored.assign(fingerprint=plan.fingerprints.reindex(scored["Symbol"]).to_numpy())
        columns = list(scored.columns)
    else:  # nothing changed since the last scan: every row is reused as it is
        columns = list(plan.reused.columns)
    # Empty frames are left out: a 0-row frame without some column would turn the bool flags into object.
    frames = [f for f in (scored, plan.reused) if len(f)] or [f for f in (scored, plan.reused) if len(f.columns)]
    if not frames:
        return scored
    results = pd.concat(frames, ignore_index=True)[columns]
    market = market_return(market_close)[0] if market_close is not None else np.nan
    results = add_relative_strength(results, market)
    return results.sort_values("TechRating", ascending=False, na_position="last", ignore_index=True)
