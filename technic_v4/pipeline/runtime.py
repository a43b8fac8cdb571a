"""Everything one scan shares: settings, config, the bar store and the open data source."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

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

    @property
    def simulated(self) -> bool:
        return bool(self.source.simulated)

    @property
    def config_key(self) -> str:
        return config_key(self.config, self.source_id)

    def lookback_days(self) -> list[dt.date]:
        return previous_trading_days(self.as_of, self.config.lookback_days)

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
    where = settings.polygon_base_url if name == "polygon" else str(settings.flatfiles_dir)
    return f"{name}-{hashlib.sha1(where.encode()).hexdigest()[:10]}"


def open_runtime(config: ScanConfig) -> ScanRuntime:
    overrides = {}
    if config.data_dir is not None:
        overrides["data_dir"] = config.data_dir
    settings = load_settings(**overrides)
    name = resolve_source_name(settings, config.data_source)
    as_of = config.as_of or last_completed_session()
    return ScanRuntime(
        settings=settings,
        config=config,
        store=BarStore(settings.data_dir, lock_timeout=settings.lock_timeout),
        source=make_source(settings, name),
        source_id=source_cache_id(settings, name),
        as_of=previous_trading_days(as_of, 1)[-1],
    )
