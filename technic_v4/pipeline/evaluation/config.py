"""What one evaluation does: `EvalConfig`, validated with errors that name the field. Every field is a flow parameter."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from technic_v4.calendar import last_completed_session, previous_trading_days, trading_days
from technic_v4.config import DataSourceName, build_model
from technic_v4.domain.indicators import required_history
from technic_v4.domain.scoring.plan_rules import DEFAULT_MIN_REWARD_RISK, DEFAULT_PLAN_RULE, PLAN_RULES
from technic_v4.errors import ConfigError
from technic_v4.pipeline.config_fields import FloorsAndScreens
from technic_v4.pipeline.scan_config import DEFAULT_LOOKBACK_DAYS


class EvalConfig(FloorsAndScreens):
    """Score every session in [start, end] as a scan as of that session would, then measure what followed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: dt.date | None = Field(None, description="First session evaluated (default: `sessions` before end)")
    end: dt.date | None = Field(None, description="Last session evaluated (default: last completed session)")
    sessions: int = Field(250, ge=2, le=5000, description="Sessions evaluated when start is not given")
    horizons: tuple[int, ...] = Field((1, 5, 21, 63), description="Forward-return horizons in sessions (IC decay)")
    max_symbols: int = Field(6000, ge=1, le=200_000, description="Most liquid N symbols per day, as the scan's")
    lookback_days: int = Field(DEFAULT_LOOKBACK_DAYS, ge=30, le=2520, description="Each day's scan window in sessions, as the scan's")
    data_source: DataSourceName | None = Field(None)
    csv_dir: Path | None = Field(None, description="Overrides TECHNIC_CSV_DIR")
    data_dir: Path | None = Field(None, description="Overrides TECHNIC_DATA_DIR")
    task_runner: Literal["ray", "thread"] | None = Field(None, description="Overrides TECHNIC_TASK_RUNNER")
    max_workers: int | None = Field(None, ge=1, le=256, description="Overrides TECHNIC_MAX_WORKERS")
    chunk_symbols: int = Field(1000, ge=10, description="Symbols per scoring task (bounds each task's memory)")
    shuffle_seed: int = Field(0, description="Seed of the shuffled-rating control")
    on_missing_day: Literal["skip", "fail"] = Field("skip")
    plan_rule: Literal[PLAN_RULES] = Field(  # type: ignore[valid-type]
        DEFAULT_PLAN_RULE, description="Trade-plan rule whose outcomes are measured (as ScanConfig.plan_rule)")
    min_reward_risk: float = Field(DEFAULT_MIN_REWARD_RISK, gt=0, le=20, description="As ScanConfig.min_reward_risk")
    rating: Literal["tech", "learned"] = Field(
        "tech", description="learned: also fit the learned rating walk-forward (monthly refits, persisted under "
        "data_dir/models) and report its out-of-sample statistics beside TechRating's")
    learned_horizons: tuple[int, ...] = Field((5, 21), description="Horizons the learned rating is fitted for "
                                              "(each must be one of `horizons`)")
    screens: list[str] | None = Field(None, description="Saved screens to score: a walk-forward scorecard for each")
    where: str | None = Field(None, description="An expression scored like a screen (named 'where')")

    @field_validator("horizons", "learned_horizons", mode="before")
    @classmethod
    def _parse_horizons(cls, v):
        if isinstance(v, str):
            v = [int(x) for x in v.replace(" ", "").split(",") if x]
        return tuple(sorted(set(int(x) for x in v)))

    @field_validator("horizons")
    @classmethod
    def _positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or min(v) < 1 or max(v) > 252:
            raise ValueError(f"horizons must be sessions in 1..252, got {v}")
        return v

    @field_validator("lookback_days")
    @classmethod
    def _enough_history(cls, v: int) -> int:
        if v < required_history():
            raise ValueError(f"{v} sessions is shorter than the {required_history()} the indicators need")
        return v

    @model_validator(mode="after")
    def _ordered(self):
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self

    @model_validator(mode="after")
    def _learned_horizons_evaluated(self):
        if self.rating == "learned" and not set(self.learned_horizons) <= set(self.horizons):
            raise ValueError(f"learned_horizons {self.learned_horizons} must be among horizons {self.horizons}")
        return self

    @classmethod
    def build(cls, **values) -> EvalConfig:
        return build_model(cls, **values)

    def evaluated_days(self, last_session: dt.date | None = None) -> list[dt.date]:
        """The sessions scored: [start, end], or the `sessions` ending at end."""
        end = self.end or last_session or last_completed_session()
        if self.start is None:
            return previous_trading_days(end, self.sessions)
        days = trading_days(self.start, end)
        if not days:
            raise ConfigError(f"no trading sessions between {self.start} and {end}")
        return days

    def days_to_load(self, last_session: dt.date) -> tuple[list[dt.date], list[dt.date]]:
        """(evaluated days, every session to load: each day's window before it, the longest horizon after it)."""
        evaluated = [d for d in self.evaluated_days(last_session) if d <= last_session]
        if not evaluated:
            raise ConfigError(f"nothing to evaluate: every requested session is after the data's last, {last_session}")
        before = previous_trading_days(evaluated[0], self.lookback_days)
        after = trading_days(evaluated[-1], last_session)[: max(self.horizons) + 1] if evaluated[-1] < last_session else []
        return evaluated, sorted(set(before) | set(evaluated) | set(after))
