"""Polygon's JSON conventions for the loopback server: envelopes, error bodies, bar dicts, timestamps and cursors."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from urllib.parse import parse_qsl, urlencode

import numpy as np
import pandas as pd
from aiohttp import web

from technic_v4.calendar import NY, session_close

try:  # orjson ships with prefect; the stdlib is the fallback
    import orjson

    def dumps(obj) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)

    def loads(body: bytes):
        return orjson.loads(body)

except ImportError:  # pragma: no cover - depends on the environment
    import json

    def dumps(obj) -> bytes:
        return json.dumps(obj, separators=(",", ":"), default=_plain).encode()

    def loads(body: bytes):
        return json.loads(body)


# Endpoint kind (the route name, also the client's RequestCounter kind) -> the key holding its result list.
RESULT_KEYS = {
    "grouped_daily": "results",
    "range": "results",
    "snapshot": "tickers",
    "tickers": "results",
    "ticker_details": "results",
    "splits": "results",
}
BAR_FIELDS = ("open", "high", "low", "close", "volume", "vwap", "transactions")
SHORT = {"open": "o", "high": "h", "low": "l", "close": "c", "volume": "v", "vwap": "vw", "transactions": "n"}
DEFAULT_LIMITS = {"tickers": (100, 1000), "splits": (10, 1000), "range": (5000, 50000)}  # (default, max) page size


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def request_id() -> str:
    return uuid.uuid4().hex


def json_response(body: dict, status: int = 200) -> web.Response:
    return web.Response(status=status, body=dumps(body), content_type="application/json")


def not_found(message: str) -> web.Response:
    return json_response({"status": "NOT_FOUND", "request_id": request_id(), "message": message}, 404)


def bad_request(message: str) -> web.Response:
    return json_response({"status": "ERROR", "request_id": request_id(), "error": message}, 400)


class BadParameter(ValueError):
    """A query/path parameter Polygon would answer with 400."""


def parse_day(value: str, name: str) -> dt.date:
    """Polygon takes YYYY-MM-DD or a Unix-ms timestamp for dates."""
    try:
        if value.isdigit():
            return pd.Timestamp(int(value), unit="ms", tz="UTC").tz_convert(NY).date()
        return dt.date.fromisoformat(value)
    except (ValueError, OverflowError):
        raise BadParameter(f"Could not parse the time parameter: '{name}'. Use YYYY-MM-DD or Unix MS Timestamps") from None


def parse_bool(value: str | None, default: bool) -> bool:
    return default if value is None else value.strip().lower() in ("true", "1", "yes")


def unix_ms(day: dt.date, *, at_close: bool) -> int:
    """Daily-bar timestamps: grouped daily stamps the session close, ranges the window start (midnight New York)."""
    if at_close:
        return int(session_close(day).timestamp() * 1000)
    return int(dt.datetime.combine(day, dt.time(), tzinfo=NY).timestamp() * 1000)


def bar_records(frame: pd.DataFrame, keys: dict[str, str]) -> list[dict]:
    """Frame rows -> Polygon bar dicts with short keys; NaN fields are left out (Polygon omits what it lacks)."""
    cols = [c for c in keys if c in frame.columns]
    sub = frame[cols].rename(columns=keys)
    for short in ("v", "n"):  # Polygon sends volume and trade counts as integers
        if short in sub.columns and sub[short].notna().all():
            sub[short] = sub[short].astype("int64")
    records = sub.to_dict("records")
    if sub.isna().to_numpy().any():
        records = [{k: v for k, v in r.items() if not (isinstance(v, float) and v != v)} for r in records]
    return records


def encode_cursor(query: dict, offset: int) -> str:
    return base64.urlsafe_b64encode(urlencode({**query, "__offset": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dict, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        query = dict(parse_qsl(raw, keep_blank_values=True))
        return query, int(query.pop("__offset"))
    except (ValueError, KeyError, UnicodeDecodeError):
        raise BadParameter("invalid cursor") from None
