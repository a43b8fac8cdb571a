"""Saved screens: the bundled presets (presets.toml next to this file) and the user's own ($TECHNIC_DATA_DIR/screens.toml).

A screen is a `where` expression (technic_v4.domain.screens), a sort, the columns shown and the signals kept. Loading
validates every field; an error names the file and the screen. A user's screen with a preset's name replaces it.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from technic_v4.domain.screens.expression import Expression, ExpressionError, parse
from technic_v4.errors import ConfigError

PRESETS_FILE = Path(__file__).with_name("presets.toml")
USER_FILE_NAME = "screens.toml"
AD_HOC = "where"  # the name of the screen a run's own `where` makes
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")  # also a Prefect artifact key and a folder name
SIGNAL_NAMES = ("Strong Long", "Long", "Short", "Strong Short", "Avoid")  # = domain.scoring.score.SIGNALS (tested)
DEFAULT_SORT = "TechRating desc"
# shown around the columns a screen reads (what it selected on), when it names none
BASE_COLUMNS = ["Symbol", "Sector", "Close"]
TAIL_COLUMNS = ["TechRating", "Signal", "Entry", "Stop", "Target", "RewardRisk"]


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f"screen name {name!r}: use lowercase letters, digits and dashes (e.g. my-breakouts)")
    return name


class Screen(BaseModel):
    """One named screen."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    where: str = Field(description="Expression over result columns, e.g. RSI14 < 30 and Close > SMA200")
    description: str = ""
    sort: str = Field(DEFAULT_SORT, description="'COLUMN desc' or 'COLUMN asc'")
    columns: list[str] | None = Field(None, description="Columns shown (default: the trader's plus what `where` reads)")
    signals: list[str] | None = Field(None, description="Keep only rows with these signals (default: all)")
    source: str = Field("preset", description="preset, or the file the screen came from")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v)

    @field_validator("where")
    @classmethod
    def _where(cls, v: str) -> str:
        parse(v)  # ExpressionError (a ValueError) with the position
        return v

    @field_validator("sort")
    @classmethod
    def _sort(cls, v: str) -> str:
        parts = v.split()
        if not 1 <= len(parts) <= 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
            raise ValueError(f"sort {v!r}: write 'COLUMN desc' or 'COLUMN asc'")
        return f"{parts[0]} {parts[1].lower() if len(parts) == 2 else 'desc'}"

    @field_validator("signals")
    @classmethod
    def _signals(cls, v: list[str] | None) -> list[str] | None:
        bad = [s for s in v or [] if s not in SIGNAL_NAMES]
        if bad:
            raise ValueError(f"unknown signals {bad} (known: {', '.join(SIGNAL_NAMES)})")
        return v

    @property
    def expression(self) -> Expression:
        return parse(self.where)

    @property
    def sort_column(self) -> str:
        return self.sort.split()[0]

    @property
    def ascending(self) -> bool:
        return self.sort.endswith(" asc")

    def shown_columns(self) -> list[str]:
        if self.columns:
            return list(self.columns)
        return list(dict.fromkeys([*BASE_COLUMNS, *self.expression.columns, self.sort_column, *TAIL_COLUMNS]))

    def history_key(self, run_signals, config_key: str) -> str:
        """Which earlier runs this screen's members are compared with: same definition (canonical where, signals
        kept after the run's filter) over the same scan configuration."""
        effective = sorted(set(self.signals or SIGNAL_NAMES) & set(run_signals or SIGNAL_NAMES))
        payload = f"{self.expression.canonical}|{','.join(effective)}|{config_key}"
        return hashlib.sha1(payload.encode()).hexdigest()[:12]


def ad_hoc(where: str) -> Screen:
    """The screen of a run's own `where`."""
    return Screen(name=AD_HOC, where=where, description="this run's --where", source="where")


def _load_file(path: Path, source: str) -> dict[str, Screen]:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from None
    out = {}
    for name, body in data.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: screen {name!r}: expected a table [{name}] with where = \"...\"")
        try:
            out[name] = Screen(name=name, source=source, **body)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'screen'}: {_reason(e)}" for e in exc.errors())
            raise ConfigError(f"{path}: screen {name!r}: {problems}") from None
    return out


def _reason(error: dict) -> str:
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ExpressionError):
        return f"{cause.reason} at position {cause.position} in {cause.expression!r}"
    return error["msg"].removeprefix("Value error, ")


def user_file(data_dir: Path) -> Path:
    return Path(data_dir) / USER_FILE_NAME


def catalogue(data_dir: Path | None) -> dict[str, Screen]:
    """Every saved screen by name: the presets, then the user's file (which wins on a shared name)."""
    screens = _load_file(PRESETS_FILE, "preset")
    path = user_file(data_dir) if data_dir is not None else None
    if path is not None and path.exists():
        screens.update(_load_file(path, str(path)))
    return screens


def resolve(names: list[str], data_dir: Path | None) -> list[Screen]:
    """The saved screens `names` asks for, in order; ConfigError naming an unknown one and listing the known."""
    known = catalogue(data_dir)
    missing = [n for n in names if n not in known]
    if missing:
        where = f" (presets and {user_file(data_dir)})" if data_dir is not None else ""
        raise ConfigError(f"screen: unknown screen(s) {missing}; known{where}: {', '.join(sorted(known))}")
    return [known[n] for n in dict.fromkeys(names)]


def valid_where(v: str | None) -> str | None:
    """A config's `where`: parsed now (a syntax error names its position), its columns checked against the table."""
    if v is not None and v.strip():
        parse(v)
        return v
    return None


def valid_names(v) -> list[str] | None:
    """A config's `screens`: 'a,b' or a list, each a valid screen name (resolved against the files when used)."""
    names = split_names(v)
    return [check_name(n) for n in names] if names else None


def with_screens(config, screen=None, where: str | None = None):
    """`config` (ScanConfig or EvalConfig) plus a flow's `screen` / `where` parameters (`--param screen=NAME`)."""
    if not screen and not where:
        return config
    values = config.model_dump()
    if screen:
        values["screens"] = [*(config.screens or []), *(split_names(screen) or [])]
    if where:
        values["where"] = where
    return type(config).build(**values)


def run_screens(config, data_dir: Path | None) -> list[Screen]:
    """The screens one scan publishes: its saved `screens`, then its own `where` (named "where")."""
    out = resolve(config.screens or [], data_dir)
    return out + [ad_hoc(config.where)] if config.where else out


def split_names(value) -> list[str] | None:
    """'a, b' or ['a', 'b,c'] -> ['a', 'b', 'c'] (a CLI's repeated or comma-separated option, a flow parameter)."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    names = [n.strip() for item in items for n in str(item).split(",") if n.strip()]
    return names or None
