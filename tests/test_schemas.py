"""Bar and result schemas: each bad kind is caught and reported with its row; the numpy pre-check agrees with pandera."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pandera.errors import SchemaErrors

from technic_v4.domain.regime import SIDEWAYS, Regime
from technic_v4.domain.bar_quality import BarSchema, bars_frame, quarantine_panel, suspect_bars
from technic_v4.domain.scoring.results_schema import ResultSchema, validate_results_report
from technic_v4.domain.scoring.score import score_panel
from technic_v4.domain.panel import FIELDS, Panel

T, N = 40, 6


def clean_panel(seed=3) -> Panel:
    rng = np.random.default_rng(seed)
    c = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, (T, N)), axis=0))
    o = c * np.exp(rng.normal(0, 0.003, (T, N)))
    fields = {"open": o, "high": np.maximum(o, c) * 1.01, "low": np.minimum(o, c) * 0.99, "close": c,
              "volume": rng.lognormal(12, 0.3, (T, N))}
    fields = {k: v.copy() for k, v in fields.items()}
    for f in fields.values():
        f[:5, 5] = np.nan  # a late listing: missing bars are not bad bars
    return Panel(dates=np.datetime64("2024-03-01") + np.arange(T), symbols=np.array([f"S{i}" for i in range(N)],
                 dtype=object), **fields)


def with_bad(field: str, value_fn, t=10, n=2) -> Panel:
    p = clean_panel()
    arr = getattr(p, field)
    arr[t, n] = value_fn(p, t, n)
    return p


BAD_BARS = {
    "negative close": ("close", lambda p, t, n: -1.0, "greater_than(0)"),
    "zero open": ("open", lambda p, t, n: 0.0, "greater_than(0)"),
    "infinite high": ("high", lambda p, t, n: np.inf, "finite"),
    "high below close": ("high", lambda p, t, n: p.close[t, n] * 0.999, "high_ge_max_open_close"),
    "high below open": ("high", lambda p, t, n: p.open[t, n] * 0.999, "high_ge_max_open_close"),
    "low above open": ("low", lambda p, t, n: p.open[t, n] * 1.001, "low_le_min_open_close"),
    "low above close": ("low", lambda p, t, n: p.close[t, n] * 1.001, "low_le_min_open_close"),
    "negative volume": ("volume", lambda p, t, n: -5.0, "greater_than_or_equal_to(0)"),
    "infinite volume": ("volume", lambda p, t, n: np.inf, "finite"),
    "missing open": ("open", lambda p, t, n: np.nan, "not_nullable"),
    "missing close": ("close", lambda p, t, n: np.nan, "not_nullable"),
}


def present_cells(p: Panel) -> np.ndarray:
    return np.logical_or.reduce([~np.isnan(getattr(p, f)) for f in FIELDS])


def pandera_failures(p: Panel) -> set[tuple[int, str]]:
    """(row, check) pairs from pandera run on EVERY bar of the panel: the definition."""
    rows = bars_frame(p, present_cells(p))
    with pytest.raises(SchemaErrors) as err:
        BarSchema.validate(rows, lazy=True)
    cases = err.value.failure_cases
    return rows, {(int(i), c) for i, c in zip(cases["index"], cases["check"])}


@pytest.mark.parametrize("kind", list(BAD_BARS))
def test_each_bad_bar_is_caught_by_pandera_and_by_the_precheck(kind):
    field, value_fn, check = BAD_BARS[kind]
    p = with_bad(field, value_fn)
    rows, failures = pandera_failures(p)
    bad_row = int(np.flatnonzero((rows["symbol"] == "S2") & (rows["date"] == pd.Timestamp("2024-03-11")))[0])
    assert (bad_row, check) in failures and {r for r, _ in failures} == {bad_row}
    assert suspect_bars(p).sum() == 1 and suspect_bars(p)[10, 2]

    clean, quarantine = quarantine_panel(p)
    assert check in set(quarantine["check"]) and set(quarantine["symbol"]) == {"S2"}
    assert set(quarantine["date"]) == {"2024-03-11"} and set(quarantine.columns) >= {"check", "column", "value"}
    assert all(np.isnan(getattr(clean, f)[10, 2]) for f in FIELDS)  # the whole bar, every field
    untouched = np.ones((T, N), dtype=bool)
    untouched[10, 2] = False
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(clean, f)[untouched], getattr(p, f)[untouched])
    json.dumps(quarantine.to_dict("records"), allow_nan=False)


def test_clean_panel_passes_untouched():
    p = clean_panel()
    BarSchema.validate(bars_frame(p, present_cells(p)), lazy=True)
    clean, quarantine = quarantine_panel(p)
    assert clean is p and quarantine.empty and list(quarantine.columns)[:3] == ["symbol", "date", "check"]


def test_missing_volume_is_allowed():
    p = with_bad("volume", lambda p, t, n: np.nan)
    assert not suspect_bars(p).any() and quarantine_panel(p)[1].empty


def test_precheck_agrees_with_pandera_on_random_corruption():
    p = clean_panel(seed=11)
    rng = np.random.default_rng(5)
    for _ in range(25):
        field = FIELDS[rng.integers(5)]
        t, n = rng.integers(T), rng.integers(N)
        getattr(p, field)[t, n] = rng.choice([-1.0, 0.0, np.inf, np.nan, getattr(p, field)[t, n] * rng.choice([0.9,
                                                                                                               1.1])])
    rows, failures = pandera_failures(p)
    t_idx = np.searchsorted(p.dates, rows["date"].to_numpy().astype("datetime64[D]"))
    n_idx = pd.Index(p.symbols).get_indexer(rows["symbol"])
    by_pandera = np.zeros((T, N), dtype=bool)
    failed_rows = sorted({r for r, _ in failures})
    by_pandera[t_idx[failed_rows], n_idx[failed_rows]] = True
    np.testing.assert_array_equal(suspect_bars(p), by_pandera)


def test_duplicate_symbol_date_is_caught_in_long_bars():
    p = clean_panel()
    rows = bars_frame(p, present_cells(p))
    rows = pd.concat([rows, rows.iloc[[3]]], ignore_index=True)
    with pytest.raises(SchemaErrors) as err:
        BarSchema.validate(rows, lazy=True)
    cases = err.value.failure_cases
    assert set(cases.loc[cases["check"] == "multiple_fields_uniqueness", "index"]) == {3, len(rows) - 1}


# ---- results --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    rng = np.random.default_rng(8)
    t, n = 300, 40
    c = 30 * np.exp(np.cumsum(rng.normal(0.0005, 0.02, (t, n)), axis=0))
    c[:, :8] = 30 * np.exp(np.cumsum(np.full((t, 8), 0.004) + rng.normal(0, 0.004, (t, 8)), axis=0))  # longs
    c[:, 8:16] = 300 * np.exp(np.cumsum(np.full((t, 8), -0.004) + rng.normal(0, 0.004, (t, 8)), axis=0))  # shorts
    c[:250, 16] = np.nan  # short history: NaN scores are allowed
    o = np.vstack([c[:1], c[:-1]])
    panel = Panel(dates=np.datetime64("2023-01-02") + np.arange(t), symbols=np.array([f"R{i}" for i in range(n)],
                  dtype=object), open=o, high=np.maximum(o, c) * 1.01, low=np.minimum(o, c) * 0.99, close=c,
                  volume=np.full((t, n), 1e6))
    ref = pd.DataFrame({"symbol": panel.symbols, "name": "x", "sector": "s", "industry": "i",
                        "shares_outstanding": 1e8})
    df = score_panel(panel, ref, Regime(trend=SIDEWAYS))
    df["fingerprint"] = np.arange(n)  # the flow's extra bookkeeping column
    return df


def test_scored_results_are_valid_and_keep_extra_columns(results):
    assert results["Signal"].isin(["Long", "Strong Long"]).any() and results["Signal"].isin(["Short",
                                                                                             "Strong Short"]).any()
    assert results["TechRating"].isna().any()
    valid, invalid = validate_results_report(results)
    assert invalid.empty and len(valid) == len(results) and "fingerprint" in valid.columns


def first(df, signals):
    return int(np.flatnonzero(df["Signal"].isin(signals))[0])


BAD_RESULTS = {
    "signal outside the set": (lambda d: d.assign(Signal=d["Signal"].where(d.index != 3, "Buy")), [3], "isin", "Signal"),
    "sub-score above 3": (lambda d: d.assign(TrendScore=d["TrendScore"].where(d.index != 4, 3.5)), [4], "in_range",
                          "TrendScore"),
    "risk above 10": (lambda d: d.assign(RiskScore=d["RiskScore"].where(d.index != 5, 10.5)), [5], "in_range",
                      "RiskScore"),
    "infinite value": (lambda d: d.assign(ret_5d=d["ret_5d"].where(d.index != 6, np.inf)), [6], "finite", "ret_5d"),
    "duplicate symbol": (lambda d: d.assign(Symbol=d["Symbol"].where(d.index != 7, d.loc[8, "Symbol"])), [7, 8],
                         "field_uniqueness", "Symbol"),
}


@pytest.mark.parametrize("kind", list(BAD_RESULTS))
def test_each_bad_result_row_is_reported(results, kind):
    corrupt, rows, check, column = BAD_RESULTS[kind]
    bad = corrupt(results.copy())
    valid, invalid = validate_results_report(bad)
    assert sorted(invalid.index) == rows and len(valid) == len(bad) - len(rows)
    assert all(check in c for c in invalid["check"]) and all(column in c for c in invalid["column"])
    with pytest.raises(SchemaErrors):
        ResultSchema.validate(bad, lazy=True)


def test_long_and_short_plans_must_be_ordered(results):
    bad = results.copy()
    i, j = first(bad, ["Long", "Strong Long"]), first(bad, ["Short", "Strong Short"])
    bad.loc[i, "Stop"] = bad.loc[i, "Entry"] + 1  # long stop above entry
    bad.loc[j, "Stop"] = bad.loc[j, "Entry"] - 1  # short stop below entry
    k = int(np.flatnonzero(bad["Signal"].isin(["Long", "Strong Long"]))[1])
    bad.loc[k, "Target"] = np.nan  # a long without a target is not a plan
    _, invalid = validate_results_report(bad)
    assert sorted(invalid.index) == sorted([i, j, k])
    assert invalid.loc[i, "check"] == "long_stop_lt_entry_lt_target"
    assert invalid.loc[j, "check"] == "short_target_lt_entry_lt_stop"


def test_frame_wide_failures_invalidate_every_row(results):
    _, invalid = validate_results_report(results.drop(columns=["RiskScore"]))
    assert len(invalid) == len(results) and invalid["column"].str.contains("RiskScore").all()
    _, invalid = validate_results_report(results.assign(TechRating=results["TechRating"].astype(object)))
    assert len(invalid) == len(results) and invalid["column"].str.contains("TechRating").all()
