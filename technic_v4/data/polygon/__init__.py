"""Polygon REST client, shaped like polygon-api-client: a base that owns transport, limiter, retries and errors,
small per-resource modules (aggs, snapshot, reference) that build requests and parse answers, and a client
composing them. See client.py for the verbs."""

from technic_v4.data.polygon.client import PolygonClient, SyncPolygonClient
from technic_v4.data.polygon.records import Agg, Split, TickerDetails
from technic_v4.data.polygon.policy import NotFound, RetryPolicy
from technic_v4.data.polygon.ratelimit import RateLimiter

__all__ = [
    "Agg",
    "NotFound",
    "PolygonClient",
    "RateLimiter",
    "RetryPolicy",
    "Split",
    "SyncPolygonClient",
    "TickerDetails",
]
