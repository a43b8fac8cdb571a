"""Pandera reporting shared by the bar and result schemas: lazy validation turned into one row per (row, check)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

FINITE = "finite"
# Which column a frame-level check is about, for the report; each schema registers its own checks.
CHECK_COLUMN: dict[str, str] = {"multiple_fields_uniqueness": "symbol,date"}


def finite_check() -> pa.Check:
    # Check.gt(0) lets +inf through; NaN is left to `nullable`.
    return pa.Check(lambda s: ~np.isinf(s), element_wise=False, name=FINITE, ignore_na=True)


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


def json_value(v):
    """Failure values as JSON-safe scalars (the report goes into the scan summary)."""
    if isinstance(v, (float, np.floating)):
        return None if np.isnan(v) else (str(v) if np.isinf(v) else float(v))
    return v if isinstance(v, (int, str, type(None))) else str(v)
