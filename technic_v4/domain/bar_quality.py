"""Bar quality: the pandera schema for input bars and the quarantine the flow applies before scoring.

The schema is the definition of a valid bar. Validation is lazy (every failure is collected, not just the first) and
reports rows, never hides them (the result schema lives next to scoring, `technic_v4.domain.scoring.results_schema`):

* `quarantine_panel(panel)` -> (clean_panel, quarantine): bars failing `BarSchema` become NaN in every field of the
  returned panel (so the indicators skip them like a missing day, see `technic_v4.domain.indicators.base`) and are listed with
  the check that failed. Validating 1.8M long rows with pandera takes seconds, so a vectorized numpy pre-check
  (`suspect_bars`, the same rules on the (T, N) arrays) picks the suspect bars and pandera runs on those rows only.
  Tests run pandera on whole frames to prove the pre-check misses nothing the schema catches.

A bar is a (date, symbol) cell where any field is present (not NaN). NaN volume is allowed (volume indicators then go
NaN); NaN in a price of an otherwise present bar is a failure ("not_nullable"): a partial bar is not data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from technic_v4.domain.panel import FIELDS, Panel
from technic_v4.domain.validation import CHECK_COLUMN, FINITE, failure_report, finite_check, json_value  # noqa: F401

PRICES = ("open", "high", "low", "close")
HIGH_CHECK, LOW_CHECK = "high_ge_max_open_close", "low_le_min_open_close"


def _high_ok(df: pd.DataFrame) -> pd.Series:
    incomplete = df[["open", "high", "close"]].isna().any(axis=1)  # reported by not_nullable instead
    return incomplete | (df["high"] >= np.maximum(df["open"], df["close"]))


def _low_ok(df: pd.DataFrame) -> pd.Series:
    incomplete = df[["open", "low", "close"]].isna().any(axis=1)
    return incomplete | (df["low"] <= np.minimum(df["open"], df["close"]))


BarSchema = pa.DataFrameSchema(
    {
        "date": pa.Column("datetime64[ns]"),
        "symbol": pa.Column(str),
        **{p: pa.Column("float64", [pa.Check.gt(0), finite_check()]) for p in PRICES},
        "volume": pa.Column("float64", [pa.Check.ge(0), finite_check()], nullable=True),
    },
    checks=[
        pa.Check(_high_ok, name=HIGH_CHECK),
        pa.Check(_low_ok, name=LOW_CHECK),
    ],
    unique=["symbol", "date"],
    report_duplicates="all",
    name="BarSchema",
)
bars_schema = BarSchema
CHECK_COLUMN.update({HIGH_CHECK: "high", LOW_CHECK: "low"})


def suspect_bars(panel: Panel) -> np.ndarray:
    """(T, N) bool: cells holding a bar that breaks a BarSchema rule — the schema's checks, vectorized."""
    o, h, lo, c, v = (getattr(panel, f) for f in FIELDS)
    present = ~np.isnan(o)
    for a in (h, lo, c, v):
        present |= ~np.isnan(a)
    bad = np.zeros(present.shape, dtype=bool)
    for a in (o, h, lo, c):
        with np.errstate(invalid="ignore"):
            bad |= ~(a > 0) | np.isinf(a)  # NaN fails `> 0`: not_nullable
    with np.errstate(invalid="ignore"):
        bad |= (v < 0) | np.isinf(v)
        bad |= h < np.maximum(o, c)
        bad |= lo > np.minimum(o, c)
    return bad & present


def bars_frame(panel: Panel, mask: np.ndarray) -> pd.DataFrame:
    """Long rows (date, symbol, fields) for the cells of `mask`, in BarSchema's dtypes."""
    t, n = np.nonzero(mask)
    out = {"date": panel.dates[t].astype("datetime64[ns]"), "symbol": panel.symbols[n].astype(object)}
    out.update({f: getattr(panel, f)[t, n] for f in FIELDS})
    return pd.DataFrame(out)


QUARANTINE_COLUMNS = ["symbol", "date", "check", "column", "value", "details"]


def quarantine_panel(panel: Panel) -> tuple[Panel, pd.DataFrame]:
    """(panel with failing bars set to NaN in all fields, quarantine report: one row per failing bar and check)."""
    suspects = suspect_bars(panel)
    if not suspects.any():
        return panel, pd.DataFrame(columns=QUARANTINE_COLUMNS)
    rows = bars_frame(panel, suspects)
    _, failures = failure_report(rows, BarSchema)
    failed = rows.loc[failures["index"]]
    report = pd.DataFrame({
        "symbol": failed["symbol"].to_numpy(),
        "date": failed["date"].dt.strftime("%Y-%m-%d").to_numpy(),  # JSON-safe: the report goes into the summary
        "check": failures["check"].to_numpy(),
        "column": failures["column"].to_numpy(),
        "value": [json_value(v) for v in failures["value"]],
        "details": [" ".join(f"{f}={r[f]:.6g}" for f in FIELDS) for r in failed[list(FIELDS)].to_dict("records")],
    })
    # Quarantine exactly what the schema rejected (the pre-check only chose which rows pandera looks at).
    t = np.searchsorted(panel.dates, failed["date"].to_numpy().astype("datetime64[D]"))
    n = pd.Index(panel.symbols).get_indexer(failed["symbol"])
    arrays = {}
    for f in FIELDS:
        a = getattr(panel, f).copy()
        a[t, n] = np.nan
        arrays[f] = a
    clean = Panel(dates=panel.dates, symbols=panel.symbols, **arrays)
    report = report.sort_values(["symbol", "date", "check"], kind="stable", ignore_index=True)
    return clean, report
