"""What changed in each published screen, and the built-in notifier (apprise) that says so.

A screen's members are its rows whose Signal is among the run's signals (every actionable signal when the run has
no filter). One message per changed screen per scan; the first scan of a screen sends one summary, not a message per
name. A message is sent at most once per (screen, configuration, data as-of, membership fingerprint): the keys sent
are kept in the data dir (written atomically), so a retried or re-run scan on the same data never sends it again.
Delivery failures are retried, then reported; they never raise. Messages carry symbols and figures only: never the
API key, and the apprise URLs (which may hold tokens) are only ever shown in apprise's privacy form.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from technic_v4.pipeline.publish import ACTIONABLE
from technic_v4.store.atomic import atomic_write_text
from technic_v4.pipeline.screens.apply import member_changes

EVENT_NAME = "technic.screen.changed"
SENT_KEPT = 1000  # dedupe keys remembered (about a year of daily scans of a few screens)
MESSAGE_LIMIT = 20  # names listed per section of a message


@dataclass
class ScreenChange:
    """New, dropped and flipped members of one screen since its last scan, each as {Symbol, Signal, TechRating}."""

    screen: str
    config_key: str
    as_of: str
    previous_as_of: str | None
    members: int
    fingerprint: str  # of the current membership (symbol and signal), order-independent
    new: list[dict] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)
    flipped: list[dict] = field(default_factory=list)
    simulated: bool = False

    @property
    def first_scan(self) -> bool:
        return self.previous_as_of is None

    @property
    def changed(self) -> bool:
        return bool(self.new or self.dropped or self.flipped)

    @property
    def dedupe_key(self) -> str:
        return f"{self.screen}|{self.config_key}|{self.as_of}|{self.fingerprint}"

    @property
    def resource_id(self) -> str:
        return f"technic.screen.{self.screen}.{self.config_key}"

    def payload(self) -> dict:
        return {"screen": self.screen, "config_key": self.config_key, "as_of": self.as_of,
                "previous_as_of": self.previous_as_of, "first_scan": self.first_scan, "members": self.members,
                "simulated": self.simulated, "new": self.new, "dropped": self.dropped, "flipped": self.flipped}


def members(table: pd.DataFrame | None, signals: Sequence[str] | None) -> pd.DataFrame:
    """The screen's members: rows with an actionable signal, or one of `signals` when the run filters."""
    if table is None or table.empty:
        return pd.DataFrame(columns=["Symbol", "Signal", "TechRating"])
    keep = table["Signal"].isin(list(signals) if signals else ACTIONABLE)
    cols = [c for c in ("Symbol", "Signal", "TechRating") if c in table]
    return table.loc[keep, cols].drop_duplicates("Symbol").set_index("Symbol", drop=False)


def _record(row, previous=None) -> dict:
    rating = row.get("TechRating")
    out = {"symbol": str(row["Symbol"]), "signal": str(row["Signal"]),
           "tech_rating": None if rating is None or pd.isna(rating) else round(float(rating), 2)}
    if previous is not None:
        out["previous_signal"] = str(previous["Signal"])
    return out


def fingerprint(current: pd.DataFrame) -> str:
    pairs = sorted(f"{s}={g}" for s, g in zip(current["Symbol"], current["Signal"]))
    return hashlib.sha1("\n".join(pairs).encode()).hexdigest()[:16]


def screen_change(screen: str, config_key: str, as_of: str, previous: pd.DataFrame | None,
                  previous_as_of: str | None, current: pd.DataFrame, signals: Sequence[str] | None,
                  simulated: bool = False) -> ScreenChange:
    cur, prev = members(current, signals), members(previous, signals)
    diff = member_changes(prev, cur)  # the one new/dropped/flipped rule the screens' history uses too
    return ScreenChange(
        screen=screen, config_key=config_key, as_of=as_of, previous_as_of=previous_as_of, members=len(cur),
        fingerprint=fingerprint(cur), simulated=simulated,
        new=[_record(cur.loc[s]) for s in diff["new"]],
        dropped=[_record(prev.loc[s]) for s in diff["dropped"]],
        flipped=[_record(cur.loc[s], prev.loc[s]) for s in diff["flipped"]])


def _names(records: list[dict], limit: int = MESSAGE_LIMIT) -> str:
    best = sorted(records, key=lambda r: -(r["tech_rating"] if r["tech_rating"] is not None else -1e9))
    text = ", ".join(f"{r['symbol']} ({r['signal']}"
                     + (f" {r['tech_rating']:.1f}" if r["tech_rating"] is not None else "") + ")"
                     for r in best[:limit])
    return text + (f" … and {len(records) - limit} more" if len(records) > limit else "")


