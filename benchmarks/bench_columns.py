"""What the pattern flags, relative strength and weekly columns add to a score stage, measured piece by piece.

    python -m benchmarks.bench_columns [--quick]

Side by side in one process on the same synthetic 6,000-symbol panel as bench_scoring (best of several repeats):
each added piece is timed on its own against the path without it — Bars with vs without the calendar weeks, the new
catalogue entries' latest values, the weekly columns, the flags and trend template, the result frame with vs without
the new columns, and the cross-sectional step on the joined table — and their sum is the added cost. The structure
plan rule is timed against the ATR rule the same way (it is not part of the columns' budget).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from benchmarks.bench_scoring import reference_for, synthetic_panel
from technic_v4.domain.indicators import CATALOGUE, Bars, compute_latest
from technic_v4.domain.indicators.weekly import weekly_latest
from technic_v4.domain.panel import FIELDS
from technic_v4.domain.regime import SIDEWAYS, Regime
from technic_v4.domain.scoring.columns import RESULT_COLUMNS
from technic_v4.domain.scoring.relative_strength import add_relative_strength
from technic_v4.domain.scoring.score import per_symbol_extras, score_panel, trade_plan

TARGET_S = 0.2
# Catalogue entries this issue added (everything the flags, RS legs and structure plans read).
NEW_KEYS = [k for k in CATALOGUE if (k[0] if isinstance(k, tuple) else k) in {
    "ret_126d", "ret_189d", "ret_252d", "last_open", "last_high", "last_low", "prior_high_1", "prior_low_1",
    "prior_high_20", "prior_low_20", "prior_high_251", "prior_low_251", "prior_min_range_6", "vol_ratio_50",
    "golden_cross_5", "sma150", "sma200_lag21", "swing_low_10", "swing_high_10"}]
NEW_RESULT_COLUMNS = [c for c in RESULT_COLUMNS if c in {
    "ret_126d", "ret_189d", "ret_252d", "RSI14_w", "SMA10w", "SMA40w", "PlanRule", "PlanOK"}
    or c.startswith(("new_", "tt_", "gap_up", "gap_down", "unusual", "inside", "nr7", "breakout", "golden", "death",
                     "trend_template", "RS_", "rs_", "sector_rank", "rank_in"))]


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def paired(with_it, without_it, repeat: int) -> float:
    """Best-of time of `with_it` minus best-of time of `without_it`, the two runs interleaved (a shared box's load
    drifts; interleaving exposes both to the same drift). Clipped at 0: a negative difference is noise."""
    a, b = [], []
    for _ in range(repeat):
        for fn, times in ((with_it, a), (without_it, b)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return max(0.0, min(a) - min(b))


def run(quick: bool = False, n_symbols: int = 6_000) -> dict:
    repeat = 3 if quick else 7
    regime = Regime(trend=SIDEWAYS)
    panel = synthetic_panel(n_symbols)
    reference = reference_for(panel)
    arrays = {f: getattr(panel, f) for f in FIELDS}
    score_panel(panel, reference, regime)  # warm-up

    weeks = paired(lambda: Bars.from_panel(panel), lambda: Bars.from_arrays(**arrays), repeat)
    bars = Bars.from_panel(panel)

    fresh = Bars.from_arrays(**arrays)

    def new_entries():
        fresh.cache.clear()  # none of the new entries reads another's cached series
        for key in NEW_KEYS:
            CATALOGUE[key].latest(fresh)

    catalogue_new = best(new_entries, repeat)
    weekly = best(lambda: weekly_latest(bars), repeat)
    values = compute_latest(bars)
    flags = best(lambda: per_symbol_extras(values), repeat)

    frame = score_panel(panel, reference, regime)
    old_columns = [c for c in frame.columns if c not in NEW_RESULT_COLUMNS]

    def build(columns):
        data = {c: frame[c].to_numpy() for c in columns}
        out = pd.DataFrame(data).sort_values(["TechRating", "Symbol"], ascending=[False, True], kind="stable")
        return out.reset_index(drop=True)

    frame_cost = paired(lambda: build(list(frame.columns)), lambda: build(old_columns), repeat)
    cross = best(lambda: add_relative_strength(frame, 0.01), repeat)
    signal = frame["Signal"].to_numpy()
    plan_atr = best(lambda: trade_plan(signal, values, regime, "atr"), repeat)
    plan_structure = best(lambda: trade_plan(signal, values, regime, "structure"), repeat)
    whole = best(lambda: score_panel(panel, reference, regime), repeat)

    pieces = {
        "calendar weeks in Bars": weeks,
        f"new catalogue entries ({len(NEW_KEYS)})": catalogue_new,
        "weekly columns": weekly,
        "pattern flags + tt_1..7": flags,
        f"result frame: +{len(frame.columns) - len(old_columns)} columns": frame_cost,
        "cross-sectional step (RS, sector ranks, tt_8)": cross,
    }
    added = sum(pieces.values())
    return {
        "symbols": n_symbols, "repeat": repeat, "pieces_s": pieces, "added_s": added,
        "score_panel_s": whole, "added_share_of_score_panel": added / whole,
        "plan_atr_s": plan_atr, "plan_structure_s": plan_structure,
        "targets": [{"target": f"flags, RS and weekly columns add <= {TARGET_S} s at {n_symbols:,} symbols",
                     "value": added, "pass": added <= TARGET_S}],
        "quick": quick,
    }


def markdown(r: dict) -> str:
    lines = ["## New columns: pattern flags, relative strength, weekly", "",
             f"Each added piece timed on its own on the same synthetic {r['symbols']:,}-symbol × 300-bar panel (best "
             f"of {r['repeat']}, one process); their sum is what the columns add to the score stage.", "",
             "| piece | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in r["pieces_s"].items()]
    lines += [f"| **added, total** | **{r['added_s']:.4f}** |",
              f"| score_panel now (everything, for scale) | {r['score_panel_s']:.4f} |", "",
              f"Trade plans on the same rows: ATR rule {r['plan_atr_s'] * 1e3:.1f} ms, structure rule "
              f"{r['plan_structure_s'] * 1e3:.1f} ms.", ""]
    lines += [f"- {t['target']}: {t['value']:.3f} s — {'pass' if t['pass'] else 'MISSED'}" for t in r["targets"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(run(quick="--quick" in sys.argv)))
