"""The prescreen stage on the panel load_liquid_panel loaded (the most liquid `max_symbols`, watchlist and index ETFs
always in: chosen once per scan, there): the prescreen rules with counts per reason, then the bar schema's quarantine
on what is kept."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from technic_v4.domain.bar_quality import quarantine_panel
from technic_v4.domain.panel import Panel
from technic_v4.errors import ConfigError
from technic_v4.pipeline import prescreen as ps
from technic_v4.pipeline.scan_config import ScanConfig
from technic_v4.pipeline.state import ScanState


@dataclass
class Screened:
    panel: Panel  # kept symbols; quarantined bars are NaN
    result: ps.PrescreenResult
    quarantine: pd.DataFrame  # one row per (bar, failed check), duplicates included
    protected: list[str]  # watchlist symbols present in the panel
    unknown_watchlist: list[str]


def check_sectors(sectors: list[str] | None, reference: pd.DataFrame) -> None:
    """A sector no symbol has is a typo: say so instead of returning only the always-kept index ETFs."""
    known = set(reference["sector"].dropna())
    if sectors and (unknown := sorted(set(sectors) - known)):
        raise ConfigError(f"unknown sector(s) {unknown}; the universe has: {', '.join(sorted(known))}")


def rules_for(config: ScanConfig) -> ps.PrescreenRules:
    return config.floor_rules(sectors=tuple(config.sectors) if config.sectors else None,
                              blacklist_after=config.blacklist_after)


def screen(panel: Panel, reference: pd.DataFrame, config: ScanConfig, state: ScanState,
           duplicates: list[dict] | None = None) -> Screened:
    present = set(panel.symbols)
    unknown = sorted(s for s in config.watchlist if s not in present)
    protected = [s for s in config.watchlist if s in present]
    result = ps.prescreen(panel, reference, rules_for(config), blacklist=state.blacklist, always_keep=tuple(protected))
    clean, quarantine = quarantine_panel(panel.select(result.kept))
    if duplicates:
        quarantine = pd.concat([quarantine, pd.DataFrame(duplicates)], ignore_index=True)
    return Screened(clean, result, quarantine, protected, unknown)
