"""Transport-independent request policy: what a request is, how a response is judged, when to retry.

Both transports (aiohttp in `base.AsyncHTTP`, requests in `base.SyncHTTP`) drive the same `exchange()` generator,
so the status-to-exception mapping, the retry decision, the backoff and the counting live here once (sans-IO style):
the generator says "send (within T seconds)" or "sleep N seconds", the transport does it and sends back what happened.

Every request has a total deadline (RetryPolicy.deadline, TECHNIC_REQUEST_DEADLINE): attempts and the waits between
them count, the wait for a rate-limit slot does not (a free-tier backfill queues for an hour). A server that accepts
and never answers ends in DeadlineExceeded naming host, endpoint and the settings; retries that run long log a
warning line each, so a terminal is never silent for more than one attempt.

The API key never reaches this module: messages are built from `Request.path` (no query string) and every
server-supplied text passes through `Redactor` first.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import parse_qsl, urlsplit

from technic_v4.data.source import RequestCounter
from technic_v4.errors import APIError, AuthError, BadResponse, DeadlineExceeded, RetryExhausted

try:  # orjson ships with prefect; the stdlib is the fallback
    import orjson

    def json_loads(body: bytes):
        return orjson.loads(body)

except ImportError:  # pragma: no cover - depends on the environment
    import json

    def json_loads(body: bytes):
        return json.loads(body)


log = logging.getLogger("technic_v4.data.polygon")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
OK_STATUSES = frozenset({"OK", "DELAYED"})  # DELAYED: a plan with 15-minute delayed data; the body is valid

# How a missing/null result list is judged. "ok": no rows (weekend grouped daily). "retry": always a hiccup
# (trading-day grouped daily, ticker details). "retry_null": an explicit `null` is a hiccup, a missing key means none.
EmptyRule = Literal["ok", "retry", "retry_null"]
T = TypeVar("T")


class NotFound(APIError):
    """404: the ticker/date does not exist at the server (e.g. ticker details of a delisted symbol)."""


@dataclass(frozen=True)
class Request:
    """One GET. `path` has no query string and never holds the key, so it is safe in messages."""

    kind: str  # endpoint kind for the RequestCounter: grouped_daily, range, snapshot, tickers, ticker_details, splits
    path: str
    params: tuple[tuple[str, str], ...] = ()
    results_key: str | None = "results"
    empty: EmptyRule = "retry_null"

    def __str__(self) -> str:
        return f"GET {self.path}"


@dataclass(frozen=True)
class Call(Generic[T]):
    """A request plus what turns its JSON into a result; `paginated` calls get the list of every page's JSON."""

    request: Request
    parse: Callable[[Any], T]
    paginated: bool = False


@dataclass(frozen=True)
class RawResponse:
    status: int
    body: bytes
    retry_after: str | None = None
    queued: float = 0.0  # seconds spent waiting for a concurrency/rate-limit slot before the send (not deadline time)


@dataclass(frozen=True)
class TransportFailure:
    """The request got no HTTP answer: timeout, refused/reset connection, body cut off mid-stream."""

    reason: str  # "timeout" | "connection_error" | "payload_error"
    detail: str = ""  # exception type and host:port only: aiohttp/requests messages may quote the URL
    queued: float = 0.0


Reply = RawResponse | TransportFailure


@dataclass(frozen=True)
class Retryable:
    reason: str
    status: int | str
    retry_after: float | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Send:
    """The exchange step that asks the transport to send the request once, giving up after `timeout` seconds (the
    rest of the deadline, when that is shorter than the transport's per-attempt timeout)."""

    timeout: float | None = None


SEND = Send()