def message(change: ScreenChange, simulated: bool, report: str | None = None) -> tuple[str, str]:
    """(title, body) of the one message for a changed screen."""
    sim = " [SIMULATED]" if simulated else ""
    if change.first_scan:
        title = f"technic {change.screen}: first scan {change.as_of}, {change.members} members{sim}"
        body = f"First scan of screen {change.screen} ({change.config_key}): {change.members} members. " \
               f"Top: {_names(change.new, 10)}"
    else:
        title = (f"technic {change.screen} {change.as_of}: {len(change.new)} new, {len(change.dropped)} dropped, "
                 f"{len(change.flipped)} flipped{sim}")
        lines = [f"Screen {change.screen} ({change.config_key}) since {change.previous_as_of}:"]
        for label, recs in (("new", change.new), ("dropped", change.dropped), ("flipped", change.flipped)):
            if recs:
                lines.append(f"{label}: {_names(recs)}")
        body = "\n".join(lines)
    if report:
        body += f"\nReport: {report}"
    return title, body


@dataclass
class AlertReport:
    sent: list[str] = field(default_factory=list)  # dedupe keys delivered this scan
    duplicates: list[str] = field(default_factory=list)  # already sent for the same data: not sent again
    failed: dict[str, str] = field(default_factory=dict)  # dedupe key -> which URLs failed after retries
    attempts: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def sent_file(data_dir: Path) -> Path:
    return Path(data_dir) / "alerts" / "sent.json"


def read_sent(data_dir: Path) -> dict[str, str]:
    path = sent_file(data_dir)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def record_sent(data_dir: Path, keys: list[str]) -> None:
    sent = read_sent(data_dir)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    sent.update({k: now for k in keys})
    kept = dict(sorted(sent.items(), key=lambda kv: kv[1])[-SENT_KEPT:])
    atomic_write_text(sent_file(data_dir), json.dumps(kept, indent=1, sort_keys=True))


Deliver = Callable[[str, str, str], bool]  # (url, title, body) -> delivered


def apprise_deliver(url: str, title: str, body: str) -> bool:
    import apprise

    sender = apprise.Apprise()
    if not sender.add(url):
        raise ValueError("not an apprise URL")
    return bool(sender.notify(title=title, body=body))


def private_url(url: str) -> str:
    """The URL as apprise shows it with privacy on (tokens and passwords masked); the scheme if it cannot parse."""
    try:
        import apprise

        sender = apprise.Apprise()
        if sender.add(url):
            return sender[0].url(privacy=True)
    except Exception:  # noqa: BLE001 - only used for a report line
        pass
    return url.split("://", 1)[0] + "://…"


def notify(changes: Sequence[ScreenChange], urls: Sequence[str], data_dir: Path, *, simulated: bool,
           report: str | None = None, retries: int = 2, backoff: float = 0.5,
           deliver: Deliver = apprise_deliver, lock=None) -> AlertReport:
    """Send one message per changed screen to every URL; never raises. `lock` (a context manager, e.g. the bar
    store's) guards the read-send-record of the dedupe file against a concurrent scan."""
    started, out = time.perf_counter(), AlertReport()
    todo = [c for c in changes if c.changed]
    if not urls or not todo:
        return out
    import contextlib

    try:
        with lock or contextlib.nullcontext():
            _send(todo, urls, data_dir, simulated, report, retries, backoff, deliver, out)
    except Exception as exc:  # noqa: BLE001 - e.g. the store lock held by another scan: reported, never raised
        for change in todo:
            out.failed.setdefault(change.dedupe_key, f"not sent: {type(exc).__name__}: {exc}")
    out.seconds = time.perf_counter() - started
    return out


def _send(todo, urls, data_dir, simulated, report, retries, backoff, deliver, out: AlertReport) -> None:
    """Within the lock: skip what was sent for the same data, deliver with retries, record what went out."""
    sent = read_sent(data_dir)
    delivered = []
    for change in todo:
        if change.dedupe_key in sent:
            out.duplicates.append(change.dedupe_key)
            continue
        title, body = message(change, simulated, report)
        failed = []
        for url in urls:
            ok, why = False, "not delivered"
            for attempt in range(retries + 1):
                out.attempts += 1
                try:
                    ok = deliver(url, title, body)
                except Exception as exc:  # noqa: BLE001 - reported, never raised
                    ok, why = False, type(exc).__name__
                if ok:
                    break
                if attempt < retries:
                    time.sleep(backoff * 2 ** attempt)
            if not ok:
                failed.append(f"{private_url(url)} ({why} after {retries + 1} attempts)")
        if failed:
            out.failed[change.dedupe_key] = "; ".join(failed)
        if len(failed) < len(urls):  # delivered somewhere: a re-run must not send it again
            delivered.append(change.dedupe_key)
    if delivered:
        record_sent(data_dir, delivered)
    out.sent = delivered
