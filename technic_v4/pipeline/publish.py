"""Publish a scan: parquet history, latest.csv/parquet (atomic), what changed since the last scan, a markdown report."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from technic_v4.domain.scoring.score import LONG_SIGNALS, SHORT_SIGNALS
from technic_v4.store.atomic import atomic_write, atomic_write_text

ACTIONABLE = LONG_SIGNALS + SHORT_SIGNALS


@dataclass(frozen=True)
class PublishedPaths:
    history: Path
    latest_csv: Path
    latest_parquet: Path
    report: Path


def results_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "results"


def config_results(data_dir: Path, key: str) -> Path:
    """Where the last table of one scan configuration lives (see technic_v4.pipeline.state.config_key)."""
    return results_dir(data_dir) / "by-config" / key / "latest.parquet"


def read_previous(data_dir: Path, key: str) -> tuple[pd.DataFrame | None, str | None]:
    """(the last result table of this configuration with fingerprints, its as-of), or (None, None) on its first scan."""
    path = config_results(data_dir, key)
    if not path.exists():
        return None, None
    table = pd.read_parquet(path)
    as_of = str(pd.Timestamp(table["AsOf"].max()).date()) if "AsOf" in table and table["AsOf"].notna().any() else None
    return table, as_of


def signal_changes(previous: pd.DataFrame | None, current: pd.DataFrame, signals=None) -> dict[str, list[str]]:
    """New, dropped and flipped signals versus the previous scan: among the run's `signals` when it filters (a
    longs-only run lists no shorts), else among every actionable signal."""
    wanted = list(signals) if signals else list(ACTIONABLE)
    cur = current.loc[current["Signal"].isin(wanted)].set_index("Symbol")["Signal"]
    if previous is None or previous.empty:
        return {"new": sorted(cur.index), "dropped": [], "changed": []}
    prev = previous.loc[previous["Signal"].isin(wanted)].set_index("Symbol")["Signal"]
    both = cur.index.intersection(prev.index)
    return {
        "new": sorted(cur.index.difference(prev.index)),
        "dropped": sorted(prev.index.difference(cur.index)),
        "changed": sorted(both[cur.loc[both].to_numpy() != prev.loc[both].to_numpy()]),
    }


CSV_OPTIONS = pa_csv.WriteOptions(quoting_style="needed")
CSV_DECIMALS = 6


def csv_table(results: pd.DataFrame) -> pa.Table:
    """latest.csv's rows: public columns, floats to 6 decimals (volumes stay whole numbers, never 1.6e+07), dates as
    YYYY-MM-DD. Arrow's writer takes 0.03 s where pandas' to_csv took 0.13 s at 3,600 rows."""
    public = results.drop(columns=[c for c in results.columns if c == "fingerprint"])
    floats = public.select_dtypes("float").columns
    public = public.assign(**{c: public[c].round(CSV_DECIMALS) for c in floats})
    table = pa.Table.from_pandas(public, preserve_index=False)
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.date32(), safe=False))
    return table


def publish(
    results: pd.DataFrame, *, data_dir: Path, as_of: dt.date, report_md: str, meta: dict, key: str
) -> PublishedPaths:
    """Write every output atomically. `results` may carry internal columns (fingerprint); latest.csv drops them.
    latest.* is the last scan of any configuration (what `technic top` shows); by-config/<key>/ feeds the next
    scan of the same configuration."""
    out = results_dir(data_dir)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    history = out / "history" / f"as_of={as_of.isoformat()}" / f"scan-{stamp}.parquet"
    table = pa.Table.from_pandas(results, preserve_index=False)  # converted once, written three times
    atomic_write(history, lambda p: pq.write_table(table, p))
    latest_parquet = atomic_write(out / "latest.parquet", lambda p: pq.write_table(table, p))
    atomic_write(config_results(data_dir, key), lambda p: pq.write_table(table, p))
    csv = csv_table(results)
    latest_csv = atomic_write(out / "latest.csv", lambda p: pa_csv.write_csv(csv, p, CSV_OPTIONS))
    report = atomic_write_text(out / "latest.md", report_md)
    atomic_write_text(out / "latest.json", json.dumps(meta, indent=2, default=str))
    return PublishedPaths(history=history, latest_csv=latest_csv, latest_parquet=latest_parquet, report=report)
