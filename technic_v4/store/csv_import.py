"""Incremental import of a per-symbol CSV folder into the bar store (Qlib's dump_bin "update" mode is the model).

Layout under the store root, one folder per CSV folder imported (keyed by its resolved path):

    imports/csv-<id>/manifest.json      per file: name, size, mtime_ns, sha1, rows, rejects; the reference file's too
    imports/csv-<id>/bars.parquet       every file's bars as parsed, sorted by date: what CsvDirSource serves a day at a time
    imports/csv-<id>/reference.parquet  the reference file as parsed (when there is one)

A file whose size and mtime match its manifest entry is not opened. One whose size or mtime changed is read and
hashed; the same sha1 (a copy, a `touch`) only refreshes the entry, a new one is parsed again. The sessions whose bars
differ between the old and the new parse (rows added, removed or changed) are deleted from the bar store, so the
scan's fetch stage asks the source for those days again (`ensure_days` unchanged) and the panel cache re-reads them.
A removed file drops its sessions the same way; a new or removed symbol or a changed reference file also drops the
store's cached reference (the listing). Everything is written atomically and the manifest last, under the store lock:
an import killed half-way leaves the old manifest, and the next import repeats the work.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from technic_v4.data.columns import SPLIT_COLUMNS, empty_frame
from technic_v4.data.csvdir import BAR_COLUMNS, CsvBars, PRICE_FIELDS, combine, list_folder, read_symbol_file
from technic_v4.data.csvref import listing_frame, read_reference_file
from technic_v4.store.atomic import atomic_write, atomic_write_text
from technic_v4.store.bar_store import BarStore

FORMAT = 1
OWNER_STATE = "csv_import_owner"  # the import that last fed the store's day files
MAX_LISTED = 20  # rejected rows / changed names listed in the report (all are counted)
PARSE_THREADS = 4


def import_id(folder: Path) -> str:
    return "csv-" + hashlib.sha1(str(Path(folder).expanduser().resolve()).encode()).hexdigest()[:10]


@dataclass
class ImportReport:
    """What one import did, counted: the scan summary's `data_import`."""

    folder: str
    files: int = 0
    files_read: int = 0  # parsed this time (new or changed content)
    files_unchanged: int = 0  # size and mtime (or, after a touch, the sha1) as last time: not parsed
    files_removed: int = 0
    skipped: list[str] = field(default_factory=list)  # files that are not SYMBOL.csv[.gz]
    rows: int = 0  # data rows in all files
    bars: int = 0  # rows that became bars in the store (rows - rejected)
    rows_rejected: dict[str, int] = field(default_factory=dict)  # rule -> rows kept out of the store
    rejected_examples: list[dict] = field(default_factory=list)
    not_numbers: int = 0  # fields that were text but not a number (read as NaN, the bar then quarantined)
    empty_fields: dict[str, int] = field(default_factory=dict)  # field -> bars with it empty (NaN)
    zero_volume: int = 0
    sessions: int = 0
    first_session: str | None = None
    last_session: str | None = None
    symbols_late_start: int = 0  # files that start after the folder's first session (IPOs, spin-offs)
    sessions_changed: int = 0  # sessions dropped from the bar store to be served again
    sessions_replaced: int = 0  # stored sessions another source or CSV folder had written, dropped to be served again
    splits_dropped: bool = False  # splits another source had stored were forgotten (the files are split-adjusted)
    reference_file: bool = False
    reference_rows: int = 0
    reference_changed: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _same_stat(entry: dict | None, path: Path, stat) -> bool:
    return bool(entry) and entry["name"] == path.name and (entry["size"], entry["mtime_ns"]) == (stat.st_size,
                                                                                               stat.st_mtime_ns)


def _read(path: Path, symbol: str, entry: dict | None):
    """(sha1 of the file, its ParsedFile, or None when the bytes are those already imported)."""
    data = path.read_bytes()
    digest = _sha1(data)
    if entry and entry["sha1"] == digest:
        return digest, None
    return digest, read_symbol_file(path, symbol, data)  # DataSourceError naming the file


