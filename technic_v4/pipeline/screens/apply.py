"""A screen over one scan's result table: its members (the run's signals filter, the screen's signals, its `where`),
sorted, with the columns it shows; and what changed since the last run of the same screen (new / dropped / flipped)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from technic_v4.domain.screens.evaluate import evaluate
from technic_v4.errors import ConfigError
from technic_v4.pipeline.screens.model import Screen


def label_of(screen: Screen) -> str:
    return "where" if screen.source == "where" else f"screen {screen.name!r} ({screen.source})"


def member_positions(results: pd.DataFrame, screen: Screen, run_signals=None) -> np.ndarray:
    """Row positions in `results` of the rows the screen selects, in its sort order (missing values last, ties by
    row order)."""
    keep = np.ones(len(results), dtype=bool)
    for signals in (run_signals, screen.signals):
        if signals:
            keep &= results["Signal"].isin(signals).to_numpy()
    keep &= evaluate(screen.expression, results, label_of(screen))
    column = screen.sort_column
    if column not in results.columns:
        near = difflib.get_close_matches(column, [str(c) for c in results.columns], n=3)
        raise ConfigError(f"{label_of(screen)}: sort column {column!r} is not in the table"
                          + (f"; did you mean {', '.join(near)}?" if near else ""))
    chosen = np.flatnonzero(keep)
    key = results[column].iloc[chosen].reset_index(drop=True)
    order = key.sort_values(ascending=screen.ascending, na_position="last", kind="stable").index.to_numpy()
    return chosen[order]


def members(results: pd.DataFrame, screen: Screen, run_signals=None) -> pd.DataFrame:
    """The rows of `results` the screen selects, in its sort order."""
    return results.iloc[member_positions(results, screen, run_signals)]


def shown(table: pd.DataFrame, screen: Screen) -> pd.DataFrame:
    """The screen's columns that the table has (a screen written for newer columns still shows the rest)."""
    return table[[c for c in screen.shown_columns() if c in table.columns]].reset_index(drop=True)


def member_changes(previous: pd.DataFrame | None, current: pd.DataFrame) -> dict[str, list[str]]:
    """new: members now and not last time; dropped: the reverse; flipped: members both times whose Signal changed.
    Everything is new on a screen's first run."""
    cur = dict(zip(current["Symbol"].astype(str), current["Signal"].astype(str)))
    if previous is None:
        return {"new": sorted(cur), "dropped": [], "flipped": []}
    prev = dict(zip(previous["Symbol"].astype(str), previous["Signal"].astype(str)))
    return {"new": sorted(cur.keys() - prev.keys()), "dropped": sorted(prev.keys() - cur.keys()),
            "flipped": sorted(s for s in cur.keys() & prev.keys() if cur[s] != prev[s])}


@dataclass
class ScreenResult:
    screen: Screen
    members: pd.DataFrame  # every result column, sorted
    positions: np.ndarray  # the members' row positions in the scan's result table
    changes: dict[str, list[str]]
    history_key: str
    previous_as_of: str | None = None
    paths: dict[str, str] = field(default_factory=dict)
    previous: pd.DataFrame | None = None  # the last run's members (Symbol, Signal): what alerts compare against

    @property
    def table(self) -> pd.DataFrame:
        return shown(self.members, self.screen)

    def as_dict(self) -> dict:
        return {"name": self.screen.name, "where": self.screen.expression.canonical, "source": self.screen.source,
                "description": self.screen.description, "rows": int(len(self.members)),
                "previous_as_of": self.previous_as_of, **{k: list(v) for k, v in self.changes.items()},
                "paths": dict(self.paths)}
