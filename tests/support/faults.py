"""Fault knobs, a per-path fault script and the received-request log of the loopback Polygon server.

Faults are what Polygon really does now and then: 429 with Retry-After, 5xx, `results: null` in a 200, bodies cut
off, answers that never come. Random faults come from a seeded RNG; scripted ones are exact
("the next 3 requests to grouped day 2025-03-03 get 429", "this path always 500").
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

# Special (non-status) faults: a 200 whose result list is null; a 200 whose JSON is cut in half; an answer that never
# comes (the client times out); a response whose connection closes mid-body.
SPECIAL_FAULTS = ("null", "truncate", "hang", "drop")
Fault = int | str


@dataclass
class Faults:
    """Settable at any time, also while the server runs (plain attributes; read once per request)."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0  # extra uniform [0, jitter] per request
    fail_rate: float = 0.0  # share of requests answered with one of fail_statuses
    fail_statuses: tuple[int, ...] = (429, 500, 502, 503)
    retry_after: float = 1.0  # seconds, sent with every 429
    null_rate: float = 0.0  # share of 200s whose result list is null
    truncate_rate: float = 0.0  # share of 200s whose body is cut in half
    drop_rate: float = 0.0  # share of 200s whose connection closes mid-body
    hang_rate: float = 0.0  # share of requests answered only after hang_seconds (clients time out first)
    hang_seconds: float = 30.0  # how long a "hang" fault waits before answering

    def validate(self) -> None:
        for name in ("fail_rate", "null_rate", "truncate_rate", "drop_rate", "hang_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must be >= 0")


@dataclass
class FaultRule:
    """`match` is an endpoint kind ('grouped_daily'), an exact path, or a path prefix ending in '*'."""

    match: str
    fault: Fault
    times: int | None = None  # None = every matching request, forever
    retry_after: float | None = None  # for 429 rules; default Faults.retry_after

    def matches(self, kind: str, path: str) -> bool:
        if self.match.endswith("*"):
            return path.startswith(self.match[:-1])
        return self.match in (kind, path)


class FaultScript:
    """Ordered rules; the first matching rule with uses left wins and uses one up."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, match: str, fault: Fault, *, times: int | None = None, retry_after: float | None = None) -> FaultRule:
        if not (isinstance(fault, int) or fault in SPECIAL_FAULTS):
            raise ValueError(f"fault must be an HTTP status or one of {SPECIAL_FAULTS}, got {fault!r}")
        if times is not None and times < 1:
            raise ValueError(f"times must be >= 1 or None (always), got {times}")
        rule = FaultRule(match, fault, times, retry_after)
        with self._lock:
            self._rules.append(rule)
        return rule

    def take(self, kind: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(kind, path) and (rule.times is None or rule.times > 0):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()


class RandomFaults:
    """Seeded draws for latency and random faults (one RNG, so a run with the same seed is reproducible)."""

    def __init__(self, seed: int):
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def latency(self, faults: Faults) -> float:
        with self._lock:
            jitter = self._rng.uniform(0, faults.jitter_ms) if faults.jitter_ms else 0.0
        return (faults.latency_ms + jitter) / 1000.0

    def draw(self, faults: Faults, *, has_results: bool) -> Fault | None:
        with self._lock:
            if faults.fail_rate and self._rng.random() < faults.fail_rate:
                return self._rng.choice(faults.fail_statuses)
            if has_results and faults.null_rate and self._rng.random() < faults.null_rate:
                return "null"
            if faults.truncate_rate and self._rng.random() < faults.truncate_rate:
                return "truncate"
            if faults.drop_rate and self._rng.random() < faults.drop_rate:
                return "drop"
            if faults.hang_rate and self._rng.random() < faults.hang_rate:
                return "hang"
        return None


@dataclass
class RequestLog:
    """What the server received: per endpoint kind on arrival, per (kind, status) when answered, arrival times."""

    received: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)
    arrivals: list[tuple[float, str, str]] = field(default_factory=list)  # (time.monotonic(), kind, path)
    in_flight: int = 0  # received and not yet answered
    peak_in_flight: int = 0  # the most requests the server was working on at once
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def arrived(self, kind: str, path: str) -> None:
        with self._lock:
            self.received[kind] += 1
            self.arrivals.append((time.monotonic(), kind, path))
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def answered(self, kind: str, status: int | str) -> None:
        with self._lock:
            self.by_status[(kind, status)] += 1
            self.in_flight -= 1

    @property
    def total(self) -> int:
        return sum(self.received.values())

    def paths(self, kind: str | None = None) -> list[str]:
        with self._lock:
            return [p for _, k, p in self.arrivals if kind in (None, k)]

    def count(self, kind: str | None = None, status: int | str | None = None) -> int:
        """Requests received (status None) or answered with `status`, for one kind or all."""
        with self._lock:
            if status is None:
                return self.total if kind is None else self.received[kind]
            return sum(n for (k, s), n in self.by_status.items() if s == status and kind in (None, k))

    def mark(self) -> int:
        """A point in the log; `since(mark)` counts what arrived after it (per-scan request counts)."""
        with self._lock:
            return len(self.arrivals)

    def since(self, mark: int) -> Counter:
        """Requests received after `mark`, per endpoint kind."""
        with self._lock:
            return Counter(k for _, k, _ in self.arrivals[mark:])

    def times(self, kind: str | None = None) -> list[float]:
        with self._lock:
            return [t for t, k, _ in self.arrivals if kind in (None, k)]

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.by_status.clear()
            self.arrivals.clear()
            self.in_flight = self.peak_in_flight = 0
