"""The result schema: what a valid scan row is (pandera), and the report of rows held back with the check that failed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from technic_v4.domain.scoring.columns import BOOL_COLUMNS, FLOAT_RESULT_COLUMNS, SCORE_COLUMNS
from technic_v4.domain.scoring.score import LONG_SIGNALS, SHORT_SIGNALS, SIGNALS
from technic_v4.domain.scoring.score import SUBSCORE_BOUND, TECH_RATING_BOUND
from technic_v4.domain.validation import CHECK_COLUMN, failure_report, finite_check
LONG_PLAN_CHECK, SHORT_PLAN_CHECK = "long_stop_lt_entry_lt_target", "short_target_lt_entry_lt_stop"


def _plan_ok(signals: tuple[str, ...], low: str, high: str, name: str) -> pa.Check:
    """Rows whose Signal is in `signals` need a finite plan ordered low < Entry < high."""

    def ok(df: pd.DataFrame) -> pd.Series:
        applies = df["Signal"].isin(signals)
        return ~applies | ((df[low] < df["Entry"]) & (df["Entry"] < df[high]))  # NaN compares False

    return pa.Check(ok, name=name)


def _integer_valued(name: str) -> pa.Check:
    """Ranks and ratings are whole numbers stored as float (NaN = unknown), like every other numeric column."""
    return pa.Check(lambda x: x.isna() | (x == np.round(x)), name=f"{name}_integer")


def _bool_column() -> pa.Column:
    return pa.Column(bool, pa.Check(lambda s: s.isin([True, False]), name="bool"))


def _float_column(name: str) -> pa.Column:
    checks = [finite_check()]
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
    elif name in ("RSI14", "RSI14_w"):
        checks.append(pa.Check.in_range(0.0, 100.0))
    elif name in ("SMA10w", "SMA40w"):
        checks.append(pa.Check.gt(0))
    elif name == "RS_rating":
        checks += [pa.Check.in_range(1.0, 99.0), _integer_valued(name)]
    elif name in ("sector_rank", "rank_in_sector"):
        checks += [pa.Check.ge(1.0), _integer_valued(name)]
    return pa.Column("float64", checks, nullable=True)  # NaN = not enough history, by design


ResultSchema = pa.DataFrameSchema(
    {
        "Symbol": pa.Column(str, unique=True),
        **{c: pa.Column(str) for c in ("Name", "Sector", "Industry", "Regime")},
        # Any datetime64 unit: rows reused from parquet may come back as [us].
        "AsOf": pa.Column(checks=pa.Check(pd.api.types.is_datetime64_dtype, element_wise=False,
                                          name="datetime64_dtype"), nullable=True),
        **{c: _float_column(c) for c in FLOAT_RESULT_COLUMNS},
        # MarketCapUnknown: shares outstanding not fetched yet (MarketCap is NaN on exactly these rows); pattern flags
        # and trend-template criteria (False with too little history); PlanOK
        **{c: _bool_column() for c in BOOL_COLUMNS},
        "tt_count": pa.Column("int64", pa.Check.in_range(0, 8)),
        "Signal": pa.Column(str, pa.Check.isin(SIGNALS)),
        "PlanRule": pa.Column(str),
        # NaN unless the learned rating ran (pipeline/learned_rating); added after scoring, so optional here
        "LearnedRating": pa.Column("float64", [finite_check()], nullable=True, required=False),
    },
    checks=[
        pa.Check(lambda df: ~df["MarketCapUnknown"].astype(bool) | df["MarketCap"].isna(), name="unknown_cap_is_nan"),
        _plan_ok(LONG_SIGNALS, "Stop", "Target", LONG_PLAN_CHECK),
        _plan_ok(SHORT_SIGNALS, "Target", "Stop", SHORT_PLAN_CHECK),
    ],
    strict=False,  # the flow carries extra bookkeeping columns (fingerprint)
    name="ResultSchema",
)
CHECK_COLUMN.update({LONG_PLAN_CHECK: "Stop,Entry,Target", SHORT_PLAN_CHECK: "Target,Entry,Stop",
                     "unknown_cap_is_nan": "MarketCapUnknown,MarketCap"})


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
