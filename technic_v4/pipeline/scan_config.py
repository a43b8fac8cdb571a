"""What one scan does: `ScanConfig`, validated with errors that name the field. Every field is a flow parameter."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal

from pydantic import (
    ConfigDict, Field, SerializerFunctionWrapHandler, ValidationInfo, field_validator, model_serializer,
    model_validator,
)

from technic_v4.config import TICKER, DataSourceName, build_model
from technic_v4.pipeline.scan_form import form_schema
from technic_v4.domain.scoring.signals import SIGNALS
from technic_v4.domain.scoring.plan_rules import DEFAULT_MIN_REWARD_RISK, DEFAULT_PLAN_RULE, PLAN_RULES
from technic_v4.pipeline.config_fields import FloorsAndScreens
from technic_v4.pipeline.prescreen import DEFAULT_RULES
from technic_v4.pipeline.screens.model import with_screens

DEFAULT_LOOKBACK_DAYS = 300  # sessions per symbol: the scan's and each evaluated day's window
SignalName = Literal[SIGNALS]  # the names scoring gives (domain/scoring/signals.py)


class ScanConfig(FloorsAndScreens):
    """What one scan does. Every field is also a parameter of the Prefect flow `scan` (shown in the UI)."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=form_schema)  # the UI's form

    max_symbols: int = Field(6000, ge=1, le=200_000, description="Most liquid N symbols (20d dollar volume) considered")
    data_source: DataSourceName | None = Field(
        None, description="Overrides TECHNIC_DATA_SOURCE for this scan"
    )
    allow_short_history: bool = Field(
        False, description="Accept lookback_days below what the indicators need (their values are NaN, not made up)"
    )
    lookback_days: int = Field(DEFAULT_LOOKBACK_DAYS, ge=30, le=2520, description="Trading days of history loaded per symbol")
    as_of: dt.date | None = Field(None, description="Scan as of this session (default: last completed session)")
    intraday: bool = Field(False, description="Add today's unfinished session from one snapshot call")
    sectors: list[str] | None = Field(None, description="Keep only these sectors (default: all)")
    signals: list[SignalName] | None = Field(None, description="Keep only rows with these signals (default: all)")
    watchlist: list[str] = Field(default_factory=list, description="Always refreshed, scored first, never prescreened out")
    blacklist_after: int = Field(DEFAULT_RULES.blacklist_after, ge=1, le=250, description="Low-volume scans in a row before a symbol is blacklisted")
    on_missing_day: Literal["skip", "fail"] = Field("skip", description="A day that stays broken: report and go on, or fail")
    reuse_scores: bool = Field(True, description="Reuse last scan's rows for symbols whose bars did not change")
    task_runner: Literal["auto", "ray", "thread"] | None = Field(
        None, description="Overrides TECHNIC_TASK_RUNNER: auto (Ray when RAY_ADDRESS names a cluster, else threads), ray, thread"
    )
    max_workers: int | None = Field(None, ge=1, le=256, description="Overrides TECHNIC_MAX_WORKERS")
    data_dir: Path | None = Field(None, description="Overrides TECHNIC_DATA_DIR")
    csv_dir: Path | None = Field(None, description="Overrides TECHNIC_CSV_DIR; given alone, it also picks the csv source")
    where: str | None = Field(
        None, description="Screen expression over the result columns, e.g. RSI14 < 30 and Close > SMA200 (README: Screens)"
    )
    screens: list[str] | None = Field(
        None, description="Saved screens to publish from this scan's one scoring pass (`technic screens` lists them)"
    )
    chart_top: int = Field(
        12, ge=0, le=200, description="Charts of the top N rows of each published table, in the report and the "
        "Prefect UI (0 = no charts)"
    )
    rating: Literal["tech", "learned"] = Field(
        "tech", description="tech: TechRating ranks and signals; learned: the newest walk-forward model trained before "
        "as_of (fit by `technic evaluate --rating learned`) fills LearnedRating and the signals, TechRating if none")
    plan_rule: Literal[PLAN_RULES] = Field(  # type: ignore[valid-type]
        DEFAULT_PLAN_RULE, description="Trade plans: atr (stop 2·ATR, target 3·ATR) or structure (swing stop with an "
        "ATR floor/cap, next-resistance or 2R target); see docs/columns.md")
    min_reward_risk: float = Field(DEFAULT_MIN_REWARD_RISK, gt=0, le=20,
                                   description="PlanOK is true when a plan's RewardRisk is at least this")

    @property
    def plan_variant(self) -> str:
        """What of this configuration changes a scored row besides its bars (part of the reuse fingerprint)."""
        return f"{self.plan_rule}:{self.min_reward_risk:g}"

    @field_validator("watchlist", mode="before")
    @classmethod
    def _normalise_watchlist(cls, v):
        if isinstance(v, str):
            v = [s for s in re.split(r"[,\s]+", v) if s]
        return v

    @field_validator("watchlist")
    @classmethod
    def _check_tickers(cls, v: list[str]) -> list[str]:
        out = [s.strip().upper() for s in v]
        bad = [s for s in out if not TICKER.match(s)]
        if bad:
            raise ValueError(f"not ticker symbols: {bad}")
        return list(dict.fromkeys(out))

    @model_validator(mode="after")
    def _as_of_not_future(self):
        if self.as_of is not None and self.as_of > dt.date.today() + dt.timedelta(days=1):
            raise ValueError(f"as_of {self.as_of} is in the future")
        return self

    @field_validator("lookback_days")
    @classmethod
    def _enough_history(cls, v: int, info: ValidationInfo) -> int:
        from technic_v4.domain.indicators import required_history  # numpy/pandas: not at import (CLI start-up)

        need = required_history()
        if v < need and not info.data.get("allow_short_history", False):
            raise ValueError(
                f"{v} sessions is shorter than the {need} the indicators need (52-week high, converged SMA200/RSI); "
                "raise it or set allow_short_history=true"
            )
        return v

    @model_serializer(mode="wrap")
    def _leave_out_none(self, handler: SerializerFunctionWrapHandler) -> dict:
        """None means "not set" (the environment's setting): left out of dumps, so a Prefect form or run never
        sends a null the form's schema (scan_form.py) has no type for."""
        return {k: v for k, v in handler(self).items() if v is not None}

    @classmethod
    def build(cls, **values) -> ScanConfig:
        """Like ScanConfig(**values) but a bad value raises ConfigError naming the field."""
        return build_model(cls, **values)

    def with_screens(self, screen=None, where: str | None = None) -> ScanConfig:
        """This config plus the flow's `screen` / `where` parameters (`--param screen=NAME` on a deployment run)."""
        return with_screens(self, screen, where)
