"""What ScanConfig and EvalConfig share: the prescreen floors (one default each, from prescreen.DEFAULT_RULES; the
market cap in $M) and the validation of their `where` and `screens` fields, written once."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from technic_v4.pipeline.prescreen import DEFAULT_RULES, MARKET_CAP_UNIT, PrescreenRules, market_cap_floor_m
from technic_v4.pipeline.screens.model import valid_names, valid_where


class FloorsAndScreens(BaseModel):
    min_market_cap: float = Field(DEFAULT_RULES.min_market_cap / MARKET_CAP_UNIT, ge=0,
                                  description="Market-cap floor in $M (shares outstanding x last close): 500 = $500M")
    min_avg_volume: float = Field(DEFAULT_RULES.min_avg_volume, ge=0, description="20-day average volume, shares")
    min_price: float = Field(DEFAULT_RULES.min_price, ge=0, description="Last close floor, USD")

    def floor_rules(self, **more) -> PrescreenRules:
        """The prescreen rules of these floors (market cap back in USD, the one place it is converted) plus `more`."""
        return PrescreenRules(min_market_cap=self.min_market_cap * MARKET_CAP_UNIT, min_avg_volume=self.min_avg_volume,
                              min_price=self.min_price, **more)

    @field_validator("min_market_cap")
    @classmethod
    def _market_cap_in_millions(cls, v: float) -> float:
        return market_cap_floor_m(v)

    @field_validator("where", check_fields=False)  # the field itself is each config's (its own description)
    @classmethod
    def _parse_where(cls, v: str | None) -> str | None:
        return valid_where(v)

    @field_validator("screens", mode="before", check_fields=False)
    @classmethod
    def _screen_names(cls, v):
        return valid_names(v)
