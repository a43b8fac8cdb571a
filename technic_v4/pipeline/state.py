"""Scan state with one home: the low-volume blacklist streaks and last scan's signals, kept per scan configuration.

Two configurations (a 2,500-symbol ad-hoc run and the scheduled 6,000-symbol deployment) see different universes, so
"since last scan", row reuse and blacklist streaks compare a run only with the previous run of the same
configuration. `config_key` names a configuration by what changes its results, never by how it runs (runner,
workers) or which rows it prints (signals filter).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

from technic_v4.pipeline.prescreen import MARKET_CAP_UNIT
from technic_v4.store.bar_store import BarStore

# ScanConfig fields that change the published table; everything else (runner, workers, data_dir, signals, as_of) does not.
RESULT_FIELDS = (
    "max_symbols", "lookback_days", "allow_short_history", "intraday", "sectors", "min_market_cap",
    "min_avg_volume", "min_price", "watchlist", "blacklist_after",
)
STATE_PREFIX = "scan-"
LAST_SIGNALS_KEPT = 500


def config_key(config, source_id: str) -> str:
    """A short stable name for the configuration: source + every result-changing field."""
    payload = {name: getattr(config, name) for name in RESULT_FIELDS}
    payload["min_market_cap"] *= MARKET_CAP_UNIT  # in USD, so the keys of scans before the $M floor still match
    payload["source"] = source_id
    if getattr(config, "rating", "tech") != "tech":  # only then: the default's keys stay what they were
        payload["rating"] = config.rating
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class ScanState:
    key: str
    blacklist: dict[str, int] = field(default_factory=dict)  # symbol -> low-volume scans in a row
    blacklist_day: str | None = None  # the session whose scan last counted a streak (counted once per session)
    last_signals: list[str] = field(default_factory=list)  # scored first next time (high-priority list)
    config: dict = field(default_factory=dict)  # the configuration, for people reading the state file

    @classmethod
    def load(cls, store: BarStore, key: str) -> ScanState:
        raw = store.read_state(STATE_PREFIX + key) or {}
        return cls(key=key, **{k: raw[k] for k in ("blacklist", "blacklist_day", "last_signals", "config") if k in raw})

    @classmethod
    def load_all(cls, store: BarStore) -> list[ScanState]:
        return [cls.load(store, name[len(STATE_PREFIX):]) for name in store.state_names(STATE_PREFIX)]

    def save(self, store: BarStore) -> None:
        body = {"blacklist": self.blacklist, "blacklist_day": self.blacklist_day, "last_signals": self.last_signals,
                "config": self.config}
        with store.lock():
            store.write_state(STATE_PREFIX + self.key, body)

    def record_scan(self, as_of: dt.date, streaks: dict[str, int] | None, signalled: list[str]) -> None:
        """Count blacklist streaks once per session (a rerun the same day does not add a scan) and remember signals."""
        if streaks is not None and self.blacklist_day != as_of.isoformat():
            self.blacklist, self.blacklist_day = streaks, as_of.isoformat()
        self.last_signals = list(dict.fromkeys(signalled))[:LAST_SIGNALS_KEPT]

    def blacklisted(self, after: int) -> list[str]:
        return sorted(s for s, n in self.blacklist.items() if n >= after)
