"""Pandera schemas for input bars and for scan results, and the two reports the flow acts on.

The schemas are the definition of "valid". Both validations are lazy (every failure is collected, not just the first)
and report rows, never hide them:

* `quarantine_panel(panel)` -> (clean_panel, quarantine): bars failing `BarSchema` become NaN in every field of the
  returned panel (so the indicators skip them like a missing day, see `technic_v4.indicators.base`) and are listed with
  the check that failed. Validating 1.8M long rows with pandera takes seconds, so a vectorized numpy pre-check
  (`suspect_bars`, the same rules on the (T, N) arrays) picks the suspect bars and pandera runs on those rows only.
  Tests run pandera on whole frames to prove the pre-check misses nothing the schema catches.
* `validate_results_report(df)` -> (valid, invalid): rows failing `ResultSchema` are held back with `check` and
  `column` saying why. A frame-wide failure (a missing column, a wrong dtype) invalidates every row.

A bar is a (date, symbol) cell where any field is present (not NaN). NaN volume is allowed (volume indicators then go
NaN); NaN in a price of an otherwise present bar is a failure ("not_nullable"): a partial bar is not data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from technic_v4.scoring import LONG_SIGNALS, RESULT_COLUMNS, SCORE_COLUMNS, SHORT_SIGNALS, SIGNALS
from technic_v4.scoring import SUBSCORE_BOUND, TECH_RATING_BOUND
from technic_v4.store.panel import FIELDS, Panel

PRICES = ("open", "high", "low", "close")
HIGH_CHECK, LOW_CHECK = "high_ge_max_open_close", "low_le_min_open_close"
FINITE = "finite"


def _finite_check() -> pa.Check:
    # Check.gt(0) lets +inf through; NaN is left to `nullable`.
    return pa.Check(lambda s: ~np.isinf(s), element_wise=False, name=FINITE, ignore_na=True)


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
        **{p: pa.Column("float64", [pa.Check.gt(0), _finite_check()]) for p in PRICES},
        "volume": pa.Column("float64", [pa.Check.ge(0), _finite_check()], nullable=True),
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
# Which column a frame-level check is about, for the report.
CHECK_COLUMN = {HIGH_CHECK: "high", LOW_CHECK: "low", "multiple_fields_uniqueness": "symbol,date"}


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


def failure_report(df: pd.DataFrame, schema: pa.DataFrameSchema) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate lazily; (failure_cases, one row per (row index, check)), the latter with column and value."""
    try:
        schema.validate(df, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases
    else:
        return pd.DataFrame(), pd.DataFrame(columns=["index", "check", "column", "value"])
    per_row = cases[cases["index"].notna()].copy()
    per_row["index"] = per_row["index"].astype(np.int64)
    # Frame-level checks list every column of a failing row; keep one entry per (row, check).
    subject = per_row["check"].map(CHECK_COLUMN)
    first_subject = subject.fillna("").str.split(",").str[0]
    per_row = per_row.assign(column=subject.fillna(per_row["column"]), _other=per_row["column"] != first_subject)
    per_row = per_row.sort_values("_other", kind="stable").drop_duplicates(["index", "check"]).sort_index()
    return cases, per_row.rename(columns={"failure_case": "value"})[["index", "check", "column", "value"]]


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
        "value": [_json_value(v) for v in failures["value"]],
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


def _json_value(v):
    """Failure values as JSON-safe scalars (the report goes into the scan summary)."""
    if isinstance(v, (float, np.floating)):
        return None if np.isnan(v) else (str(v) if np.isinf(v) else float(v))
    return v if isinstance(v, (int, str, type(None))) else str(v)


# ---- results ------------------------------------------------------------------------------------------------------

FLOAT_RESULT_COLUMNS = [c for c in RESULT_COLUMNS if c not in ("Symbol", "Name", "Sector", "Industry", "AsOf",
                                                                "Signal", "Regime")]
LONG_PLAN_CHECK, SHORT_PLAN_CHECK = "long_stop_lt_entry_lt_target", "short_target_lt_entry_lt_stop"


def _plan_ok(signals: tuple[str, ...], low: str, high: str, name: str) -> pa.Check:
    """Rows whose Signal is in `signals` need a finite plan ordered low < Entry < high."""

    def ok(df: pd.DataFrame) -> pd.Series:
        applies = df["Signal"].isin(signals)
        return ~applies | ((df[low] < df["Entry"]) & (df["Entry"] < df[high]))  # NaN compares False

    return pa.Check(ok, name=name)


def _float_column(name: str) -> pa.Column:
    checks = [_finite_check()]
    if name in SCORE_COLUMNS:
        checks.append(pa.Check.in_range(-SUBSCORE_BOUND, SUBSCORE_BOUND))
    elif name == "TechRating":
        checks.append(pa.Check.in_range(-TECH_RATING_BOUND, TECH_RATING_BOUND))
    elif name == "RiskScore":
        checks.append(pa.Check.in_range(0.0, 10.0))
    elif name in ("Close", "Entry", "Stop", "Target", "RewardRisk", "ATR14", "SMA20", "SMA50", "SMA200", "EMA20"):
        checks.append(pa.Check.gt(0))
    elif name in ("Volume", "AvgVolume20", "DollarVolume20", "MarketCap", "vol_realized_20", "vol_spike_ratio"):
        checks.append(pa.Check.ge(0))
    elif name == "RSI14":
        checks.append(pa.Check.in_range(0.0, 100.0))
    return pa.Column("float64", checks, nullable=True)  # NaN = not enough history, by design


ResultSchema = pa.DataFrameSchema(
    {
        "Symbol": pa.Column(str, unique=True),
        **{c: pa.Column(str) for c in ("Name", "Sector", "Industry", "Regime")},
        # Any datetime64 unit: rows reused from parquet may come back as [us].
        "AsOf": pa.Column(checks=pa.Check(pd.api.types.is_datetime64_dtype, element_wise=False,
                                          name="datetime64_dtype"), nullable=True),
        **{c: _float_column(c) for c in FLOAT_RESULT_COLUMNS},
        "Signal": pa.Column(str, pa.Check.isin(SIGNALS)),
    },
    checks=[
        _plan_ok(LONG_SIGNALS, "Stop", "Target", LONG_PLAN_CHECK),
        _plan_ok(SHORT_SIGNALS, "Target", "Stop", SHORT_PLAN_CHECK),
    ],
    strict=False,  # the flow carries extra bookkeeping columns (fingerprint)
    name="ResultSchema",
)
CHECK_COLUMN.update({LONG_PLAN_CHECK: "Stop,Entry,Target", SHORT_PLAN_CHECK: "Target,Entry,Stop"})


def validate_results_report(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows passing ResultSchema, failing rows + `check` and `column`, several reasons joined by "; ")."""
    cases, reasons = failure_report(df.reset_index(drop=True), ResultSchema)  # index labels = row positions
    if cases.empty:
        return df, df.iloc[0:0].assign(check=pd.Series(dtype=object), column=pd.Series(dtype=object))
    frame_wide = cases[cases["index"].isna()]
    if len(frame_wide):  # a missing column or a wrong dtype makes every row suspect
        every_row = pd.DataFrame({
            "index": np.arange(len(df)),
            "check": "; ".join(frame_wide["check"].astype(str).unique()),
            # A missing column is reported with the schema's name as `column` and the column's as the failure case.
            "column": "; ".join(frame_wide["failure_case"].where(frame_wide["check"] == "column_in_dataframe",
                                                                  frame_wide["column"]).astype(str).unique()),
        })
        reasons = pd.concat([reasons, every_row], ignore_index=True)
    why = reasons.groupby("index").agg(
        check=("check", lambda s: "; ".join(dict.fromkeys(s.astype(str)))),
        column=("column", lambda s: "; ".join(dict.fromkeys(s.astype(str)))),
    )
    bad = np.zeros(len(df), dtype=bool)
    bad[why.index.to_numpy()] = True
    invalid = df[bad].assign(check=why["check"].to_numpy(), column=why["column"].to_numpy())
    return df[~bad], invalid
