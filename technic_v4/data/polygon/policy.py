"""Transport-independent request policy: what a request is, how a response is judged, when to retry.

Both transports (aiohttp in `base.AsyncHTTP`, requests in `base.SyncHTTP`) drive the same `exchange()` generator,
so the status-to-exception mapping, the retry decision, the backoff and the counting live here once (sans-IO style):
the generator says "send" or "sleep N seconds", the transport does it and sends back what happened.

The API key never reaches this module: messages are built from `Request.path` (no query string) and every
server-supplied text passes through `Redactor` first.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import parse_qsl, urlsplit

from technic_v4.data.source import RequestCounter
from technic_v4.errors import APIError, AuthError, BadResponse, RetryExhausted

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


@dataclass(frozen=True)
class TransportFailure:
    """The request got no HTTP answer: timeout, refused/reset connection, body cut off mid-stream."""

    reason: str  # "timeout" | "connection_error" | "payload_error"
    detail: str = ""  # exception type name only: aiohttp/requests messages may quote the URL


Reply = RawResponse | TransportFailure


@dataclass(frozen=True)
class Retryable:
    reason: str
    status: int | str
    retry_after: float | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


SEND = object()  # the exchange step that asks the transport to send the request once


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
        return Retryable(f"invalid JSON ({len(reply.body)} bytes, truncated?)", "invalid_json")
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


def exchange(
    request: Request, policy: RetryPolicy, counter: RequestCounter, redact: Redactor
) -> Generator[object, Reply | None, dict]:
    """Send, judge, back off, repeat. Yields SEND (answer with a Reply) or Sleep (answer with None)."""
    last: Retryable | None = None
    for attempt in range(policy.max_retries + 1):
        if last is not None:
            wait = policy.delay(attempt - 1, last.retry_after)
            log.info("retry %d/%d of %s in %.2fs after %s", attempt, policy.max_retries, request, wait, last.reason)
            yield Sleep(wait)
        reply = yield SEND
        status = reply.status if isinstance(reply, RawResponse) else reply.reason
        counter.record(request.kind, retry=attempt > 0, status=status)
        verdict = classify(request, reply, redact)
        if not isinstance(verdict, Retryable):
            return verdict
        last = verdict
    raise RetryExhausted(
        f"{request}: gave up after {policy.max_retries + 1} attempts; last: {last.reason}",
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
