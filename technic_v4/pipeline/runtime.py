"""Everything one scan shares: settings, config, the bar store and the open data source."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from technic_v4.calendar import NY, is_trading_day, last_completed_session, previous_trading_days
from technic_v4.config import Settings, load_settings
from technic_v4.data.factory import make_source, resolve_source_name
from technic_v4.data.source import MarketDataSource
from technic_v4.pipeline.scan_config import ScanConfig
from technic_v4.pipeline.state import config_key
from technic_v4.store.bar_store import BarStore


@dataclass
class ScanRuntime:
    settings: Settings
    config: ScanConfig
    store: BarStore
    source: MarketDataSource
    source_id: str
    as_of: dt.date
    data_import: dict = field(default_factory=dict)  # what the CSV import did (csv source only), for the summary

    @property
    def simulated(self) -> bool:
        return bool(self.source.simulated)

    @property
    def config_key(self) -> str:
        return config_key(self.config, self.source_id)

    def lookback_days(self) -> list[dt.date]:
        return self.within_data(previous_trading_days(self.as_of, self.config.lookback_days))

    def within_data(self, days: list[dt.date]) -> list[dt.date]:
        """`days` from the data's first session on: a CSV folder starts with its files, so an earlier session is not
        a missing day to ask for and report (other sources: all of `days`)."""
        first = self.data_import.get("first_session")
        return [d for d in days if d >= dt.date.fromisoformat(first)] if first else days

    def history_and_live_day(self, today: dt.date | None = None) -> tuple[list[dt.date], dt.date | None]:
        """Closed sessions to load, plus today's unfinished session for an intraday scan during a session day."""
        today = today or dt.datetime.now(tz=NY).date()
        if self.config.intraday and is_trading_day(today) and self.as_of < today:
            return previous_trading_days(self.as_of, self.config.lookback_days - 1), today
        return self.lookback_days(), None


def source_cache_id(settings: Settings, name: str) -> str:
    """Names the source in cache keys, so bars from two sources never answer for each other (no secrets in it)."""
    if name == "simulated":
        return f"simulated-s{settings.sim_seed}-n{settings.sim_symbols}"
    where = {"polygon": settings.polygon_base_url, "csv": str(settings.csv_dir)}.get(name, str(settings.flatfiles_dir))
    return f"{name}-{hashlib.sha1(where.encode()).hexdigest()[:10]}"


def open_runtime(config: ScanConfig) -> ScanRuntime:
    overrides = {}
    if config.data_dir is not None:
        overrides["data_dir"] = config.data_dir
    if config.csv_dir is not None:
        overrides["csv_dir"] = config.csv_dir
    settings = load_settings(**overrides)
    # a folder given for this scan means the csv source (unless another is named)
    name = resolve_source_name(settings, config.data_source or ("csv" if config.csv_dir is not None else None))
    store = BarStore(settings.data_dir, lock_timeout=settings.lock_timeout)
    source = make_source(settings, name)
    data_end, data_import = prepare_source(source, store)
    as_of = config.as_of or data_end or last_completed_session()
    return ScanRuntime(
        settings=settings,
        config=config,
        store=store,
        source=source,
        source_id=source_cache_id(settings, name),
        as_of=previous_trading_days(as_of, 1)[-1],
        data_import=data_import,
    )


def prepare_source(source: MarketDataSource, store: BarStore) -> tuple[dt.date | None, dict]:
    """(the last session the data has when it ends before today, else None; the import's report).

    A CSV folder is imported into the store first (only new or changed files are parsed); its last session is the
    default as_of of a scan on it, since the files end when they were made, not at the last completed session."""
    from technic_v4.data.csvdir import CsvDirSource

    if not isinstance(source, CsvDirSource):
        return None, {}
    from technic_v4.store.csv_import import CsvImport

    bars, report = CsvImport(store, source.folder).sync()
    source.attach(bars, report.as_dict())
    return bars.last_session, report.as_dict()
