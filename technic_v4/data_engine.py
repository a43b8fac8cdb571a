"""The seed's public name for batch price fetching, kept importable; the code lives in technic_v4.data.polygon.batch."""

from technic_v4.data.polygon.batch import (
    BatchResult,
    GroupedDays,
    batch_fetch_async,
    batch_fetch_sync,
    fetch_grouped_days,
    fetch_grouped_days_async,
    fetch_price_async,
    get_prices,
    get_prices_async_wrapper,
)

__all__ = [
    "BatchResult",
    "GroupedDays",
    "batch_fetch_async",
    "batch_fetch_sync",
    "fetch_grouped_days",
    "fetch_grouped_days_async",
    "fetch_price_async",
    "get_prices",
    "get_prices_async_wrapper",
]
