"""One settings object, read from the environment (pydantic-settings) and validated.

A bad value raises ConfigError naming the environment variable, e.g.
`TECHNIC_MAX_WORKERS='abc': Input should be a valid integer`.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from technic_v4.errors import ConfigError

DataSourceName = Literal["auto", "polygon", "flatfiles", "csv", "simulated"]  # the one list of source names
TaskRunnerName = Literal["auto", "ray", "thread"]

DEFAULT_BASE_URL = "https://api.polygon.io"
TICKER = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")  # a ticker symbol as users give it (watchlist, CSV file names)
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")


def split_urls(text: str) -> list[str]:
    """Apprise's own separators: commas and whitespace."""
    return [u for u in re.split(r"[\s,]+", text.strip()) if u]
DEFAULT_DATA_DIR = Path.home() / ".technic_v4"


class Settings(BaseSettings):
    """Process-wide settings. Field docs double as the README's config table (`technic config`). An empty
    variable (`TECHNIC_DATA_DIR=`) means its documented default, never an empty value (which, for a folder, would
    be the current directory)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True, env_ignore_empty=True)

    polygon_api_key: SecretStr | None = Field(
        None, validation_alias="POLYGON_API_KEY", description="Polygon REST key; never logged or stored."
    )
    polygon_base_url: str = Field(
        DEFAULT_BASE_URL, validation_alias="POLYGON_BASE_URL", description="Polygon REST base URL (loopback server in tests)."
    )
    data_source: DataSourceName = Field(
        "auto",
        validation_alias="TECHNIC_DATA_SOURCE",
        description="auto|polygon|flatfiles|csv|simulated; auto = polygon when a key is set, else csv when "
        "TECHNIC_CSV_DIR is set, else simulated.",
    )
    data_dir: Path = Field(
        DEFAULT_DATA_DIR,
        validation_alias="TECHNIC_DATA_DIR",
        description="Bar store, reference cache, Prefect results and scan results.",
    )
    flatfiles_dir: Path | None = Field(
        None, validation_alias="TECHNIC_FLATFILES_DIR", description="Folder of Polygon day aggregates YYYY-MM-DD.csv.gz."
    )
    csv_dir: Path | None = Field(
        None, validation_alias="TECHNIC_CSV_DIR",
        description="Folder of per-symbol daily bars SYMBOL.csv[.gz] (+ optional _reference.csv) for "
        "TECHNIC_DATA_SOURCE=csv; imported incrementally into the bar store.",
    )
    max_workers: int = Field(
        2, ge=1, le=256, validation_alias="TECHNIC_MAX_WORKERS", description="Scoring chunks / Ray tasks per scan."
    )
    async_io: bool = Field(
        True, validation_alias="TECHNIC_ASYNC_IO", description="0 = synchronous fetch path (rollback switch)."
    )
    task_runner: TaskRunnerName = Field(
        "auto",
        validation_alias="TECHNIC_TASK_RUNNER",
        description="auto|ray|thread; auto = Ray when RAY_ADDRESS names a running cluster, else threads "
        "(a fresh local Ray never beat threads on 2 cores, measured).",
    )
    panel_cache: bool = Field(
        True, validation_alias="TECHNIC_PANEL_CACHE", description="0 = read every day file per scan (rollback switch)."
    )
    max_concurrency: int = Field(
        16, ge=1, le=512, validation_alias="TECHNIC_MAX_CONCURRENCY", description="HTTP requests in flight at once."
    )
    rate_limit: float = Field(
        0.0,
        ge=0,
        validation_alias="TECHNIC_RATE_LIMIT",
        description="Max requests per minute (5 for Polygon's free tier); 0 = unlimited.",
    )
    request_timeout: float = Field(
        30.0, gt=0, validation_alias="TECHNIC_REQUEST_TIMEOUT", description="Seconds per HTTP attempt."
    )
    max_retries: int = Field(
        5, ge=0, le=50, validation_alias="TECHNIC_MAX_RETRIES", description="Retries on 429/5xx/timeouts/results:null."
    )
    request_deadline: float = Field(
        90.0, ge=0, validation_alias="TECHNIC_REQUEST_DEADLINE",
        description="Total seconds one HTTP request may take, retries and backoff included (waiting for a "
        "rate-limit slot is not counted); a server that never answers fails the scan after it. 0 = no limit.",
    )
    sim_seed: int = Field(7, validation_alias="TECHNIC_SIM_SEED", description="Seed of the simulated market.")
    sim_symbols: int = Field(
        8000, ge=50, le=200_000, validation_alias="TECHNIC_SIM_SYMBOLS", description="Listed symbols in the simulated market."
    )
    ray_address: str | None = Field(
        None, validation_alias="RAY_ADDRESS", description="Join an existing Ray cluster (e.g. auto) instead of a local one."
    )
    details_per_scan: int | Literal["auto", "all"] = Field(
        "auto",
        validation_alias="TECHNIC_DETAILS_PER_SCAN",
        description="Ticker-details calls per scan: auto = fill the scan up to ~100 calls (none on a cold scan), "
        "a number = at most that many, all = every symbol that needs them now (paid plans).",
    )
    details_max_age_days: int = Field(
        90, ge=1, le=3650, validation_alias="TECHNIC_DETAILS_MAX_AGE_DAYS",
        description="Refetch a symbol's ticker details (shares outstanding, SIC) after this many days: a quarter, "
        "as shares outstanding are reported quarterly; a split since the fetch makes them stale at once.",
    )
    settle_time: dt.time = Field(
        dt.time(20, 30), validation_alias="TECHNIC_SETTLE_TIME",
        description="New York time after which a session's daily bar is final (extended hours end 20:00); a day "
        "fetched earlier is stored provisional and refetched once after it.",
    )
    lock_timeout: float = Field(
        120.0, gt=0, validation_alias="TECHNIC_LOCK_TIMEOUT",
        description="Seconds to wait for the bar-store lock; while another scan backfills, seconds without a new day "
        "stored.",
    )
    alert_urls: SecretStr | None = Field(
        None, validation_alias="TECHNIC_ALERT_URLS",
        description="Apprise URLs (comma or space separated, e.g. json://host:port/path, mailto://, slack://) told "
        "once per scan about each screen whose members changed; never shown (they may hold tokens).",
    )
    prefect_server_linger: float = Field(
        900.0, ge=0, validation_alias="TECHNIC_PREFECT_SERVER_LINGER",
        description="Idle seconds a scan's temporary Prefect server is kept (paused, no CPU) for the next scan of "
        "the same PREFECT_HOME; 0 = Prefect's own temporary server, stopped with each process.",
    )
    ray_head: bool = Field(
        False, validation_alias="TECHNIC_RAY_HEAD", description="1 = `make server` also starts a Ray head the flows join."
    )

    @field_validator("polygon_api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, v):
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("alert_urls", mode="before")
    @classmethod
    def _check_alert_urls(cls, v):
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        raw = v.get_secret_value() if isinstance(v, SecretStr) else str(v)
        bad = [i + 1 for i, u in enumerate(split_urls(raw)) if not _URL_SCHEME.match(u)]
        if bad:  # never echo the value: it may hold tokens
            raise ValueError(f"URL number {bad} is not of the form scheme://... (an apprise URL)")
        return raw

    def alert_url_list(self) -> list[str]:
        return split_urls(self.alert_urls.get_secret_value()) if self.alert_urls else []

    @field_validator("data_dir", mode="before")
    @classmethod
    def _empty_data_dir_is_default(cls, v):
        return DEFAULT_DATA_DIR if v is None or (isinstance(v, str) and not v.strip()) else v

    @field_validator("flatfiles_dir", mode="before")
    @classmethod
    def _no_empty_folder(cls, v):
        if isinstance(v, str) and not v.strip():  # an explicit empty value (not from the environment)
            raise ValueError("is empty; give a folder (an empty path would be the current directory)")
        return v

    @field_validator("polygon_base_url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("details_per_scan", mode="before")
    @classmethod
    def _details_budget(cls, v):
        if isinstance(v, str):
            v = v.strip().lower()
            return int(v) if v.isdigit() else v
        return v

    @field_validator("details_per_scan")
    @classmethod
    def _details_not_negative(cls, v):
        if isinstance(v, int) and v < 0:
            raise ValueError("must be >= 0, auto or all")
        return v

    @field_validator("data_source", "task_runner", mode="before")
    @classmethod
    def _lower(cls, v):
        return v.strip().lower() if isinstance(v, str) else v

    @property
    def resolved_source(self) -> str:
        """`auto` resolves to polygon when a key is set, else to the CSV folder when TECHNIC_CSV_DIR names one (the
        user's own files, as `--csv-dir` alone picks them), else the simulated market."""
        if self.data_source != "auto":
            return self.data_source
        return "polygon" if self.polygon_api_key else "csv" if self.csv_dir is not None else "simulated"

    def api_key(self) -> str:
        if self.polygon_api_key is None:
            raise ConfigError("POLYGON_API_KEY is not set; set it or use TECHNIC_DATA_SOURCE=simulated")
        return self.polygon_api_key.get_secret_value()


def _env_name(field: str) -> str:
    info = Settings.model_fields.get(field)
    alias = getattr(info, "validation_alias", None) if info else None
    return alias if isinstance(alias, str) else field


def format_validation_error(exc: ValidationError, *, env_names: bool, hide: tuple[str, ...] = ()) -> str:
    """One line per bad value: the variable, the value given (unless secret) and what is wrong."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "?"
        name = _env_name(loc) if env_names else loc
        shown = "***" if loc in hide or name in hide else repr(err.get("input"))
        lines.append(f"{name}={shown}: {err['msg']}")
    return "; ".join(lines)


def build_model(model: type, **values):
    """`model(**values)`, but a bad value raises ConfigError naming the field (ScanConfig.build, EvalConfig.build)."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise ConfigError(f"invalid {model.__name__}: {format_validation_error(exc, env_names=False)}") from None


def load_settings(**overrides) -> Settings:
    """Read settings from the environment (plus explicit overrides); raise ConfigError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        msg = format_validation_error(exc, env_names=True, hide=("POLYGON_API_KEY", "polygon_api_key",
                                                                 "TECHNIC_ALERT_URLS", "alert_urls"))
        raise ConfigError(f"invalid configuration: {msg}") from None
