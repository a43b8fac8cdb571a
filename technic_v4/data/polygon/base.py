"""The two transports that drive `policy.exchange()`: aiohttp (the scan's path) and requests (TECHNIC_ASYNC_IO=0).

`AsyncHTTP` owns one aiohttp ClientSession per scan (opened lazily inside the running loop), a semaphore bounding the
requests in flight, and the rate limiter. `SyncHTTP` sends one request at a time through a requests.Session. Neither
decides anything about retries or errors: that is `policy`'s job, shared by both.

The key goes in the `Authorization: Bearer` header by default, so URLs (which libraries like to quote in their
exception messages) never carry it; `auth="query"` sends `apiKey=` instead, as some proxies require.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal
from urllib.parse import urlsplit

import aiohttp

from technic_v4.data.polygon.policy import (
    Call,
    T,
    RawResponse,
    Redactor,
    Reply,
    Request,
    RetryPolicy,
    Send,
    Sleep,
    TransportFailure,
    exchange,
    next_page,
)
from technic_v4.data.polygon.ratelimit import RateLimiter
from technic_v4.data.source import RequestCounter

AuthMode = Literal["header", "query"]


class _HTTPBase:
    """What both transports share: base URL, credentials, limiter, policy and counter."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        counter: RequestCounter | None = None,
        limiter: RateLimiter | None = None,
        policy: RetryPolicy | None = None,
        timeout: float = 30.0,
        auth: AuthMode = "header",
    ):
        if not api_key:
            raise ValueError("a Polygon API key is required (POLYGON_API_KEY)")
        if auth not in ("header", "query"):
            raise ValueError(f"auth must be 'header' or 'query', got {auth!r}")
        self._api_key = api_key
        self._redact = Redactor(api_key)
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        # host:port for messages (never userinfo or the key): a connection error names where it tried
        self.host = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        self.counter = counter if counter is not None else RequestCounter()
        self.limiter = limiter or RateLimiter(0)
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        self.auth = auth

    def _url_params_headers(self, request: Request) -> tuple[str, list[tuple[str, str]], dict[str, str]]:
        params = list(request.params)
        headers = {"Accept-Encoding": "gzip", "User-Agent": "technic_v4"}
        if self.auth == "query":
            params.append(("apiKey", self._api_key))
        else:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return self.base_url + request.path, params, headers

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}({self.base_url!r}, {self.limiter!r}, max_retries={self.policy.max_retries})"


class AsyncHTTP(_HTTPBase):
    """aiohttp transport: bounded concurrency + rate limit + shared retry policy."""

    def __init__(self, api_key: str, base_url: str, *, max_concurrency: int = 16, **kwargs):
        super().__init__(api_key, base_url, **kwargs)
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                raise RuntimeError("this Polygon client is open in another running event loop; make one client per loop")
            # that loop is gone (an earlier asyncio.run): its session cannot be used or closed any more, start afresh
            self._session = None
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_concurrency, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout), raise_for_status=False
            )
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
            self._loop = loop
        return self._session

    async def _send_once(self, request: Request, timeout: float | None = None) -> Reply:
        session = self._ensure_session()
        url, params, headers = self._url_params_headers(request)
        entered = time.monotonic()
        timeout = min(self.timeout, timeout) if timeout is not None else self.timeout
        # The limiter slot is taken while holding the semaphore, so the send happens at the reserved time.
        async with self._semaphore:
            await self.limiter.acquire()
            queued = time.monotonic() - entered
            try:
                async with session.get(url, params=params, headers=headers, allow_redirects=False,
                                       timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                    body = await resp.read()
                    return RawResponse(resp.status, body, resp.headers.get("Retry-After"), queued)
            except asyncio.TimeoutError:
                return TransportFailure("timeout", f"no answer from {self.host} within {timeout:.3g} s", queued)
            except aiohttp.ClientPayloadError as exc:
                return TransportFailure("payload_error", f"{type(exc).__name__} from {self.host}", queued)
            except aiohttp.ClientConnectorError as exc:
                why = ("connection refused" if isinstance(exc.os_error, ConnectionRefusedError)
                       else getattr(exc.os_error, "strerror", None) or type(exc.os_error).__name__)
                return TransportFailure("connection_error", f"cannot connect to {exc.host}:{exc.port}: {why}", queued)
            except aiohttp.ClientError as exc:
                return TransportFailure("connection_error", f"{type(exc).__name__} from {self.host}", queued)

    async def fetch(self, request: Request) -> dict:
        """The parsed JSON body of one request, after retries. Raises technic_v4.errors on failure."""
        steps = exchange(request, self.policy, self.counter, self._redact, host=self.host)
        try:
            step = next(steps)
            while True:
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    step = steps.send(None)
                else:
                    assert isinstance(step, Send)
                    step = steps.send(await self._send_once(request, step.timeout))
        except StopIteration as done:
            return done.value

    async def fetch_pages(self, request: Request) -> list[dict]:
        """Every page of a `next_url`-paginated listing, in order."""
        pages = []
        page: Request | None = request
        while page is not None:
            payload = await self.fetch(page)
            pages.append(payload)
            page = next_page(page, payload)
        return pages

    async def run(self, call: Call[T]) -> T:
        return call.parse(await self.fetch_pages(call.request) if call.paginated else await self.fetch(call.request))

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


class SyncHTTP(_HTTPBase):
    """requests transport: one request at a time (the TECHNIC_ASYNC_IO=0 rollback path), same policy."""

    def __init__(self, api_key: str, base_url: str, **kwargs):
        super().__init__(api_key, base_url, **kwargs)
        import requests  # only the rollback path needs it

        self._requests = requests
        self._session = requests.Session()

    def _send_once(self, request: Request, timeout: float | None = None) -> Reply:
        url, params, headers = self._url_params_headers(request)
        entered = time.monotonic()
        timeout = min(self.timeout, timeout) if timeout is not None else self.timeout
        self.limiter.acquire_sync()
        queued = time.monotonic() - entered
        exc_types = self._requests.exceptions
        try:
            resp = self._session.get(url, params=params, headers=headers, timeout=timeout, allow_redirects=False)
            return RawResponse(resp.status_code, resp.content, resp.headers.get("Retry-After"), queued)
        except exc_types.Timeout:
            return TransportFailure("timeout", f"no answer from {self.host} within {timeout:.3g} s", queued)
        except exc_types.ChunkedEncodingError as exc:
            return TransportFailure("payload_error", f"{type(exc).__name__} from {self.host}", queued)
        except exc_types.ConnectionError as exc:
            return TransportFailure("connection_error", f"cannot connect to {self.host} ({type(exc).__name__})", queued)
        except exc_types.RequestException as exc:
            return TransportFailure("connection_error", f"{type(exc).__name__} from {self.host}", queued)

    def fetch(self, request: Request) -> dict:
        steps = exchange(request, self.policy, self.counter, self._redact, host=self.host)
        try:
            step = next(steps)
            while True:
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    step = steps.send(None)
                else:
                    step = steps.send(self._send_once(request, step.timeout))
        except StopIteration as done:
            return done.value

    def fetch_pages(self, request: Request) -> list[dict]:
        pages = []
        page: Request | None = request
        while page is not None:
            payload = self.fetch(page)
            pages.append(payload)
            page = next_page(page, payload)
        return pages

    def run(self, call: Call[T]) -> T:
        return call.parse(self.fetch_pages(call.request) if call.paginated else self.fetch(call.request))

    def close(self) -> None:
        self._session.close()
