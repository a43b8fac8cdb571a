"""Publish a scan's screens from its one result table: per screen a CSV and a parquet in the run's folder and the
members kept for the next run's new / dropped / flipped (results/screens/<name>/<history key>.json).

Every screen reads the same scored table: adding a screen costs its `where` (about a millisecond), a sort and two
small files, never a second scoring pass.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pyarrow as pa

from technic_v4.pipeline.publish import CSV_OPTIONS, csv_table, results_dir, run_dir  # run_dir: results/runs/<id>/
from technic_v4.pipeline.screens.apply import ScreenResult, member_changes, member_positions
from technic_v4.pipeline.screens.model import Screen
from technic_v4.store.atomic import atomic_write, atomic_write_text

def history_path(data_dir: Path, name: str, key: str) -> Path:
    return results_dir(data_dir) / "screens" / name / f"{key}.json"


def read_history(path: Path) -> tuple[pd.DataFrame | None, str | None]:
    """(the members of the screen's last run: Symbol, Signal; its as-of), or (None, None) before its first run."""
    if not path.exists():
        return None, None
    data = json.loads(path.read_text())
    return pd.DataFrame({"Symbol": list(data["members"]), "Signal": list(data["members"].values())}), data["as_of"]


def screen_results(results: pd.DataFrame, screens: list[Screen], *, data_dir: Path, config_key: str,
                   run_signals=None) -> list[ScreenResult]:
    """Members and changes of every screen (nothing written yet: a bad screen fails before any file is touched)."""
    out = []
    for screen in screens:
        positions = member_positions(results, screen, run_signals)
        chosen = results.iloc[positions]
        key = screen.history_key(run_signals, config_key)
        previous, previous_as_of = read_history(history_path(data_dir, screen.name, key))
        out.append(ScreenResult(screen=screen, members=chosen, positions=positions,
                                changes=member_changes(previous, chosen), history_key=key,
                                previous_as_of=previous_as_of, previous=previous))
    return out


def write_screens(done: list[ScreenResult], results: pd.DataFrame, *, data_dir: Path, run_id: str,
                  as_of: dt.date) -> Path | None:
    """Each screen's rows (all columns, its order) as CSV + parquet in the run folder, its members for next time,
    and screens.json listing them. The table is converted to Arrow once; each screen takes its rows from it."""
    if not done:
        return None
    folder = run_dir(data_dir, run_id) / "screens"
    public = results.drop(columns=["fingerprint"], errors="ignore")
    full, csv_full = pa.Table.from_pandas(public, preserve_index=False), csv_table(public)
    listing = []
    for result in done:
        name, rows = result.screen.name, pa.array(result.positions, type=pa.int64())
        parquet = atomic_write(folder / f"{name}.parquet", lambda p: pq.write_table(full.take(rows), p))
        csv_path = atomic_write(folder / f"{name}.csv",
                                lambda p: pa_csv.write_csv(csv_full.take(rows), p, CSV_OPTIONS))
        members = result.members
        kept = dict(zip(members["Symbol"].astype(str), members["Signal"].astype(str)))
        atomic_write_text(history_path(data_dir, name, result.history_key),
                          json.dumps({"as_of": as_of.isoformat(), "where": result.screen.expression.canonical,
                                      "members": kept}))
        result.paths = {"csv": str(csv_path), "parquet": str(parquet)}
        listing.append(result.as_dict())
    atomic_write_text(folder / "screens.json", json.dumps(listing, indent=2, default=str))
    return folder
