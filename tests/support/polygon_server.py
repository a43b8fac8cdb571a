"""A Polygon-compatible loopback server (aiohttp.web) serving a simulated market with Polygon's exact JSON shapes.

    python -m tests.support.polygon_server --port 8089 --latency-ms 100 --fail-rate 0.05 --seed 7 --symbols 8000

In-process (tests, benchmarks), either in the caller's loop or in its own thread:

    async with PolygonServer(market, api_key="k") as server: ...       # same event loop
    with PolygonServer(market, api_key="k") as server: ...             # background thread with its own loop
    server.url; server.requests.count("grouped_daily"); server.faults.latency_ms = 50
    server.fail("/v2/aggs/grouped/locale/us/market/stocks/2025-03-03", 429, times=3)

The server has a "today" (default: the last completed session, never after the market's last session) and never serves
bars after it. The market is anything with SimulatedMarket's methods (reference, ticker_details, day, ticker_range,
splits, snapshot, sessions); see tests.support.endpoints for the JSON it produces.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import threading
from collections.abc import Iterable

from aiohttp import web

from technic_v4.calendar import last_completed_session
from tests.support.endpoints import RESULT_KEYS, MarketEndpoints, json_response, request_id
from tests.support.faults import Fault, Faults, FaultScript, RandomFaults, RequestLog

MSG_429 = (
    "You've exceeded the maximum requests per minute, please wait or upgrade your subscription to continue. "
    "https://polygon.io/pricing"
)
MSG_403 = "You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing"
STATUS_TEXT = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


class PolygonServer:
    """The loopback server. Knobs: `.faults` (rates, latency), `.fail()` (exact script), `.api_key`, `.not_authorized`."""

    def __init__(
        self,
        market,
        *,
        today: dt.date | None = None,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 7,
        not_authorized: Iterable[str] = (),
        snapshot_fraction: float = 1.0,
        page_cap: int | None = None,
        leak_key_in_next_url: bool = False,
        **fault_knobs,
    ):
        self.faults = Faults(**fault_knobs)
        self.faults.validate()
        self.api_key = api_key  # None = any key (or none) accepted
        self.not_authorized = set(not_authorized)  # endpoint kinds or exact paths answered 403 NOT_AUTHORIZED
        self.leak_key_in_next_url = leak_key_in_next_url  # emulate a proxy that echoes apiKey into next_url
        self.script = FaultScript()
        self.requests = RequestLog()
        self.host, self.port = host, port
        self._random = RandomFaults(seed)
        today = today or last_completed_session()
        self.endpoints = MarketEndpoints(market, today=today, snapshot_fraction=snapshot_fraction, page_cap=page_cap)
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # -- knobs -----------------------------------------------------------------------------------------------------
    @property
    def today(self) -> dt.date:
        return self.endpoints.today

    def fail(self, match: str, fault: Fault, *, times: int | None = None, retry_after: float | None = None):
        """Script a fault: `match` is a kind ('splits'), an exact path, or a prefix ending in '*'. times=None: always."""
        return self.script.add(match, fault, times=times, retry_after=retry_after)

    @staticmethod
    def grouped_path(day: dt.date | str) -> str:
        return f"/v2/aggs/grouped/locale/us/market/stocks/{day}"

    def prewarm(self, days: Iterable[dt.date], *, adjusted: bool = False, ranges: bool = False) -> None:
        """Build grouped-daily results (and, with `ranges`, the per-day arrays the range endpoint slices) ahead of
        time, so a benchmark times the client, not the simulator."""
        for day in days:
            self.endpoints.grouped_results(day, adjusted)
            if ranges:
                self.endpoints.day_array(day, adjusted)

    # -- HTTP pipeline -----------------------------------------------------------------------------------------------
    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._pipeline])
        self.endpoints.add_routes(app)
        return app

    @web.middleware
    async def _pipeline(self, request: web.Request, handler) -> web.StreamResponse:
        kind = request.match_info.route.name or "unknown"
        self.requests.arrived(kind, request.path)
        label: int | str = "cancelled"
        try:
            latency = self._random.latency(self.faults)
            if latency:
                await asyncio.sleep(latency)
            response, label = await self._answer(request, handler, kind)
            return response
        finally:
            self.requests.answered(kind, label)

    def _authorized(self, request: web.Request) -> bool:
        if self.api_key is None:
            return True
        bearer = request.headers.get("Authorization", "")
        given = bearer[7:] if bearer.startswith("Bearer ") else request.query.get("apiKey")
        return given == self.api_key

    async def _answer(self, request: web.Request, handler, kind: str) -> tuple[web.StreamResponse, int | str]:
        if not self._authorized(request):
            return self.error(401, "Unknown API Key"), 401
        if kind in self.not_authorized or request.path in self.not_authorized:
            return json_response({"status": "NOT_AUTHORIZED", "request_id": request_id(), "message": MSG_403}, 403), 403
        rule = self.script.take(kind, request.path)
        fault = rule.fault if rule else self._random.draw(self.faults, has_results=kind in RESULT_KEYS)
        if isinstance(fault, int):
            retry_after = rule.retry_after if rule and rule.retry_after is not None else self.faults.retry_after
            return self.error(fault, retry_after=retry_after), fault
        if fault == "null":
            body = {RESULT_KEYS[kind]: None, "resultsCount": 0, "status": "OK", "request_id": request_id()}
            return json_response(body), "null"
        if fault == "hang":
            await asyncio.sleep(self.faults.hang_seconds)
        response = await handler(request)
        if kind in ("tickers", "splits") and self.leak_key_in_next_url:
            response = self.endpoints.with_leaked_key(response, request)
        if fault == "truncate":
            response.body = response.body[: len(response.body) // 2]
            return response, "truncate"
        if fault == "drop":
            return await drop_mid_body(request, response.body), "drop"
        return response, fault or response.status

    def error(self, status: int, message: str | None = None, *, retry_after: float | None = None) -> web.Response:
        if status == 429:
            resp = json_response({"status": "ERROR", "request_id": request_id(), "error": message or MSG_429}, 429)
            resp.headers["Retry-After"] = f"{retry_after if retry_after is not None else self.faults.retry_after:g}"
            return resp
        if status == 502:  # gateways answer in HTML, not JSON: the client must cope with both
            return web.Response(status=502, text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html")
        text = message or STATUS_TEXT.get(status, "error")
        return json_response({"status": "ERROR", "request_id": request_id(), "error": text}, status)

    # -- lifecycle ---------------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._runner is None:
            raise RuntimeError("the loopback server is not running; start() it or use it as a context manager")
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def start(self) -> PolygonServer:
        runner = web.AppRunner(self._app(), access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port, shutdown_timeout=0.5).start()
        self._runner = runner
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> PolygonServer:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def start_in_thread(self, timeout: float = 60.0) -> PolygonServer:
        """Serve from a daemon thread with its own event loop (so a synchronous caller or another loop can use it)."""
        ready, failure = threading.Event(), []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=serve, name="polygon-loopback", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"loopback server did not start within {timeout}s")
        if failure:
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        if self._thread is not None and self._thread_loop is not None:
            self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> PolygonServer:
        return self.start_in_thread()

    def __exit__(self, *exc) -> None:
        self.stop_thread()


async def drop_mid_body(request: web.Request, body: bytes) -> web.StreamResponse:
    """Promise the full length, send half, close the connection: the client sees a payload error."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    request.transport.close()
    return response


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Polygon-compatible loopback server over the simulated market")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089, help="0 = any free port (printed on start)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--symbols", type=int, default=8000)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2023, 1, 3), help="first simulated session")
    parser.add_argument("--today", type=dt.date.fromisoformat, default=None, help="default: last completed session")
    parser.add_argument("--api-key", default=None, help="required key (default: any key accepted)")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of 429/500/502/503 answers")
    parser.add_argument("--retry-after", type=float, default=1.0, help="seconds sent with 429s")
    parser.add_argument("--null-rate", type=float, default=0.0, help="share of 200s with results: null")
    parser.add_argument("--truncate-rate", type=float, default=0.0, help="share of 200s with a cut-off body")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of 200s whose connection drops mid-body")
    parser.add_argument("--hang-rate", type=float, default=0.0, help="share of requests that hang for --hang-seconds")
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--page-cap", type=int, default=None, help="at most this many items per listing page")
    parser.add_argument("--not-authorized", action="append", default=[], help="kind or path answered 403 (repeatable)")
    return parser.parse_args(argv)


async def _serve_forever(args: argparse.Namespace) -> None:
    from technic_v4.data.simulated import SimulatedMarket

    market = SimulatedMarket(seed=args.seed, n_symbols=args.symbols, start=args.start, end=args.today)
    server = PolygonServer(
        market, today=args.today, api_key=args.api_key, host=args.host, port=args.port, seed=args.seed,
        not_authorized=args.not_authorized, latency_ms=args.latency_ms, jitter_ms=args.jitter_ms,
        fail_rate=args.fail_rate, retry_after=args.retry_after, null_rate=args.null_rate,
        truncate_rate=args.truncate_rate, drop_rate=args.drop_rate, hang_rate=args.hang_rate,
        hang_seconds=args.hang_seconds, page_cap=args.page_cap,
    )
    async with server:
        print(f"polygon loopback server (SIMULATED, {args.symbols} symbols, today={server.today}) on {server.url}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    try:
        asyncio.run(_serve_forever(_parse_args(argv)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
