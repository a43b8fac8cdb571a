"""What happened after each evaluated day: forward returns and trade-plan outcomes, from the clean panel's bars.

fwd_ret_{h}d = close h sessions after d / close on d - 1, both split-adjusted the same way (the panel's). The close
on d is the row's own Close (the symbol's last bar as of d, as in the scan's row). NaN when the symbol has no bar h
sessions later (halted, delisted) or the history ends before then; the two are counted apart.

Trade plan (Target before Stop): the first session k = 1..H after d whose high reaches the target (a long's; a short's
low) or whose low reaches the stop. A session that touches both counts as Stop first: daily bars cannot tell the order,
so the conservative reading is taken (and counted as `both_same_session`). The plan is decided by that first session:
a cell records the session of its first event only (the other stays NEVER, or equals it on a tie), so tracking
stops there, which keeps a 63-session horizon cheap.
"""

from __future__ import annotations

import numpy as np

NEVER = 0  # "not within the longest horizon" in the first-session columns


def forward_returns(close: np.ndarray, rows: np.ndarray, cols: np.ndarray, entry_row: np.ndarray,
                    horizons: tuple[int, ...]) -> tuple[dict[str, np.ndarray], dict[str, dict[str, int]]]:
    """({fwd_ret_{h}d: per-cell array}, {h: {"no_bar": n, "beyond_data": n}}) for cells (rows, cols)."""
    n_rows = close.shape[0]
    entry = np.where(entry_row >= 0, close[np.maximum(entry_row, 0), cols], np.nan)
    out, missing = {}, {}
    for h in horizons:
        later = rows + h
        inside = later < n_rows
        exit_close = np.where(inside, close[np.minimum(later, n_rows - 1), cols], np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"fwd_ret_{h}d"] = exit_close / entry - 1.0
        has_entry = np.isfinite(entry)
        missing[str(h)] = {
            "no_bar": int((has_entry & inside & ~np.isfinite(exit_close)).sum()),
            "beyond_data": int((has_entry & ~inside).sum()),
        }
    return out, missing


def plan_first_sessions(high: np.ndarray, low: np.ndarray, rows: np.ndarray, cols: np.ndarray, direction: np.ndarray,
                        stop: np.ndarray, target: np.ndarray, max_h: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(session the target was reached, session the stop was reached, cells touching both on that session), each
    up to the plan's first event: at most one is set unless both happened on the same session.

    Sessions count from 1; NEVER (0) = not (yet) within `max_h` sessions. `direction` is +1 long, -1 short, NaN no plan.
    """
    n_rows, n_cols = high.shape
    first_target = np.zeros(len(rows), dtype=np.int16)
    first_stop = np.zeros(len(rows), dtype=np.int16)
    high_flat, low_flat = high.ravel(), low.ravel()
    for side in (1.0, -1.0):  # longs: target above (reached by a high), stop below (by a low); shorts mirrored
        reach_target, reach_stop = (high_flat, low_flat) if side > 0 else (low_flat, high_flat)
        active = np.flatnonzero(direction == side)  # cells whose plan is still open (neither target nor stop yet)
        for k in range(1, max_h + 1):
            active = active[(first_target[active] == NEVER) & (first_stop[active] == NEVER) & (rows[active] + k < n_rows)]
            if not active.size:
                break
            cell = (rows[active] + k) * n_cols + cols[active]
            with np.errstate(invalid="ignore"):
                if side > 0:
                    hit_target, hit_stop = reach_target[cell] >= target[active], reach_stop[cell] <= stop[active]
                else:
                    hit_target, hit_stop = reach_target[cell] <= target[active], reach_stop[cell] >= stop[active]
            first_target[active[hit_target]] = k
            first_stop[active[hit_stop]] = k
    both = int(((first_target == first_stop) & (first_target != NEVER)).sum())
    return first_target, first_stop, both


PLAN_OUTCOMES = ("target", "stop", "neither")


def plan_outcome_codes(first_target: np.ndarray, first_stop: np.ndarray, h: int) -> np.ndarray:
    """Per cell the index in PLAN_OUTCOMES within h sessions (a tie goes to the stop)."""
    t = np.where(first_target == NEVER, h + 1, first_target)
    s = np.where(first_stop == NEVER, h + 1, first_stop)
    return np.where((s <= h) & (s <= t), 1, np.where((t <= h) & (t < s), 0, 2))


def plan_outcome(first_target: np.ndarray, first_stop: np.ndarray, h: int) -> np.ndarray:
    """Per cell "target", "stop" or "neither" within h sessions (a tie goes to the stop)."""
    return np.array(PLAN_OUTCOMES, dtype=object)[plan_outcome_codes(first_target, first_stop, h)]
