"""Everything one scan shares: settings, config, the bar store and the open data source."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from technic_v4.calendar import last_completed_session, previous_trading_days
from technic_v4.config import Settings, load_settings
from technic_v4.data.factory import make_source, resolve_source_name
from technic_v4.data.source import MarketDataSource
from technic_v4.store.bar_store import BarStore


@dataclass
class ScanRuntime:
    settings: Settings
    config: object  # technic_v4.api.ScanConfig (kept loose to avoid an import cycle)
    store: BarStore
    source: MarketDataSource
    source_id: str
    as_of: dt.date

    @property
    def simulated(self) -> bool:
        return bool(self.source.simulated)

    def lookback_days(self) -> list[dt.date]:
        return previous_trading_days(self.as_of, self.config.lookback_days)


def source_cache_id(settings: Settings, name: str) -> str:
    """Names the source in cache keys, so bars from two sources never answer for each other (no secrets in it)."""
    if name == "simulated":
        return f"simulated-s{settings.sim_seed}-n{settings.sim_symbols}"
    where = settings.polygon_base_url if name == "polygon" else str(settings.flatfiles_dir)
    return f"{name}-{hashlib.sha1(where.encode()).hexdigest()[:10]}"


def open_runtime(config) -> ScanRuntime:
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
