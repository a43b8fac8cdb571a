"""Fetch benchmarks against the loopback Polygon server (simulated market, injected latency), all in one run:

(a) per-symbol path: `batch_fetch_async` vs `batch_fetch_sync`, 100 symbols, 1 year each, 50 ms server latency;
(b) 1-year backfill of ~6,000 symbols at 100 ms latency: `fetch_grouped_days` (one request per trading day) vs the
    per-symbol range path (`batch_fetch_async`, one request per symbol) run in full, not extrapolated.

Request counts come from the server's request log and the client's counter (they must agree); times are wall clock
(time.perf_counter) around the fetch call only. The server runs in a thread of this process, so its CPU time competes
with the client's: the numbers are a pessimistic bound for a remote server.

    python -m benchmarks.bench_fetch [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time

from benchmarks.machine import machine_info
from benchmarks.util import rnd
from technic_v4.calendar import last_completed_session, previous_trading_days
from technic_v4.data.simulated import SimulatedMarket
from benchmarks.batch_fetch import batch_fetch_async, batch_fetch_sync, fetch_grouped_days_async
from tests.support.polygon_server import PolygonServer

KEY = "bench-key"
SEED = 7


def _market(n_symbols: int, sessions: int) -> tuple[SimulatedMarket, list[dt.date]]:
    """A market whose history starts a little before the `sessions` trading days being fetched."""
    end = last_completed_session()
    days = previous_trading_days(end, sessions)
    return SimulatedMarket(seed=SEED, n_symbols=n_symbols, start=days[0] - dt.timedelta(days=7), end=end), days


def _checked(counts: dict, server: PolygonServer, kind: str) -> dict:
    """The client counter's delta, cross-checked against what the server received."""
    received = server.requests.count(kind)
    if counts["attempts"] != received:
        raise AssertionError(f"client counted {counts['attempts']} {kind} requests, server received {received}")
    return {"requests": received, "retries": counts["retries"]}


def async_vs_sync(n_symbols: int = 100, latency_ms: float = 50.0, concurrency: int = 16) -> dict:
    market, days = _market(max(300, n_symbols * 2), 252)
    symbols = [s for s in market.day(days[-1])["symbol"] if s not in ("SPY",)][:n_symbols]
    start, end = days[0], days[-1]
    with PolygonServer(market, api_key=KEY, today=end, latency_ms=latency_ms) as server:
        server.prewarm(days, ranges=True)
        client = {"api_key": KEY, "base_url": server.url}
        sync = batch_fetch_sync(symbols, start, end, **client)
        sync_counts = _checked(sync.requests, server, "range")
        server.requests.reset()
        t0 = time.perf_counter()
        done = asyncio.run(batch_fetch_async(symbols, start, end, max_concurrency=concurrency, **client))
        async_seconds = time.perf_counter() - t0  # includes opening and closing the aiohttp session
        async_counts = _checked(done.requests, server, "range")
        peak = server.requests.peak_in_flight
    if done.bars != sync.bars or done.failed or sync.failed:
        raise AssertionError(f"paths disagree: async {done.bars} bars / {len(done.failed)} failed, sync {sync.bars} / {len(sync.failed)}")
    return {
        "symbols": len(symbols), "days": len(days), "latency_ms": latency_ms, "max_concurrency": concurrency,
        "bars": done.bars, "sync_seconds": rnd(sync.seconds), "async_seconds": rnd(async_seconds),
        "speedup": rnd(sync.seconds / async_seconds, 1), "sync": sync_counts, "async": async_counts,
        "server_peak_in_flight": peak,
    }


def backfill(n_symbols: int = 6250, sessions: int = 252, latency_ms: float = 100.0, grouped_concurrency: int = 16,
             per_symbol_concurrency: int = 64) -> dict:
    # n_symbols counts every name ever listed; ~6,000 of 6,250 trade in the year (IPOs, delistings): the figure
    # reported is the number of distinct symbols actually fetched
    market, days = _market(n_symbols, sessions)
    start, end = days[0], days[-1]
    with PolygonServer(market, api_key=KEY, today=end, latency_ms=latency_ms) as server:
        t0 = time.perf_counter()
        server.prewarm(days, ranges=True)  # simulator work, outside both timed windows
        prewarm_seconds = time.perf_counter() - t0

        t0 = time.perf_counter()
        grouped = asyncio.run(
            fetch_grouped_days_async(days, api_key=KEY, base_url=server.url, max_concurrency=grouped_concurrency)
        )
        grouped_seconds = time.perf_counter() - t0
        grouped_counts = _checked(grouped.requests, server, "grouped_daily")
        symbols = sorted(set().union(*(set(f["symbol"]) for f in grouped.frames.values())))
        grouped_bars = sum(len(f) for f in grouped.frames.values())

        server.requests.reset()
        t0 = time.perf_counter()
        ranges = asyncio.run(
            batch_fetch_async(symbols, start, end, api_key=KEY, base_url=server.url, max_concurrency=per_symbol_concurrency)
        )
        range_seconds = time.perf_counter() - t0
        range_counts = _checked(ranges.requests, server, "range")
    if ranges.bars != grouped_bars or ranges.failed:
        raise AssertionError(f"paths disagree: grouped {grouped_bars} bars, per-symbol {ranges.bars} ({len(ranges.failed)} failed)")
    return {
        "symbols": len(symbols), "trading_days": len(days), "from": str(start), "to": str(end), "latency_ms": latency_ms,
        "bars": grouped_bars, "server_prewarm_seconds": rnd(prewarm_seconds),
        "grouped": {**grouped_counts, "seconds": rnd(grouped_seconds), "max_concurrency": grouped_concurrency},
        "per_symbol": {**range_counts, "seconds": rnd(range_seconds), "max_concurrency": per_symbol_concurrency,
                       "extrapolated": False},
        "request_ratio": rnd(range_counts["requests"] / grouped_counts["requests"], 1),
        "time_ratio": rnd(range_seconds / grouped_seconds, 1),
    }