def _changed_sessions(old: pd.DataFrame | None, new: pd.DataFrame | None) -> np.ndarray:
    """Sessions (datetime64[D]) whose bar differs between two parses of one file (NaN equals NaN)."""
    frames = [f[list(BAR_COLUMNS)] for f in (old, new) if f is not None and len(f)]
    if len(frames) < 2:
        return np.unique(frames[0]["date"].to_numpy(dtype="datetime64[D]")) if frames else np.array([], "datetime64[D]")
    both = pd.concat(frames, ignore_index=True)
    return np.unique(both.loc[~both.duplicated(keep=False), "date"].to_numpy(dtype="datetime64[D]"))


def _quality(bars: pd.DataFrame) -> dict:
    return {"empty": {c: int(bars[c].isna().sum()) for c in (*PRICE_FIELDS, "volume")},
            "zero_volume": int((bars["volume"] == 0).sum())}


class CsvImport:
    """The import of one CSV folder into one bar store."""

    def __init__(self, store: BarStore, folder: Path | str):
        self.store, self.folder = store, Path(folder).expanduser()
        self.root = store.root / "imports" / import_id(self.folder)
        self.bars_path = self.root / "bars.parquet"

    def _manifest(self) -> dict:
        empty = {"format": FORMAT, "files": {}, "reference": None}
        try:
            manifest = json.loads((self.root / "manifest.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return empty
        return manifest if manifest.get("format") == FORMAT and self.bars_path.exists() else empty

    def _read_bars(self) -> pd.DataFrame:
        return pq.read_table(self.bars_path).to_pandas()

    def sync(self) -> tuple[CsvBars, ImportReport]:
        """Bring the import up to date with the folder; (the bars to serve, what was done)."""
        started = time.perf_counter()
        report = ImportReport(folder=str(self.folder))
        listing = list_folder(self.folder)  # before the lock: a missing folder fails fast
        with self.store.lock():
            manifest = self._manifest()
            old_files: dict = manifest["files"]
            files: dict = {}
            parsed: dict[str, pd.DataFrame] = {}  # symbol -> its new bars (new or changed files only)
            stats = {symbol: path.stat() for symbol, path in listing.files.items()}
            opened = [s for s, p in listing.files.items() if not _same_stat(old_files.get(s), p, stats[s])]
            # decompressing and parsing release the GIL for much of the time: a few threads use both cores
            with ThreadPoolExecutor(max_workers=PARSE_THREADS) as pool:
                results = dict(zip(opened, pool.map(lambda s: _read(listing.files[s], s, old_files.get(s)), opened)))
            for symbol, path in listing.files.items():
                stat, entry = stats[symbol], old_files.get(symbol)
                if symbol not in results:
                    files[symbol] = entry
                    report.files_unchanged += 1
                    continue
                digest, one = results[symbol]
                if one is None:  # a copy or a touch: the same bytes, not parsed
                    files[symbol] = {**entry, "name": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
                    report.files_unchanged += 1
                    continue
                parsed[symbol] = one.bars
                files[symbol] = {
                    "name": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha1": digest,
                    "rows": one.rows, "bars": len(one.bars), "rejects": one.rejects[:MAX_LISTED],
                    "rejected": dict(Counter(r["rule"] for r in one.rejects)), "not_numbers": len(one.not_numbers),
                    "first": str(one.bars["date"].min().date()) if len(one.bars) else None,
                    "last": str(one.bars["date"].max().date()) if len(one.bars) else None,
                    **_quality(one.bars),
                }
                report.files_read += 1
            removed = sorted(set(old_files) - set(files))
            report.files_removed = len(removed)
            reference, ref_entry = self._reference(listing.reference, manifest.get("reference"), report)
            sessions = manifest.get("sessions", 0)
            changed = np.array([], dtype="datetime64[D]")
            table = None
            if parsed or removed:
                old = self._read_bars() if old_files else None
                by_symbol = old.groupby("symbol", sort=False).indices if old is not None else {}
                gone = set(parsed) | set(removed)
                for symbol in sorted(gone):
                    before = old.iloc[by_symbol[symbol]] if symbol in by_symbol else None
                    changed = np.union1d(changed, _changed_sessions(before, parsed.get(symbol)))
                kept = old[~old["symbol"].isin(gone)] if old is not None else None
                table = combine(parsed, kept)
                sessions = int(table["date"].nunique())
            foreign = self._foreign_days(table, first_import=not old_files)
            report.sessions_replaced = len(foreign)
            # the bar store forgets the changed sessions (and the listing) before the manifest says they are imported
            for day in sorted(set(changed.tolist()) | foreign):
                self.store.delete_day(day)
            if report.reference_changed or set(files) != set(old_files) or foreign:
                self.store.drop_reference()
            owner = {"import": self.root.name, "folder": str(self.folder)}
            if self.store.read_state(OWNER_STATE) != owner and self.store.read_splits() is not None:
                # splits another source recorded would adjust these split-adjusted files a second time (AAPL's 7:1
                # of 2014); the next source to ask fetches its splits again (one call)
                self.store.write_splits(empty_frame(SPLIT_COLUMNS))
                self.store.write_state("splits", {})
                report.splits_dropped = True
            self.store.write_state(OWNER_STATE, owner)
            if table is not None:
                arrow = pa.Table.from_pandas(table, preserve_index=False)
                atomic_write(self.bars_path, lambda p: pq.write_table(arrow, p, compression="zstd"))
            atomic_write_text(self.root / "manifest.json",
                              json.dumps({"format": FORMAT, "folder": str(self.folder), "files": files,
                                          "reference": ref_entry, "sessions": sessions}, indent=1))
        report.sessions = sessions
        self._count(report, files, listing.skipped, len(changed))
        listed = listing_frame(sorted(files), reference)
        first = dt.date.fromisoformat(report.first_session) if report.first_session else None
        last = dt.date.fromisoformat(report.last_session) if report.last_session else None
        bars = CsvBars((lambda: table) if table is not None else self._read_bars, listed, first, last)
        report.seconds = round(time.perf_counter() - started, 3)
        return bars, report

    def _foreign_days(self, table: pd.DataFrame | None, first_import: bool) -> set[dt.date]:
        """Stored sessions of this folder's span that another source or another CSV folder wrote (one data dir fed
        by the simulated market, Polygon or a second folder): they are not this folder's bars, so they go."""
        owner = self.store.read_state(OWNER_STATE) or {}
        if not self.store.bars_dir.is_dir():
            return set()
        if table is None:
            table = pq.read_table(self.bars_path, columns=["date"]).to_pandas() if self.bars_path.exists() else None
        if table is None or not len(table):
            return set()
        mine = owner.get("import") == self.root.name and not first_import
        foreign = set()
        for day in pd.to_datetime(table["date"].unique()).date:  # one meta read per session of the files
            info = self.store.day_info(day)
            if info is not None and (not mine or info.get("source") != "csv"):
                foreign.add(day)
        return foreign

    def _reference(self, path: Path | None, entry: dict | None, report: ImportReport):
        """(the reference file's frame or None, its manifest entry); parsed again only when its bytes changed."""
        cached = self.root / "reference.parquet"
        if path is None:
            report.reference_changed = entry is not None
            cached.unlink(missing_ok=True)
            return None, None
        data = path.read_bytes()
        digest = _sha1(data)
        report.reference_file = True
        if entry and entry["sha1"] == digest and cached.exists():
            frame = pq.read_table(cached).to_pandas()
        else:
            frame = read_reference_file(path, data)
            atomic_write(cached, lambda p: pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), p))
            report.reference_changed = True
        report.reference_rows = len(frame)
        return frame, {"name": path.name, "sha1": digest, "rows": len(frame)}

    @staticmethod
    def _count(report: ImportReport, files: dict, skipped: list[str], changed: int) -> None:
        report.files, report.skipped, report.sessions_changed = len(files), skipped, changed
        rejected: Counter = Counter()
        empty: Counter = Counter()
        for symbol, e in sorted(files.items()):
            report.rows += e["rows"]
            report.bars += e["bars"]
            report.not_numbers += e["not_numbers"]
            report.zero_volume += e["zero_volume"]
            rejected.update(e["rejected"])
            empty.update(e["empty"])
            report.rejected_examples += [{"symbol": symbol, **r} for r in e["rejects"]]
        report.rows_rejected = dict(rejected)
        report.rejected_examples = report.rejected_examples[:MAX_LISTED]
        report.empty_fields = {k: v for k, v in empty.items() if v}
        firsts = sorted(e["first"] for e in files.values() if e["first"])
        lasts = sorted(e["last"] for e in files.values() if e["last"])
        if firsts:
            report.first_session, report.last_session = firsts[0], lasts[-1]
            report.symbols_late_start = sum(1 for f in firsts if f > firsts[0])
