"""The data contract between sources, the bar store and the scoring engine.

Everything crosses layer boundaries as pandas DataFrames with these exact columns, so a source can be swapped
without touching the store (Qlib-style provider -> cache layering).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# One trading day of bars for many symbols (grouped daily, flat file, snapshot). Prices are raw (unadjusted):
# the store keeps closed days immutable and applies split factors when it builds a panel.
DAY_COLUMNS: dict[str, str] = {
    "symbol": "object",
    "open": "float64",
    "high": "float64",
    "low": "float64",
    "close": "float64",
    "volume": "float64",
    "vwap": "float64",
    "transactions": "float64",
}

# The bar fields a dates x symbols panel holds, one array each.
BAR_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")

# One symbol's bars over a date range (per-ticker range endpoint).
RANGE_COLUMNS: dict[str, str] = {"date": "datetime64[ns]", **{k: v for k, v in DAY_COLUMNS.items() if k != "symbol"}}

# The universe (reference data), one row per listed symbol.
REFERENCE_COLUMNS: dict[str, str] = {
    "symbol": "object",
    "name": "object",
    "type": "object",  # CS, ETF, ADRC, PFD, WARRANT ...
    "active": "bool",
    "primary_exchange": "object",
    "sic_code": "object",
    "sector": "object",
    "industry": "object",
    "shares_outstanding": "float64",
    "list_date": "object",  # ISO date string or None
}

# Splits: on execution_date, one old share became split_to/split_from new shares.
SPLIT_COLUMNS: dict[str, str] = {
    "symbol": "object",
    "execution_date": "datetime64[ns]",
    "split_from": "float64",
    "split_to": "float64",
}

# Market-wide ETFs the regime model reads; always kept in the universe regardless of prescreen.
INDEX_ETFS = ("SPY", "QQQ", "TLT", "SHY", "HYG", "LQD", "VIXY")


def empty_frame(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


def conform(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Return `df` with exactly `columns` in order and dtype; missing optional numeric columns become NaN."""
    out = {}
    for col, dtype in columns.items():
        if col in df.columns:
            out[col] = df[col].astype(dtype) if dtype != "object" else df[col]
        elif dtype == "float64":
            out[col] = np.full(len(df), np.nan)
        else:
            raise KeyError(f"missing required column {col!r}; got {list(df.columns)}")
    return pd.DataFrame(out, index=pd.RangeIndex(len(df)))
