"""The evaluation's listing: the scan's reference plus names delisted since, so a past day's universe keeps the names
that traded then (no survivorship bias). Only sources that can list delisted names with their details add them."""

from __future__ import annotations

import pandas as pd


def lists_delisted(source) -> bool:
    """Whether the source can list the names delisted since (else past universes lack them: survivorship bias)."""
    market = getattr(source, "market", None)  # the simulated market keeps every name it ever listed
    return market is not None and hasattr(market, "reference")


def with_delisted(reference: pd.DataFrame, source) -> tuple[pd.DataFrame, str]:
    """(reference + delisted names the source knows, a note saying where delisted names came from)."""
    market = getattr(source, "market", None)
    if not lists_delisted(source):
        return reference, (f"{source.name} cannot list delisted names with shares outstanding: names delisted "
                           "before today are missing from past universes (survivorship bias possible)")
    every = market.reference(include_inactive=True)
    gone = every[~every["symbol"].isin(reference["symbol"])]
    merged = pd.concat([reference, gone], ignore_index=True) if len(gone) else reference
    return merged, f"{len(gone)} delisted names added from the {source.name} listing"