class Redactor:
    """Replaces the API key in any text with ***; its repr never shows the key."""

    def __init__(self, key: str | None):
        self._key = key or None

    def __call__(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key and text else text

    def __repr__(self) -> str:
        return "Redactor(***)"


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter; a server's Retry-After is a floor, not a suggestion."""

    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    retry_after_cap: float = 300.0
    deadline: float | None = 90.0  # total seconds per request (TECHNIC_REQUEST_DEADLINE); None = no limit
    slow_after: float = 10.0  # a retry after this many seconds of trying is logged as a warning (the user sees it)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, retry_index: int, retry_after: float | None) -> float:
        ceiling = min(self.backoff_cap, self.backoff_base * (2**retry_index))
        backoff = ceiling / 2 + self.rng.uniform(0, ceiling / 2)  # "equal jitter": never 0, spreads a herd
        if retry_after is None:
            return backoff
        return max(min(retry_after, self.retry_after_cap) + self.rng.uniform(0, self.backoff_base / 4), backoff)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _server_message(body: bytes, redact: Redactor) -> str:
    """Polygon puts the human text in `message` (403 NOT_AUTHORIZED, 404) or `error` (401, 429)."""
    try:
        obj = json_loads(body)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        text = obj.get("message") or obj.get("error") or obj.get("status") or ""
    else:
        text = body[:200].decode("utf-8", "replace")
    return redact(str(text).strip())


def classify(request: Request, reply: Reply, redact: Redactor) -> dict | Retryable:
    """The parsed body when the answer is usable; a Retryable when trying again may help; raises otherwise."""
    if isinstance(reply, TransportFailure):
        return Retryable(f"{reply.reason} ({reply.detail})" if reply.detail else reply.reason, reply.reason)
    status = reply.status
    if status in RETRY_STATUSES:
        message = _server_message(reply.body, redact)
        return Retryable(f"HTTP {status} {message}".strip(), status, parse_retry_after(reply.retry_after))
    if status in (401, 403):
        raise AuthError(
            f"{request}: HTTP {status} {_server_message(reply.body, redact)} (not retried; check POLYGON_API_KEY "
            "and that your plan covers this endpoint)",
            status=status,
            path=request.path,
        )
    if status == 404:
        raise NotFound(f"{request}: HTTP 404 {_server_message(reply.body, redact)}", status=404, path=request.path)
    if status != 200:
        raise APIError(f"{request}: HTTP {status} {_server_message(reply.body, redact)}", status=status, path=request.path)
    try:
        payload = json_loads(reply.body)
    except ValueError:
        if (page := html_title(reply.body)) is not None:  # a proxy, captive portal or wrong base URL: no retry helps
            raise BadResponse(f"{request}: an HTML page instead of JSON ({page}, {len(reply.body):,} bytes); check "
                              "POLYGON_BASE_URL and any proxy in between", status=status, path=request.path)
        return Retryable(f"invalid JSON ({len(reply.body):,} bytes: {_snippet(reply.body, redact)}; truncated?)",
                         "invalid_json")
    if not isinstance(payload, dict):
        return Retryable(f"unexpected JSON {type(payload).__name__}, expected an object", "bad_shape")
    body_status = payload.get("status")
    if body_status is not None and body_status not in OK_STATUSES:
        raise APIError(f"{request}: status {body_status} {_server_message(reply.body, redact)}", status=200, path=request.path)
    if request.results_key is not None and payload.get(request.results_key) is None:
        explicit_null = request.results_key in payload
        if request.empty == "retry" or (request.empty == "retry_null" and explicit_null):
            return Retryable(f"`{request.results_key}: null` in a 200 OK", "results_null")
    return payload


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def html_title(body: bytes) -> str | None:
    """'title "…"' (or 'no title') when the body is an HTML page, else None."""
    head = body[:4096].lstrip().lower()
    if not head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<?xml")):
        return None
    found = _TITLE.search(body[:65536])
    if not found:
        return "no title"
    title = " ".join(found.group(1).decode("utf-8", "replace").split())[:120]
    return f"title {title!r}"


def _snippet(body: bytes, redact: Redactor) -> str:
    text = body[:60].decode("utf-8", "replace").replace("\n", " ")
    return repr(redact(text)) + ("…" if len(body) > 60 else "")


def _budget(policy: RetryPolicy) -> str:
    now = f", now {policy.deadline:g}" if policy.deadline is not None else ""
    return f"TECHNIC_REQUEST_DEADLINE (total seconds per request{now}), TECHNIC_REQUEST_TIMEOUT (per attempt) or " \
           "TECHNIC_MAX_RETRIES"


def exchange(
    request: Request, policy: RetryPolicy, counter: RequestCounter, redact: Redactor, *, host: str = "",
    clock: Callable[[], float] = time.monotonic,
) -> Generator[object, Reply | None, dict]:
    """Send, judge, back off, repeat. Yields Send (answer with a Reply) or Sleep (answer with None). `host` (no
    credentials) goes into every message; `clock` measures the deadline (tests inject one)."""
    last: Retryable | None = None
    spent = 0.0  # seconds of this request's deadline used: attempts and backoff, not slot waits
    where = f"{request} on {host}" if host else str(request)
    deadline = policy.deadline

    def past_deadline(reason: str, attempts: int) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"{where}: no usable answer within the {deadline:g} s deadline ({attempts} attempt(s); last: {reason}). "
            f"Check the server, or set {_budget(policy)} higher",
            status=last.status if last is not None and isinstance(last.status, int) else None, path=request.path)

    for attempt in range(policy.max_retries + 1):
        if last is not None:
            wait = policy.delay(attempt - 1, last.retry_after)
            if deadline is not None and spent + wait >= deadline:
                raise past_deadline(last.reason, attempt)
            level = logging.WARNING if spent >= policy.slow_after else logging.INFO
            left = f"; {deadline - spent - wait:.0f} s of the {deadline:g} s deadline left" if deadline else ""
            log.log(level, "%s: %s after %.0f s; retry %d/%d in %.1f s%s", where, last.reason, spent, attempt,
                    policy.max_retries, wait, left)
            yield Sleep(wait)
            spent += wait
        started = clock()
        reply = yield (SEND if deadline is None else Send(max(deadline - spent, 0.001)))
        spent += max(0.0, clock() - started - reply.queued)
        status = reply.status if isinstance(reply, RawResponse) else reply.reason
        counter.record(request.kind, retry=attempt > 0, status=status)
        verdict = classify(request, reply, redact)
        if not isinstance(verdict, Retryable):
            return verdict
        last = verdict
        if deadline is not None and spent >= deadline:
            raise past_deadline(last.reason, attempt + 1)
    raise RetryExhausted(
        f"{where}: gave up after {policy.max_retries + 1} attempts; last: {last.reason}. Check the server, or set "
        f"{_budget(policy)} higher",
        status=last.status if isinstance(last.status, int) else None,
        path=request.path,
    )


def next_page(request: Request, payload: dict) -> Request | None:
    """The request for the page `next_url` points at, keeping our base URL and dropping any apiKey it carries."""
    next_url = payload.get("next_url")
    if not next_url:
        return None
    parts = urlsplit(next_url)
    params = tuple((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() != "apikey")
    if not parts.path.startswith("/"):
        raise BadResponse(f"{request}: next_url has no path", path=request.path)
    following = replace(request, path=parts.path, params=params)
    if following == request:
        raise BadResponse(f"{request}: next_url points at the same page again (pagination loop)", path=request.path)
    return following
