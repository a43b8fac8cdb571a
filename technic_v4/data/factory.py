"""Build the configured market-data source. The only place that knows every source class."""

from __future__ import annotations

from typing import get_args

from technic_v4.config import DataSourceName, Settings
from technic_v4.data.source import MarketDataSource
from technic_v4.errors import ConfigError

SOURCE_NAMES: tuple[str, ...] = get_args(DataSourceName)


def resolve_source_name(settings: Settings, override: str | None = None) -> str:
    name = (override or settings.data_source).lower()
    if name not in SOURCE_NAMES:
        raise ConfigError(f"data source {name!r} is unknown; use one of {', '.join(SOURCE_NAMES)}")
    if name == "auto":
        return settings.resolved_source
    return name


def make_source(settings: Settings, override: str | None = None) -> MarketDataSource:
    """polygon (REST, needs POLYGON_API_KEY), flatfiles (TECHNIC_FLATFILES_DIR), csv (TECHNIC_CSV_DIR) or simulated
    (embedded default)."""
    name = resolve_source_name(settings, override)
    if name == "simulated":
        from technic_v4.data.simulated import SimulatedSource

        return SimulatedSource(seed=settings.sim_seed, n_symbols=settings.sim_symbols)
    if name == "polygon":
        from technic_v4.data.polygon.source import PolygonSource

        settings.api_key()  # raises a clear ConfigError when the key is missing
        rest = PolygonSource.from_settings(settings)
        if settings.flatfiles_dir is None:
            return rest
        from technic_v4.data.flatfiles import FlatFileSource

        # Flat files for the backfill: bars from files, REST only for reference data, splits and days without a file.
        return FlatFileSource(settings.flatfiles_dir, reference_source=rest, rest_fallback=True)
    if name == "csv":
        from technic_v4.data.csvdir import CsvDirSource

        if settings.csv_dir is None:
            raise ConfigError("TECHNIC_DATA_SOURCE=csv needs TECHNIC_CSV_DIR (a folder of SYMBOL.csv or SYMBOL.csv.gz "
                              "files; `technic scan --source csv --csv-dir DIR`)")
        return CsvDirSource(settings.csv_dir)
    if name == "flatfiles":
        from technic_v4.data.flatfiles import FlatFileSource

        if settings.flatfiles_dir is None:
            raise ConfigError("TECHNIC_DATA_SOURCE=flatfiles needs TECHNIC_FLATFILES_DIR (a folder of YYYY-MM-DD.csv.gz)")
        # Flat files carry bars only; reference data (shares outstanding, SIC) and splits come from REST when a
        # key is set. Without one, FlatFileSource raises a clear error when the scan asks for reference data.
        reference = None
        if settings.polygon_api_key is not None:
            from technic_v4.data.polygon.source import PolygonSource

            reference = PolygonSource.from_settings(settings)
        return FlatFileSource(settings.flatfiles_dir, reference_source=reference)
    raise AssertionError(name)
