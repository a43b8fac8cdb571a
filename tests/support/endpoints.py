"""The Polygon endpoints of the loopback server: a market object in, Polygon's exact JSON out.

Shapes follow Polygon's REST answers (field names, `status`/`request_id`/`count`/`next_url`, `resultsCount`,
`queryCount`, `adjusted`, 404 NOT_FOUND and 400 ERROR bodies). Pagination uses an opaque `cursor` in `next_url`,
which is all that Polygon's own clients (and ours) rely on.

The market is anything with SimulatedMarket's methods: `sessions`, `symbols`, `day`, `ticker_range`, `reference`,
`ticker_details`, `splits`, `snapshot`. Bodies for a grouped day and the per-day arrays behind the range endpoint are
cached, so a benchmark times the HTTP client, not the simulator (see `grouped_results` / `PolygonServer.prewarm`).
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
import zlib
from functools import lru_cache

import numpy as np
import pandas as pd
from aiohttp import web

from tests.support.shapes import (
    BAR_FIELDS,
    DEFAULT_LIMITS,
    RESULT_KEYS,
    SHORT,
    BadParameter,
    bad_request,
    bar_records,
    decode_cursor,
    dumps,
    encode_cursor,
    json_response,
    loads,
    not_found,
    parse_bool,
    parse_day,
    request_id,
    unix_ms,
)

__all__ = ["RESULT_KEYS", "MarketEndpoints", "dumps", "json_response", "request_id"]


class MarketEndpoints:
    """Route handlers over one market, serving nothing after `today`."""

    def __init__(self, market, *, today: dt.date, snapshot_fraction: float = 1.0, page_cap: int | None = None):
        self.market = market
        self.page_cap = page_cap  # serve at most this many items per page whatever `limit` asks (exercises next_url)
        self.sessions: list[dt.date] = list(market.sessions)
        self.today = min(today, self.sessions[-1])  # never after the market's last session
        self.snapshot_fraction = snapshot_fraction
        # day -> share of its volume known so far: that day's grouped bars are still being revised (late trades),
        # served as the partial session, never cached; delete the entry to serve the settled bars
        self.provisional: dict[dt.date, float] = {}
        self._columns = {s: i for i, s in enumerate(np.asarray(market.symbols))}
        self._grouped: dict[tuple[dt.date, bool], tuple[int, bytes]] = {}
        self._day_arrays: dict[tuple[dt.date, bool], np.ndarray] = {}
        self._panels: dict = {}  # (first day, last day, adjusted) -> range_panel(); insertion-ordered, two kept
        self._lock = threading.Lock()  # the caches are filled from the server thread and from prewarm()

    def add_routes(self, app: web.Application) -> None:
        get = app.router.add_get
        get("/v2/aggs/grouped/locale/us/market/stocks/{date}", self.grouped_daily, name="grouped_daily")
        get("/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{start}/{end}", self.ticker_range, name="range")
        get("/v2/snapshot/locale/us/markets/stocks/tickers", self.snapshot, name="snapshot")
        get("/v3/reference/tickers", self.list_tickers, name="tickers")
        get("/v3/reference/tickers/{ticker}", self.ticker_details, name="ticker_details")
        get("/v3/reference/splits", self.list_splits, name="splits")
        get("/{tail:.*}", self.unknown, name="unknown")

    # -- cached market data --------------------------------------------------------------------------------------------
    def _served(self, day: dt.date) -> bool:
        return day <= self.today

    def grouped_results(self, day: dt.date, adjusted: bool) -> tuple[int, bytes]:
        """(count, the encoded `results` array) of one grouped day, cached as bytes: 250 days of 6,000 symbols as
        Python dicts would take about a gigabyte, as JSON about a fifth of that."""
        key = (day, adjusted)
        if day in self.provisional and self._served(day) and not adjusted:
            return self._encode_day(day, self.market.snapshot(day, fraction=self.provisional[day]))
        with self._lock:
            cached = self._grouped.get(key)
        if cached is None:
            frame = self.market.day(day, adjusted=adjusted) if self._served(day) else self.market.day(day).iloc[0:0]
            cached = self._encode_day(day, frame)
            with self._lock:
                self._grouped[key] = cached
        return cached

    @staticmethod
    def _encode_day(day: dt.date, frame: pd.DataFrame) -> tuple[int, bytes]:
        records = bar_records(frame, {"symbol": "T", **SHORT})
        stamp = unix_ms(day, at_close=True) if records else 0
        for r in records:
            r["t"] = stamp
        return len(records), dumps(records)

    def day_array(self, day: dt.date, adjusted: bool) -> np.ndarray:
        """(len(BAR_FIELDS), n_symbols) bars of one session aligned to market.symbols; NaN where no bar (cached)."""
        key = (day, adjusted)
        with self._lock:
            cached = self._day_arrays.get(key)
        if cached is None:
            frame = self.market.day(day, adjusted=adjusted)
            cached = np.full((len(BAR_FIELDS), len(self._columns)), np.nan)
            cols = np.array([self._columns[s] for s in frame["symbol"]], dtype=np.int64)
            if len(cols):
                cached[:, cols] = frame[list(BAR_FIELDS)].to_numpy(dtype=float).T
            with self._lock:
                self._day_arrays[key] = cached
        return cached

    def range_panel(self, start: dt.date, end: dt.date, adjusted: bool) -> tuple[np.ndarray, np.ndarray]:
        """(window-start stamps, (days, fields, symbols) bars) for the sessions in [start, end]. The last few windows
        are cached: a per-symbol backfill asks the same window for thousands of symbols."""
        days = tuple(self.sessions_between(start, end))
        key = (days[0], days[-1], adjusted) if days else None
        with self._lock:
            cached = self._panels.get(key)
        if cached is None:
            stamps = np.array([unix_ms(d, at_close=False) for d in days], dtype=np.int64)
            panel = (np.stack([self.day_array(d, adjusted) for d in days]) if days
                     else np.empty((0, len(BAR_FIELDS), len(self._columns))))
            cached = (stamps, panel)
            with self._lock:
                self._panels[key] = cached
                while len(self._panels) > 2:
                    self._panels.pop(next(iter(self._panels)))
        return cached

    def sessions_between(self, start: dt.date, end: dt.date) -> list[dt.date]:
        end = min(end, self.today)
        return self.sessions[bisect.bisect_left(self.sessions, start) : bisect.bisect_right(self.sessions, end)]

    @lru_cache(maxsize=8)  # noqa: B019 - one endpoints object per server; a handful of as-of dates
    def _listing(self, as_of: dt.date, active: bool) -> pd.DataFrame:
        if active:
            return self.market.reference(as_of=as_of)
        try:
            ref = self.market.reference(as_of=as_of, include_inactive=True)
        except TypeError:  # a market without delisting history
            return self.market.reference(as_of=as_of).iloc[0:0]
        return ref[~ref["active"].astype(bool)]

    # -- pagination ----------------------------------------------------------------------------------------------------
    def _page_request(self, request: web.Request, kind: str) -> tuple[dict, int, int]:
        """(query, offset, limit): a `cursor` replaces the whole query, as at Polygon."""
        query = {k: v for k, v in request.query.items() if k.lower() != "apikey"}
        offset = 0
        if "cursor" in query:
            query, offset = decode_cursor(query["cursor"])
        default, cap = DEFAULT_LIMITS[kind]
        try:
            limit = int(query.get("limit", default))
        except ValueError:
            raise BadParameter("limit must be an integer") from None
        if not 1 <= limit <= cap:
            raise BadParameter(f"limit must be between 1 and {cap}")
        return query, offset, min(limit, self.page_cap or limit)

    @staticmethod
    def _next_url(request: web.Request, query: dict, offset: int) -> str:
        return f"{request.scheme}://{request.host}{request.path}?cursor={encode_cursor(query, offset)}"

    def _paged(self, request, kind: str, query: dict, offset: int, limit: int, items: list) -> dict:
        body = {"results": items[offset : offset + limit], "status": "OK", "request_id": request_id()}
        body["count"] = len(body["results"])
        if offset + limit < len(items):
            body["next_url"] = self._next_url(request, query, offset + limit)
        return body

    # -- handlers ------------------------------------------------------------------------------------------------------
    async def unknown(self, request: web.Request) -> web.Response:
        return not_found("Data not found.")

    async def grouped_daily(self, request: web.Request) -> web.Response:
        try:
            day = parse_day(request.match_info["date"], "date")
        except BadParameter as exc:
            return bad_request(str(exc))
        adjusted = parse_bool(request.query.get("adjusted"), True)
        count, results = self.grouped_results(day, adjusted)
        head = {"queryCount": count, "resultsCount": count, "adjusted": adjusted}
        tail = {"status": "OK", "request_id": request_id(), "count": count}
        if not count:  # on weekends and holidays Polygon leaves `results` out altogether
            return json_response({**head, **tail})
        # splice the cached results array between the per-request fields (key order as at Polygon)
        body = dumps(head)[:-1] + b',"results":' + results + b"," + dumps(tail)[1:]
        return web.Response(body=body, content_type="application/json")

    async def ticker_range(self, request: web.Request) -> web.Response:
        info = request.match_info
        try:
            start, end = parse_day(info["start"], "from"), parse_day(info["end"], "to")
            if info["multiplier"] != "1" or info["timespan"] != "day":
                raise BadParameter("the loopback server serves 1/day ranges only")
            query, offset, limit = self._page_request(request, "range")
        except BadParameter as exc:
            return bad_request(str(exc))
        ticker, adjusted = info["ticker"], parse_bool(query.get("adjusted"), True)
        col = self._columns.get(ticker)
        results = []
        if col is not None:
            stamps, panel = self.range_panel(start, end, adjusted)
            bars = panel[:, :, col]  # (days, fields)
            for stamp, values in zip(stamps[np.isfinite(bars[:, 3])], bars[np.isfinite(bars[:, 3])].tolist()):
                bar = {SHORT[f]: v for f, v in zip(BAR_FIELDS, values) if v == v}  # v == v: not NaN
                for short in ("v", "n"):  # integers at Polygon
                    if short in bar:
                        bar[short] = int(bar[short])
                bar["t"] = int(stamp)
                results.append(bar)
        if query.get("sort") == "desc":
            results.reverse()
        page = results[offset : offset + limit]
        body = {"ticker": ticker, "queryCount": len(page), "resultsCount": len(page), "adjusted": adjusted}
        if page:
            body["results"] = page
        body.update(status="OK", request_id=request_id(), count=len(page))
        if offset + limit < len(results):
            body["next_url"] = self._next_url(request, query, offset + limit)
        return json_response(body)

    async def snapshot(self, request: web.Request) -> web.Response:
        day = self.sessions[bisect.bisect_right(self.sessions, self.today) - 1]
        now = self.market.snapshot(day, fraction=self.snapshot_fraction)
        position = self.sessions.index(day)
        prev = self.market.day(self.sessions[position - 1]) if position > 0 else now.iloc[0:0]
        wanted = request.query.get("tickers")
        if wanted:
            names = set(wanted.split(","))
            now = now[now["symbol"].isin(names)]
        prev_bars = {r.pop("T"): r for r in bar_records(prev, {"symbol": "T", **SHORT})}
        stamp = unix_ms(day, at_close=True)
        tickers = []
        for bar in bar_records(now, {"symbol": "T", **SHORT}):
            symbol = bar.pop("T")
            minute = {**bar, "av": bar.get("v", 0), "t": stamp - 60_000}
            item = {"ticker": symbol, "day": bar, "min": minute, "prevDay": prev_bars.get(symbol, {})}
            if symbol in prev_bars and prev_bars[symbol].get("c"):
                change = bar["c"] - prev_bars[symbol]["c"]
                item.update(todaysChange=round(change, 4), todaysChangePerc=round(100 * change / prev_bars[symbol]["c"], 4))
            item["updated"] = stamp * 1_000_000  # Polygon stamps snapshots in ns
            tickers.append(item)
        return json_response({"count": len(tickers), "status": "OK", "request_id": request_id(), "tickers": tickers})

    async def list_tickers(self, request: web.Request) -> web.Response:
        try:
            query, offset, limit = self._page_request(request, "tickers")
            as_of = parse_day(query["date"], "date") if "date" in query else self.today
        except BadParameter as exc:
            return bad_request(str(exc))
        if query.get("market", "stocks") != "stocks":
            return json_response({"results": [], "status": "OK", "request_id": request_id(), "count": 0})
        ref = self._listing(min(as_of, self.today), parse_bool(query.get("active"), True))
        if query.get("type"):
            ref = ref[ref["type"] == query["type"]]
        if query.get("ticker"):
            ref = ref[ref["symbol"] == query["ticker"]]
        ref = ref.sort_values("symbol", ascending=query.get("order", "asc") != "desc")
        items = [
            {"ticker": r.symbol, "name": r.name, "market": "stocks", "locale": "us", "primary_exchange": r.primary_exchange,
             "type": r.type, "active": bool(r.active), "currency_name": "usd",
             "last_updated_utc": f"{self.today.isoformat()}T00:00:00Z"}
            for r in ref.itertuples(index=False)
        ]
        return json_response(self._paged(request, "tickers", query, offset, limit, items))

    async def ticker_details(self, request: web.Request) -> web.Response:
        try:
            as_of = parse_day(request.query["date"], "date") if "date" in request.query else self.today
        except BadParameter as exc:
            return bad_request(str(exc))
        details = self.market.ticker_details(request.match_info["ticker"], as_of=min(as_of, self.today))
        if details is None:
            return not_found("Ticker not found.")
        return json_response({"request_id": request_id(), "results": details, "status": "OK"})

    async def list_splits(self, request: web.Request) -> web.Response:
        try:
            query, offset, limit = self._page_request(request, "splits")
            bounds = {k: parse_day(v, k) for k, v in query.items() if k.startswith("execution_date")}
        except BadParameter as exc:
            return bad_request(str(exc))
        splits = self.market.splits(until=self.today)
        dates = splits["execution_date"].dt.date
        keep = np.ones(len(splits), dtype=bool)
        for key, day in bounds.items():
            op = key.split(".", 1)[1] if "." in key else "eq"
            keep &= {"gte": dates >= day, "gt": dates > day, "lte": dates <= day, "lt": dates < day, "eq": dates == day}[op]
        if query.get("ticker"):
            keep &= splits["symbol"] == query["ticker"]
        splits = splits[keep]
        by = ["symbol", "execution_date"] if query.get("sort") == "ticker" else ["execution_date", "symbol"]
        splits = splits.sort_values(by, ascending=query.get("order", "asc") != "desc")
        items = [
            {"execution_date": r.execution_date.date().isoformat(), "id": f"E{zlib.crc32(f'{r.symbol}{r.execution_date}'.encode()):08x}",
             "split_from": _number(r.split_from), "split_to": _number(r.split_to), "ticker": r.symbol}
            for r in splits.itertuples(index=False)
        ]
        return json_response(self._paged(request, "splits", query, offset, limit, items))

    # -- fault helpers -------------------------------------------------------------------------------------------------
    def with_leaked_key(self, response: web.Response, request: web.Request) -> web.Response:
        """Echo the caller's apiKey into next_url, as some proxies do: the client must drop it, never log it."""
        bearer = request.headers.get("Authorization", "")
        key = bearer[7:] if bearer.startswith("Bearer ") else request.query.get("apiKey")
        if response.status != 200 or not key or not response.body:
            return response
        payload = loads(response.body)
        if payload.get("next_url"):
            payload["next_url"] += "&apiKey=" + key
        return json_response(payload, response.status)


def _number(value: float) -> float | int:
    """Split ratios come as integers when they are whole (1, 10), as at Polygon."""
    return int(value) if float(value).is_integer() else float(value)