def run(quick: bool = False) -> dict:
    """Both benchmarks; `quick` shrinks the backfill (800 symbols, 40 days) for a smoke run."""
    t0 = time.perf_counter()
    result = {
        "quick": quick,
        "async_vs_sync": async_vs_sync(n_symbols=100),  # ~7 s; the headline figure, never shrunk
        "backfill": backfill(n_symbols=800, sessions=40) if quick else backfill(),
        "targets": {"speedup_min": 10, "backfill_requests_max": 300, "backfill_seconds_max": 15},
        "machine": machine_info(),
    }
    b, a = result["backfill"], result["async_vs_sync"]
    full = not quick  # the backfill targets are about 6,000 symbols x 1 year: a quick run cannot meet or miss them
    result["verdict"] = {
        "async_vs_sync_ge_10x": a["speedup"] >= 10,
        "backfill_le_300_requests": b["grouped"]["requests"] <= 300 if full else None,
        "backfill_le_15_s": b["grouped"]["seconds"] <= 15 if full else None,
    }
    result["total_seconds"] = rnd(time.perf_counter() - t0, 1)
    return result


def markdown(result: dict) -> str:
    a, b, v = result["async_vs_sync"], result["backfill"], result["verdict"]
    ok = {True: "met", False: "**missed**", None: "not assessed (quick run)"}
    lines = [
        "## Fetching: async vs sync, grouped daily vs per symbol" + (" (quick run)" if result.get("quick") else ""),
        "",
        "Loopback Polygon server (simulated market, real HTTP, injected latency) in a thread of the benchmark process. "
        "Request counts are the server's request log, cross-checked against the client's counter; times are wall clock "
        "around the fetch call.",
        "",
        f"### Per-symbol path, {a['symbols']} symbols × {a['days']} days, {a['latency_ms']:g} ms latency",
        "",
        "| path | requests | retries | seconds |",
        "|---|---:|---:|---:|",
        f"| `batch_fetch_sync` (sequential) | {a['sync']['requests']} | {a['sync']['retries']} | {a['sync_seconds']} |",
        f"| `batch_fetch_async` (max_concurrency {a['max_concurrency']}) | {a['async']['requests']} | "
        f"{a['async']['retries']} | {a['async_seconds']} |",
        "",
        f"Speed-up: **{a['speedup']}x** (target ≥ 10x: {ok[v['async_vs_sync_ge_10x']]}); both paths returned "
        f"{a['bars']:,} bars.",
        "",
        f"### 1-year backfill, {b['symbols']:,} symbols × {b['trading_days']} trading days ({b['from']} – {b['to']}), "
        f"{b['latency_ms']:g} ms latency",
        "",
        "| path | requests | retries | seconds | bars |",
        "|---|---:|---:|---:|---:|",
        f"| grouped daily (`fetch_grouped_days`, concurrency {b['grouped']['max_concurrency']}) | "
        f"{b['grouped']['requests']} | {b['grouped']['retries']} | {b['grouped']['seconds']} | {b['bars']:,} |",
        f"| per symbol (`batch_fetch_async`, concurrency {b['per_symbol']['max_concurrency']}, run in full) | "
        f"{b['per_symbol']['requests']:,} | {b['per_symbol']['retries']} | {b['per_symbol']['seconds']} | {b['bars']:,} |",
        "",
        f"Grouped daily needs {b['request_ratio']}x fewer requests and is {b['time_ratio']}x faster. Targets: ≤ 300 "
        f"requests {ok[v['backfill_le_300_requests']]}, ≤ 15 s {ok[v['backfill_le_15_s']]}. Server-side simulation "
        f"({b['server_prewarm_seconds']} s) was done before timing.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="also write the raw result here")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    print(markdown(result))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2, default=str)
    if False in result["verdict"].values():
        print("at least one target missed", file=sys.stderr)


if __name__ == "__main__":
    main()
